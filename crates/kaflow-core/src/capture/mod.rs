//! The capture stage: a pcap or pcapng file (optionally gzip-compressed) in, TCP segments out,
//! one window of the file at a time. A port of `pcapkit/capture/reader.py`, `decode.py`,
//! `linktypes.py` and `CaptureInfo` that behaves identically, down to every message.
//!
//! A capture is untrusted input: it may be empty, compressed, not a capture at all, cut short by
//! a killed tcpdump, or corrupt. Each of those becomes a [`CaptureError`] with a one-line message
//! naming the file, or, when the damage comes after some packets, a warning in
//! [`CaptureInfo::warnings`] and the packets before it.
//!
//! Where it knowingly differs from Python:
//! - Python walks big pcapng windows with numpy from guessed block starts
//!   (`_walk_in_parallel`); here every window is walked block by block, which is what that walk
//!   is meant to equal. They word one damage differently only in a contrived case: a packet
//!   block shorter than 12 bytes followed by bytes that still chain through packet blocks.
//! - `window_bytes` is clamped to 1 B..1 GiB (Python raises `ValueError` below 1) so that
//!   offsets fit the `u32` of [`Segment::payload_off`].
//! - gzip behaves as CPython 3.11's `gzip` does (8 KiB reads; the output of a call that hits
//!   damage is lost), which decides how many packets come before a damaged spot; newer
//!   CPythons read 128 KiB at a time and can stop elsewhere.
//! - A path that is not UTF-8 is shown lossily, where Python shows surrogate escapes.
//!
//! ```no_run
//! use kaflow_core::capture::Reader;
//! let mut reader = Reader::open("upstream.pcap".as_ref())?;
//! while reader.next_window()? {
//!     for seg in reader.segments() {
//!         let payload = &reader.window()[seg.payload_off as usize..][..seg.captured_len as usize];
//!     }
//! }
//! println!("{} packets", reader.info().packets);
//! # Ok::<(), kaflow_core::capture::CaptureError>(())
//! ```

mod decode;
mod defrag;
mod error;
mod gzip;
pub mod link;
mod merge;
mod pcap;
mod pcapng;
mod source;
mod text;

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use decode::REASONS;
pub use error::{CaptureError, ErrorKind};
pub use merge::{Edge, FileInfo, Merge, Mode, Next, Window};

use crate::pytext::commas;
use crate::segment::Segment;
use link::LinkType;
use pcap::PcapWalker;
use pcapng::PcapngWalker;
use source::Source;
use text::strerror;

/// No record may claim more than this, whatever the snaplen says: refused, never allocated.
pub const MAX_RECORD_BYTES: u64 = 256 << 20;
// A record may exceed the snaplen (some writers ignore it), but not by this much.
const SNAPLEN_SLACK: u64 = 4;
const SNAPLEN_FLOOR: u64 = 262_144;
const NS: i64 = 1_000_000_000;
/// Python's default `window_bytes`.
pub const DEFAULT_WINDOW_BYTES: usize = 1 << 20;
// Segment offsets are u32: a window (plus the record that stretches it) must stay well below.
const MAX_WINDOW_BYTES: usize = 1 << 30;

/// What the reader saw of the file as a whole (types.py `CaptureInfo`); it grows while windows
/// are read and is complete once `next_window` has returned `Ok(false)` or an error.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureInfo {
    pub path: String,
    /// "pcap", "pcapng", "pcap (gzip)" or "pcapng (gzip)".
    pub format: String,
    /// tcpdump names, in order of first appearance.
    pub link_types: Vec<String>,
    /// Of the first interface; pcapng may differ per interface.
    pub ts_resolution_ns: i64,
    /// Every packet record read.
    pub packets: u64,
    /// Packets that became segments.
    pub tcp_segments: u64,
    /// Packets that did not, by reason (names from [`REASONS`]), in the order Python's
    /// `Counter` holds them: by first occurrence.
    pub skipped: Vec<(&'static str, u64)>,
    pub bytes_read: u64,
    /// The smallest and largest timestamps seen (not those of the first and last record).
    pub first_ts_ns: Option<i64>,
    pub last_ts_ns: Option<i64>,
    /// Set when the file ends inside a record or turns corrupt: where reading stopped.
    pub truncated_at_offset: Option<u64>,
    pub warnings: Vec<String>,
    /// Records stamped earlier than one before them in the file, and the largest such step
    /// back: packets written out of order (`-i any`, multi-queue NICs).
    pub ts_backwards: u64,
    pub ts_max_back_ns: i64,
}

