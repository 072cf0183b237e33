//! HTTP/1.x framing over reassembled streams: `tests/test_http.py` and `test_robust_http.py`
//! ported, with the values the Python reference gives.

use kaflow_core::flow::Stream;
use kaflow_core::http::{
    body_length, burst_starts, frame_rows, frame_with_bursts, Body, Kind, Message, Note,
};

/// One piece: (offset, length, ts, frame, captured bytes).
type Piece<'a> = (i64, u32, i64, u64, &'a [u8]);

fn stream(pieces: &[Piece]) -> Stream {
    let mut s = Stream::default();
    for &(off, len, ts, frame, data) in pieces {
        s.starts.push(off);
        s.lengths.push(len);
        s.ts.push(ts);
        s.frames.push(frame);
        s.captured.push(data.len() as u32);
        s.data_starts.push(s.data.len() as u64);
        s.data.extend_from_slice(data);
    }
    s
}

enum P<'a> {
    Bytes(&'a [u8]),
    /// That many bytes whose values were not captured.
    Uncaptured(u32),
    /// That many bytes the capture never saw.
    Hole(i64),
    /// Bytes of which only the first n were captured (a snaplen).
    Cut(&'a [u8], usize),
}

/// Pieces one after the other, at ts `t0 + i * step`, frame `i + 1`.
fn chunks(parts: &[P], t0: i64, step: i64) -> Stream {
    let mut pieces = Vec::new();
    let mut off = 0;
    for (i, p) in parts.iter().enumerate() {
        let (ts, frame) = (t0 + i as i64 * step, i as u64 + 1);
        match *p {
            P::Bytes(b) => {
                pieces.push((off, b.len() as u32, ts, frame, b));
                off += b.len() as i64;
            }
            P::Uncaptured(n) => {
                pieces.push((off, n, ts, frame, &b""[..]));
                off += i64::from(n);
            }
            P::Hole(n) => off += n,
            P::Cut(b, n) => {
                pieces.push((off, b.len() as u32, ts, frame, &b[..n]));
                off += b.len() as i64;
            }
        }
    }
    stream(&pieces)
}

fn requests(s: &Stream, bursts: &[i64]) -> (Vec<Message>, Vec<Note>) {
    frame_with_bursts(Kind::Request, s, bursts, &[], false)
}

fn responses(s: &Stream, methods: &[Option<&str>]) -> (Vec<Message>, Vec<Note>) {
    frame_with_bursts(Kind::Response, s, &[], methods, false)
}

fn targets(msgs: &[Message]) -> Vec<Option<&str>> {
    msgs.iter().map(|m| m.target.as_deref()).collect()
}

fn whats(notes: &[Note]) -> Vec<&str> {
    notes.iter().map(|n| n.what.as_str()).collect()
}

const REQ: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";

#[test]
fn body_containing_a_request_line_is_not_a_request() {
    let body = b"GET /evil HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut post = format!(
        "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    post.extend_from_slice(body);
    let get = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n";
    let (msgs, notes) = requests(&chunks(&[P::Bytes(&post), P::Bytes(get)], 1000, 1000), &[]);
    let got: Vec<_> = msgs
        .iter()
        .map(|m| (m.method.as_deref(), m.target.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            (Some("POST"), Some("/upload")),
            (Some("GET"), Some("/next"))
        ]
    );
    assert_eq!(msgs[0].length, Some(post.len() as i64));
    assert!(notes.is_empty());
}

#[test]
fn request_split_across_segments_and_body_in_next_segment() {
    let head = b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n";
    let s = chunks(
        &[
            P::Bytes(&head[..10]),
            P::Bytes(&head[10..]),
            P::Bytes(b"0123456789"),
            P::Bytes(b"GET /g HTTP/1.1\r\n\r\n"),
        ],
        1000,
        1000,
    );
    let (msgs, _) = requests(&s, &[]);
    assert_eq!(targets(&msgs), [Some("/p"), Some("/g")]);
    assert_eq!((msgs[0].frame, msgs[1].frame), (1, 4));
}

#[test]
fn chunked_request_body_is_skipped() {
    let post = b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nGET \r\n6\r\n/x HTT\r\n0\r\n\r\n";
    let s = chunks(
        &[P::Bytes(post), P::Bytes(b"GET /after HTTP/1.1\r\n\r\n")],
        1000,
        1000,
    );
    assert_eq!(targets(&requests(&s, &[]).0), [Some("/c"), Some("/after")]);
}

#[test]
fn chunked_response_with_trailers() {
    let r1 =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n";
    let r2 = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    let (msgs, notes) = responses(
        &chunks(&[P::Bytes(r1), P::Bytes(r2)], 1000, 1000),
        &[Some("GET"), Some("GET")],
    );
    assert_eq!(
        msgs.iter().map(|m| m.status).collect::<Vec<_>>(),
        [Some(200), Some(404)]
    );
    assert!(notes.is_empty());
}

#[test]
fn head_response_has_no_body_despite_content_length() {
    let r1 = b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n".to_vec();
    let r2 = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let both = [r1.clone(), r2.to_vec()].concat();
    for s in [
        chunks(&[P::Bytes(&both)], 1000, 1000),
        // the general parser too: a hole after the messages makes the stream not contiguous
        chunks(&[P::Bytes(&both), P::Hole(5), P::Bytes(b"x")], 1000, 1000),
    ] {
        let (msgs, _) = responses(&s, &[Some("HEAD"), Some("GET")]);
        assert_eq!((msgs[0].status, msgs[1].status), (Some(200), Some(200)));
        assert_eq!(msgs[1].offset, r1.len() as i64);
    }
}

#[test]
fn status_1xx_204_304_have_no_body() {
    let all = [
        &b"HTTP/1.1 100 Continue\r\n\r\n"[..],
        b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    ]
    .concat();
    let (msgs, _) = responses(
        &chunks(&[P::Bytes(&all)], 1000, 1000),
        &[Some("POST"), Some("GET"), Some("GET")],
    );
    let statuses: Vec<_> = msgs.iter().map(|m| m.status).collect();
    assert_eq!(statuses, [Some(100), Some(204), Some(304), Some(200)]);
}

#[test]
fn connection_close_is_recorded() {
    let r = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    let (msgs, _) = responses(&chunks(&[P::Bytes(r)], 1000, 1000), &[Some("GET")]);
    assert!(msgs[0].connection_close);
}

#[test]
fn http_1_0_closes_unless_it_asks_to_keep_alive() {
    let r = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n\r\nrest";
    let (msgs, notes) = responses(&chunks(&[P::Bytes(r)], 1, 1), &[Some("GET"); 3]);
    let got: Vec<_> = msgs
        .iter()
        .map(|m| (m.status, m.connection_close, m.length))
        .collect();
    // values from the Python reference
    assert_eq!(
        got,
        [
            (Some(200), true, Some(40)),
            (Some(200), false, Some(62)),
            (Some(200), false, Some(23))
        ]
    );
    assert!(notes.is_empty());
}

#[test]
fn response_without_length_reads_until_close() {
    let r = b"HTTP/1.1 200 OK\r\n\r\nbody HTTP/1.1 200 OK\r\n\r\n";
    let (msgs, _) = responses(&chunks(&[P::Bytes(r)], 1000, 1000), &[Some("GET")]);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].length, Some(r.len() as i64));
}

