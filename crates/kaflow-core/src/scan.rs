//! The whole core in one loop: capture windows → segments → reassembly → labelling → batches.
//!
//! Each stage is its own module and sees one plain value: the reader yields [`Segment`]s of a
//! window, the reassembler [`TcpConnection`]s it has finished, labelling a [`Labelled`]
//! connection, and [`Batch`] collects those as columns. Memory follows the connections open at
//! once: a connection leaves the reassembler when it is finished, and leaves the core in the
//! next batch.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::batch::Batch;
use crate::capture::{CaptureError, CaptureInfo, FileInfo, Merge, Mode, Window};
use crate::flow::{TcpConnection, TcpStats};
use crate::follow::{Ended, Got, Reading};
use crate::label::label;
use crate::reassembly::Reassembler;
use crate::shard::{Shards, ROUND_SEGMENTS};

/// Connections gathered before a batch is handed over: big enough that the per-batch cost
/// vanishes, small enough that a batch's objects on the Python side stay a few MB.
pub const BATCH_CONNECTIONS: usize = 256;

/// Shards at most: one thread reads and deals every segment, and a shard's work per segment is
/// a few times the reader's, so more would wait for it.
pub const MAX_SHARDS: usize = 4;

/// Following a live capture, a batch is handed over at least this often, empty or not: time
/// moves on while the input is quiet, and the caller gets to look up (signals, a summary).
pub const TICK: Duration = Duration::from_millis(100);

/// Where the segments come from: files read as fast as the disk allows, or a capture followed
/// as it arrives.
enum Feed {
    Files(Shards),
    Live {
        live: Reading,
        /// The latest packet's timestamp and when it arrived: capture time goes on from there
        /// at the wall clock's pace while nothing arrives.
        clock: Option<(i64, Instant)>,
        ended: Option<Box<Ended>>,
        /// The one reassembler (files are reassembled in [`Shards`]); its counts once the
        /// input has ended.
        reassembler: Option<Reassembler>,
        finished: Vec<TcpConnection>,
        stats: Option<TcpStats>,
    },
}

pub struct Scanner {
    feed: Feed,
}

impl Scanner {
    /// The capture in the files at `paths`, merged in time order (one file, or the pieces of a
    /// rotated series); `-` is standard input (`tcpdump -w - | kaflow analyze -`), read as a
    /// stream: nothing in the core needs to seek.
    pub fn open(
        paths: &[PathBuf],
        ports: &[u16],
        mode: Mode,
        window: Window,
    ) -> Result<Scanner, CaptureError> {
        Scanner::new(Merge::open(paths, mode, window)?, ports)
    }