impl CaptureInfo {
    /// The count for one skip reason (0 when none).
    pub fn skipped_count(&self, reason: &str) -> u64 {
        self.skipped
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |&(_, n)| n)
    }
}

/// Asks the CPU to start loading the window's bytes up to `upto` (from `*ahead`, advanced). The
/// record walk is a chain of dependent loads (each header says where the next one is), so
/// without this every record waits for memory; the walk moves forward through the window, so
/// loading ahead of it in order hides that wait.
#[inline(always)]
pub(crate) fn prefetch_to(buf: &[u8], ahead: &mut usize, upto: usize) {
    let upto = upto.min(buf.len());
    while *ahead < upto {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            // A prefetch never faults and has no effect on the program's state.
            let p = buf.as_ptr().wrapping_add(*ahead).cast::<i8>();
            #[allow(unused_unsafe)]
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(p)
            };
        }
        *ahead += 64;
    }
}

/// How far ahead of the record walk to load: a few records' worth.
pub(crate) const PREFETCH_AHEAD: usize = 2048;

/// Takes each packet record from the walk and decodes it on the spot (its header bytes are in
/// cache then); Python's per-run bookkeeping is kept per run.
pub(crate) struct Sink {
    segments: Vec<Segment>,
    /// The records that did not become segments, as (frame, timestamp): a merge of several
    /// files numbers every record, so it must see these too.
    skips: Vec<(u64, i64)>,
    /// The last frame number handed out.
    frame: u64,
    run: Run,
    runs: Vec<Run>,
    /// The latest timestamp so far, and the records stamped before it (how far at most).
    latest: i64,
    backwards: u64,
    max_back: i64,
    defrag: defrag::Defrag,
    /// This window's reassembled datagrams, one after the other: the payloads of its segments
    /// that came in fragments.
    datagrams: Vec<u8>,
    /// Fragments whose datagram became whole since the last count: counted `ip_fragment` when
    /// they came, they move to `ip_fragment_reassembled`.
    absorbed: u64,
}

/// What one run of records (one Python `_Records`) added up to.
#[derive(Clone, Copy, Debug)]
struct Run {
    packets: u64,
    segments: u64,
    counts: [u64; decode::REASONS.len()],
    lo: i64,
    hi: i64,
}

impl Run {
    const EMPTY: Run = Run {
        packets: 0,
        segments: 0,
        counts: [0; decode::REASONS.len()],
        lo: i64::MAX,
        hi: i64::MIN,
    };
}

impl Sink {
    #[inline]
    pub(crate) fn record(
        &mut self,
        buf: &[u8],
        start: usize,
        caplen: usize,
        ts_ns: i64,
        link: Option<&'static LinkType>,
        little: bool,
    ) {
        self.frame += 1;
        if ts_ns < self.latest {
            self.backwards += 1;
            self.max_back = self.max_back.max(self.latest.saturating_sub(ts_ns));
        } else {
            self.latest = ts_ns;
        }
        let run = &mut self.run;
        run.packets += 1;
        run.lo = run.lo.min(ts_ns);
        run.hi = run.hi.max(ts_ns);
        let mut fragment = None;
        let record = start..start + caplen;
        match decode::decode(buf, self.frame, ts_ns, record, link, little, &mut fragment) {
            Ok(seg) => {
                self.segments.push(seg);
                run.segments += 1;
            }
            Err(code) => {
                if let Some(c) = run.counts.get_mut(code as usize) {
                    *c += 1;
                }
                let datagram =
                    fragment.is_some_and(|(fam, s, e)| self.fragment(buf, fam, s, e, ts_ns));
                if !datagram {
                    self.skips.push((self.frame, ts_ns));
                }
            }
        }
    }

