//! Edge cases of TCP reconstruction, each with the answer Python's `pcapkit.tcp.Reconstructor`
//! gives for the same segments (the expected lines come from
//! `tests/oracle/reasm_cases.py`, which prints this file's cases), and hostile inputs that must
//! finish without a panic.

use kaflow_core::flow::{Flow, Mark, TcpConnection};
use kaflow_core::reassembly::Reassembler;
use kaflow_core::segment::{Segment, ACK, FIN, PSH, RST, SYN};

const T0: i64 = 1_700_000_000_000_000_000;
const C: bool = true;
const S: bool = false;

fn ip(last: u8) -> [u8; 16] {
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, last]
}

type Seg = (Segment, Vec<u8>);

/// A segment of the connection `port` ↔ 8080: time after T0, direction, sequence number,
/// flags as letters, payload, and its length when it differs from the payload's (a snaplen).
fn s(ts: i64, c2s: bool, port: u16, seq: u32, flags: &str, pay: &[u8], plen: Option<u32>) -> Seg {
    let mut f = 0;
    for ch in flags.chars() {
        f |= match ch {
            'F' => FIN,
            'S' => SYN,
            'R' => RST,
            'P' => PSH,
            'A' => ACK,
            _ => 0,
        };
    }
    let (src, dst, sport, dport) = if c2s {
        (ip(1), ip(2), port, 8080)
    } else {
        (ip(2), ip(1), 8080, port)
    };
    let seg = Segment {
        frame: 0,
        ts_ns: T0 + ts,
        ip_version: 4,
        src,
        dst,
        sport,
        dport,
        seq,
        ack: 0,
        flags: f,
        window: 0,
        payload_len: plen.unwrap_or(pay.len() as u32),
        captured_len: pay.len() as u32,
        payload_off: 0,
        reassembled: false,
    };
    (seg, pay.to_vec())
}

fn reassemble(segs: &[Seg]) -> Vec<TcpConnection> {
    let mut r = Reassembler::new(&[8080]);
    let mut done = Vec::new();
    for (i, (seg, pay)) in segs.iter().enumerate() {
        let seg = Segment {
            frame: i as u64 + 1,
            ..*seg
        };
        r.push(&seg, pay, &mut done);
    }
    r.finish(&mut done);
    done.sort_by_key(|c| c.id);
    done
}

fn mark(m: &Option<Mark>) -> String {
    m.map_or("-".into(), |m| {
        format!("{}/{}/{}", m.ts_ns - T0, m.frame, m.offset)
    })
}

fn flow(f: &Flow) -> String {
    let s = &f.stream;
    let pieces: Vec<String> = (0..s.starts.len())
        .map(|i| {
            let d = s.data_starts[i] as usize;
            let c = s.captured[i] as usize;
            let hex: String = s.data[d..d + c]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!(
                "{}+{}:{}@{}={}",
                s.starts[i], s.lengths[i], c, s.frames[i], hex
            )
        })
        .collect();
    let late: Vec<String> = f.late_data.iter().map(|m| mark(&Some(*m))).collect();
    format!(
        "pk={} syn={} n={} fin={} rst={} rt={} b={} miss={} last={} late=[{}] ign={} s=[{}]",
        f.packets,
        mark(&f.syn),
        f.syn_count,
        mark(&f.fin),
        mark(&f.rst),
        f.retransmissions,
        f.bytes,
        f.missing,
        f.last_ts_ns.map_or("-".into(), |t| (t - T0).to_string()),
        late.join(","),
        f.ignored_rsts,
        pieces.join(";")
    )
}

fn summary(c: &TcpConnection) -> String {
    format!(
        "#{} {}>{} v{} first={}@{} last={} partial={} up[{}] down[{}]",
        c.id,
        c.client_port,
        c.server_port,
        c.ip_version,
        c.first_frame,
        c.first_ts_ns - T0,
        c.last_ts_ns - T0,
        if c.partial { "True" } else { "False" },
        flow(&c.to_server),
        flow(&c.to_client)
    )
}

fn check(segs: &[Seg], want: &[&str]) {
    let got: Vec<String> = reassemble(segs).iter().map(summary).collect();
    assert_eq!(got, want);
}

/// A deterministic stream of numbers for the hostile inputs (no rand dependency).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn hostile_random_segments_never_panic_and_keep_every_packet() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut r = Reassembler::new(&[8080, 8081]);
    let mut done = Vec::new();
    let n = 200_000u64;
    let mut ts = T0;
    let payload = vec![0x41u8; 1500];
    let mut upstream = 0;
    for frame in 1..=n {
        let x = rng.next();
        ts = match x % 50 {
            0 => ts.saturating_sub((x >> 40) as i64), // back in time
            1 => ts.saturating_add((x >> 20) as i64), // far ahead
            2 => i64::MIN + (x >> 8) as i64,          // absurd
            3 => i64::MAX - (x >> 8) as i64,
            _ => ts.saturating_add((x >> 54) as i64),
        };
        let port = |k: u64| [8080, 8081, 40000, 40001, 0, 65535][(k % 6) as usize];
        let seq_kind = (x >> 8) % 5;
        let seq = match seq_kind {
            0 => (x >> 32) as u32,
            1 => 0x8000_0000,
            2 => 0xffff_ffff,
            _ => (frame as u32).wrapping_mul(1448),
        };
        let plen = match (x >> 12) % 6 {
            0 => u32::MAX,
            1 => 1448,
            2 => 1,
            _ => 0,
        };
        let clen = ((x >> 16) % 1501) as usize;
        let seg = Segment {
            frame,
            ts_ns: ts,
            ip_version: if x & (1 << 20) != 0 { 6 } else { 4 },
            src: ip((x >> 21) as u8 & 3),
            dst: ip((x >> 23) as u8 & 3),
            sport: port(x >> 25),
            dport: port(x >> 28),
            seq,
            ack: 0,
            flags: (x >> 31) as u8 & 0x3f,
            window: 0,
            payload_len: plen,
            captured_len: clen as u32,
            payload_off: 0,
            reassembled: false,
        };
        let to_srv = [8080, 8081].contains(&seg.dport) || [8080, 8081].contains(&seg.sport);
        upstream += u64::from(to_srv);
        r.push(&seg, &payload[..clen], &mut done);
    }
    let stats = r.finish(&mut done);
    assert_eq!(stats.upstream_segments, upstream);
    assert_eq!(stats.upstream_segments + stats.other_ports, n);
    let packets: u64 = done
        .iter()
        .map(|c| c.to_server.packets + c.to_client.packets)
        .sum();
    assert_eq!(packets, upstream);
    let mut ids: Vec<u64> = done.iter().map(|c| c.id).collect();
    ids.sort_unstable();
    assert!(ids.iter().enumerate().all(|(i, &id)| id == i as u64 + 1));
    for c in &done {
        for f in [&c.to_server, &c.to_client] {
            let st = &f.stream;
            assert!(st.starts.windows(2).all(|w| w[0] < w[1]));
            assert_eq!(
                st.data.len() as u64,
                st.captured.iter().map(|&c| u64::from(c)).sum::<u64>()
            );
        }
    }
}

