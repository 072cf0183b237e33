//! The whole core in one loop: capture windows → segments → reassembly → labelling → batches.
//!
//! Each stage is its own module and sees one plain value: the reader yields [`Segment`]s of a
//! window, the reassembler [`TcpConnection`]s it has finished, labelling a [`Labelled`]
//! connection, and [`Batch`] collects those as columns. Memory follows the connections open at
//! once: a connection leaves the reassembler when it is finished, and leaves the core in the
//! next batch.

use std::path::PathBuf;

use crate::batch::Batch;
use crate::capture::{CaptureError, CaptureInfo, FileInfo, Merge, Mode, Window};
use crate::flow::{TcpConnection, TcpStats};
use crate::label::label;
use crate::reassembly::Reassembler;

/// Connections gathered before a batch is handed over: big enough that the per-batch cost
/// vanishes, small enough that a batch's objects on the Python side stay a few MB.
pub const BATCH_CONNECTIONS: usize = 256;

pub struct Scanner {
    merge: Merge,
    reassembler: Option<Reassembler>,
    finished: Vec<TcpConnection>,
    stats: Option<TcpStats>,
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
        Ok(Scanner::new(Merge::open(paths, mode, window)?, ports))
    }

    pub fn new(merge: Merge, ports: &[u16]) -> Scanner {
        Scanner {
            merge,
            reassembler: Some(Reassembler::new(ports)),
            finished: Vec::new(),
            stats: None,
        }
    }

    /// The next batch of finished, labelled connections; `None` once the capture is done.
    pub fn next_batch(&mut self) -> Result<Option<Batch>, CaptureError> {
        while self.finished.len() < BATCH_CONNECTIONS {
            let Some(reassembler) = self.reassembler.as_mut() else {
                break;
            };
            if let Some((seg, payload)) = self.merge.next_segment()? {
                reassembler.push(&seg, payload, &mut self.finished);
            } else if let Some(r) = self.reassembler.take() {
                self.stats = Some(r.finish(&mut self.finished));
            }
        }
        if self.finished.is_empty() {
            return Ok(None);
        }
        let mut batch = Batch::default();
        for tc in self.finished.drain(..) {
            batch.push(&tc, label(&tc));
        }
        Ok(Some(batch))
    }

    /// The requests framed since the last call on connections still open
    /// ([`Reassembler::open_requests`]).
    pub fn open_requests(&mut self) -> Vec<i64> {
        self.reassembler
            .as_mut()
            .map_or_else(Vec::new, Reassembler::open_requests)
    }

    /// The files taken together.
    pub fn info(&self) -> CaptureInfo {
        self.merge.info()
    }

    /// Each file, in the order given.
    pub fn files(&self) -> Vec<FileInfo> {
        self.merge.files()
    }

    /// The time window as resolved (nanoseconds since the epoch), and the records outside it.
    pub fn window(&self) -> (Option<i64>, Option<i64>, u64) {
        let (since, until) = self.merge.window();
        (since, until, self.merge.outside())
    }

    /// Reconstruction's counts; complete once [`Scanner::next_batch`] has returned `None`.
    pub fn stats(&self) -> TcpStats {
        self.stats.clone().unwrap_or_default()
    }

    pub fn progress(&self) -> (u64, u64) {
        self.merge.progress()
    }
}
