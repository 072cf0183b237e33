//! Framing as the bytes arrive changes no answer: random conversations (Content-Length and
//! chunked bodies, HEAD, 1xx, 101 and CONNECT tunnels, bodies until close, odd heads, blank
//! lines, broken chunks), cut into packets at random, some with retransmissions, holes,
//! snaplen-cut packets and packets written out of time order, are labelled the same whether
//! each direction is framed while its bytes arrive (and the framed bytes dropped) or only once
//! its connection is finished. And the requests told for connections still open
//! (`Reassembler::open_requests`) are rows the finished connection's batch has too.

use std::collections::BTreeMap;

use kaflow_core::batch::{request_header_names, Batch, REQUEST_ROW};
use kaflow_core::flow::TcpConnection;
use kaflow_core::label::label;
use kaflow_core::reassembly::Reassembler;
use kaflow_core::segment::{Segment, ACK, FIN, SYN};

const T0: i64 = 1_700_000_000_000_000_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.next(100) < percent
    }
}

fn ip(last: u8) -> [u8; 16] {
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, last]
}

fn body(rng: &mut Rng, n: usize) -> Vec<u8> {
    let words: [&[u8]; 5] = [
        b"GET / HTTP/1.1\r\n",
        b"0\r\n\r\n",
        b"xyz",
        b"\r\n",
        b"HTTP/1.1 200",
    ];
    let mut b = Vec::new();
    while b.len() < n {
        b.extend_from_slice(words[rng.next(words.len())]);
    }
    b.truncate(n);
    b
}

fn chunked(rng: &mut Rng) -> Vec<u8> {
    let mut b = Vec::new();
    for _ in 0..rng.next(4) {
        let n = 1 + rng.next(3000);
        b.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        b.extend_from_slice(&body(rng, n));
        b.extend_from_slice(b"\r\n");
    }
    match rng.next(10) {
        0 => b.extend_from_slice(b"zz\r\n"), // not a chunk size
        1 => b.extend_from_slice(b"0\r\nX-Trailer: 1\r\n\r\n"),
        _ => b.extend_from_slice(b"0\r\n\r\n"),
    }
    b
}

