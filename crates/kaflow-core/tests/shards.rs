//! Reassembly spread over shards gives the connections one reassembler gives, with the same
//! ids, whatever the number of shards and the length of the rounds: every fixture, scanned by
//! the plain loop (one `Reassembler` fed every segment, one at a time, or a window's at once
//! with `push_all` as `examples/stages.rs` runs it) and by the `Scanner` with 1 to 3 shards
//! and rounds from a few segments to the default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kaflow_core::batch::Finished;
use kaflow_core::capture::{Merge, Mode, Reader, Window};
use kaflow_core::flow::TcpStats;
use kaflow_core::label::label;
use kaflow_core::reassembly::Reassembler;
use kaflow_core::scan::Scanner;
use kaflow_core::shard::ROUND_SEGMENTS;

fn captures(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            captures(&p, out);
        } else if p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("capture.pcap"))
        {
            out.push(p);
        }
    }
}

/// Each connection as its id and everything else about it, by id.
fn by_id(rows: Vec<Finished>) -> BTreeMap<u64, String> {
    rows.into_iter().map(|f| (f.id, format!("{f:?}"))).collect()
}

/// How one reassembler is fed a window's segments.
#[derive(Clone, Copy)]
enum Feed {
    OneByOne,
    All,
    /// With the clock the shards are given: the latest timestamp so far.
    AllWithClock,
}

fn one_reassembler(path: &Path) -> (BTreeMap<u64, String>, TcpStats, usize) {
    fed(path, Feed::OneByOne)
}

fn fed(path: &Path, feed: Feed) -> (BTreeMap<u64, String>, TcpStats, usize) {
    let mut reader = Reader::open(path).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
    let mut r = Reassembler::new(&[8080]);
    let mut done = Vec::new();
    let mut clock = i64::MIN;
    while reader.next_window().unwrap_or(false) {
        let segments = reader.segments();
        match feed {
            Feed::OneByOne => {
                for seg in segments {
                    r.push(seg, reader.payload(seg), &mut done);
                }
            }
            Feed::All => r.push_all(segments, None, |s| reader.payload(s), &mut done),
            Feed::AllWithClock => {
                let now: Vec<i64> = segments
                    .iter()
                    .map(|s| {
                        clock = clock.max(s.ts_ns);
                        clock
                    })
                    .collect();
                r.push_all(segments, Some(&now), |s| reader.payload(s), &mut done);
            }
        }
    }
    let stats = r.finish(&mut done);
    let n = done.len();
    let rows = done.iter().map(|tc| Finished::new(tc, label(tc))).collect();
    (by_id(rows), stats, n)
}

fn sharded(path: &Path, shards: usize, round: usize) -> (BTreeMap<u64, String>, TcpStats, usize) {
    let merge = Merge::open(&[path.to_path_buf()], Mode::Auto, Window::default())
        .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
    let mut scanner = Scanner::sharded(merge, &[8080], shards, round).expect("threads");
    let mut rows = Vec::new();
    while let Some(b) = scanner.next_batch().expect("scan") {
        rows.extend(b.rows);
    }
    let n = rows.len();
    (by_id(rows), scanner.stats(), n)
}

#[test]
fn shards_give_the_connections_and_ids_of_one_reassembler() {
    let mut paths = Vec::new();
    captures(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures"),
        &mut paths,
    );
    paths.sort();
    assert!(paths.len() >= 30, "fixtures not found: {paths:?}");
    for path in &paths {
        let (want, want_stats, n) = one_reassembler(path);
        // ids 1..=n, each once
        assert_eq!(
            want.keys().copied().collect::<Vec<_>>(),
            (1..=n as u64).collect::<Vec<_>>(),
            "{}",
            path.display()
        );
        for feed in [Feed::All, Feed::AllWithClock] {
            let (got, stats, m) = fed(path, feed);
            assert_eq!((got, stats, m), (want.clone(), want_stats.clone(), n));
        }
        for (shards, round) in [(1, ROUND_SEGMENTS), (2, ROUND_SEGMENTS), (2, 5), (3, 64)] {
            let (got, stats, m) = sharded(path, shards, round);
            assert_eq!(m, n, "{} with {shards} shards", path.display());
            assert_eq!(
                got,
                want,
                "{} with {shards} shards, rounds of {round}",
                path.display()
            );
            assert_eq!(stats, want_stats, "{} with {shards} shards", path.display());
        }
    }
}
