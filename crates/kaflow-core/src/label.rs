//! Labelling: one reconstructed TCP connection in, its HTTP messages, events, Zeek state and
//! history and anomalies out, as `pcapkit/label.py`'s `build_connection` gives them.
//!
//! Everything here is about a single connection, so a connection can be labelled as soon as the
//! reconstruction finishes it and its bytes dropped.

use std::borrow::Cow;
use std::sync::Arc;

use crate::flow::{Flow, Mark, Stream, TcpConnection};
use crate::http::{frame_rows_in, keep_small, Kind, Message, Note, Reuse};
use crate::machine::{self, State};
pub use crate::machine::{EventType, Side};
use crate::pytext::commas;
use crate::tls::{self, Tls, Version};

const BLIND: &str = "payload not captured";
const LATE: &str = "data after its own FIN";

/// How the connection's first closing segment closed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseKind {
    Fin,
    Rst,
    /// The upstream's TLS alert (its `close_notify`) before any FIN or RST of its own.
    CloseNotify,
}

impl CloseKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            CloseKind::Fin => "fin",
            CloseKind::Rst => "rst",
            CloseKind::CloseNotify => "close_notify",
        }
    }
}

/// One labelled moment of a connection (`pcapkit.model.Event`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub time_ns: i64,
    pub kind: EventType,
    pub side: Side,
    pub frame: u64,
    pub method: Option<Arc<str>>,
    pub target: Option<Arc<str>>,
    pub host: Option<Arc<str>>,
    pub status: Option<u16>,
    /// A message carrying "Connection: close" (or an HTTP/1.0 message not asking keep-alive).
    pub connection_close: bool,
    /// For requests and responses, the 0-based position of the request on its connection;
    /// None for a response to a request sent before the capture started.
    pub request_index: Option<usize>,
    /// HTTP message length in bytes, when the framing says it.
    pub length: Option<i64>,
    pub note: Option<Cow<'static, str>>,
}

impl Event {
    fn control(time_ns: i64, kind: EventType, side: Side, frame: u64) -> Self {
        Event {
            time_ns,
            kind,
            side,
            frame,
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
}

/// A request nginx sent and what became of it (`pcapkit.model.Request`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub index: usize,
    pub method: Option<Arc<str>>,
    pub target: Option<Arc<str>>,
    pub host: Option<Arc<str>>,
    pub sent_at_ns: i64,
    pub frame: u64,
    pub status: Option<u16>,
    pub responded_at_ns: Option<i64>,
    pub response_frame: Option<u64>,
    pub connection_close: bool,
    /// The request's id header as sent (`X-Request-ID`, else `X-Correlation-ID` or
    /// `Request-Id`): nginx's `$request_id`, when it forwards one, names the log line exactly.
    pub request_id: Option<String>,
}

/// Traffic that does not fit, kept instead of raised (`pcapkit.model.Anomaly`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anomaly {
    pub time_ns: i64,
    pub frame: u64,
    pub side: Side,
    pub what: String,
}

