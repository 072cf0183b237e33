//! The TLS framer, beside the HTTP one: on a connection whose client opens with a TLS handshake
//! (`proxy_pass https://`), nothing of HTTP can be read, but the record layer can: every record
//! starts with `type(1) version(2) length(2)` in the clear. From it come the requests (a client
//! burst of application data), their answers (the upstream's next burst) and the upstream's
//! `close_notify`; never which request it was.
//!
//! What the record layer shows depends on the version:
//! - TLS 1.2 and older: each record's content type is visible: handshake (22), change cipher
//!   spec (20), alert (21), application data (23). An alert after the handshake is encrypted:
//!   at a close it is the `close_notify`, but a fatal alert looks the same.
//! - TLS 1.3: every record after the ServerHello is typed application data (23), handshake and
//!   alerts included. The client's handshake ends with its first flight of such records after the
//!   upstream's first flight (its Finished, in one segment); the upstream's records before
//!   nginx's first request are its handshake and session tickets. An alert is a 19-byte record (a
//!   2-byte alert, its inner type and a 16-byte AEAD tag): no HTTP message is that small.
//!
//! One algorithm, [`read`], for both: the version only decides which records are handshake and
//! which are alerts.

use crate::flow::Stream;
use crate::http::{Message, View};

pub const CHANGE_CIPHER_SPEC: u8 = 20;
pub const ALERT: u8 = 21;
pub const HANDSHAKE: u8 = 22;
pub const APPLICATION_DATA: u8 = 23;
/// The size of an encrypted TLS 1.3 alert with AES-GCM, ChaCha20-Poly1305 or AES-CCM.
const TLS13_ALERT_LEN: u16 = 19;
const HEADER: usize = 5;
/// How much of a ServerHello is read to find its `supported_versions`: a ServerHello is small.
const SERVER_HELLO_MAX: usize = 1024;

/// One record header as captured, and the packet that carried its first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub offset: i64,
    pub ts_ns: i64,
    pub frame: u64,
    pub content_type: u8,
    pub length: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// TLS 1.2 or older: content types visible.
    Tls12,
    /// TLS 1.3 (the ServerHello's `supported_versions`), or a ServerHello not captured: then
    /// only sizes and timing are used, which holds for either version.
    Tls13,
}

impl Version {
    pub const fn as_str(self) -> &'static str {
        match self {
            Version::Tls12 => "TLS 1.2",
            Version::Tls13 => "TLS 1.3",
        }
    }
}

/// What the framer makes of a TLS connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tls {
    pub version: Version,
    /// Client bursts of application data: the requests (nothing of them is readable).
    pub requests: Vec<Message>,
    /// The upstream's bursts of application data after a request: the answers.
    pub responses: Vec<Message>,
    /// The upstream's first alert after the handshake: its `close_notify` when it closes.
    pub server_alert: Option<Record>,
}

/// The longest record TLS allows (2^14 bytes of plaintext, plus 2048 of expansion): a longer
/// one is not a record header, and reading looks for the next one.
const MAX_RECORD: u16 = 16384 + 2048;

fn header_ok(h: &[u8]) -> bool {
    matches!(h, [t, 3, v, a, b, ..]
        if (CHANGE_CIPHER_SPEC..=APPLICATION_DATA).contains(t)
            && *v <= 4
            && u16::from_be_bytes([*a, *b]) <= MAX_RECORD)
}

/// Whether a connection speaks TLS: its client's first captured bytes are a TLS handshake record
/// (or, on a connection open before the capture began, any TLS record: no HTTP/1.x message
/// starts with a byte from 20 to 23).
pub fn detect(up: &Stream, partial: bool) -> bool {
    let v = View::new(up);
    let Some(&first) = up.starts.first() else {
        return false;
    };
    let h = v.read(first, HEADER);
    header_ok(h) && (h.first() == Some(&HANDSHAKE) || partial)
}

