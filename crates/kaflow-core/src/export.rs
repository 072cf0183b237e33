//! The text of the JSON and CSV reports' per-connection parts, written once, here.
//!
//! A capture's JSON report is mostly its connections' events and requests, and its CSV report
//! is one row per event: hundreds of thousands of them on a busy capture. Written here, from
//! the rows the core already holds, they never become Python objects. The text is exactly what
//! Python's encoders wrote before (`json.dumps(x, ensure_ascii=False)` of the documented dict,
//! `csv.writer`'s rows), which the tests hold it to: floats as `repr(ns / 1e9)`, strings
//! escaped as `json` escapes them, CSV fields quoted as `csv.QUOTE_MINIMAL` quotes them.
//!
//! Both writers read a [`ConnectionText`], a borrowed view: [`crate::batch::Batch`] makes one
//! from a finished connection, the binding from a `pcapkit.model.Connection` a library user
//! holds, so there is one encoder of each format whatever the connection came from.

use std::fmt::Write as _;

use crate::label::{Labelled, Side};
use crate::machine::EventType;

/// One event, as the reports write it.
#[derive(Debug, Clone, Copy)]
pub struct EventText<'a> {
    pub time_ns: i64,
    pub kind: &'a str,
    pub side: &'a str,
    pub frame: u64,
    pub method: Option<&'a str>,
    pub target: Option<&'a str>,
    pub host: Option<&'a str>,
    pub status: Option<u16>,
    pub connection_close: bool,
    pub request_index: Option<u64>,
    pub length: Option<i64>,
    pub note: Option<&'a str>,
}

/// One request, as the JSON report writes it.
#[derive(Debug, Clone, Copy)]
pub struct RequestText<'a> {
    pub method: Option<&'a str>,
    pub target: Option<&'a str>,
    pub host: Option<&'a str>,
    pub sent_at_ns: i64,
    pub frame: u64,
    pub status: Option<u16>,
    pub responded_at_ns: Option<i64>,
    pub connection_close: bool,
    pub request_id: Option<&'a str>,
}

/// One anomaly, as the JSON report writes it.
#[derive(Debug, Clone, Copy)]
pub struct AnomalyText<'a> {
    pub time_ns: i64,
    pub frame: u64,
    pub side: &'a str,
    pub what: &'a str,
}

/// What the reports write of a connection.
#[derive(Debug, Clone)]
pub struct ConnectionText<'a> {
    pub id: u64,
    pub client: &'a str,
    pub server: &'a str,
    pub opened_at_ns: i64,
    pub first_frame: u64,
    pub opened_by: Option<&'a str>,
    pub established_at_ns: Option<i64>,
    pub closed_by: Option<&'a str>,
    pub close: Option<&'a str>,
    pub closed_at_ns: Option<i64>,
    pub last_seen_ns: i64,
    pub partial: bool,
    pub state: &'a str,
    pub history: &'a str,
    pub packets: u64,
    pub retransmissions: u64,
    pub client_bytes: u64,
    pub server_bytes: u64,
    pub requests: Vec<RequestText<'a>>,
    pub events: Vec<EventText<'a>>,
    pub anomalies: Vec<AnomalyText<'a>>,
    pub tunnel: Option<&'a str>,
    pub keep_alive: Option<&'a str>,
    pub server_header: Option<&'a str>,
    pub one_sided: Option<&'a str>,
    pub tls: Option<&'a str>,
}

/// The event types in the order [`CSV_KEY`] numbers them (`pcapkit.model.EventType`'s).
pub const EVENT_TYPES: [EventType; 6] = [
    EventType::Syn,
    EventType::SynAck,
    EventType::Request,
    EventType::Response,
    EventType::Fin,
    EventType::Rst,
];

/// The sides in the order [`CSV_KEY`] numbers them.
pub const SIDES: [Side; 2] = [Side::Client, Side::Server];

/// The int64s [`csv_rows`] gives per row: where the row's text ends, the event's type and side
/// (positions in [`EVENT_TYPES`] and [`SIDES`], -1 for a name not there), its frame, and its
/// request index (-1 for none). What the report needs to put a finding on the row showing it
/// and to lead each row with a capture's path, without reading the text back.
pub const CSV_KEY: usize = 5;