/// What labelling adds to a [`TcpConnection`]: the fields of `pcapkit.model.Connection` that
/// `label.py` fills (id, addresses, ports, first packet and last seen are the connection's own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Labelled {
    /// Who sent the SYN; None when the capture began mid-connection.
    pub opened_by: Option<Side>,
    /// The SYN-ACK.
    pub established_at_ns: Option<i64>,
    /// The client's first segment after the SYN-ACK: its ACK of it (or its first data).
    pub handshake_ack_ns: Option<i64>,
    /// The side whose FIN or RST was the first closing segment.
    pub closed_by: Option<Side>,
    pub close: Option<CloseKind>,
    pub closed_at_ns: Option<i64>,
    /// The upstream's last data segment at or before the first closing segment: where its
    /// keepalive idle timer starts.
    pub last_response_ns: Option<i64>,
    pub partial: bool,
    /// Zeek conn_state: S0 S1 SF REJ S2 S3 RSTO RSTR RSTOS0 RSTRH SH SHR OTH.
    pub state: &'static str,
    pub history: String,
    pub syn_count: u32,
    pub packets: u64,
    pub client_bytes: u64,
    pub server_bytes: u64,
    pub retransmissions: u64,
    /// What the connection became after its last HTTP message, if it became a tunnel:
    /// "websocket" (or another protocol an Upgrade named), "connect".
    pub tunnel: Option<String>,
    /// The upstream's `Keep-Alive` header on its first response (lower-cased), if it sent one:
    /// `timeout=5` is Node's announcement of its idle timeout.
    pub keep_alive: Option<String>,
    /// The upstream's `Server` header on its first response, as sent: which server it is
    /// (gunicorn, uvicorn, Jetty...) decides whose setting the advice names.
    pub server_header: Option<String>,
    /// The only side whose packets the capture holds, when it holds one only: an asymmetric
    /// route or a mirror port. nginx's ACKs and requests after its SYN show the handshake
    /// happened; the upstream's SYN-ACK shows a SYN was sent.
    pub one_sided: Option<Side>,
    /// "TLS 1.2" or "TLS 1.3" when the connection carries TLS (`proxy_pass https://`): its
    /// requests and responses are the record layer's bursts, unreadable.
    pub tls: Option<&'static str>,
    /// The upstream's close is its TLS alert (`close_notify`), before any FIN or RST of its own.
    pub alert_close: bool,
    pub requests: Vec<Request>,
    pub events: Vec<Event>,
    pub anomalies: Vec<Anomaly>,
}

/// The SYN (client) or SYN-ACK (server) event, if the capture has it.
fn opening(flow: &Flow, side: Side) -> Option<Event> {
    let syn = flow.syn?;
    let kind = match side {
        Side::Client => EventType::Syn,
        Side::Server => EventType::SynAck,
    };
    let mut ev = Event::control(syn.ts_ns, kind, side, syn.frame);
    if flow.syn_count > 1 {
        ev.note = Some(Cow::Owned(format!("sent {} times", flow.syn_count)));
    }
    Some(ev)
}

fn ignored_rsts(flow: &Flow, side: Side, ts: i64, frame: u64) -> Option<Anomaly> {
    let n = flow.ignored_rsts;
    (n > 0).then(|| Anomaly {
        time_ns: ts,
        frame,
        side,
        what: format!(
            "{n} RST{} far outside the stream ignored (blind resets?)",
            if n != 1 { "s" } else { "" }
        ),
    })
}

fn notes(notes: &mut Vec<Note>, side: Side) -> impl Iterator<Item = Anomaly> + '_ {
    notes.drain(..).map(move |n| Anomaly {
        time_ns: n.ts_ns,
        frame: n.frame,
        side,
        what: n.what,
    })
}

fn late(marks: &[Mark], side: Side) -> impl Iterator<Item = Anomaly> + '_ {
    marks.iter().map(move |m| Anomaly {
        time_ns: m.ts_ns,
        frame: m.frame,
        side,
        what: LATE.to_string(),
    })
}

/// Why a message could not be read, for its event: the framer's note at the same place says
/// whether its bytes were there but not HTTP/1.x (TLS, HTTP/2, anything else) or not captured.
fn blind_note(m: &Message, notes: &[Note]) -> Option<Cow<'static, str>> {
    if m.parsed {
        return None;
    }
    let said = notes
        .iter()
        .find(|n| n.offset == m.offset && n.what.starts_with("not an HTTP/1.x"));
    let why = match said {
        Some(n) if n.what.contains(": TLS") => "not HTTP: TLS, encrypted",
        Some(n) if n.what.contains(": HTTP/2") => "not HTTP/1.x: HTTP/2",
        Some(_) => "not HTTP",
        None => BLIND,
    };
    Some(Cow::Borrowed(why))
}

/// What a request over TLS is, and what cannot be known of it.
fn encrypted_note(t: &Tls) -> String {
    format!(
        "encrypted request ({}): which one, the capture cannot tell",
        t.version.as_str()
    )
}

/// The upstream's alert that closed the connection, and what can be told of it.
fn alert_note(t: Option<&Tls>, a: &tls::Record, fin: Option<Mark>) -> String {
    let what = match t.map(|t| t.version) {
        Some(Version::Tls12) => "TLS alert (encrypted): close_notify at a close, a fatal alert looks the same",
        _ => "TLS 1.3 alert-sized record (encrypted): close_notify at a close, a fatal alert looks the same",
    };
    let after = match fin {
        Some(m) => format!(
            "; its FIN came {} µs later",
            (m.ts_ns.saturating_sub(a.ts_ns)) / 1000
        ),
        None => "; no FIN".to_string(),
    };
    format!("{what}{after}")
}

