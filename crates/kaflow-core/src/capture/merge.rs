//! Several files that are pieces of one capture (a rotated series: tcpdump `-C`/`-G`/`-W`,
//! `editcap -c`, dumpcap's ring buffer) read as one stream of records: a k-way merge by
//! timestamp, as `mergecap` does it (the file whose next record is stamped earliest goes first;
//! on a tie the file that started first). One file is the merge of one, so every capture is read this way.
//!
//! Nothing is read whole, and only the files whose time range the merge has reached are open:
//! each file's first record is looked at once (a small read) to know where it starts, and a
//! file is opened for good when the merge gets there, and closed when it ends. A consecutive
//! series therefore holds one file's window at a time; files that overlap in time are read side
//! by side.
//!
//! Records are numbered in the merged order (every record, as `mergecap` numbers its output),
//! so for one file a segment's frame is its record number in the file. A time window
//! (`--since`/`--until`) drops the records outside it here; they keep their numbers.

use std::path::{Path, PathBuf};

use super::{CaptureError, CaptureInfo, ErrorKind, Reader};
use crate::segment::Segment;

/// How far (in capture time) two files may overlap and still be consecutive pieces, at least:
/// packets around a rotation may be written a little out of order (`-i any`, several queues),
/// so the largest step back seen inside the files is allowed too. Captures of two hosts
/// started together overlap by more at once.
pub const OVERLAP_TOLERANCE_NS: i64 = 1_000_000;

/// What to do with files whose time ranges overlap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Stop with an [`ErrorKind::Overlap`] error: they are captures of different hosts (or
    /// interfaces), for the caller to analyze apart.
    Auto,
    /// Merge them anyway.
    Force,
}

/// One edge of a time window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edge {
    /// Nanoseconds since the epoch.
    At(i64),
    /// Nanoseconds after the capture's first record.
    AfterStart(i64),
}

/// The records kept: stamped at or after `since` and before `until` (what `editcap -A/-B`
/// keeps).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    pub since: Option<Edge>,
    pub until: Option<Edge>,
}

/// A segment as the merge hands it out: lent from its file's window, with its number in the
/// merged capture beside it (`seg.frame` is its number in its own file). Not a renumbered
/// copy: a segment copied, patched and read again at once stalls on the patch (the read spans
/// stores of other widths), which was most of the merge's time; the receiver copies it once
/// and patches its own copy.
pub struct Next<'m> {
    pub seg: &'m Segment,
    pub frame: u64,
    /// Its captured payload.
    pub payload: &'m [u8],
}

/// One file of the capture, once it has been read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileInfo {
    pub info: CaptureInfo,
    /// The merged numbers of its first and last records.
    pub first_frame: u64,
    pub last_frame: u64,
}

struct Input {
    path: PathBuf,
    /// Open while the merge is inside the file's time range (or always, for a stream).
    reader: Option<Reader>,
    /// The timestamp of the file's first record.
    first_ts: i64,
    size: u64,
    /// The next segment and skipped record of the reader's window.
    seg: usize,
    skip: usize,
    done: Option<FileInfo>,
    first_frame: u64,
    last_frame: u64,
}

impl Input {
    /// The timestamp of the reader's next record, and whether it is a segment.
    fn head(&self) -> Option<(i64, bool)> {
        let r = self.reader.as_ref()?;
        let seg = r.segments().get(self.seg);
        let skip = r.skipped_records().get(self.skip);
        match (seg, skip) {
            (Some(s), Some(&(f, t))) => Some(if s.frame < f {
                (s.ts_ns, true)
            } else {
                (t, false)
            }),
            (Some(s), None) => Some((s.ts_ns, true)),
            (None, Some(&(_, t))) => Some((t, false)),
            (None, None) => None,
        }
    }

