//! Finished connections as columns: what leaves the core.
//!
//! A [`Batch`] holds its connections as rows ([`Finished`]: the connection's facts and its
//! labels) and turns them into columns on demand, in two parts. [`Connections`] has one entry
//! per connection (`conn_*`) for every row: what the Python side needs to count, classify and
//! choose. [`Batch::records`] has the rows asked for only, each whole (events, requests and
//! anomalies) as a pickle of plain values ([`crate::record`]): the Python side builds objects
//! for the connections it reads, not for every one. [`Batch::request_rows`] is the one thing
//! taken of every request: the retry index's rows.

use std::collections::HashSet;

use crate::export::{connection_json, csv_rows, ConnectionText, RowFacts};
use crate::flow::{Stream, TcpConnection};
use crate::label::{CloseKind, Labelled, Request, Side};
use crate::machine::EventType;
use crate::record::connection_record;

/// The names the columns carry for the enumerations (the public API's vocabulary).
pub type Name = &'static str;

/// One finished connection: what reassembly knew of it (its payload dropped) and its labels.
#[derive(Debug)]
pub struct Finished {
    pub id: u64,
    pub ip_version: u8,
    pub client_ip: [u8; 16],
    pub server_ip: [u8; 16],
    pub client_port: u16,
    pub server_port: u16,
    pub first_ts_ns: i64,
    pub first_frame: u64,
    pub last_ts_ns: i64,
    pub labels: Labelled,
    /// The header names of the connection's first request head, as sent (see
    /// [`request_header_names`]).
    pub request_headers: Option<String>,
    /// Each request's [`request_key`] (0 when not captured): hashed where the connection is
    /// labelled, on a shard's thread, not where batches are put together.
    pub request_keys: Vec<u64>,
}

impl Finished {
    /// What is kept of a connection once labelled: its streams are dropped here.
    pub fn new(tc: &TcpConnection, labels: Labelled) -> Finished {
        Finished {
            id: tc.id,
            ip_version: tc.ip_version,
            client_ip: tc.client_ip,
            server_ip: tc.server_ip,
            client_port: tc.client_port,
            server_port: tc.server_port,
            first_ts_ns: tc.first_ts_ns,
            first_frame: tc.first_frame,
            last_ts_ns: tc.last_ts_ns,
            request_keys: labels.requests.iter().map(key_of).collect(),
            labels,
            request_headers: request_header_names(&tc.to_server.stream),
        }
    }
}

/// Finished connections, in the order the core finished them.
#[derive(Debug, Default)]
pub struct Batch {
    pub rows: Vec<Finished>,
    /// Following a live capture: the requests framed since the batch before on connections
    /// still open, as [`Batch::request_rows`] gives them
    /// ([`crate::reassembly::Reassembler::open_requests`]).
    pub open_rows: Vec<i64>,
    /// Following a live capture: capture time as the core reckons it when the batch was made
    /// (the latest packet's time, moved on by the wall clock while the input is quiet).
    pub now_ns: Option<i64>,
}