#[test]
fn syn_flood_each_port_one_attempt_and_same_tuple_new_isns_split() {
    let mut segs = Vec::new();
    for k in 0..5000u32 {
        segs.push(s(i64::from(k), C, 10_000 + k as u16, 7, "S", b"", None));
    }
    let conns = reassemble(&segs);
    assert_eq!(conns.len(), 5000);
    assert!(conns
        .iter()
        .all(|c| c.to_server.syn_count == 1 && !c.partial));
    // one tuple, a new ISN every time: a new attempt every time
    let segs: Vec<Seg> = (0..3000u32)
        .map(|k| s(i64::from(k), C, 40000, k * 77, "S", b"", None))
        .collect();
    assert_eq!(reassemble(&segs).len(), 3000);
}

#[test]
fn rst_flood_to_many_ports_is_many_partial_connections() {
    let segs: Vec<Seg> = (0..5000u32)
        .map(|k| s(i64::from(k), S, 20_000 + k as u16, 9, "R", b"", None))
        .collect();
    let conns = reassemble(&segs);
    assert_eq!(conns.len(), 5000);
    assert!(conns.iter().all(|c| c.partial && c.to_client.rst.is_some()));
}

#[test]
fn other_ports_are_counted_by_their_lower_port() {
    let mut r = Reassembler::new(&[8080]);
    let mut done = Vec::new();
    let (seg, pay) = s(0, C, 40000, 1, "A", b"", None);
    r.push(&Segment { dport: 5432, ..seg }, &pay, &mut done);
    r.push(
        &Segment {
            sport: 443,
            dport: 50000,
            ..seg
        },
        &pay,
        &mut done,
    );
    r.push(
        &Segment {
            sport: 443,
            dport: 50001,
            ..seg
        },
        &pay,
        &mut done,
    );
    r.push(&seg, &pay, &mut done);
    let stats = r.finish(&mut done);
    assert_eq!((stats.upstream_segments, stats.other_ports), (1, 3));
    assert_eq!(
        stats.other_port_counts.into_iter().collect::<Vec<_>>(),
        vec![(443, 2), (5432, 1)]
    );
    assert_eq!(done.len(), 1);
}

#[test]
fn connections_are_handed_out_while_the_capture_goes_on() {
    let mut r = Reassembler::new(&[8080]);
    let mut done = Vec::new();
    let sec = 1_000_000_000;
    for k in 0..100u16 {
        let t = i64::from(k) * sec;
        for (seg, pay) in [
            s(t, C, 30000 + k, 1, "S", b"", None),
            s(t + 1, C, 30000 + k, 2, "FA", b"", None),
            s(t + 2, S, 30000 + k, 9, "FA", b"", None),
        ] {
            r.push(&seg, &pay, &mut done);
        }
    }
    // closed more than the linger time before the last packet: already out
    assert!(done.len() >= 85, "{}", done.len());
    assert!(r.open() <= 15);
    r.finish(&mut done);
    assert_eq!(done.len(), 100);
}

#[test]
fn reordered_floods_stay_fast_and_exact() {
    // 100k one-byte segments written last first, then every other one first: each byte is kept
    // once, from the segment that brought it, whatever the order
    let n = 100_000u32;
    let byte = |k: u32| [b'a' + (k % 26) as u8];
    let mut segs = vec![s(0, C, 40000, 0, "S", b"", None)];
    segs.extend(
        (0..n)
            .rev()
            .map(|k| s(1 + i64::from(n - k), C, 40000, 1 + k, "PA", &byte(k), None)),
    );
    let start = std::time::Instant::now();
    let conns = reassemble(&segs);
    let f = &conns[0].to_server;
    assert_eq!(
        (f.bytes, f.missing, f.retransmissions),
        (u64::from(n), 0, 0)
    );
    assert_eq!(
        f.stream.data,
        (0..n).map(|k| byte(k)[0]).collect::<Vec<u8>>()
    );
    let mut segs = vec![s(0, C, 40000, 0, "S", b"", None)];
    let order = (0..n).step_by(2).chain((1..n).step_by(2)).chain(0..n);
    segs.extend(
        order
            .enumerate()
            .map(|(t, k)| s(1 + t as i64, C, 40000, 1 + k, "PA", &byte(k), None)),
    );
    let conns = reassemble(&segs);
    let f = &conns[0].to_server;
    assert_eq!(
        (f.bytes, f.missing, f.retransmissions),
        (u64::from(n), 0, u64::from(n))
    );
    assert_eq!(f.stream.starts.len(), n as usize);
    assert!(start.elapsed().as_secs() < 20);
}

// ---- generated by tests/oracle/reasm_cases.py ----

#[test]
fn in_order_exchange_and_close() {
    let segs = [
        s(0, C, 40000, 1000, "S", b"", None),
        s(10, S, 40000, 5000, "SA", b"", None),
        s(20, C, 40000, 1001, "A", b"", None),
        s(100, C, 40000, 1001, "PA", b"GET /a", None),
        s(200, S, 40000, 5001, "PA", b"HTTP ok", None),
        s(300, C, 40000, 1007, "FA", b"", None),
        s(400, S, 40000, 5008, "FA", b"", None),
        s(500, C, 40000, 1008, "A", b"", None),
    ];
    // expected: pcapkit.tcp.Reconstructor's answer
    check(&segs, &[
        "#1 40000>8080 v4 first=1@0 last=500 partial=False up[pk=5 syn=0/1/0 n=1 fin=300/6/6 rst=- rt=0 b=6 miss=0 last=500 late=[] ign=0 s=[0+6:6@4=474554202f61]] down[pk=3 syn=10/2/0 n=1 fin=400/7/7 rst=- rt=0 b=7 miss=0 last=400 late=[] ign=0 s=[0+7:7@5=48545450206f6b]]",
    ]);
}