/// The record headers of one direction, in stream order. Where a header is not captured (a
/// hole, a snaplen) or does not look like one (a record whose length overran its bytes), reading
/// goes on at the start of the segment holding that place, if no record was read there yet, else
/// at the next segment: each TLS write starts a segment, so little is lost.
pub fn records(st: &Stream) -> Vec<Record> {
    let v = View::new(st);
    let mut out = Vec::new();
    let Some(&first) = st.starts.first() else {
        return out;
    };
    let end = v.end();
    let mut pos = first;
    // every record, and every place tried again, lies after this: reading only moves forward
    let mut floor = i64::MIN;
    while pos < end {
        let h = v.read(pos, HEADER);
        if header_ok(h) {
            let length = u16::from_be_bytes([h[3], h[4]]);
            let (ts_ns, frame) = v.place(pos);
            out.push(Record {
                offset: pos,
                ts_ns,
                frame,
                content_type: h[0],
                length,
            });
            floor = pos;
            // at least 5 bytes on: the loop ends within the stream's span
            pos = pos.saturating_add(HEADER as i64 + i64::from(length));
        } else {
            let back = v.start_at_or_before(pos).filter(|&s| s > floor && s < pos);
            match back.or_else(|| v.next_start(pos)) {
                Some(next) => {
                    floor = floor.max(next.min(pos));
                    pos = next;
                }
                None => break,
            }
        }
    }
    out
}

/// Whether the upstream's ServerHello (its first handshake record) names TLS 1.3 in its
/// `supported_versions` extension; None when it is not captured or not readable.
fn server_hello_13(st: &Stream, first: &Record) -> Option<bool> {
    if first.content_type != HANDSHAKE {
        return None;
    }
    let v = View::new(st);
    let b = v.read(
        first.offset.saturating_add(HEADER as i64),
        SERVER_HELLO_MAX.min(usize::from(first.length)),
    );
    // msg_type(1)=2 length(3) legacy_version(2) random(32) session_id(1+n) cipher(2) comp(1)
    if b.first() != Some(&2) {
        return None;
    }
    let sid = usize::from(*b.get(38)?);
    let mut at = 39 + sid + 3;
    let ext_len = usize::from(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]));
    at += 2;
    let stop = at.saturating_add(ext_len).min(b.len());
    while at + 4 <= stop {
        let kind = u16::from_be_bytes([b[at], b[at + 1]]);
        let len = usize::from(u16::from_be_bytes([b[at + 2], b[at + 3]]));
        if kind == 0x002b {
            return Some(b.get(at + 4..at + 6)? == [3, 4]);
        }
        at = at.saturating_add(4 + len);
    }
    Some(false)
}

fn key(r: &Record) -> (i64, u64) {
    (r.ts_ns, r.frame)
}

/// Group records into bursts: a new message starts at a record when the other side sent one of
/// `other` after this side's previous record, up to this one.
fn bursts(mine: &[Record], other: &[Record]) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::new();
    // in time order, whatever order the stream's records were captured in
    let mut other: Vec<(i64, u64)> = other.iter().map(key).collect();
    other.sort_unstable();
    let mut j = 0;
    let mut prev: Option<(i64, u64)> = None;
    for r in mine {
        let at = key(r);
        let mut crossed = prev.is_none();
        if let Some(p) = prev {
            while other.get(j).is_some_and(|&o| o <= p) {
                j += 1;
            }
            crossed = other.get(j).is_some_and(|&o| o <= at);
        }
        if crossed {
            out.push(Message::blind(r.offset, r.ts_ns, r.frame));
        }
        prev = Some(prev.map_or(at, |p| p.max(at)));
    }
    out
}