    /// Reads up to the file's first record, to know where in time it starts; `keep` keeps the
    /// reader (and the window read) for the merge, else the file is opened again when needed.
    fn probe(path: &Path, mut reader: Reader, keep: bool) -> Result<Input, CaptureError> {
        let mut first_ts = None;
        while first_ts.is_none() && reader.next_window()? {
            let seg = reader.segments().first().map(|s| (s.frame, s.ts_ns));
            let skip = reader.skipped_records().first().copied();
            first_ts = match (seg, skip) {
                (Some(a), Some(b)) => Some(a.min(b).1),
                (a, b) => a.or(b).map(|(_, t)| t),
            };
        }
        let Some(first_ts) = first_ts else {
            // The reader ends a capture without packets with an error; should it ever not,
            // say so rather than guess.
            return Err(CaptureError::new(
                ErrorKind::Empty,
                format!("{} holds no packets", reader.path()),
            ));
        };
        let size = reader.progress().1;
        Ok(Input {
            path: path.to_path_buf(),
            reader: if keep { Some(reader) } else { None },
            first_ts,
            size,
            seg: 0,
            skip: 0,
            done: None,
            first_frame: 0,
            last_frame: 0,
        })
    }
}

fn open(path: &Path, window_bytes: usize) -> Result<Reader, CaptureError> {
    if path == Path::new("-") {
        Reader::from_read_with_window("-", Box::new(std::io::stdin()), window_bytes)
    } else {
        Reader::open_with_window(path, window_bytes)
    }
}

/// Enough to find a file's first record without reading much of it.
const PROBE_BYTES: usize = 64 << 10;

pub struct Merge {
    inputs: Vec<Input>,
    /// Files not opened yet, latest first (the next to open is last).
    pending: Vec<usize>,
    active: Vec<usize>,
    mode: Mode,
    window: Window,
    since: Option<i64>,
    until: Option<i64>,
    frame: u64,
    /// Segments outside the time window.
    outside: u64,
}

impl Merge {
    /// Looks at the first record of each file (`-` is standard input): a file that cannot be
    /// read fails here, with its one-line message.
    pub fn open(paths: &[PathBuf], mode: Mode, window: Window) -> Result<Merge, CaptureError> {
        let mut inputs = Vec::with_capacity(paths.len());
        for path in paths {
            // A regular file can be opened again when the merge reaches it; anything else (a
            // pipe, standard input) is read once, so it stays open from here on.
            let reopen =
                path != Path::new("-") && std::fs::metadata(path).is_ok_and(|m| m.is_file());
            let window_bytes = if reopen {
                PROBE_BYTES
            } else {
                super::DEFAULT_WINDOW_BYTES
            };
            inputs.push(Input::probe(path, open(path, window_bytes)?, !reopen)?);
        }
        Ok(Merge::of(inputs, mode, window))
    }

    /// One capture read from a stream already open.
    pub fn from_reader(reader: Reader, window: Window) -> Result<Merge, CaptureError> {
        let path = PathBuf::from(reader.path());
        let input = Input::probe(&path, reader, true)?;
        Ok(Merge::of(vec![input], Mode::Force, window))
    }

    fn of(inputs: Vec<Input>, mode: Mode, window: Window) -> Merge {
        let mut pending: Vec<usize> = (0..inputs.len())
            .filter(|&i| inputs.get(i).is_some_and(|x| x.reader.is_none()))
            .collect();
        pending.sort_by_key(|&i| std::cmp::Reverse((inputs.get(i).map_or(0, |x| x.first_ts), i)));
        let active = (0..inputs.len())
            .filter(|&i| inputs.get(i).is_some_and(|x| x.reader.is_some()))
            .collect();
        Merge {
            inputs,
            pending,
            active,
            mode,
            window,
            since: None,
            until: None,
            frame: 0,
            outside: 0,
        }
    }

    /// Whether the next segment has been read already: the next call does not wait on the
    /// input. A live reader hands on what it holds before it waits.
    pub fn ready(&self) -> bool {
        self.pending.is_empty()
            && self.active.iter().all(|&i| {
                self.inputs.get(i).is_some_and(|x| {
                    x.reader
                        .as_ref()
                        .is_some_and(|r| x.seg < r.segments().len())
                })
            })
    }