/// What labelling needs only while it runs (the messages framed, their pairing, the response
/// events before they are merged), kept by a caller labelling one connection after another: a
/// connection's are then written into memory the ones before already grew, not allocated and
/// freed again for each.
#[derive(Debug, Default)]
pub struct Scratch {
    requests: Reuse,
    responses: Reuse,
    pairs: Vec<(Option<usize>, bool)>,
    resp_events: Vec<Event>,
}

/// Label one reconstructed TCP connection: HTTP messages, events, states, anomalies.
pub fn label(tc: &TcpConnection) -> Labelled {
    label_in(tc, &mut Scratch::default())
}

/// [`label`], its working buffers `scratch`'s.
pub fn label_in(tc: &TcpConnection, scratch: &mut Scratch) -> Labelled {
    let labelled = label_with(tc, scratch);
    scratch.requests.trim();
    scratch.responses.trim();
    keep_small(&mut scratch.pairs);
    keep_small(&mut scratch.resp_events);
    labelled
}

fn label_with(tc: &TcpConnection, scratch: &mut Scratch) -> Labelled {
    let (up, down) = (&tc.to_server, &tc.to_client);
    // one framer per connection: TLS when nginx opens with a TLS handshake, HTTP/1.x otherwise
    let tls = tls::detect(&up.stream, tc.partial)
        .then(|| tls::read(&up.stream, &down.stream, tc.partial));
    let Scratch {
        requests,
        responses: answers,
        pairs,
        resp_events,
    } = scratch;
    match &tls {
        Some(t) => {
            requests.messages.clone_from(&t.requests);
            requests.notes.clear();
            answers.messages.clone_from(&t.responses);
            answers.notes.clear();
        }
        None => {
            frame_rows_in(
                Kind::Request,
                &up.stream,
                &down.stream,
                |_| false,
                tc.partial,
                requests,
            );
            let reqs = &requests.messages;
            let is_head = |i: usize| reqs.get(i).and_then(|r| r.method.as_deref()) == Some("HEAD");
            frame_rows_in(
                Kind::Response,
                &down.stream,
                &up.stream,
                is_head,
                tc.partial,
                answers,
            );
        }
    }
    let (reqs, req_notes) = (&mut requests.messages, &mut requests.notes);
    let (resps, resp_notes) = (&mut answers.messages, &mut answers.notes);
    pairing(reqs, resps, pairs);
    let tunnel = tunnel(reqs, resps, pairs);
    let mut tunnel_note = None;
    if let Some(t) = &tunnel {
        // what follows the two messages that opened the tunnel is not HTTP: not framed, not
        // requests, not anomalies
        let client_from = reqs.get(t.request).map_or(0, end_of);
        let server_from = resps.get(t.response).map_or(0, end_of);
        reqs.truncate(t.request + 1);
        resps.truncate(t.response + 1);
        pairs.truncate(t.response + 1);
        req_notes.retain(|n| n.offset < client_from);
        resp_notes.retain(|n| n.offset < server_from);
        let up_bytes = stream_end(&up.stream).saturating_sub(client_from).max(0);
        let down_bytes = stream_end(&down.stream).saturating_sub(server_from).max(0);
        tunnel_note = Some(format!(
            "{} tunnel from here: {} bytes to the upstream, {} from it, not read as HTTP",
            t.kind,
            commas(i128::from(up_bytes)),
            commas(i128::from(down_bytes))
        ));
    }

    // The upstream's TLS alert before its FIN (uvicorn sends close_notify and no FIN at all):
    // its close, in the FIN's place
    let alert = tls.as_ref().and_then(|t| t.server_alert).filter(|a| {
        let before = |m: Option<Mark>| m.map_or(true, |m| (a.ts_ns, a.frame) < (m.ts_ns, m.frame));
        before(down.fin) && before(down.rst)
    });
    let server_fin = match alert {
        Some(a) => Some(Mark {
            ts_ns: a.ts_ns,
            frame: a.frame,
            offset: a.offset,
        }),
        None => down.fin,
    };
    let closing = [
        (EventType::Fin, Side::Client, up.fin),
        (EventType::Fin, Side::Server, server_fin),
        (EventType::Rst, Side::Client, up.rst),
        (EventType::Rst, Side::Server, down.rst),
    ];
    let mut events = Vec::with_capacity(reqs.len() + resps.len() + 6);
    events.extend(opening(up, Side::Client));
    events.extend(opening(down, Side::Server));
    // what the upstream announces of its keepalive limits (Node, Apache...): its first answer's
    // `Keep-Alive` header, read when it was framed
    let first = resps
        .iter()
        .zip(pairs.iter())
        .find(|(r, &(_, last))| last && r.parsed)
        .and_then(|(r, _)| r.values.as_deref());
    let keep_alive = first.and_then(|v| v.keep_alive.clone());
    let server_header = first.and_then(|v| v.server.clone());
    let mut requests = responses(reqs, resps, pairs, resp_notes, resp_events);
    for r in &mut requests {
        r.request_id = reqs
            .get(r.index)
            .filter(|q| q.parsed)
            .and_then(|q| q.values.as_deref())
            .and_then(|v| v.request_id.clone());
    }
    if let Some(t) = &tls {
        for e in resp_events.iter_mut() {
            e.note = Some(Cow::Owned(format!(
                "encrypted response ({})",
                t.version.as_str()
            )));
        }
    }
    if let (Some(t), Some(note)) = (&tunnel, tunnel_note) {
        if let Some(e) = resp_events.get_mut(t.response) {
            e.note = Some(Cow::Owned(note));
        }
    }
    let in_order = |a: &Event, b: &Event| (a.time_ns, a.frame) <= (b.time_ns, b.frame);
    let reqs_in_order = reqs
        .windows(2)
        .all(|w| (w[0].ts_ns, w[0].frame) <= (w[1].ts_ns, w[1].frame));
    let req_note = tls.as_ref().map(encrypted_note);
    let mut req_events = reqs.drain(..).enumerate().map(|(i, r)| Event {
        note: match &req_note {
            Some(n) => Some(Cow::Owned(n.clone())),
            None => blind_note(&r, req_notes),
        },
        time_ns: r.ts_ns,
        kind: EventType::Request,
        side: Side::Client,
        frame: r.frame,
        method: r.method,
        target: r.target,
        host: r.host,
        status: None,
        // the request's own Connection: close (or HTTP/1.0 without keep-alive): how nginx
        // without `proxy_http_version 1.1` shows on the wire
        connection_close: r.connection_close,
        request_index: Some(i),
        length: r.length,
    });
    if reqs_in_order && resp_events.windows(2).all(|w| in_order(&w[0], &w[1])) {
        // Both in order, so merging them (a request first on a tie, as it is listed first)
        // is what the stable sort below would make of them: it then finds nothing to move.
        let mut resp_events = resp_events.drain(..);
        for q in req_events {
            // looked at in place: an event is too big to move only to look at it
            while resp_events
                .as_slice()
                .first()
                .is_some_and(|r| !in_order(&q, r))
            {
                events.extend(resp_events.next());
            }
            events.push(q);
        }
        events.extend(resp_events);
    } else {
        events.extend(&mut req_events);
        events.append(resp_events);
    }
    let first_close_at = events.len();
    events.extend(closing.iter().filter_map(|&(kind, side, m)| {
        let mut e = Event::control(m?.ts_ns, kind, side, m?.frame);
        if let (Some(a), EventType::Fin, Side::Server) = (alert, kind, side) {
            e.note = Some(Cow::Owned(alert_note(tls.as_ref(), &a, down.fin)));
        }
        Some(e)
    }));
    // The first closing segment by (time, frame), the earliest listed on a tie.
    let first_close = events[first_close_at..]
        .iter()
        .min_by_key(|e| (e.time_ns, e.frame))
        .map(|e| (e.side, e.kind, e.time_ns, e.frame));
    // Stable, so events that share a packet keep the order they are listed in: SYN, SYN-ACK,
    // requests, responses, FINs, RSTs. A SYN-ACK captured before the SYN it answers (-i any,
    // multi-queue NICs) is put right after it: the handshake's order is TCP's, not the file's.
    let handshake = match (up.syn, down.syn) {
        (Some(s), Some(a)) if !tc.partial && (a.ts_ns, a.frame) < (s.ts_ns, s.frame) => {
            Some((s.ts_ns, s.frame))
        }
        _ => None,
    };
    let order = |e: &Event| match handshake {
        Some(at) if e.kind == EventType::SynAck => at,
        _ => (e.time_ns, e.frame),
    };
    if !events.windows(2).all(|w| order(&w[0]) <= order(&w[1])) {
        events.sort_by_key(order);
    }

    let one_sided = if down.packets == 0 && up.packets > u64::from(up.syn_count) {
        Some(Side::Client)
    } else if up.packets == 0 && down.packets > 0 {
        Some(Side::Server)
    } else {
        None
    };
    let start = match (tc.partial, one_sided, down.syn) {
        // the upstream's side only: its SYN-ACK answers a SYN the capture did not hold
        (true, Some(Side::Server), Some(_)) => State::SynSent,
        (true, ..) => State::Established,
        (false, ..) => State::Start,
    };
    let unexpected = machine::describe(&events, start);

    let mut anomalies = unexpected;
    anomalies.extend(late(&up.late_data, Side::Client));
    anomalies.extend(late(&down.late_data, Side::Server));
    anomalies.extend(notes(req_notes, Side::Client));
    anomalies.extend(ignored_rsts(
        up,
        Side::Client,
        tc.first_ts_ns,
        tc.first_frame,
    ));
    anomalies.extend(ignored_rsts(
        down,
        Side::Server,
        tc.first_ts_ns,
        tc.first_frame,
    ));
    anomalies.extend(notes(resp_notes, Side::Server));
    anomalies.sort_by_key(|a| (a.time_ns, a.frame));

    Labelled {
        opened_by: (!tc.partial).then_some(Side::Client),
        established_at_ns: down.syn.filter(|_| !tc.partial).map(|m| m.ts_ns),
        handshake_ack_ns: tc.handshake_ack_ns.filter(|_| !tc.partial),
        closed_by: first_close.map(|c| c.0),
        close: first_close.map(|c| match c.1 {
            EventType::Fin if alert.is_some() && c.0 == Side::Server => CloseKind::CloseNotify,
            EventType::Fin => CloseKind::Fin,
            _ => CloseKind::Rst,
        }),
        closed_at_ns: first_close.map(|c| c.2),
        // over TLS, the idle timer starts before the alert that ends it
        last_response_ns: last_data(
            down,
            first_close.map(|c| match alert {
                Some(a) => (c.2, c.3).min((a.ts_ns, a.frame.saturating_sub(1))),
                None => (c.2, c.3),
            }),
        ),
        partial: tc.partial,
        state: tc.zeek_state,
        history: tc.zeek_history.clone(),
        syn_count: up.syn_count,
        packets: up.packets + down.packets,
        client_bytes: up.bytes,
        server_bytes: down.bytes,
        retransmissions: up.retransmissions + down.retransmissions,
        tunnel: tunnel.map(|t| t.kind),
        keep_alive,
        server_header,
        one_sided,
        tls: tls.as_ref().map(|t| t.version.as_str()),
        alert_close: alert.is_some(),
        requests,
        events,
        anomalies,
    }
}

