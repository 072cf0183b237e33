//! Labels every connection of a capture and prints counts and checksums, to check that a change
//! to labelling changes no output, and to count its instructions under callgrind.
//!
//! ```sh
//! cargo run --release -p kaflow-core --example label_bench -- FILE [--port N]
//! valgrind --tool=callgrind --toggle-collect='kaflow_core::label::label' \
//!     target/release/examples/label_bench FILE
//! ```
//! `input` hashes every field of every reconstructed connection (what labelling reads), so a
//! changed `output` with an unchanged `input` is labelling's doing, not the reassembler's.
//! `output` hashes the `Debug` text of every `Labelled`, which shows every field.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::Path;

use kaflow_core::capture::Reader;
use kaflow_core::flow::{Flow, Mark, TcpConnection};
use kaflow_core::label::{label, EventType, Labelled};
use kaflow_core::reassembly::Reassembler;

fn hash_mark(h: &mut DefaultHasher, m: &Option<Mark>) {
    m.map(|m| (m.ts_ns, m.frame, m.offset)).hash(h);
}

fn hash_flow(h: &mut DefaultHasher, f: &Flow) {
    let s = &f.stream;
    (&s.starts, &s.lengths, &s.ts, &s.frames).hash(h);
    (&s.captured, &s.data_starts, &s.data).hash(h);
    hash_mark(h, &f.syn);
    hash_mark(h, &f.fin);
    hash_mark(h, &f.rst);
    for m in &f.late_data {
        hash_mark(h, &Some(*m));
    }
    (
        f.syn_count,
        f.packets,
        f.retransmissions,
        f.bytes,
        f.missing,
    )
        .hash(h);
    (f.last_ts_ns, f.ignored_rsts).hash(h);
}

fn hash_input(h: &mut DefaultHasher, c: &TcpConnection) {
    (
        c.id,
        c.ip_version,
        c.client_ip,
        c.server_ip,
        c.client_port,
        c.server_port,
    )
        .hash(h);
    (c.first_ts_ns, c.first_frame, c.last_ts_ns, c.partial).hash(h);
    hash_flow(h, &c.to_server);
    hash_flow(h, &c.to_client);
}

#[derive(Default)]
struct Totals {
    connections: u64,
    events: u64,
    messages: u64,
    requests: u64,
    anomalies: u64,
    input: DefaultHasher,
    output: DefaultHasher,
    text: String,
}

impl Totals {
    fn take(&mut self, c: &TcpConnection, check: bool) {
        let l: Labelled = label(c);
        self.connections += 1;
        self.events += l.events.len() as u64;
        self.messages += l
            .events
            .iter()
            .filter(|e| matches!(e.kind, EventType::Request | EventType::Response))
            .count() as u64;
        self.requests += l.requests.len() as u64;
        self.anomalies += l.anomalies.len() as u64;
        if check {
            hash_input(&mut self.input, c);
            self.text.clear();
            use std::fmt::Write;
            let _ = write!(self.text, "{l:?}");
            self.text.hash(&mut self.output);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: label_bench FILE [--port N] [--no-check]");
        std::process::exit(2);
    };
    let port = args
        .iter()
        .position(|a| a == "--port")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(8080u16);
    // without the checksums, callgrind's total is mostly reading, reassembly and labelling
    let check = !args.iter().any(|a| a == "--no-check");
    let mut reader = match Reader::open(Path::new(path)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e:?}");
            std::process::exit(1);
        }
    };
    let mut reassembler = Reassembler::new(&[port]);
    let mut done = Vec::new();
    let mut t = Totals::default();
    loop {
        match reader.next_window() {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                eprintln!("{e:?}");
                std::process::exit(1);
            }
        }
        for seg in reader.segments() {
            reassembler.push(seg, reader.payload(seg), &mut done);
        }
        for c in done.drain(..) {
            t.take(&c, check);
        }
    }
    reassembler.finish(&mut done);
    for c in done.drain(..) {
        t.take(&c, check);
    }
    println!(
        "connections {} events {} messages {} requests {} anomalies {}",
        t.connections, t.events, t.messages, t.requests, t.anomalies
    );
    if check {
        println!(
            "input {:016x} output {:016x}",
            t.input.finish(),
            t.output.finish()
        );
    }
}
