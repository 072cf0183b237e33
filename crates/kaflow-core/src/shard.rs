//! Reassembly and labelling spread over threads, for a capture read from files.
//!
//! A connection's packets all go to one shard (by a hash of its two endpoints, the same both
//! ways), each shard a [`Reassembler`] on a thread of its own that labels what it finishes. The
//! calling thread reads the capture and deals its segments out in rounds: a round is the next
//! [`ROUND_SEGMENTS`] segments of the file, each shard getting its share, so every shard sees its
//! packets in file order and the round's end is the same point of the file for all.
//!
//! Nothing the caller gets depends on how many shards there are:
//! - time is the whole capture's: each segment carries the latest timestamp of the upstream
//!   segments up to it ([`Reassembler::observe`]), so a connection is over and quiet in its shard
//!   exactly when it would be in one reassembler given every packet;
//! - ids are the order connections opened in the whole capture: a shard numbers its
//!   connections by the frame that opened them, and once every shard has reported a round,
//!   the round's openings are put in frame order and numbered on from the round before;
//! - connections are handed on round by round, and within a round shard by shard, each
//!   shard's in the order it finished them: the same order however the threads ran.

use std::collections::HashMap;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use crate::batch::Finished;
use crate::capture::{CaptureError, Merge};
use crate::flow::TcpStats;
use crate::follow::Chunk;
use crate::label::{label_in, Scratch};
use crate::reassembly::{Ports, Reassembler};
use crate::segment::Segment;

/// Segments of the file in a round: enough that a round's hand-over costs nothing beside its
/// work, few enough that the rounds in flight hold a few MB.
pub const ROUND_SEGMENTS: usize = 4096;

/// Rounds handed out and not yet reported at most: enough to keep every shard busy while the
/// reader reads the next one.
const AHEAD: usize = 2;

/// Connections in a piece of the capture's end, where every shard finishes all it holds: few,
/// since a shard's pieces wait labelled in its report channel while the caller takes another
/// shard's (at 256, the core alone peaked 12 MiB higher at the end of small-2m).
const END_PIECE: usize = 32;

/// A shard's share of a round: its segments and, for each, the capture's time at it.
#[derive(Default)]
struct Share {
    chunk: Chunk,
    now: Vec<i64>,
}

impl Share {
    fn clear(&mut self) {
        self.chunk.segments.clear();
        self.chunk.data.clear();
        // a round of jumbo segments is not held on to for the rest of the capture
        self.chunk.data.shrink_to(16 << 20);
        self.now.clear();
    }
}

enum Work {
    Round(Share),
    /// The capture has ended: finish every connection.
    End,
}

enum Report {
    /// A round done: the frames that opened connections in it, what it finished, and the
    /// share's buffers, emptied, for the reader to fill again.
    Round {
        opened: Vec<u64>,
        rows: Vec<Finished>,
        spent: Share,
    },
    /// Part of what the capture's end finished.
    Piece(Vec<Finished>),
    /// The last report: the shard's counts.
    Last(TcpStats),
    /// A bug: the shard panicked; the panic goes on in the caller.
    Panic(Box<dyn std::any::Any + Send>),
}

