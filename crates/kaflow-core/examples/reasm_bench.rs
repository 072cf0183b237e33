//! Feeds a capture's segments to the Reassembler and prints a checksum over every output field,
//! and the CPU time of `push` + `finish` alone (segments and payloads are read into memory first).
//!
//! ```sh
//! cargo run --release -p kaflow-core --example reasm_bench -- FILE [--ports 8080,8081] [--rounds N] [--no-payload]
//! ```
//! Under callgrind, `--toggle-collect='*reasm_run*'` counts only the reassembly.

use kaflow_core::capture::Reader;
use kaflow_core::flow::{Flow, Mark, TcpConnection, TcpStats};
use kaflow_core::reassembly::Reassembler;
use kaflow_core::segment::Segment;

fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

struct Sum(u64);

impl Sum {
    fn u(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x100_0000_01b3);
    }
    fn i(&mut self, x: i64) {
        self.u(x as u64)
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u(b.len() as u64);
        for c in b.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.u(u64::from_le_bytes(w));
        }
    }
    fn mark(&mut self, m: &Option<Mark>) {
        match m {
            None => self.u(0xdead),
            Some(m) => {
                self.u(1);
                self.i(m.ts_ns);
                self.u(m.frame);
                self.i(m.offset);
            }
        }
    }
    fn flow(&mut self, f: &Flow) {
        let s = &f.stream;
        self.u(s.starts.len() as u64);
        for x in &s.starts {
            self.i(*x);
        }
        for x in &s.lengths {
            self.u(u64::from(*x));
        }
        for x in &s.ts {
            self.i(*x);
        }
        for x in &s.frames {
            self.u(*x);
        }
        for x in &s.captured {
            self.u(u64::from(*x));
        }
        for x in &s.data_starts {
            self.u(*x);
        }
        self.bytes(&s.data);
        self.mark(&f.syn);
        self.u(u64::from(f.syn_count));
        self.mark(&f.fin);
        self.mark(&f.rst);
        self.u(f.packets);
        self.u(f.retransmissions);
        self.u(f.bytes);
        self.u(f.missing);
        self.i(f.last_ts_ns.unwrap_or(i64::MIN + 7));
        self.u(f.last_ts_ns.is_some() as u64);
        self.u(f.late_data.len() as u64);
        for m in &f.late_data {
            self.mark(&Some(*m));
        }
        self.u(f.ignored_rsts);
    }
    fn conn(&mut self, c: &TcpConnection) {
        self.u(c.id);
        self.u(u64::from(c.ip_version));
        self.bytes(&c.client_ip);
        self.bytes(&c.server_ip);
        self.u(u64::from(c.client_port));
        self.u(u64::from(c.server_port));
        self.i(c.first_ts_ns);
        self.u(c.first_frame);
        self.i(c.last_ts_ns);
        self.u(c.partial as u64);
        self.flow(&c.to_server);
        self.flow(&c.to_client);
    }
    fn stats(&mut self, s: &TcpStats) {
        self.u(s.upstream_segments);
        self.u(s.other_ports);
        for (k, v) in &s.other_port_counts {
            self.u(u64::from(*k));
            self.u(*v);
        }
    }
}

#[inline(never)]
fn reasm_run(
    ports: &[u16],
    segs: &[(Segment, usize)],
    data: &[u8],
    no_payload: bool,
    done: &mut Vec<TcpConnection>,
) -> TcpStats {
    let mut r = Reassembler::new(ports);
    for (seg, at) in segs {
        let pay = match no_payload {
            true => &[],
            false => data
                .get(*at..*at + seg.captured_len as usize)
                .unwrap_or(&[]),
        };
        r.push(seg, pay, done);
    }
    r.finish(done)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args.first().expect("FILE");
    let ports: Vec<u16> = args
        .iter()
        .position(|a| a == "--ports")
        .and_then(|i| args.get(i + 1))
        .map_or(vec![8080], |v| {
            v.split(',').map(|p| p.parse().expect("port")).collect()
        });
    let rounds: usize = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .map_or(1, |v| v.parse().expect("rounds"));
    // the table and reassembly alone: no payload bytes handed over (nor copied)
    let no_payload = args.iter().any(|a| a == "--no-payload");
    let mut reader = Reader::open(path.as_ref()).expect("open");
    let mut segs = Vec::new();
    let mut data = Vec::new();
    loop {
        match reader.next_window() {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                eprintln!("reader error {:?}: {}", e.kind, e.message);
                break;
            }
        }
        for s in reader.segments() {
            segs.push((*s, data.len()));
            data.extend_from_slice(reader.payload(s));
        }
    }
    let mut best = u64::MAX;
    let mut sum = Sum(0xcbf2_9ce4_8422_2325);
    let mut nconns = 0;
    for round in 0..rounds {
        let mut done = Vec::new();
        let c0 = cpu_ns();
        let stats = reasm_run(&ports, &segs, &data, no_payload, &mut done);
        let t = cpu_ns() - c0;
        best = best.min(t);
        if round == 0 {
            for c in &done {
                sum.conn(c);
            }
            sum.stats(&stats);
            nconns = done.len();
        }
    }
    println!(
        "{path} ports={ports:?} segments={} connections={nconns} checksum={:016x}",
        segs.len(),
        sum.0
    );
    eprintln!(
        "cpu best of {rounds}: {:.1} ns/segment",
        best as f64 / segs.len().max(1) as f64
    );
}
