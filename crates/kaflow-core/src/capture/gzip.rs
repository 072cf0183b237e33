//! gzip the way Python's `gzip.GzipFile.read1` reads it (CPython 3.11), so a damaged or cut
//! stream yields the same bytes before the damage and the same message as
//! kaflow's Python reader gave (CPython's `gzip` module).
//!
//! What that takes: compressed input is read in 8 KiB chunks, each inflated by one
//! `decompressobj.decompress(chunk, max_length)` call whose whole output is lost if it hits an
//! error; multi-member files, zero padding between members, and the CRC/length trailer checks
//! with their exact messages. flate2's own `GzDecoder` differs in all of these details.

use std::io;

use flate2::{Crc, Decompress, FlushDecompress, Status};

use super::text::os_error;
use crate::pytext::bytes_repr;

const CHUNK: usize = 8192; // io.DEFAULT_BUFFER_SIZE
const EOF_MESSAGE: &str = "Compressed file ended before the end-of-stream marker was reached";

/// Where compressed bytes come from: a reader, after some already-read bytes (a pipe's first
/// bytes, read to recognise the file: reader.py's `_Replay`).
pub(crate) struct Raw {
    pub(crate) inner: Box<dyn io::Read + Send>,
    pub(crate) head: Vec<u8>,
    pub(crate) head_pos: usize,
    /// Bytes taken from `inner` so far: the file position, for progress.
    pub(crate) pos: u64,
}

impl Raw {
    /// Python's `BufferedReader.read(n)` (or `_Replay.read(n)`): up to `n` bytes, fewer only at
    /// the end of the input (or the end of the replayed head).
    fn read(&mut self, n: usize, out: &mut Vec<u8>) -> io::Result<()> {
        if self.head_pos < self.head.len() {
            let take = n.min(self.head.len() - self.head_pos);
            out.extend_from_slice(&self.head[self.head_pos..self.head_pos + take]);
            self.head_pos += take;
            if self.head_pos == self.head.len() {
                self.head = Vec::new();
                self.head_pos = 0;
            }
            return Ok(());
        }
        let mut len = out.len();
        read_full(&mut self.inner, n, out, &mut len, &mut self.pos)?;
        out.truncate(len);
        Ok(())
    }
}

/// Reads until `n` bytes or the end, like Python's buffered `read(n)`, into `buf[*len..]`.
/// `buf` only ever grows (by what arrives, never by what was asked: a record header may ask
/// for 256 MiB), and what it already holds is overwritten, not zeroed again.
pub(crate) fn read_full(
    r: &mut Box<dyn io::Read + Send>,
    n: usize,
    buf: &mut Vec<u8>,
    len: &mut usize,
    pos: &mut u64,
) -> io::Result<()> {
    let end = *len + n;
    while *len < end && read_once(r, end - *len, buf, len, pos)? > 0 {}
    Ok(())
}

/// One read of up to `n` bytes (at most 4 MiB) into `buf[*len..]`; how many came. Live, the
/// next window is what one read gets: what the stream has to give now.
pub(crate) fn read_once(
    r: &mut Box<dyn io::Read + Send>,
    n: usize,
    buf: &mut Vec<u8>,
    len: &mut usize,
    pos: &mut u64,
) -> io::Result<usize> {
    let step = n.min(1 << 22);
    if buf.len() < *len + step {
        buf.resize(*len + step, 0);
    }
    let got = loop {
        match r.read(&mut buf[*len..*len + step]) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => break other?,
        }
    };
    *len += got;
    *pos += got as u64;
    Ok(got)
}

/// `gzip._PaddedFile`: a reader with bytes pushed back in front of it.
struct Padded {
    raw: Raw,
    buf: Vec<u8>,
    at: Option<usize>,
}

impl Padded {
    fn read(&mut self, size: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        match self.at {
            None => self.raw.read(size, &mut out)?,
            Some(at) if at + size <= self.buf.len() => {
                out.extend_from_slice(&self.buf[at..at + size]);
                self.at = Some(at + size);
            }
            Some(at) => {
                out.extend_from_slice(self.buf.get(at..).unwrap_or(&[]));
                let rest = size - (self.buf.len() - at.min(self.buf.len()));
                self.at = None;
                self.raw.read(rest, &mut out)?;
            }
        }
        Ok(out)
    }

    fn prepend(&mut self, data: &[u8]) {
        match self.at {
            None => {
                self.buf = data.to_vec();
                self.at = Some(0);
            }
            // The bytes were read since the last prepend: step back over them.
            Some(at) => self.at = Some(at.saturating_sub(data.len())),
        }
    }

    fn read_exact(&mut self, n: usize) -> Result<Vec<u8>, String> {
        let mut data = self.read(n).map_err(|e| os_error(&e))?;
        while data.len() < n {
            let more = self.read(n - data.len()).map_err(|e| os_error(&e))?;
            if more.is_empty() {
                return Err(EOF_MESSAGE.into());
            }
            data.extend_from_slice(&more);
        }
        Ok(data)
    }
}

/// `zlib.decompressobj(-15)` state that `_GzipReader` looks at.
struct Inflater {
    z: Decompress,
    eof: bool,
    unused_data: Vec<u8>,
    unconsumed_tail: Vec<u8>,
}

impl Inflater {
    fn new() -> Self {
        Inflater {
            z: Decompress::new(false),
            eof: false,
            unused_data: Vec::new(),
            unconsumed_tail: Vec::new(),
        }
    }