impl<'a> ConnectionText<'a> {
    /// The view of a finished connection; `client` and `server` are its endpoints as written.
    pub fn of(id: u64, client: &'a str, server: &'a str, f: RowFacts, l: &'a Labelled) -> Self {
        ConnectionText {
            id,
            client,
            server,
            opened_at_ns: f.first_ts_ns,
            first_frame: f.first_frame,
            opened_by: l.opened_by.map(Side::as_str),
            established_at_ns: l.established_at_ns,
            closed_by: l.closed_by.map(Side::as_str),
            close: l.close.map(|c| c.as_str()),
            closed_at_ns: l.closed_at_ns,
            last_seen_ns: f.last_ts_ns,
            partial: l.partial,
            state: l.state,
            history: &l.history,
            packets: l.packets,
            retransmissions: l.retransmissions,
            client_bytes: l.client_bytes,
            server_bytes: l.server_bytes,
            requests: l
                .requests
                .iter()
                .map(|r| RequestText {
                    method: r.method.as_deref(),
                    target: r.target.as_deref(),
                    host: r.host.as_deref(),
                    sent_at_ns: r.sent_at_ns,
                    frame: r.frame,
                    status: r.status,
                    responded_at_ns: r.responded_at_ns,
                    connection_close: r.connection_close,
                    request_id: r.request_id.as_deref(),
                })
                .collect(),
            events: l
                .events
                .iter()
                .map(|e| EventText {
                    time_ns: e.time_ns,
                    kind: e.kind.as_str(),
                    side: e.side.as_str(),
                    frame: e.frame,
                    method: e.method.as_deref(),
                    target: e.target.as_deref(),
                    host: e.host.as_deref(),
                    status: e.status,
                    connection_close: e.connection_close,
                    request_index: e.request_index.map(|i| i as u64),
                    length: e.length,
                    note: e.note.as_deref(),
                })
                .collect(),
            anomalies: l
                .anomalies
                .iter()
                .map(|a| AnomalyText {
                    time_ns: a.time_ns,
                    frame: a.frame,
                    side: a.side.as_str(),
                    what: &a.what,
                })
                .collect(),
            tunnel: l.tunnel.as_deref(),
            keep_alive: l.keep_alive.as_deref(),
            server_header: l.server_header.as_deref(),
            one_sided: l.one_sided.map(Side::as_str),
            tls: l.tls,
        }
    }
}

/// What a finished connection knows of itself beside its labels.
#[derive(Debug, Clone, Copy)]
pub struct RowFacts {
    pub first_ts_ns: i64,
    pub first_frame: u64,
    pub last_ts_ns: i64,
}

/// `repr(ns / 1e9)`: Python's shortest round-trip float, in its layout (`0.0`, `1.5`,
/// `1e-05`, `1.5e+16`: exponent form below 1e-4 and from 1e16 on, at least two exponent
/// digits, `.0` on whole numbers written without one).
pub fn seconds(out: &mut String, ns: i64) {
    // Python divides the int converted to the nearest float, as `as` converts it
    let x = ns as f64 / 1e9;
    if x == 0.0 {
        out.push_str(if x.is_sign_negative() { "-0.0" } else { "0.0" });
        return;
    }
    // ryu's digits are the shortest round-trip ones, the nearest of them, as Python's repr
    // picks them, only laid out otherwise (`1e16`, `1.5e-7`, `0.0001`); std's formatting gave
    // the same digits at several times the cost, most of a JSON report's
    let mut buf = ryu::Buffer::new();
    let text = buf.format_finite(x.abs()).as_bytes();
    let e = text.iter().position(|&b| b == b'e').unwrap_or(text.len());
    let (mantissa, exp) = text.split_at(e);
    let shift: i32 = std::str::from_utf8(exp.get(1..).unwrap_or_default())
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let mut digits = [0u8; 24];
    let mut n = 0;
    // where the point goes, counted from the first digit kept
    let mut decpt = shift;
    let mut before_point = true;
    for &b in mantissa {
        if b == b'.' {
            before_point = false;
        } else if b == b'0' && n == 0 {
            decpt -= i32::from(!before_point); // a leading zero: "0.001"
        } else if let Some(d) = digits.get_mut(n) {
            *d = b;
            n += 1;
            decpt += i32::from(before_point);
        }
    }
    while n > 1 && digits.get(n - 1) == Some(&b'0') {
        n -= 1;
    }
    let digits = std::str::from_utf8(digits.get(..n).unwrap_or_default()).unwrap_or("0");
    if x < 0.0 {
        out.push('-');
    }
    let n = i32::try_from(n).unwrap_or(i32::MAX);
    if decpt <= -4 || decpt > 16 {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let exp = decpt - 1;
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let exp = exp.unsigned_abs();
        if exp < 10 {
            out.push('0');
        }
        int(out, u64::from(exp));
    } else if decpt <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat('0').take(decpt.unsigned_abs() as usize));
        out.push_str(digits);
    } else if decpt < n {
        let (int, frac) = digits.split_at(decpt.unsigned_abs() as usize);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else {
        out.push_str(digits);
        out.extend(std::iter::repeat('0').take((decpt - n).unsigned_abs() as usize));
        out.push_str(".0");
    }
}