    /// A fragment: when it completes its datagram, the datagram is decoded as this record's
    /// packet, and the fragments that made it are counted as reassembled. Whether the record
    /// became a segment.
    #[cold]
    #[inline(never)]
    fn fragment(&mut self, buf: &[u8], fam: u8, s: usize, e: usize, ts_ns: i64) -> bool {
        let Some(datagram) = self.defrag.add(fam, buf, s, e, ts_ns) else {
            return false;
        };
        let bytes = &datagram.bytes;
        let mut inner = None;
        let family = datagram.family;
        let got = decode::decode_ip(bytes, self.frame, ts_ns, family, 0, bytes.len(), &mut inner);
        let run = &mut self.run;
        // the last fragment is the datagram's record: counted as what the datagram is
        let reason = match got {
            Ok(mut seg) => {
                let at = self.datagrams.len();
                let payload = seg.payload(bytes);
                seg.payload_off = u32::try_from(at).unwrap_or(u32::MAX);
                seg.reassembled = true;
                self.datagrams.extend_from_slice(payload);
                self.segments.push(seg);
                run.segments += 1;
                None
            }
            Err(code) => Some(code),
        };
        if let Some(c) = run.counts.get_mut(usize::from(decode::IP_FRAGMENT)) {
            *c = c.saturating_sub(1);
        }
        if let Some(c) = reason.and_then(|r| run.counts.get_mut(usize::from(r))) {
            *c += 1;
        }
        self.absorbed += datagram.fragments.saturating_sub(1);
        reason.is_none()
    }

    pub(crate) fn end_run(&mut self) {
        if self.run.packets > 0 {
            self.runs.push(self.run);
        }
        self.run = Run::EMPTY;
    }
}

/// What one pass over a window found.
#[derive(Debug, Default)]
pub(crate) struct Walk {
    /// Bytes of the window fully used; the rest starts an incomplete record.
    pub(crate) consumed: usize,
    /// Bytes (from `consumed`) the next record needs, when known.
    pub(crate) need: usize,
    /// Window offset of a record whose header is not believable, and why.
    pub(crate) bad: Option<(usize, String)>,
}

enum Walker {
    Pcap(PcapWalker),
    Pcapng(PcapngWalker),
}

/// A single pass over one capture, a window (~1 MiB, starting at a record boundary) at a time.
///
/// The constructors read the file header, so a bad path or a file that is not a capture fails
/// before any work starts. Errors Python raises only after reading (no packets at all, only
/// unsupported interfaces, a first record that cannot be true) come from [`Reader::next_window`].
pub struct Reader {
    path: String,
    size: u64,
    source: Source,
    walker: Walker,
    info: CaptureInfo,
    sink: Sink,
    /// Bytes consumed of the current window, applied when the next window is asked for (the
    /// current one's bytes must stay put until then).
    pending: Option<usize>,
    need: usize,
    file_base: Option<u64>,
    noted: usize,
    done: bool,
}

fn input_error(path: &str, e: &io::Error) -> CaptureError {
    let message = if e.kind() == io::ErrorKind::PermissionDenied {
        format!("{path}: permission denied")
    } else {
        format!("{path}: cannot read it ({})", strerror(e))
    };
    CaptureError::new(ErrorKind::Input, message)
}

/// A file still being written, read like `tail -f`: at its end, wait for more.
struct Tail {
    file: File,
    stop: Arc<AtomicBool>,
}

/// How often the end of a followed file is looked at again.
const TAIL_POLL: Duration = Duration::from_millis(50);

impl Read for Tail {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let got = self.file.read(buf)?;
            if got > 0 || buf.is_empty() || self.stop.load(Ordering::Relaxed) {
                return Ok(got);
            }
            std::thread::sleep(TAIL_POLL);
        }
    }
}

impl Reader {
    /// Opens a capture file the way Python's `open_capture` does (same errors, same messages).
    pub fn open(path: &Path) -> Result<Reader, CaptureError> {
        Self::open_with_window(path, DEFAULT_WINDOW_BYTES)
    }