#[test]
fn retransmission_with_other_bytes_first_wins() {
    let segs = [
        s(0, C, 40000, 1000, "S", b"", None),
        s(10, S, 40000, 5000, "SA", b"", None),
        s(20, C, 40000, 1001, "A", b"", None),
        s(100, C, 40000, 1001, "PA", b"GET /aaaa", None),
        s(200, C, 40000, 1001, "PA", b"GET /bbbb", None),
    ];
    // expected: pcapkit.tcp.Reconstructor's answer
    check(&segs, &[
        "#1 40000>8080 v4 first=1@0 last=200 partial=False up[pk=4 syn=0/1/0 n=1 fin=- rst=- rt=1 b=9 miss=0 last=200 late=[] ign=0 s=[0+9:9@4=474554202f61616161]] down[pk=1 syn=10/2/0 n=1 fin=- rst=- rt=0 b=0 miss=0 last=10 late=[] ign=0 s=[]]",
    ]);
}

#[test]
fn overlap_starting_earlier_arriving_later_does_not_win() {
    let segs = [
        s(0, C, 40000, 1000, "S", b"", None),
        s(10, S, 40000, 5000, "SA", b"", None),
        s(20, C, 40000, 1001, "A", b"", None),
        s(100, C, 40000, 1001, "PA", b"GET ", None),
        s(200, C, 40000, 1005, "PA", b"/first", None),
        s(300, C, 40000, 1003, "PA", b"T /zzzzz", None),
    ];
    // expected: pcapkit.tcp.Reconstructor's answer
    check(&segs, &[
        "#1 40000>8080 v4 first=1@0 last=300 partial=False up[pk=5 syn=0/1/0 n=1 fin=- rst=- rt=1 b=10 miss=0 last=300 late=[] ign=0 s=[0+4:4@4=47455420;4+6:6@5=2f6669727374]] down[pk=1 syn=10/2/0 n=1 fin=- rst=- rt=0 b=0 miss=0 last=10 late=[] ign=0 s=[]]",
    ]);
}

#[test]
fn reordered_in_the_file() {
    let segs = [
        s(0, C, 40000, 1000, "S", b"", None),
        s(10, S, 40000, 5000, "SA", b"", None),
        s(20, C, 40000, 1001, "A", b"", None),
        s(100, C, 40000, 1006, "PA", b"world", None),
        s(200, C, 40000, 1001, "PA", b"hello", None),
        s(300, C, 40000, 1011, "PA", b"!", None),
    ];
    // expected: pcapkit.tcp.Reconstructor's answer
    check(&segs, &[
        "#1 40000>8080 v4 first=1@0 last=300 partial=False up[pk=5 syn=0/1/0 n=1 fin=- rst=- rt=0 b=11 miss=0 last=300 late=[] ign=0 s=[0+5:5@5=68656c6c6f;5+5:5@4=776f726c64;10+1:1@6=21]] down[pk=1 syn=10/2/0 n=1 fin=- rst=- rt=0 b=0 miss=0 last=10 late=[] ign=0 s=[]]",
    ]);
}

#[test]
fn timestamps_back_arrival_decides_overlap() {
    let segs = [
        s(0, C, 40000, 1000, "S", b"", None),
        s(10, S, 40000, 5000, "SA", b"", None),
        s(20, C, 40000, 1001, "A", b"", None),
        s(300, C, 40000, 1001, "PA", b"AAAAAAAA", None),
        s(200, C, 40000, 1005, "PA", b"bbbbbbbb", None),
    ];
    // expected: pcapkit.tcp.Reconstructor's answer
    check(&segs, &[
        "#1 40000>8080 v4 first=1@0 last=300 partial=False up[pk=4 syn=0/1/0 n=1 fin=- rst=- rt=0 b=12 miss=0 last=300 late=[] ign=0 s=[0+4:4@4=41414141;4+8:8@5=6262626262626262]] down[pk=1 syn=10/2/0 n=1 fin=- rst=- rt=0 b=0 miss=0 last=10 late=[] ign=0 s=[]]",
    ]);
}

#[test]
fn hole_counts_missing() {
    let segs = [
        s(0, C, 40000, 1000, "S", b"", None),
        s(10, S, 40000, 5000, "SA", b"", None),
        s(20, C, 40000, 1001, "A", b"", None),
        s(100, C, 40000, 1001, "PA", b"abc", None),
        s(200, C, 40000, 1010, "PA", b"xyz", None),
    ];
    // expected: pcapkit.tcp.Reconstructor's answer
    check(&segs, &[
        "#1 40000>8080 v4 first=1@0 last=200 partial=False up[pk=4 syn=0/1/0 n=1 fin=- rst=- rt=0 b=6 miss=6 last=200 late=[] ign=0 s=[0+3:3@4=616263;9+3:3@5=78797a]] down[pk=1 syn=10/2/0 n=1 fin=- rst=- rt=0 b=0 miss=0 last=10 late=[] ign=0 s=[]]",
    ]);
}

#[test]
fn wrap_across_2_32() {
    let segs = [
        s(0, C, 40000, 4294967286, "S", b"", None),
        s(10, S, 40000, 4294967293, "SA", b"", None),
        s(20, C, 40000, 4294967287, "A", b"", None),
        s(100, C, 40000, 4294967287, "PA", b"0123456789abcdef", None),
        s(
            200,
            S,
            40000,
            4294967294,
            "PA",
            b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            None,
        ),
        s(300, C, 40000, 7, "PA", b"more", None),
        s(400, C, 40000, 11, "FA", b"", None),
        s(500, S, 40000, 28, "FA", b"", None),
    ];
    // expected: pcapkit.tcp.Reconstructor's answer
    check(&segs, &[
        "#1 40000>8080 v4 first=1@0 last=500 partial=False up[pk=5 syn=0/1/0 n=1 fin=400/7/20 rst=- rt=0 b=20 miss=0 last=400 late=[] ign=0 s=[0+16:16@4=30313233343536373839616263646566;16+4:4@6=6d6f7265]] down[pk=3 syn=10/2/0 n=1 fin=500/8/30 rst=- rt=0 b=30 miss=0 last=500 late=[] ign=0 s=[0+30:30@5=787878787878787878787878787878787878787878787878787878787878]]",
    ]);
}

