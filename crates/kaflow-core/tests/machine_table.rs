//! The connection state machine and the Zeek vocabulary derived from the same events:
//! `tests/test_machine.py` ported, and the one-pass `describe` checked against `run`.

use kaflow_core::label::Event;
use kaflow_core::machine::{describe, diagram, run, EventType, Side, State, TRANSITIONS};

fn ev(t: i64, kind: EventType, side: Side) -> Event {
    Event {
        time_ns: t,
        kind,
        side,
        frame: t as u64,
        method: None,
        target: None,
        host: None,
        status: None,
        connection_close: false,
        request_index: None,
        length: None,
        note: None,
    }
}

use EventType::*;
use Side::{Client, Server};

fn healthy() -> Vec<Event> {
    vec![
        ev(1, Syn, Client),
        ev(2, SynAck, Server),
        ev(3, Request, Client),
        ev(4, Response, Server),
        ev(5, Fin, Client),
        ev(6, Fin, Server),
    ]
}

fn with(base: &[Event], more: &[Event]) -> Vec<Event> {
    base.iter().chain(more).cloned().collect()
}

#[test]
fn healthy_keepalive_connection() {
    let r = run(&healthy(), State::Start);
    assert_eq!(r.last, State::Closed);
    assert!(r.anomalies.is_empty());
}

#[test]
fn request_after_upstream_fin_is_allowed_it_is_the_race() {
    let events = with(
        &healthy()[..4],
        &[
            ev(5, Fin, Server),
            ev(6, Request, Client),
            ev(7, Fin, Client),
        ],
    );
    let r = run(&events, State::Start);
    assert_eq!(
        r.states[r.states.len() - 3..],
        [State::ServerClosed, State::ServerClosed, State::Closed]
    );
    assert!(r.anomalies.is_empty());
}

#[test]
fn data_after_own_fin_is_an_anomaly_not_an_error() {
    let events = with(
        &healthy()[..4],
        &[ev(5, Fin, Server), ev(6, Response, Server)],
    );
    let r = run(&events, State::Start);
    assert_eq!(r.last, State::ServerClosed);
    assert_eq!(r.anomalies.len(), 1);
    assert_eq!(r.anomalies[0].what, "response in state server_closed");
    assert_eq!((r.anomalies[0].time_ns, r.anomalies[0].frame), (6, 6));
}

#[test]
fn syn_answered_by_rst_is_rejected() {
    let events = [ev(1, Syn, Client), ev(2, Rst, Server)];
    assert_eq!(run(&events, State::Start).last, State::Rejected);
}

#[test]
fn midstream_start() {
    let events = [
        ev(1, Request, Client),
        ev(2, Response, Server),
        ev(3, Fin, Server),
    ];
    let r = run(&events, State::Established);
    assert_eq!(r.last, State::ServerClosed);
    assert!(r.anomalies.is_empty());
}

#[test]
fn every_state_has_a_row() {
    let all = [
        State::Start,
        State::SynSent,
        State::Rejected,
        State::Established,
        State::ClientClosed,
        State::ServerClosed,
        State::Closed,
        State::Reset,
    ];
    assert_eq!(TRANSITIONS.len(), all.len());
    assert!(all.iter().all(|s| TRANSITIONS.iter().any(|(t, _)| t == s)));
}

#[test]
fn docs_diagram_matches_the_table() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/state-machine.md"),
    )
    .unwrap();
    assert!(doc.contains(&diagram()));
}

#[test]
fn diagram_is_the_reference_text() {
    // what Python's machine.diagram() prints
    let want = "stateDiagram-v2
    [*] --> start
    [*] --> established: mid-stream
    start --> syn_sent: syn (client)
    syn_sent --> syn_sent: request (client)
    syn_sent --> established: syn_ack (server)
    syn_sent --> rejected: rst (server)
    syn_sent --> reset: rst (client)
    syn_sent --> client_closed: fin (client)
    established --> established: request (client)
    established --> established: response (server)
    established --> client_closed: fin (client)
    established --> server_closed: fin (server)
    established --> reset: rst (client)
    established --> reset: rst (server)
    client_closed --> client_closed: response (server)
    client_closed --> closed: fin (server)
    client_closed --> reset: rst (client)
    client_closed --> reset: rst (server)
    server_closed --> server_closed: request (client)
    server_closed --> closed: fin (client)
    server_closed --> reset: rst (client)
    server_closed --> reset: rst (server)
    closed --> closed: rst (client)
    closed --> closed: rst (server)
    reset --> reset: rst (client)
    reset --> reset: rst (server)";
    assert_eq!(diagram(), want);
}

const KEYS: [(EventType, Side); 8] = [
    (Syn, Client),
    (SynAck, Server),
    (Request, Client),
    (Response, Server),
    (Fin, Client),
    (Fin, Server),
    (Rst, Client),
    (Rst, Server),
];

#[test]
fn describe_is_runs_anomalies_in_one_pass() {
    let mut seed = 88172645463325252u64;
    for _ in 0..5000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let n = (seed % 13) as usize;
        let events: Vec<Event> = (0..n)
            .map(|i| {
                let (k, s) = KEYS[((seed >> (4 + 3 * i)) % 8) as usize];
                ev(i as i64, k, s)
            })
            .collect();
        for start in [State::Start, State::Established] {
            assert_eq!(describe(&events, start), run(&events, start).anomalies);
        }
    }
}