/// One entry per connection of a batch.
#[derive(Debug, Default)]
pub struct Connections {
    pub conn_id: Vec<u64>,
    pub conn_ip_version: Vec<u8>,
    pub conn_client: Vec<String>,
    pub conn_server: Vec<String>,
    pub conn_client_port: Vec<u16>,
    pub conn_opened_at_ns: Vec<i64>,
    pub conn_first_frame: Vec<u64>,
    pub conn_opened_by: Vec<Option<Name>>,
    pub conn_established_at_ns: Vec<Option<i64>>,
    pub conn_handshake_ack_ns: Vec<Option<i64>>,
    pub conn_closed_by: Vec<Option<Name>>,
    pub conn_close: Vec<Option<Name>>,
    pub conn_closed_at_ns: Vec<Option<i64>>,
    pub conn_last_seen_ns: Vec<i64>,
    pub conn_last_response_ns: Vec<Option<i64>>,
    pub conn_partial: Vec<bool>,
    pub conn_state: Vec<Name>,
    pub conn_history: Vec<String>,
    pub conn_syn_count: Vec<u32>,
    pub conn_packets: Vec<u64>,
    pub conn_client_bytes: Vec<u64>,
    pub conn_server_bytes: Vec<u64>,
    pub conn_retransmissions: Vec<u64>,
    pub conn_events: Vec<u32>,
    pub conn_requests: Vec<u32>,
    pub conn_anomalies: Vec<u32>,
    /// Responses among the events (a response to a request sent before the capture counts).
    pub conn_responses: Vec<u32>,
    /// Requests no response came for.
    pub conn_unanswered: Vec<u32>,
    /// The last request's response said "Connection: close".
    pub conn_last_close: Vec<bool>,
    /// The last answered request's response said "Connection: close".
    pub conn_last_answered_close: Vec<bool>,
    /// What the connection became after its last HTTP message ("websocket", "connect"...).
    pub conn_tunnel: Vec<Option<String>>,
    /// The upstream's `Keep-Alive` header on its first response.
    pub conn_keep_alive: Vec<Option<String>>,
    /// The upstream's `Server` header on its first response.
    pub conn_server_header: Vec<Option<String>>,
    /// The header names of the first request head, as sent, one per line: their spelling is the
    /// client's (which proxy sent them, when the capture does not say otherwise).
    pub conn_request_headers: Vec<Option<String>>,
    /// Requests that asked to close (Connection: close, or HTTP/1.0 without keep-alive).
    pub conn_requests_close: Vec<u32>,
    /// The only side the capture holds packets of, when it holds one only.
    pub conn_one_sided: Vec<Option<Name>>,
    /// "TLS 1.2"/"TLS 1.3" on a TLS connection (its requests are encrypted bursts).
    pub conn_tls: Vec<Option<Name>>,
    /// The upstream's first FIN or RST event: its kind, time and frame.
    pub conn_server_close: Vec<Option<Name>>,
    pub conn_server_close_ns: Vec<Option<i64>>,
    pub conn_server_close_frame: Vec<Option<u64>>,
}

/// The int64s of one request in [`Batch::request_rows`].
pub const REQUEST_ROW: usize = 6;

/// Of request rows as bytes (native int64s, [`REQUEST_ROW`] to a row), those whose key is one
/// of `keys`, in their order; a partial row at the end is not one. Retry matching looks up the
/// few lost requests' keys among every request of the capture.
pub fn keyed_rows(rows: &[u8], keys: &HashSet<i64>) -> Vec<u8> {
    let mut out = Vec::new();
    for row in rows.chunks_exact(REQUEST_ROW * 8) {
        let key = row.first_chunk::<8>().map_or(0, |k| i64::from_ne_bytes(*k));
        if keys.contains(&key) {
            out.extend_from_slice(row);
        }
    }
    out
}

impl Batch {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Adds one finished connection and its labels.
    pub fn push(&mut self, tc: &TcpConnection, labels: Labelled) {
        self.rows.push(Finished::new(tc, labels));
    }

    /// The per-connection columns of every row.
    pub fn connections(&self) -> Connections {
        let mut c = Connections::default();
        for f in &self.rows {
            c.push(f);
        }
        c
    }

    /// Each row at these positions, in that order, as the pickle of its plain values
    /// ([`crate::record::connection_record`]); `None` if a position is past the end.
    pub fn records(&self, which: &[usize]) -> Option<Vec<Vec<u8>>> {
        which
            .iter()
            .map(|&i| {
                let f = self.rows.get(i)?;
                // about 100 bytes an event and as many a request: grown once at most
                let rows = f.labels.events.len() + f.labels.requests.len();
                let mut out = Vec::with_capacity(rows.saturating_mul(112).saturating_add(512));
                connection_record(&mut out, f);
                Some(out)
            })
            .collect()
    }

    /// The JSON report's line of each row at these positions, handed to `each` in that order
    /// ([`crate::export::connection_json`]); `None` if a position is past the end. Each line
    /// is written in the same buffer, grown only by the longest: a buffer per line grew by
    /// copying, and was most of the report's cost beside the formatting.
    pub fn json_lines(&self, which: &[usize], mut each: impl FnMut(&str)) -> Option<()> {
        let mut out = String::new();
        for &i in which {
            let f = self.rows.get(i)?;
            out.clear();
            f.text(|c| connection_json(&mut out, c));
            each(&out);
        }
        Some(())
    }