#[test]
fn blind_rsts_ignored_near_rst_taken() {
    let segs = [
        s(0, C, 40000, 1000, "S", b"", None),
        s(10, S, 40000, 5000, "SA", b"", None),
        s(20, C, 40000, 1001, "A", b"", None),
        s(100, C, 40000, 1001, "PA", b"GET /a", None),
        s(200, S, 40000, 5001, "PA", b"ok", None),
        s(300, S, 40000, 2675342405, "R", b"", None),
        s(301, S, 40000, 3185950873, "R", b"", None),
        s(302, S, 40000, 4051686260, "R", b"", None),
        s(303, S, 40000, 2787324501, "R", b"", None),
        s(304, S, 40000, 3869338171, "R", b"", None),
        s(400, S, 40000, 5503, "R", b"", None),
    ];
    // expected: pcapkit.tcp.Reconstructor's answer
    check(&segs, &[
        "#1 40000>8080 v4 first=1@0 last=400 partial=False up[pk=3 syn=0/1/0 n=1 fin=- rst=- rt=0 b=6 miss=0 last=100 late=[] ign=0 s=[0+6:6@4=474554202f61]] down[pk=8 syn=10/2/0 n=1 fin=- rst=400/11/502 rt=0 b=2 miss=0 last=400 late=[] ign=5 s=[0+2:2@5=6f6b]]",
    ]);
}

#[test]
fn rst_before_anything_then_data() {
    let segs = [
        s(0, S, 40000, 77, "R", b"", None),
        s(10, S, 40000, 4194381, "R", b"", None),
        s(20, S, 40000, 80, "PA", b"late", None),
    ];
    // expected: pcapkit.tcp.Reconstructor's answer
    check(&segs, &[
        "#1 40000>8080 v4 first=1@0 last=20 partial=True up[pk=0 syn=- n=0 fin=- rst=- rt=0 b=0 miss=0 last=- late=[] ign=0 s=[]] down[pk=3 syn=- n=0 fin=- rst=0/1/0 rt=0 b=4 miss=0 last=20 late=[] ign=1 s=[3+4:4@3=6c617465]]",
    ]);
}

#[test]
fn rsts_then_a_later_syn_start_a_new_connection() {
    let segs = [
        s(0, S, 40000, 2102153, "R", b"", None),
        s(5, S, 40000, 5001, "R", b"", None),
        s(10, C, 40000, 1000, "S", b"", None),
        s(20, S, 40000, 5000, "SA", b"", None),
        s(30, S, 40000, 5001, "PA", b"hi", None),
    ];
    // expected: pcapkit.tcp.Reconstructor's answer
    check(&segs, &[
        "#1 40000>8080 v4 first=1@0 last=5 partial=True up[pk=0 syn=- n=0 fin=- rst=- rt=0 b=0 miss=0 last=- late=[] ign=0 s=[]] down[pk=2 syn=- n=0 fin=- rst=0/1/0 rt=0 b=0 miss=0 last=5 late=[] ign=1 s=[]]",
        "#2 40000>8080 v4 first=3@10 last=30 partial=False up[pk=1 syn=10/3/0 n=1 fin=- rst=- rt=0 b=0 miss=0 last=10 late=[] ign=0 s=[]] down[pk=2 syn=20/4/0 n=1 fin=- rst=- rt=0 b=2 miss=0 last=30 late=[] ign=0 s=[0+2:2@5=6869]]",
    ]);
}

#[test]
fn rsts_before_the_syn_ack_are_placed_against_its_reference() {
    let segs = [
        s(0, C, 40000, 1000, "S", b"", None),
        s(5, S, 40000, 2102153, "R", b"", None),
        s(6, S, 40000, 5001, "R", b"", None),
        s(7, S, 40000, 5004, "RA", b"rst!", None),
        s(20, S, 40000, 5000, "SA", b"", None),
        s(30, S, 40000, 5001, "PA", b"hi", None),
        s(40, C, 40000, 1001, "PA", b"x", None),
        s(50, C, 40000, 2098153, "R", b"", None),
        s(60, C, 40000, 1002, "SPA", b"syn data", None),
    ];
    // expected: pcapkit.tcp.Reconstructor's answer
    check(&segs, &[
        "#1 40000>8080 v4 first=1@0 last=60 partial=False up[pk=4 syn=0/1/0 n=2 fin=- rst=- rt=0 b=9 miss=1 last=60 late=[] ign=1 s=[0+1:1@7=78;2+8:8@9=73796e2064617461]] down[pk=5 syn=20/5/0 n=1 fin=- rst=6/3/0 rt=0 b=6 miss=1 last=30 late=[] ign=1 s=[0+2:2@6=6869;3+4:4@4=72737421]]",
    ]);
}

#[test]
fn tuple_reused_with_new_isn() {
    let segs = [
        s(0, C, 40000, 1000, "S", b"", None),
        s(10, S, 40000, 5000, "SA", b"", None),
        s(20, C, 40000, 1001, "A", b"", None),
        s(100, C, 40000, 1001, "PA", b"GET /0", None),
        s(200, C, 40000, 1007, "FA", b"", None),
        s(300, S, 40000, 5001, "FA", b"", None),
        s(100000000, C, 40000, 7001000, "S", b"", None),
        s(100000010, S, 40000, 5000, "SA", b"", None),
        s(100000020, C, 40000, 7001001, "A", b"", None),
        s(100000100, C, 40000, 7001001, "PA", b"GET /1", None),
        s(100000200, C, 40000, 7001007, "FA", b"", None),
        s(100000300, S, 40000, 5001, "FA", b"", None),
        s(200000000, C, 40000, 14001000, "S", b"", None),
        s(200000010, S, 40000, 5000, "SA", b"", None),
        s(200000020, C, 40000, 14001001, "A", b"", None),
        s(200000100, C, 40000, 14001001, "PA", b"GET /2", None),
        s(200000200, C, 40000, 14001007, "FA", b"", None),
        s(200000300, S, 40000, 5001, "FA", b"", None),
    ];
    // expected: pcapkit.tcp.Reconstructor's answer
    check(&segs, &[
        "#1 40000>8080 v4 first=1@0 last=300 partial=False up[pk=4 syn=0/1/0 n=1 fin=200/5/6 rst=- rt=0 b=6 miss=0 last=200 late=[] ign=0 s=[0+6:6@4=474554202f30]] down[pk=2 syn=10/2/0 n=1 fin=300/6/0 rst=- rt=0 b=0 miss=0 last=300 late=[] ign=0 s=[]]",
        "#2 40000>8080 v4 first=7@100000000 last=100000300 partial=False up[pk=4 syn=100000000/7/0 n=1 fin=100000200/11/6 rst=- rt=0 b=6 miss=0 last=100000200 late=[] ign=0 s=[0+6:6@10=474554202f31]] down[pk=2 syn=100000010/8/0 n=1 fin=100000300/12/0 rst=- rt=0 b=0 miss=0 last=100000300 late=[] ign=0 s=[]]",
        "#3 40000>8080 v4 first=13@200000000 last=200000300 partial=False up[pk=4 syn=200000000/13/0 n=1 fin=200000200/17/6 rst=- rt=0 b=6 miss=0 last=200000200 late=[] ign=0 s=[0+6:6@16=474554202f32]] down[pk=2 syn=200000010/14/0 n=1 fin=200000300/18/0 rst=- rt=0 b=0 miss=0 last=200000300 late=[] ign=0 s=[]]",
    ]);
}

