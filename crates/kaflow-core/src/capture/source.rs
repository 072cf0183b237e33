//! Hands out the capture in windows that each start at a record boundary (reader.py `_Source`).
//!
//! A plain file is read again from the first unconsumed byte, so the unfinished record at the end
//! of a window is not copied around; a gzip stream or a pipe cannot seek, so there the unconsumed
//! bytes are carried into the next window. A window's buffer holds `PAD` bytes past the `n` it
//! offers for records (the start of the next window, or zeros), exactly as Python's does: a few
//! pcapng damage messages quote header fields that lie there. Read failures end the stream with
//! `error` set instead of failing.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};

use super::gzip::{read_full, read_once, Gzip, Raw};
use super::text::{os_error, strerror};

pub(crate) const PAD: usize = 64;
const HEAD_BYTES: usize = 4096;
/// Enough of a live stream to recognise it: a pcap file header, or a pcapng block's start.
const LIVE_HEAD: usize = 32;

pub(crate) struct Source {
    raw: Raw,
    /// The plain file, when the input can seek (the same open file `raw` reads).
    file: Option<File>,
    gzip: Option<Gzip>,
    /// When streaming: `buf[..carry]` are bytes read but not yet consumed.
    carry: usize,
    pub(crate) window: usize,
    /// Capture offset of the current window's first byte.
    pub(crate) offset: u64,
    pub(crate) eof: bool,
    /// At the end: bytes after the last whole record.
    pub(crate) leftover: usize,
    pub(crate) error: Option<String>,
    /// Live input (`--follow`): a window is what has arrived, not a full window's worth, so
    /// records are handed on as they come; only a read of nothing is the end.
    pub(crate) live: bool,
    /// The window: `buf[..len]` holds data (`n` bytes of records, then the padding). Beyond
    /// `len` it is stale: it is reused, never cleared, so reading costs no `memset`.
    buf: Vec<u8>,
    len: usize,
    pub(crate) n: usize,
    /// Decompressed bytes on their way into `buf`.
    scratch: Vec<u8>,
}

impl Source {
    pub(crate) fn new(inner: Box<dyn io::Read + Send>, file: Option<File>) -> Self {
        Source {
            raw: Raw {
                inner,
                head: Vec::new(),
                head_pos: 0,
                pos: 0,
            },
            file,
            gzip: None,
            carry: 0,
            window: super::DEFAULT_WINDOW_BYTES,
            offset: 0,
            eof: false,
            leftover: 0,
            error: None,
            live: false,
            buf: Vec::new(),
            len: 0,
            n: 0,
            scratch: Vec::new(),
        }
    }

    pub(crate) fn streaming(&self) -> bool {
        self.gzip.is_some() || self.file.is_none()
    }

    pub(crate) fn is_gzip(&self) -> bool {
        self.gzip.is_some()
    }