    /// Reassembled in as many shards as the machine has cores, up to [`MAX_SHARDS`].
    pub fn new(merge: Merge, ports: &[u16]) -> Result<Scanner, CaptureError> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Scanner::sharded(merge, ports, cores.min(MAX_SHARDS), ROUND_SEGMENTS)
    }

    /// Reassembled in `shards` shards, dealt rounds of `round` segments: the connections are
    /// the same whatever the two numbers (only the order they come in differs).
    pub fn sharded(
        merge: Merge,
        ports: &[u16],
        shards: usize,
        round: usize,
    ) -> Result<Scanner, CaptureError> {
        Ok(Scanner {
            feed: Feed::Files(Shards::start(merge, ports, shards, round)?),
        })
    }

    /// The capture at `path` (`-`: standard input) followed as it arrives: batches come at
    /// least every [`TICK`], empty when nothing finished, and connections are finished as soon
    /// as they are over ([`Reassembler::following`]). Ends when the input does.
    pub fn follow(path: &Path, ports: &[u16], window: Window) -> Scanner {
        Scanner {
            feed: Feed::Live {
                live: Reading::open(path, window),
                clock: None,
                ended: None,
                reassembler: Some(Reassembler::following(ports)),
                finished: Vec::new(),
                stats: None,
            },
        }
    }

    /// The next batch of finished, labelled connections; `None` once the capture is done.
    pub fn next_batch(&mut self) -> Result<Option<Batch>, CaptureError> {
        match &mut self.feed {
            Feed::Files(shards) => {
                let mut batch = Batch::default();
                while batch.rows.len() < BATCH_CONNECTIONS {
                    if !shards.next(&mut batch.rows)? {
                        break;
                    }
                }
                Ok((!batch.rows.is_empty()).then_some(batch))
            }
            Feed::Live {
                live,
                clock,
                ended,
                reassembler: slot,
                finished,
                stats,
            } => {
                let Some(reassembler) = slot.as_mut() else {
                    return Ok(None);
                };
                let due = Instant::now() + TICK;
                loop {
                    match live.next(due.saturating_duration_since(Instant::now())) {
                        Got::Chunk(chunk) => {
                            for seg in &chunk.segments {
                                reassembler.push(seg, chunk.payload(seg), finished);
                            }
                            if let Some(last) = chunk.segments.last() {
                                let latest = clock.map_or(last.ts_ns, |(t, _)| t.max(last.ts_ns));
                                *clock = Some((latest, Instant::now()));
                            }
                        }
                        Got::Quiet => break,
                        Got::End(r) => {
                            *ended = Some(r?);
                            if let Some(r) = slot.take() {
                                *stats = Some(r.finish(finished));
                            }
                            break;
                        }
                    }
                    if finished.len() >= BATCH_CONNECTIONS || Instant::now() >= due {
                        break;
                    }
                }
                if let (Some(r), Some((ts, at))) = (slot.as_mut(), *clock) {
                    let waited = i64::try_from(at.elapsed().as_nanos()).unwrap_or(i64::MAX);
                    r.advance(ts.saturating_add(waited), finished);
                }
                if finished.is_empty() && slot.is_none() {
                    return Ok(None);
                }
                let now = slot
                    .as_ref()
                    .and_then(Reassembler::now)
                    .or(clock.map(|(t, _)| t));
                let open = slot
                    .as_mut()
                    .map_or_else(Vec::new, Reassembler::open_requests);
                let mut batch = Batch::default();
                for tc in finished.drain(..) {
                    batch.push(&tc, label(&tc));
                }
                batch.open_rows = open;
                batch.now_ns = now;
                Ok(Some(batch))
            }
        }
    }

    /// The files taken together (when following, complete once the input has ended).
    pub fn info(&self) -> CaptureInfo {
        match &self.feed {
            Feed::Files(shards) => shards.merge().info(),
            Feed::Live { ended, .. } => ended.as_ref().map(|e| e.info.clone()).unwrap_or_default(),
        }
    }

    /// Each file, in the order given.
    pub fn files(&self) -> Vec<FileInfo> {
        match &self.feed {
            Feed::Files(shards) => shards.merge().files(),
            Feed::Live { ended, .. } => ended.as_ref().map(|e| e.files.clone()).unwrap_or_default(),
        }
    }

    /// The time window as resolved (nanoseconds since the epoch), and the records outside it.
    pub fn window(&self) -> (Option<i64>, Option<i64>, u64) {
        match &self.feed {
            Feed::Files(shards) => {
                let (since, until) = shards.merge().window();
                (since, until, shards.merge().outside())
            }
            Feed::Live { ended, .. } => ended
                .as_ref()
                .map_or((None, None, 0), |e| (e.since, e.until, e.outside)),
        }
    }

    /// Reconstruction's counts; complete once [`Scanner::next_batch`] has returned `None`.
    pub fn stats(&self) -> TcpStats {
        match &self.feed {
            Feed::Files(shards) => shards.stats().clone(),
            Feed::Live { stats, .. } => stats.clone().unwrap_or_default(),
        }
    }

    pub fn progress(&self) -> (u64, u64) {
        match &self.feed {
            Feed::Files(shards) => shards.merge().progress(),
            Feed::Live { .. } => (0, 0),
        }
    }
}