#[test]
fn syn_retransmissions_one_attempt() {
    let segs = [
        s(0, C, 40000, 1000, "S", b"", None),
        s(1000000000, C, 40000, 1000, "S", b"", None),
        s(3000000000, C, 40000, 1000, "S", b"", None),
    ];
    // expected: pcapkit.tcp.Reconstructor's answer
    check(&segs, &[
        "#1 40000>8080 v4 first=1@0 last=3000000000 partial=False up[pk=3 syn=0/1/0 n=3 fin=- rst=- rt=0 b=0 miss=0 last=3000000000 late=[] ign=0 s=[]] down[pk=0 syn=- n=0 fin=- rst=- rt=0 b=0 miss=0 last=- late=[] ign=0 s=[]]",
    ]);
}

#[test]
fn syn_ack_written_before_its_syn() {
    let segs = [
        s(10, S, 40000, 5000, "SA", b"", None),
        s(0, C, 40000, 1000, "S", b"", None),
        s(20, C, 40000, 1001, "A", b"", None),
        s(30, C, 40000, 1001, "PA", b"GET /", None),
    ];
    // expected: pcapkit.tcp.Reconstructor's answer
    check(&segs, &[
        "#1 40000>8080 v4 first=1@0 last=30 partial=False up[pk=3 syn=0/2/0 n=1 fin=- rst=- rt=0 b=5 miss=0 last=30 late=[] ign=0 s=[0+5:5@4=474554202f]] down[pk=1 syn=10/1/0 n=1 fin=- rst=- rt=0 b=0 miss=0 last=10 late=[] ign=0 s=[]]",
    ]);
}

#[test]
fn mid_stream_start_then_new_syn_opens_next() {
    let segs = [
        s(0, C, 40000, 90000, "PA", b"GET /x", None),
        s(10, S, 40000, 123, "PA", b"HTTP", None),
        s(20, C, 40000, 90006, "FA", b"", None),
        s(30, S, 40000, 127, "FA", b"", None),
        s(40, C, 40000, 555, "S", b"", None),
        s(50, S, 40000, 9999, "SA", b"", None),
        s(60, C, 40000, 556, "PA", b"next", None),
    ];
    // expected: pcapkit.tcp.Reconstructor's answer
    check(&segs, &[
        "#1 40000>8080 v4 first=1@0 last=30 partial=True up[pk=2 syn=- n=0 fin=20/3/6 rst=- rt=0 b=6 miss=0 last=20 late=[] ign=0 s=[0+6:6@1=474554202f78]] down[pk=2 syn=- n=0 fin=30/4/4 rst=- rt=0 b=4 miss=0 last=30 late=[] ign=0 s=[0+4:4@2=48545450]]",
        "#2 40000>8080 v4 first=5@40 last=60 partial=False up[pk=2 syn=40/5/0 n=1 fin=- rst=- rt=0 b=4 miss=0 last=60 late=[] ign=0 s=[0+4:4@7=6e657874]] down[pk=1 syn=50/6/0 n=1 fin=- rst=- rt=0 b=0 miss=0 last=50 late=[] ign=0 s=[]]",
    ]);
}

#[test]
fn keepalive_probes() {
    let segs = [
        s(0, C, 40000, 1000, "S", b"", None),
        s(10, S, 40000, 5000, "SA", b"", None),
        s(20, C, 40000, 1001, "A", b"", None),
        s(10000000, C, 40000, 1000, "A", b"\x00", None),
        s(20000000, C, 40000, 1001, "PA", b"GET /a", None),
        s(30000000, S, 40000, 5001, "PA", b"ok", None),
        s(40000000, C, 40000, 1006, "A", b"\x00", None),
        s(41000000, C, 40000, 1006, "A", b"\x00", None),
        s(42000000, C, 40000, 1006, "A", b"\x00", None),
    ];
    // expected: pcapkit.tcp.Reconstructor's answer
    check(&segs, &[
        "#1 40000>8080 v4 first=1@0 last=42000000 partial=False up[pk=7 syn=0/1/0 n=1 fin=- rst=- rt=3 b=7 miss=0 last=42000000 late=[] ign=0 s=[-1+1:1@4=00;0+6:6@5=474554202f61]] down[pk=2 syn=10/2/0 n=1 fin=- rst=- rt=0 b=2 miss=0 last=30000000 late=[] ign=0 s=[0+2:2@6=6f6b]]",
    ]);
}

#[test]
fn data_after_own_fin_is_late() {
    let segs = [
        s(0, C, 40000, 1000, "S", b"", None),
        s(10, S, 40000, 5000, "SA", b"", None),
        s(20, C, 40000, 1001, "A", b"", None),
        s(100, C, 40000, 1001, "PA", b"GET /a", None),
        s(200, C, 40000, 1007, "FA", b"", None),
        s(300, C, 40000, 1008, "PA", b"GET /late", None),
        s(400, C, 40000, 1009, "PA", b"x", Some(1)),
    ];
    // expected: pcapkit.tcp.Reconstructor's answer
    check(&segs, &[
        "#1 40000>8080 v4 first=1@0 last=400 partial=False up[pk=6 syn=0/1/0 n=1 fin=200/5/6 rst=- rt=1 b=15 miss=1 last=400 late=[300/6/7,400/7/8] ign=0 s=[0+6:6@4=474554202f61;7+9:9@6=474554202f6c617465]] down[pk=1 syn=10/2/0 n=1 fin=- rst=- rt=0 b=0 miss=0 last=10 late=[] ign=0 s=[]]",
    ]);
}

#[test]
fn fin_with_data_and_late_data_before_it_in_the_file() {
    let segs = [
        s(0, C, 40000, 1000, "S", b"", None),
        s(10, S, 40000, 5000, "SA", b"", None),
        s(20, C, 40000, 1001, "A", b"", None),
        s(100, C, 40000, 1020, "PA", b"beyond", None),
        s(200, C, 40000, 1001, "FPA", b"tail", None),
    ];
    // expected: pcapkit.tcp.Reconstructor's answer
    check(&segs, &[
        "#1 40000>8080 v4 first=1@0 last=200 partial=False up[pk=4 syn=0/1/0 n=1 fin=200/5/4 rst=- rt=0 b=10 miss=15 last=200 late=[100/4/19] ign=0 s=[0+4:4@5=7461696c;19+6:6@4=6265796f6e64]] down[pk=1 syn=10/2/0 n=1 fin=- rst=- rt=0 b=0 miss=0 last=10 late=[] ign=0 s=[]]",
    ]);
}