    /// The window with its padding.
    pub(crate) fn data(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    /// The first bytes of the file (or of the decompressed stream), for recognising it.
    pub(crate) fn head(&mut self) -> &[u8] {
        self.len = 0;
        self.read_into(HEAD_BYTES);
        // live, the first read may hold less than a file header: wait for the rest of it
        while self.live && self.len < LIVE_HEAD && self.error.is_none() {
            let before = self.len;
            self.read_into(HEAD_BYTES - self.len);
            if self.len == before {
                break;
            }
        }
        self.carry = self.len;
        self.data()
    }

    /// From here on read through gzip; returns the first decompressed bytes.
    pub(crate) fn decompress(&mut self) -> &[u8] {
        let mut head = Vec::new();
        if let Some(file) = self.file.as_mut() {
            if let Err(e) = file.seek(SeekFrom::Start(0)) {
                self.error = Some(format!("read error ({})", strerror(&e)));
            }
            self.raw.pos = 0;
        } else {
            head = self.data().to_vec();
        }
        let raw = Raw {
            inner: std::mem::replace(&mut self.raw.inner, Box::new(io::empty())),
            head,
            head_pos: 0,
            pos: self.raw.pos,
        };
        self.gzip = Some(Gzip::new(raw));
        self.head()
    }

    /// How far into the file on disk reading has got (compressed bytes for gzip); 0 for a pipe.
    pub(crate) fn disk_position(&self) -> u64 {
        if self.file.is_none() {
            return 0;
        }
        match &self.gzip {
            Some(g) => g.disk_position(),
            None => self.raw.pos,
        }
    }

    pub(crate) fn start_at(&mut self, offset: u64) {
        self.offset = offset;
        if self.streaming() {
            let skip = (offset as usize).min(self.carry);
            self.buf.copy_within(skip..self.carry, 0);
            self.carry -= skip;
        } else {
            self.carry = 0;
        }
        self.len = self.carry;
    }

    /// Reads the next window (`n` of its bytes hold records); false at the end.
    pub(crate) fn next(&mut self, need: usize) -> bool {
        if self.eof {
            return false;
        }
        let want = self.window.max(need);
        if !self.streaming() {
            if let Some(file) = self.file.as_mut() {
                match file.seek(SeekFrom::Start(self.offset)) {
                    Ok(p) => self.raw.pos = p,
                    Err(e) => self.error = Some(format!("read error ({})", strerror(&e))),
                }
            }
            self.len = 0;
            self.read_into(want + PAD);
            if self.len == want + PAD {
                self.n = want;
                return true;
            }
            self.eof = true;
            if self.len == 0 {
                return false;
            }
            self.n = self.len;
            self.pad();
            return true;
        }
        self.len = self.carry;
        // live, bytes already here that may hold whole records are walked before waiting for
        // more: the next read may wait for tcpdump's next packet
        let waiting = self.live && self.carry > 0 && self.carry >= need;
        let asked = if waiting {
            0
        } else {
            want.saturating_sub(self.carry)
        };
        if asked > 0 {
            self.read_into(asked);
        }
        let got = self.len - self.carry;
        self.eof = if self.live {
            asked > 0 && got == 0
        } else {
            got < asked
        };
        self.n = self.len;
        if self.n == 0 {
            return false;
        }
        self.pad();
        true
    }

    fn pad(&mut self) {
        let end = self.n + PAD;
        if self.buf.len() < end {
            self.buf.resize(end, 0);
        }
        if let Some(pad) = self.buf.get_mut(self.n..end) {
            pad.fill(0);
        }
        self.len = end;
    }

    /// `consumed` bytes of the window were whole records; the next window starts after them.
    pub(crate) fn advance(&mut self, consumed: usize) {
        let consumed = consumed.min(self.n);
        self.offset += consumed as u64;
        if self.streaming() {
            self.buf.copy_within(consumed..self.n, 0);
            self.carry = self.n - consumed;
            self.len = self.carry;
        }
        if self.eof {
            self.leftover = self.n - consumed;
        }
    }

    /// Appends up to `n` bytes to the window (Python's `_Source._read`).
    fn read_into(&mut self, n: usize) {
        if self.error.is_some() {
            return;
        }
        match self.gzip.as_mut() {
            None => {
                let (raw, buf, len) = (&mut self.raw, &mut self.buf, &mut self.len);
                let r = if self.live {
                    read_once(&mut raw.inner, n, buf, len, &mut raw.pos).map(|_| ())
                } else {
                    read_full(&mut raw.inner, n, buf, len, &mut raw.pos)
                };
                if let Err(e) = r {
                    self.error = Some(format!("read error ({})", os_error(&e)));
                }
            }
            Some(gz) => {
                // read1 in a loop: a damaged or cut stream still yields what came before it.
                let out = &mut self.scratch;
                out.clear();
                while out.len() < n {
                    let before = out.len();
                    if let Err(e) = gz.read(n - before, out) {
                        self.error = Some(format!("the gzip stream is damaged or cut short ({e})"));
                        break;
                    }
                    if out.len() == before || self.live {
                        break;
                    }
                }
                let end = self.len + out.len();
                if self.buf.len() < end {
                    self.buf.resize(end, 0);
                }
                if let Some(dst) = self.buf.get_mut(self.len..end) {
                    dst.copy_from_slice(out);
                }
                self.len = end;
            }
        }
    }
}