/// A number in decimal, as `str(n)`, without the formatting machinery (a report writes
/// millions of frames and counts).
fn int(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        if let Some(b) = buf.get_mut(at) {
            *b = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || at == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(buf.get(at..).unwrap_or_default()).unwrap_or("0"));
}

fn signed(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    int(out, n.unsigned_abs());
}

/// A JSON string as `json.dumps(s, ensure_ascii=False)` writes it.
pub fn json_str(out: &mut String, s: &str) {
    out.push('"');
    // most strings need no escape at all: eight bytes are looked at in one step until one does
    let mut from = 0;
    for w in s.as_bytes().chunks_exact(8) {
        let w = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
        if escapes(w) {
            break;
        }
        from += 8;
    }
    out.push_str(s.get(..from).unwrap_or(""));
    for (i, b) in s.bytes().enumerate().skip(from) {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(s.get(from..i).unwrap_or(""));
        if esc.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(esc);
        }
        from = i + 1;
    }
    out.push_str(s.get(from..).unwrap_or(""));
    out.push('"');
}

/// Whether any of the eight bytes is one JSON escapes: below 0x20, a quote or a backslash
/// (the classic "has a byte less than n" and "has a zero byte" word tricks, exact for "any").
fn escapes(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = w.wrapping_sub(ONES * 0x20) & !w;
    let quote = w ^ (ONES * u64::from(b'"'));
    let backslash = w ^ (ONES * u64::from(b'\\'));
    let zero = |x: u64| x.wrapping_sub(ONES) & !x;
    (below | zero(quote) | zero(backslash)) & HIGH != 0
}

fn json_opt_str(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => json_str(out, s),
        None => out.push_str("null"),
    }
}

fn json_opt_num(out: &mut String, n: Option<u64>) {
    match n {
        Some(n) => int(out, n),
        None => out.push_str("null"),
    }
}

fn json_opt_seconds(out: &mut String, ns: Option<i64>) {
    match ns {
        Some(ns) => seconds(out, ns),
        None => out.push_str("null"),
    }
}

fn json_bool(out: &mut String, b: bool) {
    out.push_str(if b { "true" } else { "false" });
}

/// `"key":` after the comma that separates it from the key before.
fn key(out: &mut String, k: &str) {
    out.push_str(",\"");
    out.push_str(k);
    out.push_str("\":");
}