    /// The next segment in the merged order, renumbered, with its captured payload; `None`
    /// at the end. A read error of any file ends the merge with that error.
    pub fn next_segment(&mut self) -> Result<Option<Next<'_>>, CaptureError> {
        let Some((i, k)) = self.advance()? else {
            return Ok(None);
        };
        // it and its payload stay in the file's window until the next call
        let reader = self.inputs.get(i).and_then(|x| x.reader.as_ref());
        Ok(reader.and_then(|r| {
            let seg = r.segments().get(k)?;
            Some(Next {
                seg,
                frame: self.frame,
                payload: r.payload(seg),
            })
        }))
    }

    /// Steps the merge to its next segment: (its file, its place in the file's window).
    fn advance(&mut self) -> Result<Option<(usize, usize)>, CaptureError> {
        loop {
            self.refill()?;
            self.open_reached()?;
            let Some(i) = self.earliest() else {
                return Ok(None);
            };
            let Some(input) = self.inputs.get_mut(i) else {
                return Ok(None);
            };
            let Some((ts, is_seg)) = input.head() else {
                continue;
            };
            self.frame += 1;
            if input.first_frame == 0 {
                input.first_frame = self.frame;
            }
            input.last_frame = self.frame;
            let taken = if is_seg {
                input.seg += 1;
                Some(input.seg - 1)
            } else {
                input.skip += 1;
                None
            };
            if self.mode == Mode::Auto && self.active.len() > 1 {
                self.check_overlap(i, ts)?;
            }
            if !self.inside(ts) {
                // Counted among the skipped only when the reader did not count it already.
                self.outside += u64::from(is_seg);
                continue;
            }
            if let Some(k) = taken {
                return Ok(Some((i, k)));
            }
        }
    }

    /// Reads the next window of any open file whose window is used up; a file that ends is
    /// closed and its facts kept.
    fn refill(&mut self) -> Result<(), CaptureError> {
        let mut k = 0;
        while let Some(&i) = self.active.get(k) {
            let Some(input) = self.inputs.get_mut(i) else {
                break;
            };
            if input.head().is_some() {
                k += 1;
                continue;
            }
            input.seg = 0;
            input.skip = 0;
            let more = match input.reader.as_mut() {
                Some(r) => r.next_window()?,
                None => false,
            };
            if !more {
                if let Some(r) = input.reader.take() {
                    input.done = Some(FileInfo {
                        info: r.info().clone(),
                        first_frame: input.first_frame,
                        last_frame: input.last_frame,
                    });
                }
                self.active.remove(k);
            }
        }
        Ok(())
    }

    /// Opens the files the merge has reached: those starting no later than the earliest record
    /// of the open ones (all of them on a tie, so that the earlier file goes first).
    fn open_reached(&mut self) -> Result<(), CaptureError> {
        while let Some(&next) = self.pending.last() {
            let Some(starts) = self.inputs.get(next).map(|x| x.first_ts) else {
                break;
            };
            let earliest = self
                .active
                .iter()
                .filter_map(|&i| self.inputs.get(i).and_then(Input::head))
                .map(|(t, _)| t)
                .min();
            if earliest.is_some_and(|t| starts > t) {
                break;
            }
            self.pending.pop();
            let Some(input) = self.inputs.get_mut(next) else {
                break;
            };
            let mut reader = open(&input.path, super::DEFAULT_WINDOW_BYTES)?;
            if !reader.next_window()? {
                // It had a record when first looked at: it was cut since. Its facts are what
                // was read now.
                input.done = Some(FileInfo {
                    info: reader.info().clone(),
                    ..FileInfo::default()
                });
                continue;
            }
            input.reader = Some(reader);
            self.active.push(next);
        }
        Ok(())
    }

    /// The open file whose next record is stamped earliest; on a tie the file that started
    /// first (the earlier piece of a series), then the one given first.
    fn earliest(&self) -> Option<usize> {
        self.active
            .iter()
            .filter_map(|&i| {
                let input = self.inputs.get(i)?;
                Some((input.head()?.0, input.first_ts, i))
            })
            .min()
            .map(|(_, _, i)| i)
    }

    /// A record of file `i` stamped `ts` while another file that started before it still has
    /// records to come: the two cover the same time.
    fn check_overlap(&self, i: usize, ts: i64) -> Result<(), CaptureError> {
        let Some(this) = self.inputs.get(i) else {
            return Ok(());
        };
        let stepped_back = self
            .active
            .iter()
            .filter_map(|&j| self.inputs.get(j)?.reader.as_ref())
            .map(|r| r.info().ts_max_back_ns)
            .max()
            .unwrap_or(0);
        let tolerance = OVERLAP_TOLERANCE_NS.max(stepped_back);
        for &j in &self.active {
            let Some(other) = self.inputs.get(j).filter(|_| j != i) else {
                continue;
            };
            let from = this.first_ts.max(other.first_ts);
            if other.head().is_some() && ts.saturating_sub(from) > tolerance {
                let (a, b) = if other.first_ts <= this.first_ts {
                    (other, this)
                } else {
                    (this, other)
                };
                let secs = |ns: i64| format!("{:.6}", ns as f64 / 1e9);
                return Err(CaptureError::new(
                    ErrorKind::Overlap,
                    format!(
                        "{} and {} overlap in time: the second starts {} s after the first, \
                         which still has packets {} s after that",
                        a.path.display(),
                        b.path.display(),
                        secs(b.first_ts - a.first_ts),
                        secs(ts - from),
                    ),
                ));
            }
        }
        Ok(())
    }

    fn inside(&mut self, ts: i64) -> bool {
        if self.frame_is_first() {
            let resolve = |b: Option<Edge>| {
                b.map(|b| match b {
                    Edge::At(t) => t,
                    Edge::AfterStart(d) => ts.saturating_add(d),
                })
            };
            self.since = resolve(self.window.since);
            self.until = resolve(self.window.until);
        }
        self.since.map_or(true, |s| ts >= s) && self.until.map_or(true, |u| ts < u)
    }

    fn frame_is_first(&self) -> bool {
        self.frame == 1
    }

    /// The time window as resolved at the first record (nanoseconds since the epoch).
    pub fn window(&self) -> (Option<i64>, Option<i64>) {
        (self.since, self.until)
    }

    /// Segments left out by the time window.
    pub fn outside(&self) -> u64 {
        self.outside
    }

    /// Each file (in the order given) as read so far; complete once [`Merge::next_segment`] has
    /// returned `None`.
    pub fn files(&self) -> Vec<FileInfo> {
        self.inputs
            .iter()
            .map(|x| match (&x.done, &x.reader) {
                (Some(done), _) => done.clone(),
                (None, Some(r)) => FileInfo {
                    info: r.info().clone(),
                    first_frame: x.first_frame,
                    last_frame: x.last_frame,
                },
                (None, None) => FileInfo {
                    info: CaptureInfo {
                        path: x.path.display().to_string(),
                        ..CaptureInfo::default()
                    },
                    ..FileInfo::default()
                },
            })
            .collect()
    }

    /// The files taken together: their counts added up, their warnings each naming its file
    /// when there are several.
    pub fn info(&self) -> CaptureInfo {
        let files = self.files();
        let several = files.len() > 1;
        let mut all = CaptureInfo::default();
        for (k, f) in files.iter().enumerate() {
            let i = &f.info;
            if k == 0 {
                all.path = i.path.clone();
                all.format = i.format.clone();
                all.ts_resolution_ns = i.ts_resolution_ns;
            } else if !all.format.split(", ").any(|x| x == i.format) && !i.format.is_empty() {
                all.format = format!("{}, {}", all.format, i.format);
            }
            for l in &i.link_types {
                if !all.link_types.contains(l) {
                    all.link_types.push(l.clone());
                }
            }
            all.packets += i.packets;
            all.tcp_segments += i.tcp_segments;
            for &(reason, n) in &i.skipped {
                match all.skipped.iter_mut().find(|(r, _)| *r == reason) {
                    Some((_, m)) => *m += n,
                    None => all.skipped.push((reason, n)),
                }
            }
            all.bytes_read += i.bytes_read;
            all.first_ts_ns = [all.first_ts_ns, i.first_ts_ns].into_iter().flatten().min();
            all.last_ts_ns = [all.last_ts_ns, i.last_ts_ns].into_iter().flatten().max();
            if all.truncated_at_offset.is_none() {
                all.truncated_at_offset = i.truncated_at_offset;
            }
            for w in &i.warnings {
                all.warnings.push(if several {
                    format!("{}: {w}", i.path)
                } else {
                    w.clone()
                });
            }
            all.ts_backwards += i.ts_backwards;
            all.ts_max_back_ns = all.ts_max_back_ns.max(i.ts_max_back_ns);
        }
        all
    }

    /// (bytes read so far, their total) over every file: compressed bytes for gzip; a pipe
    /// counts as 0.
    pub fn progress(&self) -> (u64, u64) {
        let mut read = 0;
        let mut total = 0;
        for x in &self.inputs {
            total += x.size;
            read += match (&x.reader, &x.done) {
                (Some(r), _) => r.progress().0,
                (None, Some(_)) => x.size,
                (None, None) => 0,
            };
        }
        (read, total)
    }
}