/// One conversation: the client's and the server's bytes, exchange by exchange.
fn conversation(rng: &mut Rng) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let n = 1 + rng.next(8);
    for i in 0..n {
        let last = i + 1 == n;
        let id = format!("X-Request-ID: r{i}\r\n");
        let (req, kind) = match rng.next(14) {
            0 => (b"HEAD /h HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(), "head"),
            1 => {
                let n = rng.next(5000);
                let mut r = format!("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: {n}\r\n\r\n")
                    .into_bytes();
                r.extend_from_slice(&body(rng, n));
                (r, "get")
            }
            2 => {
                let mut r = b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                r.extend_from_slice(&chunked(rng));
                (r, "get")
            }
            3 => (b"GET /o HTTP/1.1\nHost: h\n\n".to_vec(), "get"),
            4 => (b"\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(), "get"),
            5 => (
                b"GET /v HTTP/1.1\r\nConnection\x0b: close\r\n\r\n".to_vec(),
                "get",
            ),
            6 => (
                b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n".to_vec(),
                "connect",
            ),
            7 => (
                b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n".to_vec(),
                "upgrade",
            ),
            8 => (
                b"GET /x HTTP/1.1\r\nContent-Length: zz\r\n\r\n".to_vec(),
                "get",
            ),
            // a header line led by a byte white-space stripping takes off
            9 => (
                format!("GET /vt HTTP/1.1\r\nHost: h\r\n\x0b{id}\r\n").into_bytes(),
                "get",
            ),
            _ => (
                format!("GET /a{i} HTTP/1.1\r\nHost: h\r\n{id}\r\n").into_bytes(),
                "get",
            ),
        };
        let server = match rng.next(5) {
            0 | 1 => "Server: s1\r\n",
            2 => "\x0cServer: s3\r\n\rKeep-Alive: timeout=7\r\n",
            _ => "Server: s2\r\nKeep-Alive: timeout=5\r\n",
        };
        let mut resp = Vec::new();
        if rng.chance(10) {
            resp.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let tunnel = match kind {
            "upgrade" if rng.chance(70) => {
                resp.extend_from_slice(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
                );
                true
            }
            "connect" if rng.chance(70) => {
                resp.extend_from_slice(b"HTTP/1.1 200 Connection established\r\n\r\n");
                true
            }
            "head" => {
                resp.extend_from_slice(
                    format!("HTTP/1.1 200 OK\r\n{server}Content-Length: 50\r\n\r\n").as_bytes(),
                );
                false
            }
            _ => {
                match rng.next(8) {
                    0 => resp.extend_from_slice(b"HTTP/1.1 204 No Content\r\n\r\n"),
                    1 => resp.extend_from_slice(
                        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                    ),
                    2 | 3 => {
                        resp.extend_from_slice(
                            format!(
                                "HTTP/1.1 200 OK\r\n{server}Transfer-Encoding: chunked\r\n\r\n"
                            )
                            .as_bytes(),
                        );
                        resp.extend_from_slice(&chunked(rng));
                    }
                    4 if last => {
                        resp.extend_from_slice(
                            format!("HTTP/1.0 200 OK\r\n{server}\r\n").as_bytes(),
                        );
                        let n = rng.next(4000);
                        resp.extend_from_slice(&body(rng, n));
                    }
                    5 => resp.extend_from_slice(b"HTTP/1.1 200 OK\nContent-Length: 3\n\nabc"),
                    _ => {
                        let n = rng.next(6000);
                        resp.extend_from_slice(
                            format!("HTTP/1.1 200 OK\r\n{server}Content-Length: {n}\r\n\r\n")
                                .as_bytes(),
                        );
                        resp.extend_from_slice(&body(rng, n));
                    }
                }
                false
            }
        };
        if rng.chance(5) {
            resp.extend_from_slice(b"\r\n");
        }
        out.push((req, resp));
        if tunnel {
            let n = rng.next(300);
            out.push((body(rng, n), body(rng, 200)));
            break;
        }
    }
    out
}

struct Packet {
    c2s: bool,
    seq: u32,
    flags: u8,
    bytes: Vec<u8>,
    plen: u32,
}

/// The connection's packets in file order, with their times.
fn packets(rng: &mut Rng, conv: &[(Vec<u8>, Vec<u8>)], odd: bool) -> Vec<(i64, Packet)> {
    let (ci, si) = (
        rng.next(u32::MAX as usize) as u32,
        rng.next(u32::MAX as usize) as u32,
    );
    let mut out = vec![
        (
            0,
            Packet {
                c2s: true,
                seq: ci,
                flags: SYN,
                bytes: vec![],
                plen: 0,
            },
        ),
        (
            0,
            Packet {
                c2s: false,
                seq: si,
                flags: SYN | ACK,
                bytes: vec![],
                plen: 0,
            },
        ),
        (
            0,
            Packet {
                c2s: true,
                seq: ci.wrapping_add(1),
                flags: ACK,
                bytes: vec![],
                plen: 0,
            },
        ),
    ];
    let (mut co, mut so) = (0u32, 0u32);
    for (req, resp) in conv {
        for (c2s, data) in [(true, req), (false, resp)] {
            let mut at = 0;
            while at < data.len() {
                let size = [1, 3, 40, 300, 1448][rng.next(5)].min(data.len() - at);
                let piece = data[at..at + size].to_vec();
                let off = if c2s { &mut co } else { &mut so };
                let seq = if c2s { ci } else { si }.wrapping_add(1).wrapping_add(*off);
                let mut p = Packet {
                    c2s,
                    seq,
                    flags: ACK,
                    plen: size as u32,
                    bytes: piece,
                };
                at += size;
                *off += size as u32;
                if odd && rng.chance(3) {
                    continue; // never captured: a hole
                }
                if odd && rng.chance(3) {
                    let keep = rng.next(p.bytes.len());
                    p.bytes.truncate(keep); // a snaplen
                }
                if odd && rng.chance(3) {
                    let again = Packet {
                        bytes: p.bytes.clone(),
                        ..p
                    };
                    out.push((0, p));
                    out.push((0, again)); // retransmitted
                    continue;
                }
                out.push((0, p));
            }
        }
    }
    for c2s in [true, false] {
        let seq = if c2s {
            ci.wrapping_add(1).wrapping_add(co)
        } else {
            si.wrapping_add(1).wrapping_add(so)
        };
        out.push((
            0,
            Packet {
                c2s,
                seq,
                flags: FIN | ACK,
                bytes: vec![],
                plen: 0,
            },
        ));
    }
    // times: increasing, some the same, some written out of order
    let mut t = 0i64;
    for (ts, _) in &mut out {
        t += [0, 1, 1000, 50_000][rng.next(4)];
        *ts = t;
    }
    if odd && rng.chance(30) {
        let i = 3 + rng.next(out.len().saturating_sub(4));
        if i + 1 < out.len() {
            out.swap(i, i + 1);
        }
    }
    out
}

fn segment(frame: u64, ts: i64, port: u16, p: &Packet) -> Segment {
    let (src, dst, sport, dport) = if p.c2s {
        (ip(1), ip(2), port, 8080)
    } else {
        (ip(2), ip(1), 8080, port)
    };
    Segment {
        frame,
        ts_ns: T0 + ts,
        ip_version: 4,
        src,
        dst,
        sport,
        dport,
        seq: p.seq,
        ack: 0,
        flags: p.flags,
        window: 0,
        payload_len: p.plen,
        captured_len: p.bytes.len() as u32,
        payload_off: 0,
        reassembled: false,
    }
}

/// Every connection's packets, interleaved by time, in file order.
fn capture(rng: &mut Rng, conns: usize) -> Vec<(Segment, Vec<u8>)> {
    let mut all = Vec::new();
    for k in 0..conns {
        let conv = conversation(rng);
        let odd = rng.chance(30);
        let start = rng.next(2_000_000) as i64;
        for (ts, p) in packets(rng, &conv, odd) {
            all.push((start + ts, k, p));
        }
    }
    // stable: a connection's packets keep their order, out-of-order ones too
    all.sort_by_key(|(ts, k, _)| (*ts / 3_000_000, *k));
    all.into_iter()
        .enumerate()
        .map(|(i, (ts, k, p))| (segment(i as u64 + 1, ts, 40000 + k as u16, &p), p.bytes))
        .collect()
}

fn run(segs: &[(Segment, Vec<u8>)], live: bool) -> (Vec<TcpConnection>, Vec<i64>) {
    let mut r = Reassembler::new(&[8080]);
    r.frame_as_bytes_arrive(live);
    let mut done = Vec::new();
    let mut told = Vec::new();
    for (seg, pay) in segs {
        r.push(seg, pay, &mut done);
        told.extend(r.open_requests());
    }
    r.finish(&mut done);
    done.sort_by_key(|c| c.id);
    (done, told)
}

#[test]
fn framing_as_bytes_arrive_changes_nothing() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let (mut told_total, mut dropped) = (0, 0u64);
    for round in 0..400 {
        let n = 1 + rng.next(6);
        let segs = capture(&mut rng, n);
        let (live, told) = run(&segs, true);
        let (whole, none) = run(&segs, false);
        assert!(none.is_empty());
        assert_eq!(live.len(), whole.len());
        let mut batch = Batch::default();
        for (a, b) in live.iter().zip(&whole) {
            dropped += a.to_server.stream.dropped + a.to_client.stream.dropped;
            let (la, lb) = (label(a), label(b));
            assert_eq!(la, lb, "round {round}, connection {}", a.id);
            assert_eq!(
                request_header_names(&a.to_server.stream),
                request_header_names(&b.to_server.stream)
            );
            batch.push(b, lb);
        }
        // every request told early is the finished connection's, row for row
        let all = batch.request_rows();
        let rows: BTreeMap<(i64, i64), &[i64]> =
            all.chunks(REQUEST_ROW).map(|r| ((r[2], r[3]), r)).collect();
        // connections with a packet stamped before one written earlier: a packet that brings
        // a request's first byte again, stamped earlier, places it later than it was told
        let mut last: BTreeMap<u16, i64> = BTreeMap::new();
        let mut back = std::collections::BTreeSet::new();
        for (seg, _) in &segs {
            let port = seg.sport.max(seg.dport);
            let t = last.entry(port).or_insert(i64::MIN);
            if seg.ts_ns < *t {
                back.insert(port);
            }
            *t = (*t).max(seg.ts_ns);
        }
        let port_of: BTreeMap<i64, u16> =
            live.iter().map(|c| (c.id as i64, c.client_port)).collect();
        for r in told.chunks(REQUEST_ROW) {
            let Some(b) = rows.get(&(r[2], r[3])) else {
                panic!("round {round}: told {r:?}, not batched");
            };
            if port_of.get(&r[2]).is_some_and(|p| back.contains(p)) {
                assert_eq!(
                    (r[0], r[2], r[3], r[5]),
                    (b[0], b[2], b[3], b[5]),
                    "round {round}"
                );
            } else {
                assert_eq!(r, *b, "round {round}");
            }
            told_total += 1;
        }
    }
    assert!(told_total > 100, "{told_total}");
    assert!(dropped > 1_000_000, "{dropped}");
}

/// A keepalive connection still open: its first requests are told while the second response is
/// still coming, each once, and the same as its finished batch gives them.
#[test]
fn open_requests_are_told_once_and_as_batched() {
    let conv = vec![
        (
            b"GET /a HTTP/1.1\r\nHost: h\r\nX-Request-ID: 1\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        ),
        (
            b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n".to_vec(),
        ),
    ];
    let mut rng = Rng(7);
    let pk = packets(&mut rng, &conv, false);
    let segs: Vec<(Segment, Vec<u8>)> = pk
        .iter()
        .enumerate()
        .map(|(i, (ts, p))| (segment(i as u64 + 1, *ts, 40000, p), p.bytes.clone()))
        .collect();
    let mut r = Reassembler::new(&[8080]);
    let mut done = Vec::new();
    let mut told = Vec::new();
    // all but the FINs: the connection stays open
    for (seg, pay) in &segs[..segs.len() - 2] {
        r.push(seg, pay, &mut done);
        told.extend(r.open_requests());
    }
    assert!(done.is_empty());
    assert_eq!(told.len(), 2 * REQUEST_ROW);
    assert!(r.open_requests().is_empty());
    for (seg, pay) in &segs[segs.len() - 2..] {
        r.push(seg, pay, &mut done);
    }
    r.finish(&mut done);
    let mut batch = Batch::default();
    for tc in &done {
        batch.push(tc, label(tc));
    }
    assert_eq!(batch.request_rows(), told);
}