/// The connection as the JSON report's line: `json.dumps(connection_dict(c),
/// ensure_ascii=False, separators=(",", ":"))` of `docs/json-schema.md`'s connection object.
pub fn connection_json(out: &mut String, c: &ConnectionText) {
    out.push_str("{\"id\":");
    int(out, c.id);
    key(out, "client");
    json_str(out, c.client);
    key(out, "server");
    json_str(out, c.server);
    key(out, "opened_at");
    seconds(out, c.opened_at_ns);
    key(out, "first_frame");
    int(out, c.first_frame);
    key(out, "opened_by");
    json_opt_str(out, c.opened_by);
    key(out, "established_at");
    json_opt_seconds(out, c.established_at_ns);
    key(out, "closed_by");
    json_opt_str(out, c.closed_by);
    key(out, "close");
    json_opt_str(out, c.close);
    key(out, "closed_at");
    json_opt_seconds(out, c.closed_at_ns);
    key(out, "last_seen");
    seconds(out, c.last_seen_ns);
    key(out, "partial");
    json_bool(out, c.partial);
    key(out, "state");
    json_str(out, c.state);
    key(out, "history");
    json_str(out, c.history);
    for (k, n) in [
        ("packets", c.packets),
        ("retransmissions", c.retransmissions),
        ("client_bytes", c.client_bytes),
        ("server_bytes", c.server_bytes),
    ] {
        key(out, k);
        int(out, n);
    }
    key(out, "requests");
    out.push('[');
    for (i, r) in c.requests.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        request_json(out, r);
    }
    out.push(']');
    key(out, "events");
    out.push('[');
    for (i, e) in c.events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        event_json(out, e);
    }
    out.push(']');
    key(out, "anomalies");
    out.push('[');
    for (i, a) in c.anomalies.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"time\":");
        seconds(out, a.time_ns);
        out.push_str(",\"frame\":");
        int(out, a.frame);
        key(out, "from");
        json_str(out, a.side);
        key(out, "what");
        json_str(out, a.what);
        out.push('}');
    }
    out.push(']');
    for (k, v) in [
        ("tunnel", c.tunnel),
        ("keep_alive", c.keep_alive),
        ("server_header", c.server_header),
        ("one_sided", c.one_sided),
        ("tls", c.tls),
    ] {
        if let Some(v) = v {
            key(out, k);
            json_str(out, v);
        }
    }
    out.push('}');
}

fn request_json(out: &mut String, r: &RequestText) {
    out.push_str("{\"method\":");
    json_opt_str(out, r.method);
    key(out, "target");
    json_opt_str(out, r.target);
    key(out, "host");
    json_opt_str(out, r.host);
    key(out, "sent_at");
    seconds(out, r.sent_at_ns);
    out.push_str(",\"frame\":");
    int(out, r.frame);
    key(out, "status");
    json_opt_num(out, r.status.map(u64::from));
    key(out, "responded_at");
    json_opt_seconds(out, r.responded_at_ns);
    key(out, "connection_close");
    json_bool(out, r.connection_close);
    if let Some(id) = r.request_id {
        key(out, "request_id");
        json_str(out, id);
    }
    out.push('}');
}

fn event_json(out: &mut String, e: &EventText) {
    out.push_str("{\"time\":");
    seconds(out, e.time_ns);
    key(out, "type");
    json_str(out, e.kind);
    key(out, "from");
    json_str(out, e.side);
    out.push_str(",\"frame\":");
    int(out, e.frame);
    if e.kind == EventType::Request.as_str() {
        key(out, "method");
        json_opt_str(out, e.method);
        key(out, "target");
        json_opt_str(out, e.target);
        key(out, "host");
        json_opt_str(out, e.host);
        key(out, "request");
        json_opt_num(out, e.request_index);
    } else if e.kind == EventType::Response.as_str() {
        key(out, "status");
        json_opt_num(out, e.status.map(u64::from));
        key(out, "connection_close");
        json_bool(out, e.connection_close);
        key(out, "request");
        json_opt_num(out, e.request_index);
    }
    if let Some(n) = e.length {
        out.push_str(",\"length\":");
        signed(out, n);
    }
    if let Some(note) = e.note {
        key(out, "note");
        json_str(out, note);
    }
    out.push('}');
}

/// Exact decimal seconds, nanosecond digits (`-0.000000001`): never rounded by a float.
fn exact_seconds(out: &mut String, ns: i128) {
    let sign = if ns < 0 { "-" } else { "" };
    // i64 - i64 fits a u64 once its sign is off: divided as one (a u128 division is a call)
    let ns = u64::try_from(ns.unsigned_abs()).unwrap_or(u64::MAX);
    out.push_str(sign);
    int(out, ns / 1_000_000_000);
    out.push('.');
    let frac = ns % 1_000_000_000;
    let mut digits = [b'0'; 9];
    let mut rest = frac;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.push_str(std::str::from_utf8(&digits).unwrap_or("000000000"));
}