#[test]
fn uncaptured_payload_falls_back_to_bursts() {
    // snaplen cut every payload: 3 requests of unknown bytes, bursts at their starts
    let c = chunks(
        &[P::Uncaptured(80), P::Uncaptured(80), P::Uncaptured(80)],
        1000,
        1000,
    );
    let other = chunks(&[P::Uncaptured(10), P::Uncaptured(10)], 1500, 1000);
    let (msgs, _) = requests(&c, &burst_starts(&c, &other));
    assert_eq!(msgs.len(), 3);
    assert!(msgs.iter().all(|m| !m.parsed && m.method.is_none()));
    // the same with the bursts worked out from the other direction
    let (msgs, _) = frame_rows(Kind::Request, &c, &other, &[], false);
    assert_eq!(msgs.len(), 3);
}

#[test]
fn bursts_start_where_the_other_side_spoke_in_between() {
    let mine = chunks(&[P::Bytes(b"a"), P::Bytes(b"b"), P::Bytes(b"c")], 0, 10);
    let other = stream(&[(0, 1, 15, 9, b"x")]); // between b and c
    assert_eq!(burst_starts(&mine, &other), [2]);
}

#[test]
fn garbage_is_noted_not_raised() {
    let s = chunks(
        &[P::Bytes(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")],
        1000,
        1000,
    );
    let (msgs, notes) = requests(&s, &[]);
    assert!(msgs.len() == 1 && !msgs[0].parsed);
    assert!(notes[0].what.contains("not an HTTP/1.x request"));
}

#[test]
fn midstream_start_skips_the_tail_of_an_earlier_message() {
    let tail = b"...rest of a body";
    let c = chunks(
        &[P::Bytes(tail), P::Bytes(b"GET /x HTTP/1.1\r\n\r\n")],
        1000,
        1000,
    );
    let (msgs, notes) = frame_with_bursts(Kind::Request, &c, &[tail.len() as i64], &[], true);
    assert_eq!(targets(&msgs), [Some("/x")]);
    assert_eq!(notes[0].what, "capture began mid-message");
}

#[test]
fn gap_in_stream_is_noted_and_parsing_resumes() {
    let (a, b) = (b"GET /a HTTP/1.1\r\n\r\n", b"GET /b HTTP/1.1\r\n\r\n");
    let c = stream(&[
        (0, a.len() as u32, 1, 1, a),
        (a.len() as i64 + 50, b.len() as u32, 2, 2, b),
    ]);
    let (msgs, notes) = requests(&c, &[a.len() as i64 + 50]);
    assert_eq!(targets(&msgs), [Some("/a"), Some("/b")]);
    assert_eq!(whats(&notes), ["50 bytes missing from the capture"]);
}

#[test]
fn host_header_is_read() {
    let s = chunks(
        &[P::Bytes(b"GET / HTTP/1.1\r\nhost: api.local\r\n\r\n")],
        1000,
        1000,
    );
    assert_eq!(requests(&s, &[]).0[0].host.as_deref(), Some("api.local"));
}

#[test]
fn a_hole_inside_a_head_is_said_not_skipped_silently() {
    let three = REQ.repeat(3);
    let s = chunks(
        &[
            P::Bytes(&three),
            P::Bytes(&REQ[..20]),
            P::Hole(5),
            P::Bytes(&REQ[25..]),
            P::Bytes(&three),
        ],
        1000,
        1,
    );
    let (msgs, notes) = requests(&s, &[]);
    assert_eq!(targets(&msgs), [Some("/a"); 4]);
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].offset, 3 * REQ.len() as i64);
    assert!(notes[0]
        .what
        .starts_with("message head cut by bytes missing from the capture; "));
}