/// For each response, the request it answers (None: one sent before the capture began) and
/// whether it is that request's final answer.
///
/// HTTP/1.1 answers in order, so each response answers the oldest request not yet answered. A
/// response earlier than every pending request answers one sent before the capture began;
/// interim 1xx responses point at their request without using it up, except `101 Switching
/// Protocols`, the last HTTP on the connection.
fn pairing(reqs: &[Message], resps: &[Message], out: &mut Vec<(Option<usize>, bool)>) {
    let mut head = 0; // the oldest request not yet answered
    out.clear();
    out.extend(resps.iter().map(|r| match reqs.get(head) {
        Some(q) if (q.ts_ns, q.frame) <= (r.ts_ns, r.frame) => {
            let last = r.status.map_or(true, |s| s >= 200 || s == 101);
            let idx = head;
            head += usize::from(last);
            (Some(idx), last)
        }
        _ => (None, false),
    }));
}

/// Where a connection stops carrying HTTP: after a request answered `101 Switching Protocols`
/// (a WebSocket, most often), or a CONNECT answered 2xx.
struct Tunnel {
    request: usize,
    response: usize,
    /// "websocket" (what the Upgrade header names), "connect", or "upgrade" when unnamed.
    kind: String,
}

fn tunnel(reqs: &[Message], resps: &[Message], pairs: &[(Option<usize>, bool)]) -> Option<Tunnel> {
    resps
        .iter()
        .zip(pairs)
        .enumerate()
        .find_map(|(i, (r, &(q, last)))| {
            let q = q.filter(|_| last)?;
            let status = r.status?;
            let kind = if status == 101 {
                let named = r.values.as_deref().and_then(|v| v.upgrade.as_deref());
                let first = named.and_then(|v| v.split(',').next()).map(str::trim);
                match first {
                    Some(p) if !p.is_empty() => p.to_string(),
                    _ => "upgrade".to_string(),
                }
            } else if (200..300).contains(&status)
                && reqs.get(q)?.method.as_deref() == Some("CONNECT")
            {
                "connect".to_string()
            } else {
                return None;
            };
            Some(Tunnel {
                request: q,
                response: i,
                kind,
            })
        })
}

