//! Where the core's time goes: each stage added on top of the ones before it, over one capture.
//!
//!     cargo run --release --example stages -- FILE [PORT] [LAST]
//!
//! With LAST (1–5) only that many stages run, the last one alone: for `perf stat` or
//! `perf record` on one stage without the others mixed in.
//!
//! Prints, per stage, the wall time and nanoseconds a packet: the record walk and header decode
//! (the capture reader), + reassembly (connections), + labelling (HTTP framing, pairing, the
//! state machine), + batching into columns (what crosses to Python). The Python side is what
//! `benchmarks/compare.py` measures beyond this.

use std::path::{Path, PathBuf};
use std::time::Instant;

use kaflow_core::batch::Batch;
use kaflow_core::capture::{Mode, Reader, Window};
use kaflow_core::label::{label_in, Scratch};
use kaflow_core::reassembly::Reassembler;
use kaflow_core::scan::Scanner;

#[derive(Clone, Copy, PartialEq, PartialOrd)]
enum Upto {
    Read,
    Reassemble,
    Label,
    Batch,
    /// Every stage as the command runs them: the reader dealing to shards on threads.
    Sharded,
}

/// This thread's CPU time (user + system), from /proc (Linux; clock ticks of 10 ms).
fn thread_cpu() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // the fields after the command's closing parenthesis: state is the 3rd, utime the 14th
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// The whole core as `kaflow analyze` drives it, batches dropped as they come.
fn run_sharded(path: &Path, port: u16) -> Result<(f64, u64, u64), String> {
    let start = Instant::now();
    let cpu_before = thread_cpu();
    let mut scanner = Scanner::open(
        &[path.to_path_buf()],
        &[port],
        Mode::Auto,
        Window::default(),
    )
    .map_err(|e| e.message)?;
    let mut connections = 0u64;
    while let Some(batch) = scanner.next_batch().map_err(|e| e.message)? {
        connections += batch.len() as u64;
        std::hint::black_box((batch.connections(), batch.request_rows()));
    }
    if let (Some(before), Some(after)) = (cpu_before, thread_cpu()) {
        eprintln!("reading and dealing thread: {:.2} s of CPU", after - before);
    }
    Ok((
        start.elapsed().as_secs_f64(),
        scanner.info().packets,
        connections,
    ))
}

fn run(path: &Path, port: u16, upto: Upto) -> Result<(f64, u64, u64), String> {
    if upto == Upto::Sharded {
        return run_sharded(path, port);
    }
    let start = Instant::now();
    let mut reader = Reader::open(path).map_err(|e| e.message)?;
    let mut reassembler = Reassembler::new(&[port]);
    let mut done = Vec::new();
    let mut connections = 0u64;
    let mut batch = Batch::default();
    let mut scratch = Scratch::default();
    let mut finish = |done: &mut Vec<_>, batch: &mut Batch| {
        for tc in done.drain(..) {
            connections += 1;
            if upto >= Upto::Label {
                let l = label_in(&tc, &mut scratch);
                if upto >= Upto::Batch {
                    batch.push(&tc, l);
                }
            }
        }
        if batch.len() >= 256 {
            // what crosses to Python for every connection: its columns and its request rows
            std::hint::black_box((batch.connections(), batch.request_rows()));
            *batch = Batch::default();
        }
    };
    while reader.next_window().map_err(|e| e.message)? {
        if upto == Upto::Read {
            continue;
        }
        reassembler.push_all(reader.segments(), None, |s| reader.payload(s), &mut done);
        finish(&mut done, &mut batch);
    }
    reassembler.finish(&mut done);
    finish(&mut done, &mut batch);
    Ok((
        start.elapsed().as_secs_f64(),
        reader.info().packets,
        connections,
    ))
}

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(args.next().ok_or("usage: stages FILE [PORT]")?);
    let port = args
        .next()
        .map_or(Ok(8080), |p| p.parse())
        .map_err(|e| format!("{e}"))?;
    let last: Option<usize> = args
        .next()
        .map(|n| n.parse())
        .transpose()
        .map_err(|e| format!("{e}"))?;
    println!(
        "{:<34} {:>9} {:>11} {:>12}",
        "stages", "seconds", "ns/packet", "connections"
    );
    let stages = [
        ("walk + decode (capture)", Upto::Read),
        ("+ connections (reassembly)", Upto::Reassemble),
        ("+ HTTP, pairing, machine (label)", Upto::Label),
        ("+ columns (batch)", Upto::Batch),
        ("all, sharded on threads (wall)", Upto::Sharded),
    ];
    let chosen = match last {
        Some(n) => stages.get(n.wrapping_sub(1)..n).ok_or("LAST is 1 to 5")?,
        None => &stages[..],
    };
    for &(name, upto) in chosen {
        let (secs, packets, conns) = run(&path, port, upto)?;
        let per = secs * 1e9 / packets.max(1) as f64;
        println!("{name:<34} {secs:>9.3} {per:>11.1} {conns:>12}");
    }
    Ok(())
}