#[test]
fn a_hole_inside_a_start_line_is_said_as_such() {
    let s = chunks(
        &[
            P::Bytes(REQ),
            P::Bytes(&REQ[..9]),
            P::Hole(3),
            P::Bytes(&REQ[12..]),
            P::Bytes(REQ),
        ],
        1000,
        1,
    );
    let (msgs, notes) = requests(&s, &[]);
    let methods: Vec<_> = msgs.iter().map(|m| m.method.as_deref()).collect();
    assert_eq!(methods, [Some("GET"), None]);
    let firsts: Vec<_> = notes.iter().map(|n| n.what.split(';').next()).collect();
    assert_eq!(
        firsts,
        [Some(
            "message start line cut by bytes missing from the capture"
        )]
    );
}

#[test]
fn a_snaplen_cut_is_not_a_hole() {
    let big = [REQ, &[b'x'; 200][..]].concat();
    let s = chunks(&[P::Cut(&big, 20), P::Cut(&big, 20)], 1000, 1);
    let (msgs, notes) = requests(&s, &[big.len() as i64]);
    assert_eq!(msgs.len(), 2);
    assert!(notes.is_empty());
}

#[test]
fn one_missing_byte_is_singular() {
    let s = chunks(&[P::Bytes(REQ), P::Hole(1), P::Bytes(REQ)], 1000, 1);
    let (_, notes) = requests(&s, &[REQ.len() as i64 + 1]);
    assert_eq!(notes[0].what, "1 byte missing from the capture");
}

#[test]
fn keepalive_probe_byte_before_offset_zero_is_skipped() {
    let s = stream(&[(-1, 1, 500, 1, b"\x00"), (0, REQ.len() as u32, 900, 2, REQ)]);
    let (msgs, notes) = requests(&s, &[]);
    assert_eq!(
        msgs.iter()
            .map(|m| (m.target.as_deref(), m.frame))
            .collect::<Vec<_>>(),
        [(Some("/a"), 2)]
    );
    assert!(notes.is_empty());
    // mid-stream, offsets are relative to the first byte seen: nothing is skipped there
    let s = stream(&[(-5, 5, 1, 1, b"tail."), (0, REQ.len() as u32, 2, 2, REQ)]);
    let (msgs, notes) = frame_with_bursts(Kind::Request, &s, &[0], &[], true);
    assert_eq!(targets(&msgs), [Some("/a")]);
    assert_eq!(
        notes
            .iter()
            .map(|n| (n.offset, n.what.as_str()))
            .collect::<Vec<_>>(),
        [(-5, "capture began mid-message")]
    );
}