#[test]
fn snaplen_cut() {
    let segs = [
        s(0, C, 40000, 1000, "S", b"", None),
        s(10, S, 40000, 5000, "SA", b"", None),
        s(20, C, 40000, 1001, "A", b"", None),
        s(100, C, 40000, 1001, "PA", b"GET", Some(10)),
        s(200, C, 40000, 1011, "PA", b"ab", None),
        s(300, C, 40000, 1005, "PA", b"overlapp", Some(10)),
    ];
    // expected: pcapkit.tcp.Reconstructor's answer
    check(&segs, &[
        "#1 40000>8080 v4 first=1@0 last=300 partial=False up[pk=5 syn=0/1/0 n=1 fin=- rst=- rt=0 b=14 miss=0 last=300 late=[] ign=0 s=[0+10:3@4=474554;10+2:2@5=6162;12+2:0@6=]] down[pk=1 syn=10/2/0 n=1 fin=- rst=- rt=0 b=0 miss=0 last=10 late=[] ign=0 s=[]]",
    ]);
}

#[test]
fn wild_jumps_of_2_31() {
    let segs = [
        s(0, C, 40000, 1000, "S", b"", None),
        s(10, S, 40000, 5000, "SA", b"", None),
        s(20, C, 40000, 1001, "A", b"", None),
        s(100, C, 40000, 2147484649, "PA", b"j0", None),
        s(101, C, 40000, 1000, "PA", b"j1", None),
        s(102, C, 40000, 2147484648, "PA", b"j2", None),
        s(103, C, 40000, 999, "PA", b"j3", None),
        s(104, C, 40000, 2147484647, "PA", b"j4", None),
        s(105, C, 40000, 998, "PA", b"j5", None),
        s(200, C, 40000, 2098151, "R", b"", None),
        s(201, C, 40000, 1001, "R", b"", None),
    ];
    // expected: pcapkit.tcp.Reconstructor's answer
    check(&segs, &[
        "#1 40000>8080 v4 first=1@0 last=201 partial=False up[pk=10 syn=0/1/0 n=1 fin=- rst=201/11/0 rt=0 b=8 miss=2147483643 last=201 late=[] ign=1 s=[-2147483650+1:1@8=6a;-2147483649+1:1@6=6a;-2147483648+2:2@4=6a30;-3+1:1@9=6a;-2+1:1@7=6a;-1+2:2@5=6a31]] down[pk=1 syn=10/2/0 n=1 fin=- rst=- rt=0 b=0 miss=0 last=10 late=[] ign=0 s=[]]",
    ]);
}

#[test]
fn zero_length_everything() {
    let segs = [
        s(0, C, 40000, 0, "", b"", None),
        s(0, S, 40000, 0, "", b"", None),
        s(0, C, 40000, 0, "P", b"", Some(0)),
        s(0, C, 40000, 0, "A", b"", Some(5)),
        s(0, S, 40000, 0, "FRSA", b"", None),
    ];
    // expected: pcapkit.tcp.Reconstructor's answer
    check(&segs, &[
        "#1 40000>8080 v4 first=1@0 last=0 partial=True up[pk=3 syn=- n=0 fin=- rst=- rt=0 b=5 miss=0 last=0 late=[] ign=0 s=[0+5:0@4=]] down[pk=2 syn=0/5/0 n=1 fin=0/5/0 rst=0/5/0 rt=0 b=0 miss=0 last=0 late=[] ign=0 s=[]]",
    ]);
}

#[test]
fn rst_syn_fin_flood_one_tuple() {
    let segs = [
        s(0, S, 40000, 1147333628, "RF", b"", None),
        s(10, C, 40000, 2597161677, "S", b"", None),
        s(20, C, 40000, 3127561836, "A", b"", None),
        s(30, S, 40000, 1814995991, "S", b"", None),
        s(40, C, 40000, 220477974, "S", b"", None),
        s(50, C, 40000, 1250600339, "S", b"", None),
        s(60, S, 40000, 3820700083, "FA", b"", None),
        s(70, C, 40000, 1703138836, "SA", b"", None),
        s(80, C, 40000, 3807057864, "A", b"", None),
        s(90, S, 40000, 3632711120, "PA", b"", None),
        s(100, C, 40000, 1016761845, "S", b"", None),
        s(110, C, 40000, 2485498850, "RA", b"", None),
        s(120, S, 40000, 358645241, "FA", b"", None),
        s(130, C, 40000, 2460922380, "R", b"", None),
        s(140, S, 40000, 295580474, "FA", b"", None),
        s(150, C, 40000, 624304388, "FA", b"", None),
        s(160, C, 40000, 3659259334, "R", b"", None),
        s(170, C, 40000, 3029963128, "SA", b"", None),
        s(180, C, 40000, 1491204725, "FA", b"", None),
        s(190, S, 40000, 902074618, "A", b"", None),
        s(200, C, 40000, 2610252516, "FA", b"", None),
        s(210, S, 40000, 479780598, "R", b"", None),
        s(220, S, 40000, 1158083467, "FA", b"", None),
        s(230, S, 40000, 2703725597, "RA", b"", None),
        s(240, C, 40000, 109053898, "RA", b"", None),
        s(250, S, 40000, 3168039858, "PA", b"", None),
        s(260, C, 40000, 3267349892, "PA", b"zzz", None),
        s(270, S, 40000, 1246818013, "A", b"", None),
        s(280, C, 40000, 741982018, "SA", b"", None),
        s(290, C, 40000, 2605145270, "S", b"", None),
        s(300, C, 40000, 261609510, "R", b"", None),
        s(310, S, 40000, 3430330647, "FA", b"", None),
        s(320, C, 40000, 1192827053, "SA", b"", None),
        s(330, S, 40000, 2989246463, "RA", b"", None),
        s(340, S, 40000, 1938750157, "RA", b"", None),
        s(350, C, 40000, 2613403319, "PA", b"zzz", None),
        s(360, C, 40000, 3965067536, "A", b"", None),
        s(370, C, 40000, 361946754, "SA", b"", None),
        s(380, C, 40000, 871423518, "FA", b"", None),
        s(390, S, 40000, 2342931395, "RF", b"", None),
    ];
    // expected: pcapkit.tcp.Reconstructor's answer, but for the SYNs at 40 and 50: other ISNs
    // on a tuple whose connection (#2) is established and not closed, they are attempts parked
    // beside it, and what follows stays on #2 (tests/reference.py's rule)
    check(&segs, &[
        "#1 40000>8080 v4 first=1@0 last=0 partial=True up[pk=0 syn=- n=0 fin=- rst=- rt=0 b=0 miss=0 last=- late=[] ign=0 s=[]] down[pk=1 syn=- n=0 fin=0/1/0 rst=0/1/0 rt=0 b=0 miss=0 last=0 late=[] ign=0 s=[]]",
        "#2 40000>8080 v4 first=2@10 last=90 partial=False up[pk=4 syn=10/2/0 n=2 fin=- rst=- rt=0 b=0 miss=0 last=80 late=[] ign=0 s=[]] down[pk=3 syn=30/4/0 n=1 fin=60/7/2005704091 rst=- rt=0 b=0 miss=0 last=90 late=[] ign=0 s=[]]",
        "#3 40000>8080 v4 first=5@40 last=40 partial=False up[pk=1 syn=40/5/0 n=1 fin=- rst=- rt=0 b=0 miss=0 last=40 late=[] ign=0 s=[]] down[pk=0 syn=- n=0 fin=- rst=- rt=0 b=0 miss=0 last=- late=[] ign=0 s=[]]",
        "#4 40000>8080 v4 first=6@50 last=50 partial=False up[pk=1 syn=50/6/0 n=1 fin=- rst=- rt=0 b=0 miss=0 last=50 late=[] ign=0 s=[]] down[pk=0 syn=- n=0 fin=- rst=- rt=0 b=0 miss=0 last=- late=[] ign=0 s=[]]",
        "#5 40000>8080 v4 first=11@100 last=280 partial=False up[pk=11 syn=100/11/0 n=3 fin=150/16/-392457458 rst=- rt=0 b=3 miss=0 last=280 late=[] ign=4 s=[-2044379250+3:3@27=7a7a7a]] down[pk=8 syn=- n=0 fin=120/13/0 rst=- rt=0 b=0 miss=0 last=270 late=[] ign=2 s=[]]",
        "#6 40000>8080 v4 first=30@290 last=390 partial=False up[pk=7 syn=290/30/0 n=3 fin=380/39/2561245543 rst=- rt=0 b=3 miss=0 last=380 late=[] ign=1 s=[8258048+3:3@36=7a7a7a]] down[pk=4 syn=- n=0 fin=310/32/0 rst=- rt=0 b=0 miss=0 last=390 late=[] ign=3 s=[]]",
    ]);
}

