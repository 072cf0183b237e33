//! A capture followed as it arrives (`kaflow analyze - --follow`).
//!
//! Reading a pipe waits for tcpdump; the scanner meanwhile must keep time, finishing the
//! connections that are over while the input is quiet. So the capture stage runs on a thread of
//! its own and hands its segments over in chunks, each as soon as nothing more has been read:
//! a packet never waits in a half-filled chunk for the next one to arrive.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::Duration;

use crate::capture::{CaptureError, CaptureInfo, ErrorKind, FileInfo, Merge, Reader, Window};
use crate::segment::Segment;

/// Segments in a chunk at most: a busy input is handed over in pieces this big.
const CHUNK_SEGMENTS: usize = 4096;
/// Chunks read ahead of the scanner at most; beyond, reading waits (tcpdump's buffer holds).
const AHEAD: usize = 16;

/// Segments read together, their payloads copied into `data` (each segment's `payload_off`
/// points there).
#[derive(Default)]
pub struct Chunk {
    pub segments: Vec<Segment>,
    pub data: Vec<u8>,
}

impl Chunk {
    /// The segment copied in as it is, then its copy numbered `frame` and pointed at its
    /// payload here: patched before the copy, it would be read back across the patch (a stall).
    pub(crate) fn push(&mut self, seg: &Segment, frame: u64, payload: &[u8]) {
        let off = u32::try_from(self.data.len()).unwrap_or(u32::MAX);
        self.data.extend_from_slice(payload);
        self.segments.push(*seg);
        if let Some(s) = self.segments.last_mut() {
            s.frame = frame;
            s.payload_off = off;
            s.captured_len = u32::try_from(payload.len()).unwrap_or(0);
            s.reassembled = false;
        }
    }

    pub fn payload(&self, seg: &Segment) -> &[u8] {
        seg.payload(&self.data)
    }
}

/// What the capture stage knew at the end of the input.
#[derive(Clone, Debug, Default)]
pub struct Ended {
    pub info: CaptureInfo,
    pub files: Vec<FileInfo>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub outside: u64,
}

enum Message {
    Chunk(Chunk),
    End(Result<Box<Ended>, CaptureError>),
}

/// What [`Reading::next`] found.
pub enum Got {
    Chunk(Chunk),
    /// Nothing arrived in the time given.
    Quiet,
    /// The input ended (`Ok`), or could not be read.
    End(Result<Box<Ended>, CaptureError>),
}

/// The reading thread's receiving end. Dropping it tells the thread to stop at its next read
/// (a followed file's end is looked at every 50 ms; a pipe's read ends with the process).
pub struct Reading {
    rx: Receiver<Message>,
    stop: Arc<AtomicBool>,
    ended: bool,
}

impl Reading {
    /// Starts reading `path` (`-` is standard input) on a thread of its own. Errors opening it
    /// come from the first [`Reading::next`].
    pub fn open(path: &Path, window: Window) -> Reading {
        let (tx, rx) = sync_channel(AHEAD);
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (path.to_path_buf(), Arc::clone(&stop));
        let started = std::thread::Builder::new()
            .name("kaflow-follow".into())
            .spawn(move || read(&p, window, s, &tx));
        if let Err(e) = started {
            let (tx, rx) = sync_channel(1);
            let _ = tx.send(Message::End(Err(CaptureError::new(
                ErrorKind::Input,
                format!("cannot start a thread to read {}: {e}", path.display()),
            ))));
            return Reading {
                rx,
                stop,
                ended: false,
            };
        }
        Reading {
            rx,
            stop,
            ended: false,
        }
    }

    /// The next chunk, waiting at most `wait` for one.
    pub fn next(&mut self, wait: Duration) -> Got {
        if self.ended {
            return Got::End(Ok(Box::default()));
        }
        match self.rx.recv_timeout(wait) {
            Ok(Message::Chunk(c)) => Got::Chunk(c),
            Ok(Message::End(r)) => {
                self.ended = true;
                Got::End(r)
            }
            Err(RecvTimeoutError::Timeout) => Got::Quiet,
            Err(RecvTimeoutError::Disconnected) => {
                self.ended = true;
                Got::End(Err(CaptureError::new(
                    ErrorKind::Input,
                    "the thread reading the capture ended".into(),
                )))
            }
        }
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn read(path: &Path, window: Window, stop: Arc<AtomicBool>, tx: &SyncSender<Message>) {
    let opened = Reader::live(path, Arc::clone(&stop)).and_then(|r| Merge::from_reader(r, window));
    let mut merge = match opened {
        Ok(m) => m,
        Err(e) => {
            let _ = tx.send(Message::End(Err(e)));
            return;
        }
    };
    let mut chunk = Chunk::default();
    loop {
        match merge.next_segment() {
            Ok(Some(next)) => {
                chunk.push(next.seg, next.frame, next.payload);
                let full = !merge.ready() || chunk.segments.len() >= CHUNK_SEGMENTS;
                if full && tx.send(Message::Chunk(std::mem::take(&mut chunk))).is_err() {
                    return; // the scanner is gone
                }
            }
            Ok(None) => {
                let (since, until) = merge.window();
                let ended = Ended {
                    info: merge.info(),
                    files: merge.files(),
                    since,
                    until,
                    outside: merge.outside(),
                };
                let _ = tx.send(Message::Chunk(chunk));
                let _ = tx.send(Message::End(Ok(Box::new(ended))));
                return;
            }
            Err(e) => {
                let _ = tx.send(Message::Chunk(chunk));
                let _ = tx.send(Message::End(Err(e)));
                return;
            }
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
    }
}