#[test]
fn tls_and_http2_are_named_once_per_stream() {
    let tls = [&b"\x16\x03\x01\x00\x4a"[..], &[0; 74]].concat();
    let app = [&b"\x17\x03\x03\x00\x20"[..], &[0; 32]].concat();
    let s = chunks(&[P::Bytes(&tls), P::Bytes(&app), P::Bytes(&app)], 1000, 1);
    let l = tls.len() as i64;
    let (msgs, notes) = requests(&s, &[l, l + app.len() as i64]);
    assert!(msgs.len() == 1 && !msgs[0].parsed);
    assert_eq!(
        whats(&notes),
        ["not an HTTP/1.x request: TLS (HTTPS) — the payload is encrypted; its messages cannot be read"]
    );
    let h2 = [&b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..], &[0; 9]].concat();
    // the contiguous path and the general one
    for s in [
        chunks(&[P::Bytes(&h2)], 1000, 1),
        chunks(&[P::Bytes(&h2), P::Hole(2), P::Bytes(b"x")], 1000, 1),
    ] {
        let (msgs, notes) = requests(&s, &[]);
        assert!(msgs.len() == 1 && !msgs[0].parsed && notes.len() == 1);
        assert!(notes[0].what.contains("HTTP/2"));
    }
    let settings = b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64";
    let (_, notes) = responses(&chunks(&[P::Bytes(settings)], 1000, 1), &[None]);
    assert!(notes.len() == 1 && notes[0].what.contains("HTTP/2"));
}

#[test]
fn absurd_content_lengths_are_unreadable_not_a_crash() {
    for digits in [19, 5000] {
        let req = [
            &b"POST / HTTP/1.1\r\nContent-Length: "[..],
            &vec![b'9'; digits],
            b"\r\n\r\n",
            REQ,
        ]
        .concat();
        for s in [
            chunks(&[P::Bytes(&req)], 1000, 1),
            chunks(&[P::Bytes(&req), P::Hole(1), P::Bytes(b"x")], 1000, 1),
        ] {
            let (msgs, notes) = requests(&s, &[]);
            assert_eq!(msgs[0].method.as_deref(), Some("POST"));
            assert!(whats(&notes).contains(&"unreadable Content-Length"));
        }
    }
}

#[test]
fn a_content_length_of_an_exabyte_is_a_length_not_an_allocation() {
    let req = b"POST / HTTP/1.1\r\nContent-Length: 999999999999999999\r\n\r\nabc";
    let (msgs, notes) = requests(&chunks(&[P::Bytes(req)], 1, 1), &[]);
    assert_eq!(msgs.len(), 1);
    assert_eq!(
        msgs[0].length,
        Some(999_999_999_999_999_999 + req.len() as i64 - 3)
    );
    assert!(notes.is_empty());
    let huge_chunk =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nabc";
    let (msgs, _) = responses(&chunks(&[P::Bytes(huge_chunk)], 1, 1), &[Some("GET")]);
    assert_eq!((msgs[0].status, msgs[0].length), (Some(200), None));
}

#[test]
fn garbage_bursts_cost_a_short_read_each() {
    // 40k one-byte bursts of "GET GET GET ..." with a hole near the start
    let n = 40_000usize;
    let body = b"GET ".repeat(n / 4);
    let mut pieces: Vec<Piece> = vec![(0, 1, 0, 1, b"G")];
    for k in 2..n {
        pieces.push((k as i64, 1, k as i64, k as u64, &body[k..k + 1]));
    }
    let s = stream(&pieces);
    let bursts: Vec<i64> = (2..n as i64).collect();
    let t0 = std::time::Instant::now();
    let (msgs, notes) = requests(&s, &bursts);
    assert!(msgs.len() > n / 2 && notes.len() == msgs.len());
    // unoptimised builds are ten times slower: the bound is for the release build
    assert!(cfg!(debug_assertions) || t0.elapsed().as_secs() < 5);
}