/// Read a TLS connection's record layer: `up` nginx's stream, `down` the upstream's; `partial`:
/// open before the capture began, so no handshake to skip.
pub fn read(up: &Stream, down: &Stream, partial: bool) -> Tls {
    let client = records(up);
    let server = records(down);
    let version = match server.first().and_then(|r| server_hello_13(down, r)) {
        Some(false) => Version::Tls12,
        _ => Version::Tls13,
    };
    let is_alert = |r: &Record| match version {
        Version::Tls12 => r.content_type == ALERT,
        Version::Tls13 => r.content_type == APPLICATION_DATA && r.length == TLS13_ALERT_LEN,
    };
    let client_app: Vec<Record> = match version {
        Version::Tls12 => client
            .iter()
            .filter(|r| r.content_type == APPLICATION_DATA)
            .copied()
            .collect(),
        Version::Tls13 if partial => client
            .iter()
            .filter(|r| r.content_type == APPLICATION_DATA)
            .copied()
            .collect(),
        Version::Tls13 => {
            // the client's Finished: its first segment of encrypted records after the
            // upstream's first flight (its ServerHello)
            let hello = server.first().map(key);
            let finished = client
                .iter()
                .find(|r| r.content_type == APPLICATION_DATA && hello.is_some_and(|h| key(r) > h))
                .map(|r| r.frame);
            client
                .iter()
                .filter(|r| r.content_type == APPLICATION_DATA && Some(r.frame) != finished)
                .filter(|r| hello.is_some_and(|h| key(r) > h))
                .copied()
                .collect()
        }
    };
    let client_app: Vec<Record> = client_app.into_iter().filter(|r| !is_alert(r)).collect();
    let first_request = client_app.first().map(key);
    let server_after: Vec<&Record> = server
        .iter()
        .filter(|r| match version {
            Version::Tls12 => true,
            Version::Tls13 if partial => true,
            // before nginx's first request: the upstream's handshake and session tickets
            Version::Tls13 => first_request.is_some_and(|q| key(r) > q),
        })
        .collect();
    let server_alert = server_after.iter().find(|r| is_alert(r)).map(|r| **r);
    let server_app: Vec<Record> = server_after
        .into_iter()
        .filter(|r| r.content_type == APPLICATION_DATA && !is_alert(r))
        .copied()
        .collect();
    Tls {
        version,
        requests: bursts(&client_app, &server_app),
        responses: bursts(&server_app, &client_app),
        server_alert,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record: type, version 3.3, length, then `len` body bytes (zeros, or `body`).
    fn rec(t: u8, len: u16) -> Vec<u8> {
        let mut v = vec![t, 3, 3];
        v.extend_from_slice(&len.to_be_bytes());
        v.resize(5 + usize::from(len), 0);
        v
    }

    /// A ServerHello record naming TLS 1.3 (`supported_versions` = 0x0304) or not.
    fn server_hello(tls13: bool) -> Vec<u8> {
        let mut body = vec![2, 0, 0, 0, 3, 3];
        body.extend_from_slice(&[7; 32]); // random
        body.push(0); // no session id
        body.extend_from_slice(&[0x13, 0x01, 0]); // cipher, compression
        let ext: Vec<u8> = if tls13 {
            vec![0x00, 0x2b, 0, 2, 3, 4]
        } else {
            vec![0xff, 0x01, 0, 1, 0]
        };
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut v = vec![HANDSHAKE, 3, 3];
        v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        v.extend_from_slice(&body);
        v
    }

    /// One direction from segments: (time, payload), frames numbered by `frame0 + index * 2`.
    fn stream(segments: &[(i64, Vec<u8>)], frame0: u64) -> Stream {
        let mut st = Stream::default();
        let mut at = 0i64;
        for (i, (ts, bytes)) in segments.iter().enumerate() {
            st.starts.push(at);
            st.lengths.push(bytes.len() as u32);
            st.ts.push(*ts);
            st.frames.push(frame0 + 2 * i as u64);
            st.captured.push(bytes.len() as u32);
            st.data_starts.push(st.data.len() as u64);
            st.data.extend_from_slice(bytes);
            at += bytes.len() as i64;
        }
        st
    }

    fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }

    /// TLS 1.2 as Node answers nginx: types visible; two requests answered, a third lost to
    /// the upstream's FIN (no alert).
    #[test]
    fn tls12_requests_responses_and_a_loss() {
        let up = stream(
            &[
                (10, rec(HANDSHAKE, 183)),
                (
                    30,
                    cat(&[
                        rec(HANDSHAKE, 37),
                        rec(CHANGE_CIPHER_SPEC, 1),
                        rec(HANDSHAKE, 40),
                    ]),
                ),
                (50, rec(APPLICATION_DATA, 135)),
                (70, rec(APPLICATION_DATA, 135)),
                (90, rec(APPLICATION_DATA, 135)),
            ],
            1,
        );
        let down = stream(
            &[
                (20, cat(&[server_hello(false), rec(HANDSHAKE, 415)])),
                (
                    40,
                    cat(&[
                        rec(HANDSHAKE, 202),
                        rec(CHANGE_CIPHER_SPEC, 1),
                        rec(HANDSHAKE, 40),
                    ]),
                ),
                (60, rec(APPLICATION_DATA, 177)),
                (80, rec(APPLICATION_DATA, 177)),
            ],
            2,
        );
        assert!(detect(&up, false));
        let t = read(&up, &down, false);
        assert_eq!(t.version, Version::Tls12);
        let times = |m: &[Message]| m.iter().map(|m| m.ts_ns).collect::<Vec<_>>();
        assert_eq!(times(&t.requests), [50, 70, 90]);
        assert_eq!(times(&t.responses), [60, 80]);
        assert!(t.requests.iter().all(|m| !m.parsed && m.method.is_none()));
        assert_eq!(t.server_alert, None);
    }

    /// TLS 1.2: the upstream's encrypted alert (type 21) is its close; nginx's own alert at its
    /// close is not a request.
    #[test]
    fn tls12_alerts() {
        let up = stream(
            &[
                (10, rec(HANDSHAKE, 100)),
                (30, cat(&[rec(CHANGE_CIPHER_SPEC, 1), rec(HANDSHAKE, 40)])),
                (50, rec(APPLICATION_DATA, 135)),
                (90, rec(ALERT, 26)),
            ],
            1,
        );
        let down = stream(
            &[
                (20, server_hello(false)),
                (60, rec(APPLICATION_DATA, 177)),
                (80, rec(ALERT, 26)),
            ],
            2,
        );
        let t = read(&up, &down, false);
        assert_eq!(t.requests.len(), 1);
        assert_eq!(t.responses.len(), 1);
        assert_eq!(t.server_alert.map(|a| a.ts_ns), Some(80));
    }

    /// TLS 1.3 as uvicorn answers: the client's Finished flight and the upstream's session
    /// tickets are not messages; a response in two records is one; the 19-byte record is the
    /// upstream's close_notify, and the request after it is lost.
    #[test]
    fn tls13_shapes() {
        let up = stream(
            &[
                (10, rec(HANDSHAKE, 491)),
                (
                    30,
                    cat(&[rec(CHANGE_CIPHER_SPEC, 1), rec(APPLICATION_DATA, 69)]),
                ),
                (31, rec(APPLICATION_DATA, 129)),
                (60, rec(APPLICATION_DATA, 129)),
                (90, rec(APPLICATION_DATA, 129)),
                (95, rec(APPLICATION_DATA, 19)),
            ],
            1,
        );
        let down = stream(
            &[
                (
                    20,
                    cat(&[
                        server_hello(true),
                        rec(CHANGE_CIPHER_SPEC, 1),
                        rec(APPLICATION_DATA, 900),
                    ]),
                ),
                (32, rec(APPLICATION_DATA, 250)), // session tickets, after the first request
                (33, rec(APPLICATION_DATA, 250)),
                (40, rec(APPLICATION_DATA, 135)),
                (41, rec(APPLICATION_DATA, 23)),
                (70, rec(APPLICATION_DATA, 135)),
                (71, rec(APPLICATION_DATA, 23)),
                (85, rec(APPLICATION_DATA, 19)),
            ],
            2,
        );
        let t = read(&up, &down, false);
        assert_eq!(t.version, Version::Tls13);
        let times = |m: &[Message]| m.iter().map(|m| m.ts_ns).collect::<Vec<_>>();
        assert_eq!(times(&t.requests), [31, 60, 90]);
        // the tickets sent after the first request start its answer's burst
        assert_eq!(times(&t.responses), [32, 70]);
        assert_eq!(t.server_alert.map(|a| a.ts_ns), Some(85));
    }

    /// Mid-connection (no handshake in the capture): every application record counts.
    #[test]
    fn tls13_midstream() {
        let up = stream(
            &[
                (50, rec(APPLICATION_DATA, 129)),
                (90, rec(APPLICATION_DATA, 129)),
            ],
            1,
        );
        let down = stream(
            &[
                (60, rec(APPLICATION_DATA, 135)),
                (80, rec(APPLICATION_DATA, 19)),
            ],
            2,
        );
        assert!(detect(&up, true));
        assert!(!detect(&up, false));
        let t = read(&up, &down, true);
        assert_eq!(t.requests.len(), 2);
        assert_eq!(t.responses.len(), 1);
        assert_eq!(t.server_alert.map(|a| a.ts_ns), Some(80));
    }

    #[test]
    fn http_is_not_tls() {
        let up = stream(&[(1, b"GET / HTTP/1.1\r\n\r\n".to_vec())], 1);
        assert!(!detect(&up, false));
        assert!(!detect(&up, true));
        assert!(!detect(&Stream::default(), true));
    }

    /// Hostile lengths and truncations: a record claiming 65535 bytes, records cut by a snaplen,
    /// a ServerHello whose lengths point past its end, garbage between records. Never a panic,
    /// and reading goes on at the next segment that starts with a record.
    #[test]
    fn hostile_records_never_panic() {
        let mut bad_hello = server_hello(true);
        let n = bad_hello.len();
        bad_hello[5 + 38] = 0xff; // a session id longer than the record
        bad_hello.truncate(n - 3);
        let huge = vec![APPLICATION_DATA, 3, 3, 0xff, 0xff, 1, 2];
        let cases: Vec<Vec<(i64, Vec<u8>)>> = vec![
            vec![(1, huge.clone()), (2, rec(APPLICATION_DATA, 10))],
            vec![(1, vec![HANDSHAKE, 3]), (2, vec![23])],
            vec![
                (1, bad_hello.clone()),
                (2, vec![0xff; 40]),
                (3, rec(ALERT, 2)),
            ],
            vec![(1, vec![HANDSHAKE, 3, 3, 0, 0]), (2, vec![])],
        ];
        for up in &cases {
            for down in &cases {
                let (u, d) = (stream(up, 1), stream(down, 2));
                for partial in [false, true] {
                    let _ = detect(&u, partial);
                    let _ = read(&u, &d, partial);
                }
            }
        }
        // a record claiming 65535 bytes is none: the next segment's record is found
        let st = stream(&cases[0], 1);
        let rs = records(&st);
        assert_eq!(rs.iter().map(|r| r.length).collect::<Vec<_>>(), [10]);
        // a ServerHello cut short is no version: sizes and timing then
        let d = stream(&[(1, bad_hello)], 2);
        assert_eq!(
            read(&stream(&cases[0], 1), &d, false).version,
            Version::Tls13
        );
    }

    /// A record claiming more bytes than its segment held: the next segment's record is read
    /// where it starts, not lost in the overrun.
    #[test]
    fn overrun_record_resyncs_at_the_segment_start() {
        let mut short = rec(HANDSHAKE, 90);
        short.truncate(5 + 85);
        let st = stream(&[(1, short), (2, rec(APPLICATION_DATA, 64))], 1);
        let rs = records(&st);
        assert_eq!(rs.iter().map(|r| r.ts_ns).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(rs[1].offset, 90);
    }

    /// Snaplen-cut segments: headers captured, bodies not; every record still found.
    #[test]
    fn snaplen_cut_records() {
        let mut st = stream(
            &[
                (10, rec(HANDSHAKE, 200)),
                (20, rec(APPLICATION_DATA, 300)),
                (30, rec(APPLICATION_DATA, 300)),
            ],
            1,
        );
        // keep 8 bytes of each segment
        let mut data = Vec::new();
        for i in 0..st.starts.len() {
            let a = st.data_starts[i] as usize;
            st.data_starts[i] = data.len() as u64;
            data.extend_from_slice(&st.data[a..a + 8]);
            st.captured[i] = 8;
        }
        st.data = data;
        let rs = records(&st);
        assert_eq!(rs.len(), 3);
        assert_eq!(rs[2].ts_ns, 30);
    }
}