/// Where a message ends in its stream (its start, when its length is unknown).
fn end_of(m: &Message) -> i64 {
    m.offset.saturating_add(m.length.unwrap_or(0))
}

fn stream_end(st: &Stream) -> i64 {
    match (st.starts.last(), st.lengths.last()) {
        (Some(&s), Some(&l)) => s.saturating_add(i64::from(l)),
        _ => 0,
    }
}

/// The response events (into `events`, emptied first, `resps` taken), and every request with
/// the final response that answered it (`pairs`, from [`pairing`]; `notes`, the framer's, say
/// why a response could not be read).
fn responses(
    reqs: &[Message],
    resps: &mut Vec<Message>,
    pairs: &[(Option<usize>, bool)],
    notes: &[Note],
    events: &mut Vec<Event>,
) -> Vec<Request> {
    events.clear();
    events.reserve(resps.len());
    let mut requests = Vec::with_capacity(reqs.len());
    for (r, &(idx, last)) in resps.drain(..).zip(pairs) {
        if let (Some(i), true) = (idx, last) {
            if let Some(q) = reqs.get(i) {
                requests.push(Request {
                    index: i,
                    method: q.method.clone(),
                    target: q.target.clone(),
                    host: q.host.clone(),
                    sent_at_ns: q.ts_ns,
                    frame: q.frame,
                    status: r.status,
                    responded_at_ns: Some(r.ts_ns),
                    response_frame: Some(r.frame),
                    connection_close: r.connection_close,
                    request_id: None,
                });
            }
        }
        let note = blind_note(&r, notes);
        events.push(Event {
            note,
            time_ns: r.ts_ns,
            kind: EventType::Response,
            side: Side::Server,
            frame: r.frame,
            method: None,
            target: None,
            host: None,
            status: r.status,
            connection_close: r.connection_close,
            request_index: idx,
            length: r.length,
        });
    }
    let answered = requests.len();
    requests.extend(
        reqs.iter()
            .enumerate()
            .skip(answered)
            .map(|(i, q)| Request {
                index: i,
                method: q.method.clone(),
                target: q.target.clone(),
                host: q.host.clone(),
                sent_at_ns: q.ts_ns,
                frame: q.frame,
                status: None,
                responded_at_ns: None,
                response_frame: None,
                connection_close: false,
                request_id: None,
            }),
    );
    requests
}

/// The upstream's last data segment at or before the first closing segment (by time, then
/// frame): where its keepalive idle timer starts.
fn last_data(down: &Flow, first_close: Option<(i64, u64)>) -> Option<i64> {
    let st = &down.stream;
    let last = st.ts.iter().copied().max()?;
    match first_close {
        Some(limit) if last >= limit.0 => st
            .ts
            .iter()
            .zip(&st.frames)
            .filter(|&(&t, &f)| (t, f) <= limit)
            .map(|(&t, _)| t)
            .max(),
        _ => Some(last),
    }
}