#[test]
fn linger_late_packet_opens_a_new_connection() {
    let segs = [
        s(0, C, 40000, 1000, "S", b"", None),
        s(10, S, 40000, 5000, "SA", b"", None),
        s(20, C, 40000, 1001, "A", b"", None),
        s(100, C, 40000, 1001, "PA", b"GET /a", None),
        s(200, C, 40000, 1007, "FA", b"", None),
        s(300, S, 40000, 5001, "FA", b"", None),
        s(11000000000, C, 41000, 1, "A", b"", None),
        s(11000000001, C, 40000, 1008, "A", b"", None),
    ];
    // expected: pcapkit.tcp.Reconstructor's answer (Python fed one packet per grouping)
    check(&segs, &[
        "#1 40000>8080 v4 first=1@0 last=300 partial=False up[pk=4 syn=0/1/0 n=1 fin=200/5/6 rst=- rt=0 b=6 miss=0 last=200 late=[] ign=0 s=[0+6:6@4=474554202f61]] down[pk=2 syn=10/2/0 n=1 fin=300/6/0 rst=- rt=0 b=0 miss=0 last=300 late=[] ign=0 s=[]]",
        "#2 41000>8080 v4 first=7@11000000000 last=11000000000 partial=True up[pk=1 syn=- n=0 fin=- rst=- rt=0 b=0 miss=0 last=11000000000 late=[] ign=0 s=[]] down[pk=0 syn=- n=0 fin=- rst=- rt=0 b=0 miss=0 last=- late=[] ign=0 s=[]]",
        "#3 40000>8080 v4 first=8@11000000001 last=11000000001 partial=True up[pk=1 syn=- n=0 fin=- rst=- rt=0 b=0 miss=0 last=11000000001 late=[] ign=0 s=[]] down[pk=0 syn=- n=0 fin=- rst=- rt=0 b=0 miss=0 last=- late=[] ign=0 s=[]]",
    ]);
}

#[test]
fn linger_within_the_time_keeps_the_connection() {
    let segs = [
        s(0, C, 40000, 1000, "S", b"", None),
        s(10, S, 40000, 5000, "SA", b"", None),
        s(20, C, 40000, 1001, "A", b"", None),
        s(100, C, 40000, 1001, "PA", b"GET /a", None),
        s(200, C, 40000, 1007, "FA", b"", None),
        s(300, S, 40000, 5001, "FA", b"", None),
        s(9000000000, C, 41000, 1, "A", b"", None),
        s(9000000001, C, 40000, 1008, "A", b"", None),
    ];
    // expected: pcapkit.tcp.Reconstructor's answer (Python fed one packet per grouping)
    check(&segs, &[
        "#1 40000>8080 v4 first=1@0 last=9000000001 partial=False up[pk=5 syn=0/1/0 n=1 fin=200/5/6 rst=- rt=0 b=6 miss=0 last=9000000001 late=[] ign=0 s=[0+6:6@4=474554202f61]] down[pk=2 syn=10/2/0 n=1 fin=300/6/0 rst=- rt=0 b=0 miss=0 last=300 late=[] ign=0 s=[]]",
        "#2 41000>8080 v4 first=7@9000000000 last=9000000000 partial=True up[pk=1 syn=- n=0 fin=- rst=- rt=0 b=0 miss=0 last=9000000000 late=[] ign=0 s=[]] down[pk=0 syn=- n=0 fin=- rst=- rt=0 b=0 miss=0 last=- late=[] ign=0 s=[]]",
    ]);
}

