//! Reads a capture with `kaflow_core::capture` and prints what it found, for comparing with
//! another reader by hand (the last pure-Python release's, 230f27a, was checked this way), and
//! for timing the reader.
//!
//! ```sh
//! cargo run --release -p kaflow-core --example capture_dump -- FILE [--rows] [--window N] [--stdin]
//! ```
//! `--rows` prints one line per segment (with an FNV-1a hash of its captured payload);
//! without it, only the summary and the time per packet.

use std::time::Instant;

use kaflow_core::capture::Reader;

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// The file's bytes, shared by every pass (no copy per pass).
struct Shared(std::sync::Arc<Vec<u8>>, usize);

impl std::io::Read for Shared {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let rest = self.0.get(self.1..).unwrap_or(&[]);
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.1 += n;
        Ok(n)
    }
}

fn hex(a: &[u8; 16]) -> String {
    a.iter().map(|b| format!("{b:02x}")).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: capture_dump FILE [--rows] [--window N] [--stdin]");
        std::process::exit(2);
    };
    let rows = args.iter().any(|a| a == "--rows");
    let window = args
        .iter()
        .position(|a| a == "--window")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(kaflow_core::capture::DEFAULT_WINDOW_BYTES);
    if args.iter().any(|a| a == "--io") {
        // The reading alone, as the reader does it (1 MiB windows): what decoding adds is the rest.
        use std::io::Read;
        let started = Instant::now();
        let mut file = std::fs::File::open(path).expect("open");
        let mut buf = vec![0u8; window + 64];
        let mut total = 0usize;
        loop {
            let mut got = 0;
            while got < buf.len() {
                match file.read(&mut buf[got..]) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => got += k,
                }
            }
            total += got;
            if got < buf.len() {
                break;
            }
        }
        eprintln!(
            "read {total} bytes in {:.3} s",
            started.elapsed().as_secs_f64()
        );
        return;
    }
    if let Some(times) = args
        .iter()
        .position(|a| a == "--mem")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse::<usize>().ok())
    {
        // From memory, best of `times`: the reader's own cost (plus copying into windows).
        // `--hot` keeps only the first MiB, so the bytes stay in cache between passes: the
        // record walk and decoding alone.
        let mut data = std::fs::read(path).expect("read");
        if args.iter().any(|a| a == "--hot") {
            data.truncate(1 << 20);
        }
        let mut best = f64::MAX;
        let mut packets = 0;
        let data = std::sync::Arc::new(data);
        for _ in 0..times {
            let input = Box::new(Shared(data.clone(), 0));
            let started = Instant::now();
            let mut reader = Reader::from_read_with_window(path, input, window).expect("open");
            while reader.next_window().expect("read") {}
            best = best.min(started.elapsed().as_secs_f64());
            packets = reader.info().packets;
        }
        let copy = {
            let mut dst = vec![0u8; window + 64];
            let started = Instant::now();
            for chunk in data.chunks(window) {
                dst[..chunk.len()].copy_from_slice(chunk);
                std::hint::black_box(&dst);
            }
            started.elapsed().as_secs_f64()
        };
        eprintln!(
            "{packets} packets from memory: best {:.1} ns/packet; copying the bytes alone: \
             {:.1} ns/packet",
            best * 1e9 / packets.max(1) as f64,
            copy * 1e9 / packets.max(1) as f64
        );
        return;
    }
    let started = Instant::now();
    let opened = if args.iter().any(|a| a == "--stdin") {
        Reader::from_read_with_window(path, Box::new(std::io::stdin()), window)
    } else {
        Reader::open_with_window(path.as_ref(), window)
    };
    let mut reader = match opened {
        Ok(r) => r,
        Err(e) => {
            println!("error {:?}: {}", e.kind, e.message);
            return;
        }
    };
    let mut segments = 0u64;
    let mut end = None;
    loop {
        match reader.next_window() {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                end = Some(e);
                break;
            }
        }
        segments += reader.segments().len() as u64;
        if rows {
            for s in reader.segments() {
                let payload = reader.payload(s);
                println!(
                    "{} {} {} {} {} {} {} {} {} {} {} {} {} {:016x} {}",
                    s.frame,
                    s.ts_ns,
                    s.ip_version,
                    hex(&s.src),
                    hex(&s.dst),
                    s.sport,
                    s.dport,
                    s.seq,
                    s.ack,
                    s.flags,
                    s.window,
                    s.payload_len,
                    s.captured_len,
                    fnv(payload),
                    reader
                        .file_base()
                        .map_or("-".to_string(), |b| (b + s.payload_off as u64).to_string()),
                );
            }
        }
    }
    let elapsed = started.elapsed();
    let info = reader.info();
    if let Some(e) = end {
        println!("error {:?}: {}", e.kind, e.message);
    }
    println!(
        "info format={:?} link_types={:?} ts_resolution_ns={} packets={} tcp_segments={} \
         skipped={:?} bytes_read={} first_ts_ns={:?} last_ts_ns={:?} truncated_at_offset={:?} \
         warnings={:?}",
        info.format,
        info.link_types,
        info.ts_resolution_ns,
        info.packets,
        info.tcp_segments,
        info.skipped,
        info.bytes_read,
        info.first_ts_ns,
        info.last_ts_ns,
        info.truncated_at_offset,
        info.warnings
    );
    eprintln!(
        "{} packets, {} segments in {:.3} s: {:.1} ns/packet; progress {:?}",
        info.packets,
        segments,
        elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / info.packets.max(1) as f64,
        reader.progress()
    );
}