    /// The CSV report's rows of each row at these positions, handed to `each` in that order
    /// with their [`crate::export::CSV_KEY`] int64s a row ([`crate::export::csv_rows`]), in buffers reused
    /// as [`Batch::json_lines`]'s; `None` if a position is past the end.
    pub fn csv_rows(&self, which: &[usize], mut each: impl FnMut(&str, &[i64])) -> Option<()> {
        let (mut out, mut keys) = (String::new(), Vec::new());
        for &i in which {
            let f = self.rows.get(i)?;
            out.clear();
            keys.clear();
            f.text(|c| csv_rows(&mut out, &mut keys, c));
            each(&out, &keys);
        }
        Some(())
    }

    /// Every request of the batch as [`REQUEST_ROW`] int64s: its [`request_key`] (bits as
    /// int64), when it was sent, its connection's id, its index there, its frame, and when its
    /// connection opened (-1 if open before the capture). What retry matching needs of every
    /// request, without an object per request.
    pub fn request_rows(&self) -> Vec<i64> {
        let n = self
            .rows
            .iter()
            .map(|f| f.labels.requests.len())
            .sum::<usize>();
        let mut out = Vec::with_capacity(n * REQUEST_ROW);
        for f in &self.rows {
            let opened = if f.labels.partial { -1 } else { f.first_ts_ns };
            for (r, &key) in f.labels.requests.iter().zip(&f.request_keys) {
                let at = (r.index as u64, r.frame);
                out.extend_from_slice(&request_row(key, r.sent_at_ns, f.id, at, opened));
            }
        }
        out
    }
}

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// One request's [`REQUEST_ROW`] int64s (see [`Batch::request_rows`]); `at` is its index on its
/// connection and its frame. Requests told while their connection is open
/// (`Reassembler::open_requests`) take the same layout.
pub(crate) fn request_row(
    key: u64,
    sent_at_ns: i64,
    conn_id: u64,
    at: (u64, u64),
    opened: i64,
) -> [i64; REQUEST_ROW] {
    [
        i64::from_ne_bytes(key.to_ne_bytes()),
        sent_at_ns,
        as_i64(conn_id),
        as_i64(at.0),
        as_i64(at.1),
        opened,
    ]
}

/// A request's [`request_key`]; 0 when its method or target was not captured: never looked up.
fn key_of(r: &Request) -> u64 {
    captured_key(
        r.method.as_deref(),
        r.target.as_deref(),
        r.host.as_deref(),
        r.request_id.as_deref(),
    )
}

/// [`request_key`] of a request whose method and target were captured, else 0.
pub(crate) fn captured_key(
    method: Option<&str>,
    target: Option<&str>,
    host: Option<&str>,
    request_id: Option<&str>,
) -> u64 {
    match (method, target) {
        (Some(m), Some(t)) => request_key(m, t, host, request_id),
        _ => 0,
    }
}

/// What makes two requests the same request for retry matching (method, target and Host),
/// hashed to 64 bits: FNV-1a over the three, a byte that never occurs in UTF-8 between them and
/// for a missing Host. Stable across runs and platforms; a false match needs a collision and
/// then the same window of time.
pub fn request_key(
    method: &str,
    target: &str,
    host: Option<&str>,
    request_id: Option<&str>,
) -> u64 {
    const SEP: u8 = 0xff;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(method.as_bytes());
    eat(&[SEP]);
    eat(target.as_bytes());
    eat(&[SEP]);
    match host {
        Some(host) => eat(host.as_bytes()),
        None => eat(&[SEP]),
    }
    // nginx resends a lost request with the headers it had, its X-Request-ID too: with an id,
    // only the same id is the same request, however many identical ones other clients send
    if let Some(id) = request_id {
        eat(&[SEP, SEP]);
        eat(id.as_bytes());
    }
    h
}

impl Connections {
    pub fn len(&self) -> usize {
        self.conn_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conn_id.is_empty()
    }

