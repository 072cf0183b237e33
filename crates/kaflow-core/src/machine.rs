//! The connection state machine: every state, every event, every transition, in one table.
//!
//! As in h11's `_state.py`, the protocol view of a connection is [`TRANSITIONS`]: for each
//! state, which (event type, side) leads where. The machine never sees bytes. A missing entry is
//! not an error: real captures hold traffic that does not fit (data after a FIN, a SYN-ACK whose
//! SYN was missed), so, as Zeek does, the event is kept, an [`Anomaly`] naming the state and the
//! event is recorded, and the state does not change. Zeek's `conn_state` and history are derived
//! from the same events, and [`diagram`] draws the table for the docs, so neither can drift.

use crate::label::{Anomaly, Event};

/// The side that sent a segment: the client is nginx, the server the upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Client,
    Server,
}

impl Side {
    pub const fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

/// What happened: the labelled moments the machine is driven by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    Syn,
    SynAck,
    Request,
    Response,
    Fin,
    Rst,
}

impl EventType {
    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::Syn => "syn",
            EventType::SynAck => "syn_ack",
            EventType::Request => "request",
            EventType::Response => "response",
            EventType::Fin => "fin",
            EventType::Rst => "rst",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Nothing seen yet.
    Start,
    /// The client's SYN, no answer yet.
    SynSent,
    /// The SYN was answered with RST.
    Rejected,
    /// Handshake done (or the capture began mid-connection).
    Established,
    /// nginx sent FIN first; the upstream may still answer.
    ClientClosed,
    /// The upstream sent FIN first; nginx's data is now lost.
    ServerClosed,
    /// Both FINs.
    Closed,
    /// A RST ended it.
    Reset,
}

impl State {
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Start => "start",
            State::SynSent => "syn_sent",
            State::Rejected => "rejected",
            State::Established => "established",
            State::ClientClosed => "client_closed",
            State::ServerClosed => "server_closed",
            State::Closed => "closed",
            State::Reset => "reset",
        }
    }
}

pub type Key = (EventType, Side);

use EventType as E;
use Side::{Client as C, Server as S};
use State as St;

/// `TRANSITIONS[state][(event type, side)] -> next state`, in the order the diagram lists them.
pub const TRANSITIONS: &[(State, &[(Key, State)])] = &[
    (St::Start, &[((E::Syn, C), St::SynSent)]),
    (
        St::SynSent,
        &[
            // TCP Fast Open: the request rides on the SYN
            ((E::Request, C), St::SynSent),
            ((E::SynAck, S), St::Established),
            ((E::Rst, S), St::Rejected),
            ((E::Rst, C), St::Reset),
            ((E::Fin, C), St::ClientClosed),
        ],
    ),
    (
        St::Established,
        &[
            ((E::Request, C), St::Established),
            ((E::Response, S), St::Established),
            ((E::Fin, C), St::ClientClosed),
            ((E::Fin, S), St::ServerClosed),
            ((E::Rst, C), St::Reset),
            ((E::Rst, S), St::Reset),
        ],
    ),
    (
        St::ClientClosed,
        &[
            // a half-close: the upstream may still answer what it was sent
            ((E::Response, S), St::ClientClosed),
            ((E::Fin, S), St::Closed),
            ((E::Rst, C), St::Reset),
            ((E::Rst, S), St::Reset),
        ],
    ),
    (
        St::ServerClosed,
        &[
            // nginx may write a request before it reads the upstream's FIN: legal TCP, and
            // exactly the race that loses requests (the classifier flags it)
            ((E::Request, C), St::ServerClosed),
            ((E::Fin, C), St::Closed),
            ((E::Rst, C), St::Reset),
            ((E::Rst, S), St::Reset),
        ],
    ),
    // a RST after both FINs answers a late segment
    (
        St::Closed,
        &[((E::Rst, C), St::Closed), ((E::Rst, S), St::Closed)],
    ),
    // both sides resetting
    (
        St::Reset,
        &[((E::Rst, C), St::Reset), ((E::Rst, S), St::Reset)],
    ),
    (St::Rejected, &[]),
];

fn row(state: State) -> &'static [(Key, State)] {
    TRANSITIONS
        .iter()
        .find(|(s, _)| *s == state)
        .map_or(&[], |(_, r)| r)
}

/// Where `key` leads from `state`; None when the table has no such edge.
pub fn next(state: State, key: Key) -> Option<State> {
    row(state).iter().find(|(k, _)| *k == key).map(|(_, s)| *s)
}

fn what(key: Key) -> &'static str {
    match key {
        (E::Syn, C) => "SYN",
        (E::SynAck, S) => "SYN-ACK",
        (E::Request, C) => "request",
        (E::Response, S) => "response",
        (E::Fin, C) => "nginx's FIN",
        (E::Fin, S) => "upstream's FIN",
        (E::Rst, C) => "nginx's RST",
        (E::Rst, S) => "upstream's RST",
        // events no stage produces; named the generic way
        (E::Syn, S) => "syn from server",
        (E::SynAck, C) => "syn_ack from client",
        (E::Request, S) => "request from server",
        (E::Response, C) => "response from client",
    }
}

fn unexpected(ev: &Event, state: State) -> Anomaly {
    Anomaly {
        time_ns: ev.time_ns,
        frame: ev.frame,
        side: ev.side,
        what: format!("{} in state {}", what((ev.kind, ev.side)), state.as_str()),
    }
}

/// What the machine made of one connection's events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// The state after each event.
    pub states: Vec<State>,
    pub last: State,
    pub anomalies: Vec<Anomaly>,
}

/// Drive the machine over events in time order; unexpected ones become anomalies.
pub fn run(events: &[Event], start: State) -> Run {
    let mut state = start;
    let mut states = Vec::with_capacity(events.len());
    let mut anomalies = Vec::new();
    for ev in events {
        match next(state, (ev.kind, ev.side)) {
            Some(n) => state = n,
            None => anomalies.push(unexpected(ev, state)),
        }
        states.push(state);
    }
    Run {
        states,
        last: state,
        anomalies,
    }
}

/// [`run`]'s anomalies alone, in one pass that keeps no state per event (the labelling's).
pub fn describe(events: &[Event], start: State) -> Vec<Anomaly> {
    let mut state = start;
    let mut table = row(state);
    let mut anomalies = Vec::new();
    for ev in events {
        let key = (ev.kind, ev.side);
        match table.iter().find(|(k, _)| *k == key) {
            Some(&(_, n)) => {
                if n != state {
                    state = n;
                    table = row(state);
                }
            }
            None => anomalies.push(unexpected(ev, state)),
        }
    }
    anomalies
}

/// The transition table as a Mermaid state diagram, for the docs.
pub fn diagram() -> String {
    let mut out =
        String::from("stateDiagram-v2\n    [*] --> start\n    [*] --> established: mid-stream");
    for (state, edges) in TRANSITIONS {
        for ((etype, side), to) in edges.iter() {
            out.push_str(&format!(
                "\n    {} --> {}: {} ({})",
                state.as_str(),
                to.as_str(),
                etype.as_str(),
                side.as_str()
            ));
        }
    }
    out
}