/// A field as `csv.writer` (`QUOTE_MINIMAL`, `lineterminator="\n"`) writes it: quoted when it
/// holds the delimiter, the quote or the line terminator, quotes doubled. A bare CR is left
/// unquoted as CPython 3.11.7 (the project's) leaves it; 3.11.9 and 3.12.3 on quote it too
/// (gh-67044), and `tests/test_export.py`'s odd strings hold a CR to say so if Python moves.
fn csv_field(out: &mut String, s: &str) {
    if memchr::memchr3(b',', b'"', b'\n', s.as_bytes()).is_none() {
        out.push_str(s);
        return;
    }
    out.push('"');
    for (i, part) in s.split('"').enumerate() {
        if i > 0 {
            out.push_str("\"\"");
        }
        out.push_str(part);
    }
    out.push('"');
}

fn csv_opt_num(out: &mut String, n: Option<u64>) {
    if let Some(n) = n {
        int(out, n);
    }
}

/// The CSV report's rows of the connection, one per event, with the findings column empty
/// (findings are paired with events only at the end of the capture), and [`CSV_KEY`] int64s
/// per row in `keys`.
pub fn csv_rows(out: &mut String, keys: &mut Vec<i64>, c: &ConnectionText) {
    let mut lead = String::with_capacity(64);
    let _ = write!(lead, "{},", c.id);
    csv_field(&mut lead, c.client);
    lead.push(',');
    csv_field(&mut lead, c.server);
    lead.push(',');
    for e in &c.events {
        out.push_str(&lead);
        exact_seconds(out, i128::from(e.time_ns));
        out.push(',');
        exact_seconds(out, i128::from(e.time_ns) - i128::from(c.opened_at_ns));
        out.push(',');
        csv_field(out, e.kind);
        out.push(',');
        csv_field(out, e.side);
        out.push(',');
        int(out, e.frame);
        out.push(',');
        csv_field(out, e.method.unwrap_or(""));
        out.push(',');
        csv_field(out, e.target.unwrap_or(""));
        out.push(',');
        csv_field(out, e.host.unwrap_or(""));
        out.push(',');
        csv_opt_num(out, e.status.map(u64::from));
        out.push_str(if e.connection_close { ",1," } else { ",0," });
        csv_opt_num(out, e.request_index);
        out.push(',');
        csv_field(out, e.note.unwrap_or(""));
        out.push_str(",\n");
        let kind = EVENT_TYPES.iter().position(|t| t.as_str() == e.kind);
        let side = SIDES.iter().position(|s| s.as_str() == e.side);
        keys.extend_from_slice(&[
            i64::try_from(out.len()).unwrap_or(i64::MAX),
            kind.map_or(-1, |k| k as i64),
            side.map_or(-1, |s| s as i64),
            i64::try_from(e.frame).unwrap_or(i64::MAX),
            e.request_index
                .map_or(-1, |i| i64::try_from(i).unwrap_or(i64::MAX)),
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(ns: i64) -> String {
        let mut s = String::new();
        seconds(&mut s, ns);
        s
    }

    #[test]
    fn seconds_as_python_reprs_them() {
        // repr(ns / 1e9) from CPython 3.11
        for (ns, want) in [
            (0, "0.0"),
            (1, "1e-09"),
            (-1, "-1e-09"),
            (15, "1.5e-08"),
            (99_999, "9.9999e-05"),
            (100_000, "0.0001"),
            (123_456, "0.000123456"),
            (1_000_000_000, "1.0"),
            (-1_500_000_000, "-1.5"),
            (1_732_406_400_000_163_000, "1732406400.000163"),
            (1_732_406_400_123_456_789, "1732406400.1234567"),
            (i64::MAX, "9223372036.854776"),
            (i64::MIN, "-9223372036.854776"),
            (10_000_000_000_000_000, "10000000.0"),
        ] {
            assert_eq!(secs(ns), want, "{ns}");
        }
    }

    /// The shortest digits that read back as the float, by trying each length in turn:
    /// std's `{:.*e}` rounds to the nearest of each length, as repr's pick among ties.
    fn shortest_digits(x: f64) -> String {
        for k in 0..17 {
            let t = format!("{:.*e}", k, x.abs());
            if t.parse::<f64>() == Ok(x.abs()) {
                let m = t.split('e').next().unwrap_or_default();
                return m.replace('.', "").trim_end_matches('0').to_string();
            }
        }
        unreachable!("17 digits always read back")
    }

    #[test]
    fn seconds_are_the_shortest_digits_that_read_back() {
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for i in 0..200_000 {
            let r = next();
            let ns = match i % 4 {
                0 => 1_700_000_000_000_000_000 + (r % 100_000_000_000_000_000) as i64 / 1000 * 1000,
                1 => 1_700_000_000_000_000_000 + (r % 100_000_000_000_000_000) as i64,
                2 => (r % 10_000_000_000) as i64 - 5_000_000_000,
                _ => r as i64 >> (r % 64),
            };
            let text = secs(ns);
            let x = ns as f64 / 1e9;
            assert_eq!(text.parse::<f64>(), Ok(x), "{ns} wrote {text}");
            let mantissa = text
                .trim_start_matches('-')
                .split('e')
                .next()
                .unwrap_or_default();
            let digits = mantissa.replace('.', "");
            let digits = digits.trim_start_matches('0').trim_end_matches('0');
            let want = if x == 0.0 {
                String::new()
            } else {
                shortest_digits(x)
            };
            assert_eq!(digits, want, "{ns} wrote {text}");
        }
    }

    #[test]
    fn numbers_as_python_writes_them() {
        let mut s = String::new();
        for n in [0, 7, 10, 1_234_567_890, u64::MAX] {
            int(&mut s, n);
            s.push(' ');
        }
        signed(&mut s, i64::MIN);
        assert_eq!(
            s,
            "0 7 10 1234567890 18446744073709551615 -9223372036854775808"
        );
    }

    #[test]
    fn json_strings_escaped_as_python_escapes_them() {
        let mut s = String::new();
        json_str(&mut s, "a\"b\\c\u{0}\u{1f}\u{7f} é\u{8}\u{c}\n\r\t");
        assert_eq!(s, "\"a\\\"b\\\\c\\u0000\\u001f\u{7f} é\\b\\f\\n\\r\\t\"");
    }

    #[test]
    fn json_strings_escaped_wherever_the_escape_falls() {
        // each escaped byte at every place of a string long enough for the word steps
        for esc in ["\"", "\\", "\n", "\u{1}", "\u{1f}"] {
            for at in 0..20 {
                let text = format!(
                    "{}{esc}{}",
                    "ab/é ~x".repeat(3).get(..at).unwrap_or(""),
                    "z".repeat(9)
                );
                let mut got = String::new();
                json_str(&mut got, &text);
                let mut want = String::from("\"");
                for c in text.chars() {
                    match c {
                        '"' => want.push_str("\\\""),
                        '\\' => want.push_str("\\\\"),
                        '\n' => want.push_str("\\n"),
                        c if u32::from(c) < 0x20 => {
                            want.push_str(&format!("\\u{:04x}", u32::from(c)))
                        }
                        c => want.push(c),
                    }
                }
                want.push('"');
                assert_eq!(got, want, "{text:?}");
            }
        }
    }

    #[test]
    fn csv_fields_quoted_only_when_they_must_be() {
        let mut s = String::new();
        for f in ["plain", "a,b", "say \"hi\"", "two\nlines", "cr\ronly", ""] {
            csv_field(&mut s, f);
            s.push('|');
        }
        assert_eq!(
            s,
            "plain|\"a,b\"|\"say \"\"hi\"\"\"|\"two\nlines\"|cr\ronly||"
        );
    }

    #[test]
    fn exact_seconds_keep_every_nanosecond() {
        let mut s = String::new();
        exact_seconds(&mut s, -1);
        s.push(' ');
        exact_seconds(&mut s, i128::from(i64::MIN) - i128::from(i64::MAX));
        assert_eq!(s, "-0.000000001 -18446744073.709551615");
    }
}
