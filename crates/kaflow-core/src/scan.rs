//! The whole core in one loop: capture windows → segments → reassembly → labelling → batches.
//!
//! Each stage is its own module and sees one plain value: the reader yields [`Segment`]s of a
//! window, the reassembler [`TcpConnection`]s it has finished, labelling a [`Labelled`]
//! connection, and [`Batch`] collects those as columns. Memory follows the connections open at
//! once: a connection leaves the reassembler when it is finished, and leaves the core in the
//! next batch.

use std::path::Path;

use crate::batch::Batch;
use crate::capture::{CaptureError, CaptureInfo, Reader};
use crate::flow::{TcpConnection, TcpStats};
use crate::label::label;
use crate::reassembly::Reassembler;

/// Connections gathered before a batch is handed over: big enough that the per-batch cost
/// vanishes, small enough that a batch's objects on the Python side stay a few MB.
pub const BATCH_CONNECTIONS: usize = 256;

pub struct Scanner {
    reader: Reader,
    reassembler: Option<Reassembler>,
    finished: Vec<TcpConnection>,
    stats: Option<TcpStats>,
}

impl Scanner {
    /// The capture at `path`; `-` is standard input (`tcpdump -w - | kaflow analyze -`), read
    /// as a stream: nothing in the core needs to seek.
    pub fn open(path: &Path, ports: &[u16]) -> Result<Scanner, CaptureError> {
        let reader = if path == Path::new("-") {
            Reader::from_read("-", Box::new(std::io::stdin()))?
        } else {
            Reader::open(path)?
        };
        Ok(Scanner::new(reader, ports))
    }

    pub fn new(reader: Reader, ports: &[u16]) -> Scanner {
        Scanner {
            reader,
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
            if self.reader.next_window()? {
                for seg in self.reader.segments() {
                    reassembler.push(seg, self.reader.payload(seg), &mut self.finished);
                }
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

    pub fn info(&self) -> &CaptureInfo {
        self.reader.info()
    }

    /// Reconstruction's counts; complete once [`Scanner::next_batch`] has returned `None`.
    pub fn stats(&self) -> TcpStats {
        self.stats.clone().unwrap_or_default()
    }

    pub fn progress(&self) -> (u64, u64) {
        self.reader.progress()
    }
}