#[test]
fn idle_silence_finishes_an_open_connection() {
    let segs = [
        s(0, C, 40000, 1000, "S", b"", None),
        s(10, S, 40000, 5000, "SA", b"", None),
        s(20, C, 40000, 1001, "A", b"", None),
        s(100, C, 40000, 1001, "PA", b"GET /a", None),
        s(301000000000, C, 41000, 1, "A", b"", None),
        s(301000000001, C, 40000, 1007, "PA", b"GET /b", None),
    ];
    // expected: pcapkit.tcp.Reconstructor's answer (Python fed one packet per grouping)
    check(&segs, &[
        "#1 40000>8080 v4 first=1@0 last=100 partial=False up[pk=3 syn=0/1/0 n=1 fin=- rst=- rt=0 b=6 miss=0 last=100 late=[] ign=0 s=[0+6:6@4=474554202f61]] down[pk=1 syn=10/2/0 n=1 fin=- rst=- rt=0 b=0 miss=0 last=10 late=[] ign=0 s=[]]",
        "#2 41000>8080 v4 first=5@301000000000 last=301000000000 partial=True up[pk=1 syn=- n=0 fin=- rst=- rt=0 b=0 miss=0 last=301000000000 late=[] ign=0 s=[]] down[pk=0 syn=- n=0 fin=- rst=- rt=0 b=0 miss=0 last=- late=[] ign=0 s=[]]",
        "#3 40000>8080 v4 first=6@301000000001 last=301000000001 partial=True up[pk=1 syn=- n=0 fin=- rst=- rt=0 b=6 miss=0 last=301000000001 late=[] ign=0 s=[0+6:6@6=474554202f62]] down[pk=0 syn=- n=0 fin=- rst=- rt=0 b=0 miss=0 last=- late=[] ign=0 s=[]]",
    ]);
}

#[test]
fn rst_makes_it_over() {
    let segs = [
        s(0, C, 40000, 1000, "S", b"", None),
        s(10, S, 40000, 5000, "SA", b"", None),
        s(20, C, 40000, 1001, "A", b"", None),
        s(100, C, 40000, 1001, "PA", b"GET /a", None),
        s(200, S, 40000, 33559433, "R", b"", None),
        s(11000000000, C, 41000, 1, "A", b"", None),
        s(11000000001, C, 40000, 1007, "PA", b"GET /b", None),
    ];
    // expected: pcapkit.tcp.Reconstructor's answer (Python fed one packet per grouping)
    check(&segs, &[
        "#1 40000>8080 v4 first=1@0 last=200 partial=False up[pk=3 syn=0/1/0 n=1 fin=- rst=- rt=0 b=6 miss=0 last=100 late=[] ign=0 s=[0+6:6@4=474554202f61]] down[pk=2 syn=10/2/0 n=1 fin=- rst=- rt=0 b=0 miss=0 last=200 late=[] ign=1 s=[]]",
        "#2 41000>8080 v4 first=6@11000000000 last=11000000000 partial=True up[pk=1 syn=- n=0 fin=- rst=- rt=0 b=0 miss=0 last=11000000000 late=[] ign=0 s=[]] down[pk=0 syn=- n=0 fin=- rst=- rt=0 b=0 miss=0 last=- late=[] ign=0 s=[]]",
        "#3 40000>8080 v4 first=7@11000000001 last=11000000001 partial=True up[pk=1 syn=- n=0 fin=- rst=- rt=0 b=6 miss=0 last=11000000001 late=[] ign=0 s=[0+6:6@7=474554202f62]] down[pk=0 syn=- n=0 fin=- rst=- rt=0 b=0 miss=0 last=- late=[] ign=0 s=[]]",
    ]);
}

const REQ: &[u8] = b"GET / HTTP/1.1\r\n\r\n";

#[test]
fn handshake_ack_is_the_clients_first_segment_after_the_syn_ack() {
    // nginx's host across a link: the SYN-ACK a round trip after the SYN, nginx's ACK at once;
    // a retransmitted SYN before the SYN-ACK is not it, and neither is anything later
    let c = reassemble(&[
        s(0, C, 40000, 100, "S", b"", None),
        s(1_000_000, C, 40000, 100, "S", b"", None),
        s(40_000_000, S, 40000, 500, "SA", b"", None),
        s(40_030_000, C, 40000, 101, "A", b"", None),
        s(40_050_000, C, 40000, 101, "PA", REQ, None),
    ]);
    assert_eq!(c[0].handshake_ack_ns, Some(T0 + 40_030_000));
    // the upstream's host: nginx's request carries the first segment after the SYN-ACK
    let c = reassemble(&[
        s(0, C, 40001, 100, "S", b"", None),
        s(30_000, S, 40001, 500, "SA", b"", None),
        s(40_000_000, C, 40001, 101, "PA", REQ, None),
    ]);
    assert_eq!(c[0].handshake_ack_ns, Some(T0 + 40_000_000));
    // no SYN-ACK seen: no handshake to time
    let c = reassemble(&[
        s(0, C, 40002, 100, "S", b"", None),
        s(10, C, 40002, 101, "A", b"", None),
    ]);
    assert_eq!(c[0].handshake_ack_ns, None);
}

#[test]
fn following_a_live_capture_connections_leave_as_soon_as_they_are_over() {
    let ms = 1_000_000;
    let mut live = Reassembler::following(&[8080]);
    let mut done = Vec::new();
    let segs = [
        // an attempt nobody answers
        s(0, C, 40001, 100, "S", b"", None),
        s(1000 * ms, C, 40001, 100, "S", b"", None),
        s(1001 * ms, C, 40000, 1, "S", b"", None),
        s(1002 * ms, S, 40000, 9, "SA", b"", None),
        s(
            1003 * ms,
            C,
            40000,
            2,
            "PA",
            b"GET / HTTP/1.1\r\n\r\n",
            None,
        ),
        s(1004 * ms, S, 40000, 10, "FA", b"", None),
        s(1005 * ms, C, 40000, 20, "RA", b"", None),
    ];
    for (seg, pay) in &segs {
        live.push(seg, pay, &mut done);
    }
    live.advance(T0 + 1400 * ms, &mut done);
    assert!(
        done.is_empty(),
        "over, but not yet quiet for the linger time"
    );
    live.advance(T0 + 1600 * ms, &mut done);
    assert_eq!(
        done.iter().map(|c| c.client_port).collect::<Vec<_>>(),
        [40000]
    );
    // the attempt has lasted 1 s: a third SYN would be due by 3 s after the first, 4 s with some slack
    live.advance(T0 + 4000 * ms, &mut done);
    assert_eq!(done.len(), 1, "the attempt may still be retransmitted");
    live.advance(T0 + 4100 * ms, &mut done);
    assert_eq!(done.len(), 2, "the attempt was given up");
    assert_eq!(done[1].to_server.syn_count, 2);
    // a whole capture keeps both until it ends, whatever the time
    let mut whole = Reassembler::new(&[8080]);
    let mut kept = Vec::new();
    for (seg, pay) in &segs {
        whole.push(seg, pay, &mut kept);
    }
    whole.advance(T0 + 4100 * ms, &mut kept);
    assert!(kept.is_empty());
}