    fn push(&mut self, f: &Finished) {
        let (l, v) = (&f.labels, f.ip_version);
        self.conn_id.push(f.id);
        self.conn_ip_version.push(v);
        self.conn_client
            .push(endpoint(&f.client_ip, v, f.client_port));
        self.conn_server
            .push(endpoint(&f.server_ip, v, f.server_port));
        self.conn_client_port.push(f.client_port);
        self.conn_opened_at_ns.push(f.first_ts_ns);
        self.conn_first_frame.push(f.first_frame);
        self.conn_opened_by.push(l.opened_by.map(Side::as_str));
        self.conn_established_at_ns.push(l.established_at_ns);
        self.conn_handshake_ack_ns.push(l.handshake_ack_ns);
        self.conn_closed_by.push(l.closed_by.map(Side::as_str));
        self.conn_close.push(l.close.map(CloseKind::as_str));
        self.conn_closed_at_ns.push(l.closed_at_ns);
        self.conn_last_seen_ns.push(f.last_ts_ns);
        self.conn_last_response_ns.push(l.last_response_ns);
        self.conn_partial.push(l.partial);
        self.conn_state.push(l.state);
        self.conn_history.push(l.history.clone());
        self.conn_syn_count.push(l.syn_count);
        self.conn_packets.push(l.packets);
        self.conn_client_bytes.push(l.client_bytes);
        self.conn_server_bytes.push(l.server_bytes);
        self.conn_retransmissions.push(l.retransmissions);
        self.conn_events.push(count(l.events.len()));
        self.conn_requests.push(count(l.requests.len()));
        self.conn_anomalies.push(count(l.anomalies.len()));
        let responses = l.events.iter().filter(|e| e.kind == EventType::Response);
        self.conn_responses.push(count(responses.count()));
        let unanswered = l.requests.iter().filter(|r| r.responded_at_ns.is_none());
        self.conn_unanswered.push(count(unanswered.count()));
        self.conn_last_close
            .push(l.requests.last().is_some_and(|r| r.connection_close));
        let answered = l
            .requests
            .iter()
            .rev()
            .find(|r| r.responded_at_ns.is_some());
        self.conn_last_answered_close
            .push(answered.is_some_and(|r| r.connection_close));
        let close = l
            .events
            .iter()
            .find(|e| e.side == Side::Server && matches!(e.kind, EventType::Fin | EventType::Rst));
        self.conn_tunnel.push(l.tunnel.clone());
        self.conn_keep_alive.push(l.keep_alive.clone());
        self.conn_server_header.push(l.server_header.clone());
        self.conn_request_headers.push(f.request_headers.clone());
        let closing = l
            .events
            .iter()
            .filter(|e| e.kind == EventType::Request && e.connection_close);
        self.conn_requests_close.push(count(closing.count()));
        self.conn_one_sided.push(l.one_sided.map(Side::as_str));
        self.conn_tls.push(l.tls);
        // "close_notify": the upstream's TLS alert closed it, before any FIN or RST
        self.conn_server_close
            .push(close.map(|e| match (e.kind, l.alert_close) {
                (EventType::Fin, true) => "close_notify",
                (k, _) => k.as_str(),
            }));
        self.conn_server_close_ns.push(close.map(|e| e.time_ns));
        self.conn_server_close_frame.push(close.map(|e| e.frame));
    }
}

impl Finished {
    /// What the reports write of it, handed to `write`.
    fn text<R>(&self, write: impl FnOnce(&ConnectionText) -> R) -> R {
        let v = self.ip_version;
        let client = endpoint(&self.client_ip, v, self.client_port);
        let server = endpoint(&self.server_ip, v, self.server_port);
        let facts = RowFacts {
            first_ts_ns: self.first_ts_ns,
            first_frame: self.first_frame,
            last_ts_ns: self.last_ts_ns,
        };
        write(&ConnectionText::of(
            self.id,
            &client,
            &server,
            facts,
            &self.labels,
        ))
    }
}