    /// `decompress(data, max_length)`, appending to `out`; on error nothing is appended.
    fn decompress(&mut self, data: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), String> {
        let start = out.len();
        let mut used = 0usize;
        let mut end = false;
        loop {
            let room = max - (out.len() - start);
            if room == 0 {
                break;
            }
            let step = room.min(1 << 16);
            let filled = out.len();
            out.resize(filled + step, 0);
            let (in0, out0) = (self.z.total_in(), self.z.total_out());
            let status = self.z.decompress(
                data.get(used..).unwrap_or(&[]),
                &mut out[filled..],
                FlushDecompress::Sync,
            );
            let produced = (self.z.total_out() - out0) as usize;
            used += (self.z.total_in() - in0) as usize;
            out.truncate(filled + produced);
            match status {
                Ok(Status::StreamEnd) => {
                    end = true;
                    break;
                }
                Ok(_) => {
                    if produced < step {
                        break; // input exhausted (or no progress possible): zlib's avail_out != 0
                    }
                }
                Err(e) => {
                    out.truncate(start);
                    let msg = e.message().unwrap_or("invalid input data");
                    return Err(format!("Error -3 while decompressing data: {msg}"));
                }
            }
        }
        let rest = data.get(used..).unwrap_or(&[]);
        if end {
            self.eof = true;
            self.unused_data.extend_from_slice(rest);
            self.unconsumed_tail.clear();
        } else {
            self.unconsumed_tail = rest.to_vec();
        }
        Ok(())
    }
}

/// `gzip._GzipReader` behind `GzipFile.read1`.
pub(crate) struct Gzip {
    fp: Padded,
    z: Inflater,
    new_member: bool,
    crc: Crc,
}

impl Gzip {
    pub(crate) fn new(raw: Raw) -> Self {
        Gzip {
            fp: Padded {
                raw,
                buf: Vec::new(),
                at: None,
            },
            z: Inflater::new(),
            new_member: true,
            crc: Crc::new(),
        }
    }

    pub(crate) fn disk_position(&self) -> u64 {
        self.fp.raw.pos
    }

    /// `read1(size)`: appends up to `size` bytes to `out` (none at the end of the stream);
    /// the error is the text Python's `f"{e}"` gives.
    pub(crate) fn read(&mut self, size: usize, out: &mut Vec<u8>) -> Result<(), String> {
        if size == 0 {
            return Ok(());
        }
        let start = out.len();
        loop {
            if self.z.eof {
                self.read_eof()?;
                self.new_member = true;
                self.z = Inflater::new();
            }
            if self.new_member {
                self.crc = Crc::new();
                if !self.read_header()? {
                    return Ok(());
                }
                self.new_member = false;
            }
            let buf = self.fp.read(CHUNK).map_err(|e| os_error(&e))?;
            self.z.decompress(&buf, size, out)?;
            if !self.z.unconsumed_tail.is_empty() {
                let tail = std::mem::take(&mut self.z.unconsumed_tail);
                self.fp.prepend(&tail);
                self.z.unconsumed_tail = tail;
            } else if !self.z.unused_data.is_empty() {
                let unused = self.z.unused_data.clone();
                self.fp.prepend(&unused);
            }
            if out.len() > start {
                break;
            }
            if buf.is_empty() {
                return Err(EOF_MESSAGE.into());
            }
        }
        self.crc.update(&out[start..]);
        Ok(())
    }

    /// `_read_gzip_header`: false when there is no further member.
    fn read_header(&mut self) -> Result<bool, String> {
        let magic = self.fp.read(2).map_err(|e| os_error(&e))?;
        if magic.is_empty() {
            return Ok(false);
        }
        if magic != b"\x1f\x8b" {
            return Err(format!("Not a gzipped file ({})", bytes_repr(&magic)));
        }
        let head = self.fp.read_exact(8)?;
        let (method, flag) = (head.first().copied(), head.get(1).copied().unwrap_or(0));
        if method != Some(8) {
            return Err("Unknown compression method".into());
        }
        if flag & 4 != 0 {
            let len = self.fp.read_exact(2)?;
            let n = u16::from_le_bytes([
                len.first().copied().unwrap_or(0),
                len.get(1).copied().unwrap_or(0),
            ]);
            self.fp.read_exact(n as usize)?;
        }
        for bit in [8u8, 16] {
            if flag & bit != 0 {
                loop {
                    let s = self.fp.read(1).map_err(|e| os_error(&e))?;
                    if s.is_empty() || s == b"\0" {
                        break;
                    }
                }
            }
        }
        if flag & 2 != 0 {
            self.fp.read_exact(2)?;
        }
        Ok(true)
    }

    /// `_read_eof`: the member's CRC and length, then any zero padding.
    fn read_eof(&mut self) -> Result<(), String> {
        let t = self.fp.read_exact(8)?;
        let word = |i: usize| {
            let b: [u8; 4] = t
                .get(i..i + 4)
                .and_then(|s| s.try_into().ok())
                .unwrap_or([0; 4]);
            u32::from_le_bytes(b)
        };
        let (crc32, isize) = (word(0), word(4));
        if crc32 != self.crc.sum() {
            return Err(format!(
                "CRC check failed {:#x} != {:#x}",
                crc32,
                self.crc.sum()
            ));
        }
        if isize != self.crc.amount() {
            return Err("Incorrect length of data produced".into());
        }
        loop {
            let c = self.fp.read(1).map_err(|e| os_error(&e))?;
            if c != b"\0" {
                if !c.is_empty() {
                    self.fp.prepend(&c);
                }
                break;
            }
        }
        Ok(())
    }
}