/// The shard for a segment: both directions of a tuple go to the same one.
fn shard_of(seg: &Segment, shards: usize) -> usize {
    let end = |ip: [u8; 16], port: u16| {
        let ip = u128::from_be_bytes(ip);
        ((ip as u64) ^ ((ip >> 64) as u64)).wrapping_add(u64::from(port).wrapping_mul(0x9E37_79B9))
    };
    let x = (end(seg.src, seg.sport) ^ end(seg.dst, seg.dport)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((x >> 32) as usize) % shards.max(1)
}

fn run_shard(ports: &[u16], work: &Receiver<Work>, report: &SyncSender<Report>) {
    let mut reassembler = Reassembler::sharded(ports);
    let mut done = Vec::new();
    // the shard's connections are labelled one after another in the same working buffers
    let mut scratch = Scratch::default();
    let mut finish = |done: &mut Vec<_>| -> Vec<Finished> {
        done.drain(..)
            .map(|tc| {
                let labels = label_in(&tc, &mut scratch);
                Finished::new(&tc, labels)
            })
            .collect()
    };
    while let Ok(w) = work.recv() {
        match w {
            Work::Round(mut share) => {
                // each segment observed at its clock, then pushed, a few ahead prefetched
                let chunk = &share.chunk;
                reassembler.push_all(
                    &chunk.segments,
                    Some(&share.now),
                    |s| chunk.payload(s),
                    &mut done,
                );
                let opened = reassembler.take_opened();
                let rows = finish(&mut done);
                share.clear();
                let round = Report::Round {
                    opened,
                    rows,
                    spent: share,
                };
                if report.send(round).is_err() {
                    return;
                }
            }
            Work::End => {
                // finished and labelled a piece at a time, each waiting for room in the report
                // channel: the caller hands the first ones on while the rest are labelled,
                // and the end's connections are never all held twice
                let (stats, mut rest) = reassembler.finish_lazily();
                loop {
                    let mut piece: Vec<_> = rest.by_ref().take(END_PIECE).collect();
                    if piece.is_empty() {
                        break;
                    }
                    if report.send(Report::Piece(finish(&mut piece))).is_err() {
                        return;
                    }
                }
                let _ = report.send(Report::Last(stats));
                return;
            }
        }
    }
}

pub struct Shards {
    merge: Merge,
    ports: Ports,
    work: Vec<SyncSender<Work>>,
    reports: Vec<Receiver<Report>>,
    round: usize,
    /// The latest timestamp of an upstream segment read so far.
    clock: i64,
    in_flight: usize,
    read_all: bool,
    /// Shards whose last report has been taken.
    ended: usize,
    /// The id of each connection numbered and not yet finished, by the frame that opened it.
    ids: HashMap<u64, u64>,
    next_id: u64,
    stats: TcpStats,
    /// Shares the shards are done with, kept for the next rounds: a round's few MB are filled
    /// in memory already touched, not grown afresh (each growth a copy, each new page a fault).
    spare: Vec<Share>,
}

impl Shards {
    /// `shards` threads reassembling and labelling the capture `merge` reads, dealt out in
    /// rounds of `round` segments ([`ROUND_SEGMENTS`]; tests take fewer, to have many).
    pub fn start(
        merge: Merge,
        ports: &[u16],
        shards: usize,
        round: usize,
    ) -> Result<Shards, CaptureError> {
        let mut work = Vec::new();
        let mut reports = Vec::new();
        for i in 0..shards.max(1) {
            let (work_tx, work_rx) = sync_channel(AHEAD);
            // room for every round in flight (a shard reports no more), so a round's report
            // never waits; the end's pieces wait for the caller to take them
            let (report_tx, report_rx) = sync_channel(AHEAD + 2);
            let ports = ports.to_vec();
            std::thread::Builder::new()
                .name(format!("kaflow-shard-{i}"))
                .spawn(move || {
                    let ran = catch_unwind(AssertUnwindSafe(|| {
                        run_shard(&ports, &work_rx, &report_tx);
                    }));
                    if let Err(panic) = ran {
                        let _ = report_tx.send(Report::Panic(panic));
                    }
                })
                .map_err(|e| {
                    CaptureError::new(
                        crate::capture::ErrorKind::Input,
                        format!("cannot start a thread: {e}"),
                    )
                })?;
            work.push(work_tx);
            reports.push(report_rx);
        }
        Ok(Shards {
            merge,
            ports: Ports::new(ports),
            work,
            reports,
            round: round.max(1),
            clock: i64::MIN,
            in_flight: 0,
            read_all: false,
            ended: 0,
            ids: HashMap::new(),
            next_id: 1,
            stats: TcpStats::default(),
            spare: Vec::new(),
        })
    }

    pub fn merge(&self) -> &Merge {
        &self.merge
    }

    /// Reconstruction's counts, every shard's; complete once [`Shards::next`] said the end.
    pub fn stats(&self) -> &TcpStats {
        &self.stats
    }

    /// Appends to `out` the connections finished next; `Ok(false)` once there are no more.
    pub fn next(&mut self, out: &mut Vec<Finished>) -> Result<bool, CaptureError> {
        if !self.read_all && self.in_flight < AHEAD {
            self.deal()?;
            return Ok(true);
        }
        if self.in_flight > 0 {
            self.take_round(out);
            return Ok(true);
        }
        while let Some(reports) = self.reports.get(self.ended) {
            match reports.recv() {
                Ok(Report::Piece(rows)) => {
                    self.number(rows, out);
                    return Ok(true);
                }
                Ok(Report::Last(stats)) => {
                    self.stats.add(stats);
                    self.ended += 1;
                }
                Ok(Report::Round { .. }) => panic!("a shard reported a round after the end"),
                Ok(Report::Panic(p)) => resume_unwind(p),
                Err(_) => panic!("a shard's thread ended"),
            }
        }
        Ok(false)
    }

    /// Reads the next round and hands each shard its share (and the end, once read).
    fn deal(&mut self) -> Result<(), CaptureError> {
        let mut shares: Vec<Share> = (0..self.work.len())
            .map(|_| self.spare.pop().unwrap_or_default())
            .collect();
        let n = shares.len();
        let mut count = 0;
        while count < self.round {
            let Some(next) = self.merge.next_segment()? else {
                self.read_all = true;
                break;
            };
            let seg = next.seg;
            // a segment on no upstream port is only counted: its bytes are not needed
            let upstream = self.ports.carries(seg);
            if upstream {
                self.clock = self.clock.max(seg.ts_ns);
            }
            if let Some(share) = shares.get_mut(shard_of(seg, n)) {
                let payload = if upstream { next.payload } else { &[] };
                share.chunk.push(seg, next.frame, payload);
                share.now.push(self.clock);
            }
            count += 1;
        }
        if count > 0 {
            for (i, share) in shares.into_iter().enumerate() {
                self.send(i, Work::Round(share));
            }
            self.in_flight += 1;
        }
        if self.read_all {
            for i in 0..n {
                self.send(i, Work::End);
            }
        }
        Ok(())
    }

    fn send(&self, shard: usize, work: Work) {
        let sent = self.work.get(shard).map(|tx| tx.send(work));
        if !matches!(sent, Some(Ok(()))) {
            self.failed(shard);
        }
    }

    /// A shard stopped taking work: its panic goes on here.
    fn failed(&self, shard: usize) -> ! {
        if let Some(reports) = self.reports.get(shard) {
            while let Ok(r) = reports.recv() {
                if let Report::Panic(p) = r {
                    resume_unwind(p);
                }
            }
        }
        panic!("a shard's thread ended")
    }

    /// Every shard's report of the oldest round in flight: its openings numbered in frame
    /// order, then its finished connections, shard by shard.
    fn take_round(&mut self, out: &mut Vec<Finished>) {
        let mut opened = Vec::new();
        let mut finished = Vec::new();
        for shard in 0..self.reports.len() {
            let got = self.reports.get(shard).map(Receiver::recv);
            match got {
                Some(Ok(Report::Round {
                    opened: o,
                    rows,
                    spent,
                })) => {
                    opened.extend(o);
                    finished.push(rows);
                    self.spare.push(spent);
                }
                Some(Ok(Report::Panic(p))) => resume_unwind(p),
                _ => self.failed(shard),
            }
        }
        opened.sort_unstable();
        for frame in opened {
            self.ids.insert(frame, self.next_id);
            self.next_id += 1;
        }
        for rows in finished {
            self.number(rows, out);
        }
        self.in_flight -= 1;
    }

    /// Connections renumbered from the frame that opened them to their id.
    fn number(&mut self, rows: Vec<Finished>, out: &mut Vec<Finished>) {
        for mut row in rows {
            match self.ids.remove(&row.id) {
                Some(id) => row.id = id,
                None => panic!("a connection finished that was never numbered"),
            }
            out.push(row);
        }
    }
}