/// A count that fits the column: a connection cannot hold 2^32 events of a capture whose
/// records are at least 16 bytes each, but saturate rather than wrap if one ever did.
fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// An address as people write it: dotted IPv4, or IPv6 compressed as RFC 5952 has it (the
/// longest run of zero groups, the first of equal runs, as `::`). Unlike Rust's `Display`, an
/// IPv4-mapped IPv6 address stays hexadecimal (`::ffff:102:304`): a v6 packet is shown as v6.
pub fn format_ip(raw: &[u8; 16], version: u8) -> String {
    if version == 4 {
        return std::net::Ipv4Addr::new(raw[12], raw[13], raw[14], raw[15]).to_string();
    }
    let groups: Vec<u16> = raw
        .chunks_exact(2)
        .map(|p| u16::from_be_bytes([p[0], p[1]]))
        .collect();
    // the longest run of zero groups (at least two), the first of equal length
    let (mut best, mut best_len, mut run_start, mut run_len) = (0, 0, 0, 0);
    for (i, g) in groups.iter().enumerate() {
        if *g == 0 {
            if run_len == 0 {
                run_start = i;
            }
            run_len += 1;
            if run_len > best_len {
                best = run_start;
                best_len = run_len;
            }
        } else {
            run_len = 0;
        }
    }
    let hex = |gs: &[u16]| {
        gs.iter()
            .map(|g| format!("{g:x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    if best_len < 2 {
        return hex(&groups);
    }
    format!(
        "{}::{}",
        hex(&groups[..best]),
        hex(&groups[best + best_len..])
    )
}

/// `ip:port`, or `[ip]:port` for IPv6, as URLs and nginx's logs write them.
pub fn endpoint(raw: &[u8; 16], version: u8, port: u16) -> String {
    let ip = format_ip(raw, version);
    if version == 6 {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::{format_ip, keyed_rows, request_key, Batch, REQUEST_ROW};

    #[test]
    fn keyed_rows_keeps_whole_rows_with_a_key_asked_for() {
        let rows: Vec<i64> = (0..4i64)
            .flat_map(|r| {
                (0..REQUEST_ROW as i64).map(move |c| if c == 0 { r % 2 - 1 } else { r * 10 + c })
            })
            .collect();
        let mut bytes: Vec<u8> = rows.iter().flat_map(|v| v.to_ne_bytes()).collect();
        bytes.extend_from_slice(&[0xff; 20]); // a row cut short is no row
        let picked = keyed_rows(&bytes, &[-1].into_iter().collect());
        let back: Vec<i64> = picked
            .chunks_exact(8)
            .map(|b| i64::from_ne_bytes(b.try_into().unwrap_or_default()))
            .collect();
        // rows 0 and 2 have key -1, rows 1 and 3 key 0
        let want: Vec<i64> = [0usize, 2]
            .iter()
            .flat_map(|&r| rows[r * REQUEST_ROW..(r + 1) * REQUEST_ROW].to_vec())
            .collect();
        assert_eq!(back, want);
        assert!(keyed_rows(&bytes, &[7].into_iter().collect()).is_empty());
    }

    #[test]
    fn request_key_is_fnv1a_of_the_three_and_stable() {
        // pinned: the spill file's keys must not change with the platform or the build
        assert_eq!(
            request_key("GET", "/a", Some("backend"), None),
            0x07b0_7626_3b35_c433
        );
        assert_eq!(request_key("GET", "/a", None, None), 0x878a_dacf_a40f_27f2);
        assert_ne!(
            request_key("GET", "/a", Some(""), None),
            request_key("GET", "/a", None, None)
        );
        assert_ne!(
            request_key("GET", "/ab", None, None),
            request_key("GET", "/a", Some("b"), None)
        );
        // an id makes it another key, and two ids two keys
        let plain = request_key("GET", "/a", Some("b"), None);
        let one = request_key("GET", "/a", Some("b"), Some("5f3c"));
        assert!(plain != one && one != request_key("GET", "/a", Some("b"), Some("5f3d")));
    }

    #[test]
    fn records_past_the_end_are_refused() {
        let empty = Batch::default();
        assert_eq!(empty.records(&[]), Some(vec![]));
        assert!(empty.records(&[0]).is_none());
        assert!(empty.request_rows().is_empty());
        assert!(empty.connections().is_empty());
    }

    fn v6(text: &str) -> [u8; 16] {
        text.parse::<std::net::Ipv6Addr>()
            .map(|a| a.octets())
            .unwrap_or([0; 16])
    }

    #[test]
    fn ipv6_is_compressed_as_python_prints_it() {
        for (given, shown) in [
            ("::ffff:1.2.3.4", "::ffff:102:304"),
            ("fe80::1", "fe80::1"),
            ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
            ("::", "::"),
            ("::1", "::1"),
            ("1::", "1::"),
            ("1:0:1:1:1:1:1:1", "1:0:1:1:1:1:1:1"),
            ("2001:db8::ffff:1.2.3.4", "2001:db8::ffff:102:304"),
        ] {
            assert_eq!(format_ip(&v6(given), 6), shown);
        }
    }

    #[test]
    fn ipv4_is_the_mapped_addresses_last_four_bytes() {
        assert_eq!(format_ip(&v6("::ffff:192.168.1.10"), 4), "192.168.1.10");
    }
}

/// How much of the client's stream is read for its first request head: a head longer than this
/// gives no names (proxies' request heads are a few hundred bytes).
const FIRST_HEAD: usize = 8 * 1024;

/// The header names of the request head the client's stream starts with, as sent, one per line;
/// None when the stream does not start with a whole captured head of a request line and headers.
///
/// Read here, once per connection, because their spelling is what tells one proxy from another
/// (HAProxy 2 writes every header name in lower case, nginx writes its own `Host` so), and the
/// framer keeps no names.
pub fn request_header_names(st: &Stream) -> Option<String> {
    if let Some(names) = &st.framed.head_names {
        return names.clone(); // read as the bytes arrived: they are gone
    }
    let n = st
        .starts
        .len()
        .min(st.lengths.len())
        .min(st.captured.len())
        .min(st.data_starts.len());
    let mut head = FirstHead::default();
    for i in 0..n {
        let from = usize::try_from(st.data_starts[i]).ok()?;
        let take = usize::try_from(st.captured[i]).ok()?;
        let bytes = st.data.get(from..from.checked_add(take)?)?;
        if !head.piece(st.starts[i], st.lengths[i], bytes) {
            break;
        }
    }
    head.names()
}

/// The client's first request head, read piece by piece from the stream's start (see
/// [`request_header_names`]); the reassembler reads it so while the bytes arrive.
#[derive(Debug, Default)]
pub struct FirstHead {
    head: Vec<u8>,
    next: Option<i64>,
    done: bool,
}

impl FirstHead {
    /// The next piece of the stream, in order: its start, length and captured bytes. False
    /// once no more are read.
    pub fn piece(&mut self, start: i64, length: u32, bytes: &[u8]) -> bool {
        if self.done || self.next.is_some_and(|n| n != start) || self.head.len() >= FIRST_HEAD {
            self.done = true;
            return false;
        }
        self.head.extend_from_slice(bytes);
        if memchr::memmem::find(&self.head, b"\r\n\r\n").is_some() || bytes.len() != length as usize
        {
            self.done = true;
            return false;
        }
        self.next = Some(start.saturating_add(i64::from(length)));
        true
    }

    /// The header names, one per line; None when the stream does not start with a whole
    /// captured head of a request line and headers.
    pub fn names(&self) -> Option<String> {
        let head = &self.head;
        let end = memchr::memmem::find(head, b"\r\n\r\n")?;
        let mut lines = head.get(..end)?.split(|&b| b == b'\n');
        // a request line: METHOD SP target SP HTTP/1.x
        let first = lines.next()?;
        if !first.windows(7).any(|w| w == b" HTTP/1") {
            return None;
        }
        let mut names: Vec<&str> = Vec::new();
        for line in lines {
            let colon = memchr::memchr(b':', line)?;
            let name = std::str::from_utf8(line.get(..colon)?).ok()?.trim();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return None;
            }
            names.push(name);
        }
        (!names.is_empty()).then(|| names.join("\n"))
    }
}

#[cfg(test)]
mod header_names {
    use super::*;

    fn stream(pieces: &[&[u8]]) -> Stream {
        let mut st = Stream::default();
        let mut at = 0i64;
        for p in pieces {
            st.starts.push(at);
            st.lengths.push(u32::try_from(p.len()).unwrap());
            st.captured.push(u32::try_from(p.len()).unwrap());
            st.data_starts.push(st.data.len() as u64);
            st.ts.push(0);
            st.frames.push(0);
            st.data.extend_from_slice(p);
            at += i64::try_from(p.len()).unwrap();
        }
        st
    }

    #[test]
    fn names_as_sent_across_pieces() {
        let st = stream(&[
            b"GET / HTTP/1.1\r\nhost: a\r\nx-req",
            b"uest-id: 1\r\n\r\nGET",
        ]);
        assert_eq!(
            request_header_names(&st).as_deref(),
            Some("host\nx-request-id")
        );
        let st = stream(&[b"GET / HTTP/1.0\r\nHost: up\r\nConnection: close\r\n\r\n"]);
        assert_eq!(
            request_header_names(&st).as_deref(),
            Some("Host\nConnection")
        );
    }

    #[test]
    fn no_names_without_a_whole_request_head() {
        assert_eq!(
            request_header_names(&stream(&[b"GET / HTTP/1.1\r\nHost: a\r\n"])),
            None
        );
        assert_eq!(
            request_header_names(&stream(&[b"\x16\x03\x01\x02\x00\r\n\r\n"])),
            None
        );
        assert_eq!(request_header_names(&Stream::default()), None);
    }
}