    /// [`Reader::open`] with Python's `window_bytes` (capped at 1 GiB so offsets fit in u32).
    pub fn open_with_window(path: &Path, window_bytes: usize) -> Result<Reader, CaptureError> {
        let shown = path.display().to_string();
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(CaptureError::new(
                    ErrorKind::Input,
                    format!("{shown}: no such file"),
                ))
            }
            Err(e) => return Err(input_error(&shown, &e)),
        };
        if meta.is_dir() {
            return Err(CaptureError::new(
                ErrorKind::Input,
                format!("{shown} is a directory, not a capture file"),
            ));
        }
        let mut file = File::open(path).map_err(|e| input_error(&shown, &e))?;
        let size = file.metadata().map_or(0, |m| m.len());
        // Python's `seekable()`: lseek works (not on a pipe).
        let seekable = file.stream_position().is_ok();
        let source = match (seekable, file.try_clone()) {
            (true, Ok(reading)) => Source::new(Box::new(reading), Some(file)),
            _ => Source::new(Box::new(file), None),
        };
        Self::recognise(shown, size, source, window_bytes)
    }

    /// Reads a capture from any stream (a pipe, stdin): nothing here seeks. `name` stands for
    /// the path in messages. Progress is (0, 0), as for a pipe in Python.
    pub fn from_read(name: &str, input: Box<dyn io::Read + Send>) -> Result<Reader, CaptureError> {
        Self::from_read_with_window(name, input, DEFAULT_WINDOW_BYTES)
    }

    pub fn from_read_with_window(
        name: &str,
        input: Box<dyn io::Read + Send>,
        window_bytes: usize,
    ) -> Result<Reader, CaptureError> {
        Self::recognise(name.to_string(), 0, Source::new(input, None), window_bytes)
    }

    /// A capture read as it is written (`--follow`): `-` (standard input), a pipe, or a file
    /// tcpdump is still writing, whose end is waited at like `tail -f` until `stop` is set.
    /// Each window holds what has arrived, so packets are handed on as they come.
    pub fn live(path: &Path, stop: Arc<AtomicBool>) -> Result<Reader, CaptureError> {
        let shown = path.display().to_string();
        let input: Box<dyn io::Read + Send> = if path == Path::new("-") {
            Box::new(io::stdin())
        } else {
            let file = File::open(path).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => {
                    CaptureError::new(ErrorKind::Input, format!("{shown}: no such file"))
                }
                _ => input_error(&shown, &e),
            })?;
            if file.metadata().is_ok_and(|m| m.is_dir()) {
                return Err(CaptureError::new(
                    ErrorKind::Input,
                    format!("{shown} is a directory, not a capture file"),
                ));
            }
            if file.metadata().is_ok_and(|m| m.is_file()) {
                Box::new(Tail { file, stop })
            } else {
                Box::new(file)
            }
        };
        let mut source = Source::new(input, None);
        source.live = true;
        Self::recognise(shown, 0, source, DEFAULT_WINDOW_BYTES)
    }

    fn recognise(
        path: String,
        size: u64,
        mut source: Source,
        window_bytes: usize,
    ) -> Result<Reader, CaptureError> {
        let fail = |kind, message| Err(CaptureError::new(kind, message));
        let mut head = source.head().to_vec();
        if let Some(e) = &source.error {
            return fail(ErrorKind::Input, format!("{path}: {e}"));
        }
        if head.is_empty() {
            return fail(
                ErrorKind::Empty,
                format!(
                    "{path} is empty (0 bytes): tcpdump wrote nothing to it (killed before its \
                     first flush? use `tcpdump -U -w FILE` and stop it with Ctrl-C)"
                ),
            );
        }
        let mut suffix = "";
        if head.starts_with(b"\x1f\x8b") {
            head = source.decompress().to_vec();
            if head.is_empty() {
                return match &source.error {
                    Some(e) => fail(
                        ErrorKind::Malformed,
                        format!("{path} is gzip-compressed but {e}"),
                    ),
                    None => fail(
                        ErrorKind::Empty,
                        format!("{path} is gzip-compressed but it holds nothing"),
                    ),
                };
            }
            suffix = " (gzip)";
        }
        const COMPRESSED: [(&[u8], &str, &str); 6] = [
            (b"\xfd7zXZ\x00", "xz-compressed", "xz -dk"),
            (b"BZh", "bzip2-compressed", "bunzip2 -k"),
            (b"\x28\xb5\x2f\xfd", "zstd-compressed", "zstd -d"),
            (b"\x04\x22\x4d\x18", "lz4-compressed", "lz4 -d"),
            (b"PK\x03\x04", "a zip archive", "unzip"),
            (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "7z x"),
        ];
        for (magic, what, command) in COMPRESSED {
            if head.starts_with(magic) {
                return fail(
                    ErrorKind::Compressed,
                    format!("{path} is {what}; decompress it first: `{command} {path}`"),
                );
            }
        }
        let mut info = CaptureInfo {
            path: path.clone(),
            ts_resolution_ns: 1000,
            ..CaptureInfo::default()
        };
        let walker = if let Some((little, frac_ns, rec_len)) = pcap::magic(&head) {
            if head.len() < 24 {
                return fail(
                    ErrorKind::Malformed,
                    format!(
                        "{path}: the pcap file header is cut short ({} of 24 bytes)",
                        head.len()
                    ),
                );
            }
            let snaplen = pcap::u32_at(&head, 16, little);
            // The top bits may carry FCS information.
            let link = pcap::u32_at(&head, 20, little) & 0x03FF_FFFF;
            info.format = format!("pcap{suffix}");
            info.link_types = vec![link::link_type_name(link)];
            info.ts_resolution_ns = frac_ns;
            if link::lookup(link).is_none() {
                return fail(
                    ErrorKind::UnsupportedLinkType,
                    link::unsupported_message(&path, &[link]),
                );
            }
            if suffix.is_empty() && head.len() == 24 && size == 24 {
                return fail(
                    ErrorKind::Empty,
                    format!(
                        "{path} has a pcap header but no packets (nothing matched the filter, \
                         or tcpdump was killed before it flushed: use `tcpdump -U -w FILE`)"
                    ),
                );
            }
            source.start_at(24);
            Walker::Pcap(PcapWalker::new(little, frac_ns, rec_len, link, snaplen))
        } else if head.starts_with(&pcapng::SHB.to_le_bytes()) {
            if head.len() < 28 || pcapng::byte_order(head.get(8..12)).is_none() {
                return fail(
                    ErrorKind::Malformed,
                    format!(
                        "{path} starts like a pcapng file but its Section Header Block is broken"
                    ),
                );
            }
            info.format = format!("pcapng{suffix}");
            source.start_at(0);
            Walker::Pcapng(PcapngWalker::new())
        } else {
            return fail(
                ErrorKind::NotACapture,
                format!(
                    "{path} is not a pcap or pcapng capture (it looks like {}); capture with \
                     `tcpdump -w FILE`",
                    text::looks_like(&head)
                ),
            );
        };
        source.window = window_bytes.clamp(1, MAX_WINDOW_BYTES);
        Ok(Reader {
            path,
            size,
            source,
            walker,
            info,
            sink: Sink {
                segments: Vec::new(),
                skips: Vec::new(),
                frame: 0,
                run: Run::EMPTY,
                runs: Vec::new(),
                latest: i64::MIN,
                backwards: 0,
                max_back: 0,
                defrag: defrag::Defrag::default(),
                datagrams: Vec::new(),
                absorbed: 0,
            },
            pending: None,
            need: 0,
            file_base: None,
            noted: 0,
            done: false,
        })
    }

    /// Decodes windows until one holds records: `Ok(true)`, its bytes, segments and skipped
    /// records valid until the next call. `Ok(false)` at the end (then [`Reader::info`] is complete). An error is what
    /// Python raises at the end of iteration; it is returned once, then `Ok(false)`.
    pub fn next_window(&mut self) -> Result<bool, CaptureError> {
        self.sink.segments.clear();
        self.sink.datagrams.clear();
        self.sink.skips.clear();
        loop {
            if self.done {
                return Ok(false);
            }
            if let Some(consumed) = self.pending.take() {
                self.source.advance(consumed);
            }
            if !self.source.next(self.need) {
                self.done = true;
                self.conclude()?;
                return Ok(false);
            }
            let n = self.source.n;
            self.sink.runs.clear();
            self.sink.frame = self.info.packets;
            let buf = self.source.data();
            let walk = match &mut self.walker {
                Walker::Pcap(w) => w.walk(buf, n, &mut self.sink),
                Walker::Pcapng(w) => w.walk(buf, n, &mut self.sink),
            };
            self.note_interfaces();
            let offset = self.source.offset;
            let upto = walk.bad.as_ref().map_or(walk.consumed, |(at, _)| *at);
            self.info.bytes_read = offset + upto as u64;
            self.decode_runs();
            self.file_base = if self.source.streaming() {
                None
            } else {
                Some(offset)
            };
            if let Some((at, why)) = walk.bad {
                self.done = true;
                self.refuse(offset + at as u64, &why)?;
                return Ok(self.holds_records());
            }
            self.pending = Some(walk.consumed);
            self.need = walk.need;
            if walk.consumed == 0 && self.need <= n {
                self.need = 2 * n + 64; // not even one record header fits: look further
            }
            if self.holds_records() {
                return Ok(true);
            }
        }
    }

    fn holds_records(&self) -> bool {
        !self.sink.segments.is_empty() || !self.sink.skips.is_empty()
    }

    /// Adds the window's runs to `info`, run by run as Python's `_decode` does.
    fn decode_runs(&mut self) {
        let info = &mut self.info;
        for run in &self.sink.runs {
            info.packets += run.packets;
            info.tcp_segments += run.segments;
            for (code, &count) in run.counts.iter().enumerate().skip(1) {
                if count == 0 {
                    continue;
                }
                let reason = REASONS[code];
                match info.skipped.iter_mut().find(|(r, _)| *r == reason) {
                    Some((_, n)) => *n += count,
                    None => info.skipped.push((reason, count)),
                }
            }
            info.first_ts_ns = Some(info.first_ts_ns.map_or(run.lo, |f| f.min(run.lo)));
            info.last_ts_ns = Some(info.last_ts_ns.map_or(run.hi, |l| l.max(run.hi)));
        }
        // fragments counted `ip_fragment` when they came whose datagram has since become whole
        let absorbed = std::mem::take(&mut self.sink.absorbed);
        if absorbed > 0 {
            let fragment = REASONS[usize::from(decode::IP_FRAGMENT)];
            let joined = REASONS[usize::from(decode::IP_FRAGMENT_REASSEMBLED)];
            let mut moved = 0;
            if let Some((_, n)) = info.skipped.iter_mut().find(|(r, _)| *r == fragment) {
                moved = absorbed.min(*n);
                *n -= moved;
            }
            match info.skipped.iter_mut().find(|(r, _)| *r == joined) {
                Some((_, n)) => *n += moved,
                None => info.skipped.push((joined, moved)),
            }
            info.skipped.retain(|(_, n)| *n > 0);
        }
        info.ts_backwards = self.sink.backwards;
        info.ts_max_back_ns = self.sink.max_back;
    }

    fn note_interfaces(&mut self) {
        let Walker::Pcapng(w) = &self.walker else {
            return;
        };
        let seen = &w.interfaces_seen;
        if self.noted == seen.len() {
            return;
        }
        if self.info.link_types.is_empty() {
            if let Some(first) = seen.first() {
                self.info.ts_resolution_ns = first.resolution_ns();
            }
        }
        for iface in seen.get(self.noted..).unwrap_or(&[]) {
            let name = link::link_type_name(iface.link);
            if !self.info.link_types.contains(&name) {
                self.info.link_types.push(name);
            }
        }
        self.noted = seen.len();
    }

    /// Stop at a record header that cannot be true: an error if no packet came before it.
    fn refuse(&mut self, offset: u64, why: &str) -> Result<(), CaptureError> {
        let info = &mut self.info;
        info.truncated_at_offset = Some(offset);
        if info.packets == 0 {
            return Err(CaptureError::new(
                ErrorKind::Malformed,
                format!(
                    "{}: the first record (at byte {}) {why}; the file is corrupt",
                    self.path,
                    commas(offset as i128)
                ),
            ));
        }
        info.warnings.push(format!(
            "the record at byte {} {why}: the capture is corrupt from there; analyzed the {} \
             packets before it",
            commas(offset as i128),
            commas(info.packets as i128)
        ));
        Ok(())
    }

    /// The end of the file: a cut record or a broken gzip stream, then the errors Python raises
    /// after iterating.
    fn conclude(&mut self) -> Result<(), CaptureError> {
        self.info.bytes_read += self.source.leftover as u64;
        if self.source.leftover > 0 || self.source.error.is_some() {
            self.cut_short()?;
        }
        let info = &self.info;
        if info.packets == 0 {
            return Err(CaptureError::new(
                ErrorKind::Empty,
                format!(
                    "{} holds no packets ({} headers only)",
                    self.path, info.format
                ),
            ));
        }
        if let Walker::Pcapng(w) = &self.walker {
            if info.skipped_count("unsupported_link_type") == info.packets {
                let links: Vec<u32> = w
                    .interfaces_seen
                    .iter()
                    .map(|i| i.link)
                    .filter(|&l| link::lookup(l).is_none())
                    .collect();
                return Err(CaptureError::new(
                    ErrorKind::UnsupportedLinkType,
                    link::unsupported_message(&self.path, &links),
                ));
            }
        }
        Ok(())
    }

    fn cut_short(&mut self) -> Result<(), CaptureError> {
        let at = self.source.offset;
        let info = &mut self.info;
        info.truncated_at_offset = Some(at);
        let (why, hint) = match &self.source.error {
            Some(error) => {
                let gzip = info.format.ends_with("(gzip)");
                let place = if gzip {
                    " of the decompressed data"
                } else {
                    ""
                };
                (format!("{error} at byte {}{place}", commas(at as i128)), "")
            }
            None => (
                format!("the capture ends mid-record at byte {}", commas(at as i128)),
                " (tcpdump killed?)",
            ),
        };
        if info.packets == 0 {
            return Err(CaptureError::new(
                ErrorKind::Empty,
                format!(
                    "{} holds no complete packet: {why}{hint}; capture with `tcpdump -U -w FILE` \
                     and stop it with Ctrl-C",
                    self.path
                ),
            ));
        }
        info.warnings.push(format!(
            "{why}{hint}; analyzed the {} packets before it",
            commas(info.packets as i128)
        ));
        Ok(())
    }

    /// The current window's bytes; each segment's payload is
    /// `window()[payload_off .. payload_off + captured_len]`. Like Python's `batch.data`, it
    /// ends with 64 bytes beyond the last record (the next bytes of the file, or zeros): a
    /// segment whose payload the snaplen cut away entirely (`captured_len == 0`) may have its
    /// `payload_off` just past the records, and slicing it still gives an empty payload.
    pub fn window(&self) -> &[u8] {
        self.source.data()
    }

    /// Where the window starts in the file, for a plain file (not gzip, not a pipe): payloads
    /// can then be read back later from `file_base + payload_off`.
    pub fn file_base(&self) -> Option<u64> {
        self.file_base
    }

    /// A segment's captured payload bytes: in the window, or in the datagram the reader put
    /// back together from fragments.
    pub fn payload(&self, seg: &Segment) -> &[u8] {
        if seg.reassembled {
            let from = seg.payload_off as usize;
            from.checked_add(seg.captured_len as usize)
                .and_then(|to| self.sink.datagrams.get(from..to))
                .unwrap_or(&[])
        } else {
            seg.payload(self.window())
        }
    }

    /// The current window's segments, in file order.
    pub fn segments(&self) -> &[Segment] {
        &self.sink.segments
    }

    /// The current window's records that are not segments, as (frame, timestamp), in file
    /// order.
    pub fn skipped_records(&self) -> &[(u64, i64)] {
        &self.sink.skips
    }

    pub fn info(&self) -> &CaptureInfo {
        &self.info
    }

    /// The path (or name) as messages show it.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// True if payloads can be read back from the file later (Python's `rereadable`).
    pub fn rereadable(&self) -> bool {
        !self.source.streaming()
    }

    /// (bytes of the file on disk read so far, its size): compressed bytes for gzip; (0, 0) for
    /// a pipe or a stream.
    pub fn progress(&self) -> (u64, u64) {
        (self.source.disk_position().min(self.size), self.size)
    }

    /// Whether the input is gzip-compressed.
    pub fn is_gzip(&self) -> bool {
        self.source.is_gzip()
    }
}