#[test]
fn an_indented_header_line_is_never_a_header_whichever_way_the_head_is_read() {
    // " Content-Length: 5" as the first header line is not read (RFC 9112 §2.2), by the quick
    // path (contiguous stream) and the general parser (after a hole) alike: the POST has no
    // body, and the five bytes are not a request
    let r = b"POST /a HTTP/1.1\r\n Content-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\n\r\n";
    let indented = "header line beginning with white space after the start line (not read)";
    let junk = "not an HTTP/1.x request line: b'helloGET /b HTTP/1.1\\r'";
    for s in [
        chunks(&[P::Bytes(r)], 1, 1),
        chunks(&[P::Bytes(r), P::Hole(3), P::Bytes(b"x")], 1, 1),
    ] {
        let (msgs, notes) = requests(&s, &[]);
        let got: Vec<_> = msgs
            .iter()
            .map(|m| (m.method.as_deref(), m.target.as_deref(), m.length))
            .collect();
        assert_eq!(
            got[..2],
            [(Some("POST"), Some("/a"), Some(40)), (None, None, None)]
        );
        assert_eq!(whats(&notes)[..2], [indented, junk]);
    }
}

#[test]
fn latin_1_targets_and_hosts_and_joined_hosts() {
    let r = b"GET /\xe9 HTTP/1.1\r\nHost: \xe9t\xe9\r\n\r\nGET/x HTTP/1.1";
    let (msgs, notes) = requests(&chunks(&[P::Bytes(r)], 1, 1), &[]);
    assert_eq!(msgs[0].target.as_deref(), Some("/é"));
    assert_eq!(msgs[0].host.as_deref(), Some("été"));
    assert!(!msgs[1].parsed);
    assert_eq!(whats(&notes), ["stream ends inside a message's first line"]);
    let r = b"GET /a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n";
    let (msgs, _) = requests(&chunks(&[P::Bytes(r)], 1, 1), &[]);
    assert_eq!(msgs[0].host.as_deref(), Some("a, b"));
}

#[test]
fn body_length_is_rfc_9112_section_6_3() {
    assert_eq!(body_length(None, false, false, None), Body::Length(0));
    assert_eq!(
        body_length(None, false, false, Some(b" 12 ")),
        Body::Length(12)
    );
    assert_eq!(body_length(None, false, true, Some(b"12")), Body::Chunked);
    assert_eq!(body_length(Some(200), false, false, None), Body::UntilClose);
    assert_eq!(
        body_length(Some(200), true, true, Some(b"5")),
        Body::Length(0)
    );
    for code in [100, 101, 199, 204, 304] {
        assert_eq!(body_length(Some(code), false, true, None), Body::Length(0));
    }
    assert_eq!(
        body_length(Some(200), false, false, Some(b"3, 3")),
        Body::Length(3)
    );
    assert_eq!(
        body_length(Some(200), false, false, Some(b"x")),
        Body::Unreadable
    );
    let nineteen = [b'9'; 19];
    assert_eq!(
        body_length(None, false, false, Some(&nineteen)),
        Body::Unreadable
    );
}

#[test]
fn any_bytes_frame_without_panicking() {
    // a cheap deterministic fuzz: random bytes and random piece layouts, both kinds
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet = b"GET HTTP/1.0 200\r\n:chunked;0123456789abcdefContent-Length Host \x16\x03\x00";
    for _ in 0..3000 {
        let n = (rnd() % 300) as usize;
        let bytes: Vec<u8> = (0..n)
            .map(|_| alphabet[(rnd() % alphabet.len() as u64) as usize])
            .collect();
        let mut pieces = Vec::new();
        let mut off = (rnd() % 3) as i64 - 1;
        let mut k = 0;
        while k < bytes.len() {
            let len = 1 + (rnd() % 40) as usize;
            let piece = &bytes[k..(k + len).min(bytes.len())];
            let keep = if rnd() % 5 == 0 {
                (rnd() as usize) % (piece.len() + 1)
            } else {
                piece.len()
            };
            if rnd() % 7 != 0 {
                pieces.push((off, piece.len() as u32, off, k as u64, &piece[..keep]));
            }
            off += piece.len() as i64;
            k += len;
        }
        let s = stream(&pieces);
        for kind in [Kind::Request, Kind::Response] {
            let _ = frame_rows(kind, &s, &s, &[Some("HEAD"), None], rnd() % 2 == 0);
        }
    }
}
