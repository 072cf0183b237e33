//! HTTP/1.x message framing over one direction's reassembled byte stream.
//!
//! Only where each message *starts* matters to kaflow, and that is what naive tools get wrong: a
//! POST body that contains `"GET "` is not a request, and a response to HEAD has no body even
//! when it says Content-Length. So messages are delimited the way an HTTP/1.1 peer does it (RFC
//! 9112 §6): Content-Length, chunked, no body for HEAD / 1xx / 204 / 304, and "until close" for
//! a response with neither; [`body_length`] is the one place that decides it.
//!
//! Captures are imperfect: the stream may have holes (lost packets) or bytes whose count is known
//! but whose values are not (a small snaplen). Where the framing cannot be followed, the framer
//! falls back to *bursts*: a new message is assumed where this side starts sending again after
//! the other side has sent data. Such messages are `parsed: false` and carry no method or status.
//!
//! The output is, byte for byte, what `pcapkit/http.py` gives. That parser has a quick path for
//! contiguous streams whose header lookup differs from the general parser's on odd header lines
//! (white space before a name), and its answers are the reference, so the quick path here keeps
//! that lookup; everything else follows the general parser.
//!
//! Heads are read by hand (with `memchr`), not with `httparse`: the reference takes what a strict
//! parser refuses (bare LF line ends, LF LF ending a head, names with white space around them,
//! any byte in a value, a target of up to 8192 non-space bytes) and refuses what it takes
//! (lower-case methods, methods over 32 bytes), and notes quote the bytes it could not read.

use std::borrow::Cow;
use std::cell::{Cell, OnceCell};
use std::sync::{Arc, LazyLock};

use memchr::{memchr, memmem};

use crate::flow::Stream;
use crate::pytext::{bytes_repr, commas};

/// The longest header block looked for; nginx's own default limit is far lower.
pub const MAX_HEAD: usize = 64 * 1024;
/// How much is peeked at before a head is read: enough to name TLS or HTTP/2, or reject garbage.
const PEEK: usize = 64;
/// The longest start line the parser accepts, and then some.
const MAX_LINE: usize = 8192 + 64;
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";
const BLANK_CRLF: &[u8] = b"\r\n\r\n";
/// The header names framing depends on, as the quick path looks for them at a line start.
const FRAMING: [&[u8]; 4] = [
    b"content-length:",
    b"transfer-encoding:",
    b"connection:",
    b"host:",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Request,
    Response,
}

impl Kind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Request => "request",
            Kind::Response => "response",
        }
    }
}

/// The start of one HTTP message in a stream, and what its head says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub offset: i64,
    pub ts_ns: i64,
    pub frame: u64,
    /// False: inferred from a data burst, no bytes to read.
    pub parsed: bool,
    pub method: Option<Arc<str>>,
    pub target: Option<Arc<str>>,
    pub host: Option<Arc<str>>,
    pub status: Option<u16>,
    pub connection_close: bool,
    /// Head and body, when the framing determined it.
    pub length: Option<i64>,
    /// The header values labelling needs, when the head has any of them.
    /// (Shared with the message before when they are the same: an upstream names itself in
    /// every response.)
    pub values: Option<Arc<Values>>,
}

impl Message {
    /// A message inferred from a burst of data whose bytes cannot be read (not captured, or
    /// encrypted): where and when it began, nothing else.
    pub fn blind(offset: i64, ts_ns: i64, frame: u64) -> Message {
        Message {
            offset,
            ts_ns,
            frame,
            parsed: false,
            method: None,
            target: None,
            host: None,
            status: None,
            connection_close: false,
            length: None,
            values: None,
        }
    }
}

/// Something in the stream that is not well-formed HTTP/1.x, and where it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub offset: i64,
    pub ts_ns: i64,
    pub frame: u64,
    pub what: String,
}

/// Why a chunked body could not be followed to its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkStop {
    /// The bytes needed are not in the capture (cut short, a hole, the stream's end).
    Missing,
    /// A chunk-size line that is not one: as unreadable as a Content-Length that is no number.
    BadSize,
}

/// How a message's body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    Length(i64),
    Chunked,
    /// A response with neither Content-Length nor chunked: it ends when the connection does.
    UntilClose,
    /// A Content-Length that is not a number.
    Unreadable,
}

/// RFC 9112 §6.3, as h11's `_body_framing`: the body of a request (`status` None) or of a
/// response to a request whose method was HEAD or not (`answers_head`).
pub fn body_length(
    status: Option<u16>,
    answers_head: bool,
    chunked: bool,
    content_length: Option<&[u8]>,
) -> Body {
    if let Some(code) = status {
        if (100..200).contains(&code) || answers_head || code == 204 || code == 304 {
            return Body::Length(0);
        }
    }
    if chunked {
        return Body::Chunked;
    }
    match content_length {
        Some(v) => parse_content_length(v).map_or(Body::Unreadable, Body::Length),
        None if status.is_some() => Body::UntilClose,
        None => Body::Length(0),
    }
}

/// Content-Length as RFC 9110 §8.6 reads it: digits, any number of leading zeros; a list (the
/// header given twice, or "50, 50") is one length if every value is the same, and unreadable
/// otherwise; empty list elements are ignored. More than 18 significant digits is more than an
/// exabyte: not a length, and it would not fit.
fn parse_content_length(value: &[u8]) -> Option<i64> {
    let mut found: Option<&[u8]> = None;
    for part in value.split(|&b| b == b',').map(strip) {
        if part.is_empty() {
            continue;
        }
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let zeros = part.iter().take_while(|&&d| d == b'0').count();
        let digits = &part[zeros.min(part.len() - 1)..];
        match found {
            Some(before) if before != digits => return None,
            _ => found = Some(digits),
        }
    }
    let digits = found?;
    if digits.len() > 18 {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0')),
    )
}

/// What `bytes.strip()` removes: ASCII white space.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn strip(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_space(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_space(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// Whether a colon follows white space (a space, a tab, or what else the general parser strips
/// off a name: a CR, a vertical tab, a form feed) anywhere in `lines`. No early exit, and a
/// fixed number of bytes a step: a head is read whole anyway, and then the loop is vector code.
fn blank_before_colon(lines: &[u8]) -> bool {
    const STEP: usize = 32;
    let odd = |a: u8, b: u8| {
        // 0x09 and 0x0b..=0x0d, or a space
        let blank = (a == b' ') | ((a.wrapping_sub(0x09) < 5) & (a != b'\n'));
        u8::from(blank & (b == b':'))
    };
    let Some(next) = lines.get(1..) else {
        return false;
    };
    let mut found = [0u8; STEP];
    // whole steps, the last one ending where the pairs do (it may look at some pairs again)
    let mut at = 0;
    while at < next.len() {
        let from = at.min(next.len().saturating_sub(STEP));
        let x = lines.get(from..from + STEP).map(<&[u8; STEP]>::try_from);
        let y = next.get(from..from + STEP).map(<&[u8; STEP]>::try_from);
        match (x, y) {
            (Some(Ok(x)), Some(Ok(y))) => {
                for i in 0..STEP {
                    found[i] |= odd(x[i], y[i]);
                }
            }
            // fewer pairs than a step
            _ => {
                for (&p, &q) in lines.iter().zip(next) {
                    found[0] |= odd(p, q);
                }
            }
        }
        at += STEP;
    }
    found.iter().fold(0, |all, &f| all | f) != 0
}

/// Whether a head is read the same by the scan and the general parser: no white space of any
/// kind right before a colon (the general parser strips a name of a vertical tab, a form feed
/// or a CR, and then may find a framing header the scan does not). The scan refuses heads with
/// one in their header lines: every head it reads is settled (a test holds it to that).
#[cfg(test)]
fn settled(head: &[u8]) -> bool {
    !head
        .windows(2)
        .any(|w| w[1] == b':' && matches!(w[0], b'\r' | 0x0b | 0x0c))
}

fn contains_ci(hay: &[u8], lower_needle: &[u8]) -> bool {
    hay.len() >= lower_needle.len()
        && hay
            .windows(lower_needle.len())
            .any(|w| w.eq_ignore_ascii_case(lower_needle))
}

fn starts_with_ci(hay: &[u8], lower_prefix: &[u8]) -> bool {
    hay.len() >= lower_prefix.len() && hay[..lower_prefix.len()].eq_ignore_ascii_case(lower_prefix)
}

/// Searchers built once: building one costs more than searching a header block.
static BLANK_FINDER: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(BLANK_CRLF));
static LFLF_FINDER: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\n\n"));

static SPACE_COLON: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b" :"));
static TAB_COLON: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(b"\t:"));

fn find_blank(hay: &[u8]) -> Option<usize> {
    BLANK_FINDER.find(hay)
}

/// `data[a..b]`, empty where Python's slice would be.
fn slice(data: &[u8], a: u64, b: u64) -> &[u8] {
    let len = data.len() as u64;
    let (a, b) = (a.min(len), b.min(len));
    if a >= b {
        return &[];
    }
    data.get(a as usize..b as usize).unwrap_or(&[])
}

fn latin1(b: &[u8]) -> Arc<str> {
    match std::str::from_utf8(b) {
        Ok(s) if b.is_ascii() => Arc::from(s),
        _ => Arc::from(b.iter().map(|&c| char::from(c)).collect::<String>()),
    }
}

fn cut_note(what: &str, skipped: i64) -> String {
    format!(
        "message {what} cut by bytes missing from the capture; {} bytes not framed (resuming at \
         the next burst)",
        commas(i128::from(skipped))
    )
}

fn is_method_byte(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
}

/// The method run at the start of `s`: an upper-case letter, then up to 31 more method bytes.
fn method_len(s: &[u8]) -> Option<usize> {
    if !s.first()?.is_ascii_uppercase() {
        return None;
    }
    let n = s
        .iter()
        .take(33)
        .take_while(|&&b| is_method_byte(b))
        .count();
    (n <= 32).then_some(n)
}

/// `([A-Z][A-Z0-9_-]{0,31}) (\S{1,8192})(?!\S)`: the method, the target and what follows it.
fn method_and_target(line: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let m = method_len(line)?;
    let rest = line.get(m..)?.strip_prefix(b" ")?;
    let t = rest
        .iter()
        .take(8193)
        .take_while(|&&b| !is_space(b))
        .count();
    if t == 0 || t > 8192 {
        return None;
    }
    Some((line.get(..m)?, rest.get(..t)?, rest.get(t..)?))
}

/// `([A-Z][A-Z0-9_-]{0,31}) (\S{1,8192}) HTTP/(\d)\.(\d)\r?$` on a line without its LF:
/// the method and the target.
fn request_line(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let (method, target, tail) = method_and_target(line)?;
    let tail = tail.strip_suffix(b"\r").unwrap_or(tail);
    match tail {
        [b' ', b'H', b'T', b'T', b'P', b'/', a, b'.', b]
            if a.is_ascii_digit() && b.is_ascii_digit() =>
        {
            Some((method, target))
        }
        _ => None,
    }
}

/// A request line [`request_line`] refuses that still says what was asked: the method, a space,
/// a target (`[A-Z][A-Z0-9_-]{0,31} (\S{1,8192})(?!\S)(.*?)\r?$`), and then either nothing, for
/// `GET /path` (HTTP/0.9, true), or something with `HTTP/` in it (a broken version, a space in
/// the target: false). Anything else is not taken for a request: body bytes that merely start
/// with a capital word must not become one.
fn loose_request_line(line: &[u8]) -> Option<(&[u8], &[u8], bool)> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let (method, target, after) = method_and_target(line)?;
    if after.is_empty() {
        return (method == b"GET" && target.starts_with(b"/")).then_some((method, target, true));
    }
    memmem::find(after, b"HTTP/").map(|_| (method, target, false))
}

/// `HTTP/(\d)\.(\d) (\d{3})(?: [^\r\n]*)?\r?$` on a line without its LF: HTTP/1.0 or not, and
/// the status code.
fn status_line(line: &[u8]) -> Option<(bool, u16)> {
    let (head, tail) = line.split_first_chunk::<12>()?;
    let [b'H', b'T', b'T', b'P', b'/', a, b'.', b, b' ', c1, c2, c3] = *head else {
        return None;
    };
    let digit = |c: u8| c.is_ascii_digit();
    if !(digit(a) & digit(b) & digit(c1) & digit(c2) & digit(c3)) {
        return None;
    }
    let tail = tail.strip_suffix(b"\r").unwrap_or(tail);
    let ok = match tail {
        [] => true,
        // a reason is a few bytes: a loop here costs less than a call to search it
        [b' ', reason @ ..] => reason.iter().all(|&c| c != b'\r'),
        _ => false,
    };
    let code = u16::from(c1 - b'0') * 100 + u16::from(c2 - b'0') * 10 + u16::from(c3 - b'0');
    ok.then_some((a == b'1' && b == b'0', code))
}

/// `([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?\r?$` on a line without its LF: the chunk size.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let h = line
        .iter()
        .take(17)
        .take_while(|b| b.is_ascii_hexdigit())
        .count();
    if h == 0 || h > 16 {
        return None;
    }
    let rest = line.get(h..)?;
    let ws = rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    let rest = rest.get(ws..)?;
    let rest = rest.strip_suffix(b"\r").unwrap_or(rest);
    let ok = match rest {
        [] => true,
        [b';', ext @ ..] => !ext.contains(&b'\r'),
        _ => false,
    };
    if !ok {
        return None;
    }
    line.get(..h)?.iter().try_fold(0u64, |n, &d| {
        let v = char::from(d).to_digit(16)?;
        Some((n << 4) | u64::from(v))
    })
}

/// The header block's length (through the blank line) and its lines without that blank line,
/// when it is complete. CRLF CRLF wins over LF LF wherever they are, as in the reference.
fn head_of(buf: &[u8]) -> Option<(usize, &[u8])> {
    if let Some(end) = find_blank(buf) {
        return Some((end + 4, buf.get(..end)?));
    }
    let end = LFLF_FINDER.find(buf)?;
    Some((end + 2, buf.get(..end)?))
}

/// What the general parser reads from a header block.
#[derive(Default)]
struct Headers<'a> {
    close: bool,
    keep_alive: bool,
    chunked: bool,
    content_length: Option<Cow<'a, [u8]>>,
    host: Option<Cow<'a, [u8]>>,
    /// A header line continued on the next (obsolete line folding, RFC 9112 §5.2): unfolded.
    folded: bool,
    /// The first header line began with white space (RFC 9112 §2.2): not read.
    indented_first: bool,
}

/// Which header a line was, for a folded line after it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Last {
    Connection,
    TransferEncoding,
    ContentLength,
    Host,
    Other,
}

/// A header's value with a folded continuation line added: the fold is one space.
fn unfolded<'a>(before: Option<Cow<'a, [u8]>>, more: &'a [u8]) -> Option<Cow<'a, [u8]>> {
    let mut all = before?.into_owned();
    all.push(b' ');
    all.extend_from_slice(more);
    Some(Cow::Owned(all))
}

/// A header's value so far with one more given: the values joined by ", ", as a repeated header
/// reads (RFC 9110 §5.3).
fn joined<'a>(before: Option<Cow<'a, [u8]>>, value: &'a [u8]) -> Cow<'a, [u8]> {
    match before {
        None => Cow::Borrowed(value),
        Some(before) => {
            let mut all = before.into_owned();
            all.extend_from_slice(b", ");
            all.extend_from_slice(value);
            Cow::Owned(all)
        }
    }
}

impl<'a> Headers<'a> {
    /// Every line after the start line, split at LF, name before the first colon, white space
    /// stripped, names without case; a header given twice reads as its values joined by ", ".
    /// A line beginning with a space or a tab is never a header of its own, whatever it holds
    /// (a smuggled `Content-Length` hides that way): it continues the line before it, or, as
    /// the first header line, is not read.
    fn parse(block: &'a [u8]) -> Self {
        let mut h = Headers::default();
        let mut last = None;
        for (i, line) in block.split(|&b| b == b'\n').skip(1).enumerate() {
            if matches!(line.first(), Some(b' ' | b'\t')) {
                if i == 0 {
                    h.indented_first = true;
                    continue;
                }
                h.folded = true;
                let more = strip(line);
                if more.is_empty() {
                    continue;
                }
                match last {
                    Some(Last::Connection) => {
                        h.close |= contains_ci(more, b"close");
                        h.keep_alive |= contains_ci(more, b"keep-alive");
                    }
                    Some(Last::TransferEncoding) => h.chunked |= contains_ci(more, b"chunked"),
                    Some(Last::ContentLength) => {
                        h.content_length = unfolded(h.content_length.take(), more);
                    }
                    Some(Last::Host) => h.host = unfolded(h.host.take(), more),
                    Some(Last::Other) | None => {}
                }
                continue;
            }
            let Some(colon) = memchr(b':', line) else {
                last = None;
                continue;
            };
            let (name, value) = (strip(&line[..colon]), strip(&line[colon + 1..]));
            last = Some(if name.eq_ignore_ascii_case(b"connection") {
                h.close |= contains_ci(value, b"close");
                h.keep_alive |= contains_ci(value, b"keep-alive");
                Last::Connection
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                h.chunked |= contains_ci(value, b"chunked");
                Last::TransferEncoding
            } else if name.eq_ignore_ascii_case(b"content-length") {
                h.content_length = Some(joined(h.content_length.take(), value));
                Last::ContentLength
            } else if name.eq_ignore_ascii_case(b"host") {
                h.host = Some(joined(h.host.take(), value));
                Last::Host
            } else {
                Last::Other
            });
        }
        h
    }
}

/// Random access to a direction's captured bytes by stream offset (the TLS framer reads
/// record headers through it too).
pub(crate) struct View<'a> {
    st: &'a Stream,
    data: &'a [u8],
    n: usize,
    end: i64,
    /// The usual case, no holes and every byte captured: offset - base indexes `data` (base is
    /// the first piece's start, or where the bytes kept begin).
    base: Option<i64>,
    run_last: OnceCell<Vec<usize>>,
    /// The piece [`View::place`] found last.
    hint: Cell<usize>,
}

impl<'a> View<'a> {
    pub(crate) fn new(st: &'a Stream) -> Self {
        let n = st
            .starts
            .len()
            .min(st.lengths.len())
            .min(st.ts.len())
            .min(st.frames.len())
            .min(st.captured.len())
            .min(st.data_starts.len());
        let end = if n > 0 {
            st.starts[n - 1].saturating_add(i64::from(st.lengths[n - 1]))
        } else {
            0
        };
        let first = if n > 0 { st.starts[0] } else { 0 };
        // bytes framed while they arrived are gone: `dropped` of them, all before `data`
        let held = (st.data.len() as u64).checked_add(st.dropped);
        let contiguous = held
            .and_then(|h| i64::try_from(h).ok())
            .is_some_and(|l| Some(l) == end.checked_sub(first));
        let origin = i64::try_from(st.dropped)
            .ok()
            .and_then(|d| first.checked_add(d));
        View {
            st,
            data: &st.data,
            n,
            end,
            base: origin.filter(|_| contiguous && n > 0),
            run_last: OnceCell::new(),
            hint: Cell::new(0),
        }
    }

    fn starts(&self) -> &'a [i64] {
        &self.st.starts[..self.n]
    }

    fn piece_end(&self, i: usize) -> i64 {
        self.st.starts[i].saturating_add(i64::from(self.st.lengths[i]))
    }

    /// For each piece, the last piece of its run: pieces that follow each other without a hole,
    /// all captured but maybe the last. A run's bytes are one slice of `data`, so a read is one
    /// slice too (walking piece by piece is quadratic on floods of one-byte segments).
    fn run_last(&self) -> &[usize] {
        self.run_last.get_or_init(|| {
            let st = self.st;
            let mut last = vec![0; self.n];
            let mut j = self.n.saturating_sub(1);
            for i in (0..self.n).rev() {
                if i + 1 == self.n
                    || st.captured[i] != st.lengths[i]
                    || st.starts[i + 1] != self.piece_end(i)
                {
                    j = i;
                }
                last[i] = j;
            }
            last
        })
    }

    /// The piece holding stream offset `pos`, or None in a gap.
    fn index(&self, pos: i64) -> Option<usize> {
        let i = self
            .starts()
            .partition_point(|&s| s <= pos)
            .checked_sub(1)?;
        (pos < self.piece_end(i)).then_some(i)
    }

    /// Where the stream's last piece ends.
    pub(crate) fn end(&self) -> i64 {
        self.end
    }

    /// The offset of the last piece starting at or before `pos`.
    pub(crate) fn start_at_or_before(&self, pos: i64) -> Option<i64> {
        let i = self
            .starts()
            .partition_point(|&s| s <= pos)
            .checked_sub(1)?;
        self.starts().get(i).copied()
    }

    /// The offset of the first piece starting after `pos`.
    pub(crate) fn next_start(&self, pos: i64) -> Option<i64> {
        let i = self.starts().partition_point(|&s| s <= pos);
        self.starts().get(i).copied()
    }

    /// Captured bytes from `pos` on, as far as they are contiguous, at most `limit`.
    pub(crate) fn read(&self, pos: i64, limit: usize) -> &'a [u8] {
        let limit = limit as u64;
        if let Some(base) = self.base {
            return match u64::try_from(pos.saturating_sub(base)) {
                Ok(k) => slice(self.data, k, k.saturating_add(limit)),
                Err(_) => &[],
            };
        }
        let Some(i) = self.index(pos).filter(|&i| i >= self.st.kept_from) else {
            return &[];
        };
        let st = self.st;
        let k = pos.wrapping_sub(st.starts[i]) as u64; // the piece holds pos: not negative
        if k >= u64::from(st.captured[i]) {
            return &[];
        }
        let j = self.run_last()[i];
        let a = st.data_starts[i].saturating_add(k);
        let run_end =
            st.data_starts[j].saturating_add(u64::from(st.captured[j].min(st.lengths[j])));
        slice(self.data, a, a.saturating_add(limit).min(run_end))
    }

    /// The message head at `pos` when it is all there, found without reading more; None when
    /// this quick lookup cannot tell.
    fn head_at(&self, pos: i64) -> Option<&'a [u8]> {
        let k = usize::try_from(pos.checked_sub(self.base?)?).ok()?;
        let window = self.data.get(k..)?;
        let window = &window[..window.len().min(MAX_HEAD)];
        let end = find_blank(window)?;
        window.get(..end + 4)
    }

    /// (ts_ns, frame) of the packet that carried stream offset `pos`.
    pub(crate) fn place(&self, pos: i64) -> (i64, u64) {
        // Messages go forward, and so do the pieces holding them: look on from the last one.
        let hint = self.hint.get().min(self.n);
        let ahead = self.starts().get(hint..).unwrap_or(&[]);
        let i = match ahead {
            // still in the piece found last, or in the next one: the usual answers
            [a, b, ..] if *a <= pos && pos < *b => hint,
            [a, b, c, ..] if *a <= pos && *b <= pos && pos < *c => hint + 1,
            [first, ..] if *first <= pos => {
                let step = ahead.iter().take(8).take_while(|&&s| s <= pos).count();
                let far = if step == 8 {
                    ahead.partition_point(|&s| s <= pos)
                } else {
                    step
                };
                hint + far - 1
            }
            _ => self
                .starts()
                .partition_point(|&s| s <= pos)
                .saturating_sub(1),
        };
        self.hint.set(i);
        match (self.st.ts.get(i), self.st.frames.get(i)) {
            (Some(&t), Some(&f)) => (t, f),
            _ => (0, 0),
        }
    }
}

/// Header values labelling reports, read from a message's head when it is framed (so that no
/// later stage needs the stream's bytes): a request's id, a final response's `Server` and
/// `Keep-Alive`, a `101`'s `Upgrade`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Values {
    /// The request's id header as sent: the first of [`REQUEST_ID_HEADERS`] in the head.
    pub request_id: Option<String>,
    /// `Server`, as sent.
    pub server: Option<String>,
    /// `Keep-Alive`, lower-cased.
    pub keep_alive: Option<String>,
    /// `Upgrade`, lower-cased (read on a `101` only).
    pub upgrade: Option<String>,
}

/// The headers a request id travels in; the first of them in the head is the id.
pub const REQUEST_ID_HEADERS: &[&[u8]] = &[b"x-request-id", b"x-correlation-id", b"request-id"];

/// For each group of `lower_names`, the value of the first header in the head at `pos` named one
/// of them, stripped, as sent, when the head is captured whole (a head is what the first CRLF
/// CRLF, else LF LF, within [`MAX_HEAD`] bytes ends).
fn header_values<const N: usize>(window: &[u8], groups: [&[&[u8]]; N]) -> [Option<String>; N] {
    let mut out = [const { None }; N];
    let Some((_, block)) = head_of(&window[..window.len().min(MAX_HEAD)]) else {
        return out;
    };
    for line in block.split(|&b| b == b'\n').skip(1) {
        let Some(colon) = memchr(b':', line) else {
            continue;
        };
        let name = strip(&line[..colon]);
        for (slot, names) in out.iter_mut().zip(groups) {
            if slot.is_none() && names.iter().any(|n| name.eq_ignore_ascii_case(n)) {
                *slot = Some(latin1(strip(&line[colon + 1..])).to_string());
            }
        }
    }
    out
}

/// The header values labelling needs from the head at the start of `window` (a request, or a
/// response with this status): read when the message is framed, while its bytes are here.
fn values_of(kind: Kind, window: &[u8], status: Option<u16>) -> Option<Values> {
    let v = match (kind, status) {
        (Kind::Request, _) => {
            let [request_id] = header_values(window, [REQUEST_ID_HEADERS]);
            Values {
                request_id,
                ..Values::default()
            }
        }
        // only a final response's are ever reported (the first one answering a request)
        (Kind::Response, Some(code)) if code >= 200 || code == 101 => {
            let upgrade: &[&[u8]] = if code == 101 { &[b"upgrade"] } else { &[] };
            let [server, keep_alive, upgrade] =
                header_values(window, [&[b"server"], &[b"keep-alive"], upgrade]);
            Values {
                request_id: None,
                server,
                keep_alive: keep_alive.map(|v| v.to_lowercase()),
                upgrade: upgrade.map(|v| v.to_lowercase()),
            }
        }
        (Kind::Response, _) => return None,
    };
    (v != Values::default()).then_some(v)
}

/// Where a sender's bursts start: offsets where this side starts sending again after the other
/// side sent data. A new message most likely starts there when its bytes cannot be read: nginx
/// sends a request, the upstream answers, nginx sends the next one.
pub fn burst_starts(mine: &Stream, other: &Stream) -> Vec<i64> {
    let n = mine.starts.len().min(mine.ts.len());
    if n == 0 {
        return Vec::new();
    }
    let mut other_ts = other.ts.clone();
    other_ts.sort_unstable();
    let mut out = Vec::new();
    let mut j = 0;
    let mut prev_ts = mine.ts[0];
    for (&off, &ts) in mine.starts[1..n].iter().zip(&mine.ts[1..n]) {
        // is there other-side data strictly after the previous piece and up to this one?
        while j < other_ts.len() && other_ts[j] <= prev_ts {
            j += 1;
        }
        if j < other_ts.len() && other_ts[j] <= ts {
            out.push(off);
        }
        prev_ts = prev_ts.max(ts);
    }
    out
}

/// [`Framer::quick_head`]'s answer in one forward pass over `window` (the bytes from a
/// message's start), line by line, for the usual head; None whenever anything is unusual (a bare
/// LF, white space before a colon or in the target, a framing header twice...) or the head is not
/// all in `window`. Each check below is one `quick_head` makes, or a stricter one, so where both
/// answer they agree.
fn scan_head(kind: Kind, window: &[u8]) -> Option<Head<'_>> {
    let nl = memchr(b'\n', window)?;
    let line = window.get(..nl)?.strip_suffix(b"\r")?;
    let mut head = match kind {
        Kind::Request => {
            if window.starts_with(H2_PREFACE) {
                return None;
            }
            // "METHOD TARGET HTTP/d.d": the target is what lies between the method's space
            // and the version's, so when it holds no white space (nor other control
            // bytes, to keep the check short) request_line reads the same two parts
            let m = method_len(line)?;
            let (before, version) = line.split_at_checked(line.len().checked_sub(9)?)?;
            let target = before.get(m..)?.strip_prefix(b" ")?;
            let [b' ', b'H', b'T', b'T', b'P', b'/', a, b'.', b] = *version else {
                return None;
            };
            let odd = target.iter().fold(false, |odd, &c| odd | (c <= b' '));
            if odd || target.is_empty() || target.len() > 8192 {
                return None;
            }
            if !a.is_ascii_digit() || !b.is_ascii_digit() {
                return None;
            }
            Head::new(Some((line.get(..m)?, target)), None, false)
        }
        Kind::Response => {
            let (v10, code) = status_line(window.get(..nl)?)?;
            Head::new(None, Some(code), v10)
        }
    };
    let mut seen = [false; 4];
    let mut p = nl + 1;
    let body_at = loop {
        let rest = window.get(p..)?;
        // the blank line, most often, and then no search
        if rest.starts_with(b"\r\n") {
            break p.checked_sub(2)?;
        }
        let e = memchr(b'\n', rest)?;
        let line = rest.get(..e)?.strip_suffix(b"\r")?;
        if line.is_empty() {
            break p.checked_sub(2)?;
        }
        // a folded or indented line: the general parser unfolds it and says so; a line led by
        // another byte `strip` takes off (VT, FF, CR): the general reading of the values strips
        // it from the name, which the letters below would not see
        if line.first().is_some_and(|&c| is_space(c)) {
            return None;
        }
        let n = match line.first().map(|&c| c | 0x20) {
            Some(b'c') => match line.get(3).map(|&c| c | 0x20) {
                Some(b't') => CONTENT_LENGTH.at_start(line).then_some(0),
                Some(b'n') => CONNECTION.at_start(line).then_some(2),
                _ => None,
            },
            Some(b't') => TRANSFER_ENCODING.at_start(line).then_some(1),
            // "host:" is shorter than a word
            Some(b'h') => starts_with_ci(line, FRAMING[3]).then_some(3),
            Some(b'x' | b'r' | b's' | b'k' | b'u') => {
                note_reported(&mut head.reported, line);
                None
            }
            _ => None,
        };
        if let Some(n) = n {
            // twice: quick_head decides (it lets a second Host on a response pass)
            if std::mem::replace(&mut seen[n], true) {
                return None;
            }
            let len = FRAMING.get(n)?.len();
            head.values[n] = Some(strip(line.get(len..)?));
        }
        p = p.checked_add(e + 1)?;
    };
    // white space before a colon: quick_head leaves such heads to the general parser
    if blank_before_colon(window.get(nl + 1..body_at).unwrap_or(&[])) {
        return None;
    }
    head.hlen = i64::try_from(body_at.checked_add(4)?).ok()?;
    Some(head)
}

/// Whether `key` is what [`Names::share_raw`] writes for these values: for each slot kept, 0
/// when it has none, else 1, its length (8 bytes, little-endian) and its bytes.
fn same_key(key: &[u8], raw: &[Option<&[u8]>; 4], keep: [bool; 4]) -> bool {
    let mut at = key;
    for (r, k) in raw.iter().zip(keep) {
        let rest = match (r.filter(|_| k), at.split_first()) {
            (None, Some((&0, rest))) => rest,
            (Some(b), Some((&1, rest))) => {
                let Some((len, rest)) = rest.split_first_chunk::<8>() else {
                    return false;
                };
                if u64::from_le_bytes(*len) != b.len() as u64 {
                    return false;
                }
                match rest.split_at_checked(b.len()) {
                    Some((bytes, rest)) if bytes == b => rest,
                    _ => return false,
                }
            }
            _ => return false,
        };
        at = rest;
    }
    at.is_empty()
}

/// Method and host strings already made on a stream, and the header values of its last message
/// that had some: a keepalive connection repeats them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names(Vec<Arc<str>>, Option<Arc<Values>>, Vec<u8>, Vec<u8>);

impl Names {
    /// The values of the headers the scan met (`raw`, by [`REPORTED`]'s slots) for a message of
    /// this kind and status, as [`values_of`] reads them from its head; shared with the last
    /// values kept if the bytes are the same (without reading them again).
    fn share_raw(
        &mut self,
        kind: Kind,
        status: Option<u16>,
        raw: [Option<&[u8]>; 4],
    ) -> Option<Arc<Values>> {
        let keep = match (kind, status) {
            (Kind::Request, _) => [true, false, false, false],
            (Kind::Response, Some(code)) if code >= 200 || code == 101 => {
                [false, true, true, code == 101]
            }
            (Kind::Response, _) => return None,
        };
        if raw.iter().zip(keep).all(|(r, k)| r.is_none() || !k) {
            return None; // nothing to read: the buffers are not touched
        }
        // an upstream names itself the same in every response: compared in place, the key is
        // written only when it changed
        if same_key(&self.2, &raw, keep) {
            return self.1.clone();
        }
        let key = &mut self.3;
        key.clear();
        for (r, k) in raw.iter().zip(keep) {
            match r.filter(|_| k) {
                None => key.push(0),
                Some(b) => {
                    key.push(1);
                    key.extend_from_slice(&(b.len() as u64).to_le_bytes());
                    key.extend_from_slice(b);
                }
            }
        }
        let text = |i: usize| {
            raw.get(i)
                .copied()
                .flatten()
                .filter(|_| keep.get(i) == Some(&true))
                .map(|b| latin1(b).to_string())
        };
        let v = Values {
            request_id: text(0),
            server: text(1),
            keep_alive: text(2).map(|v| v.to_lowercase()),
            upgrade: text(3).map(|v| v.to_lowercase()),
        };
        let shared = self.share(Some(v));
        self.2.clone_from(&self.3);
        shared
    }

    /// `v`, shared with the last values kept if they are the same.
    fn share(&mut self, v: Option<Values>) -> Option<Arc<Values>> {
        self.2.clear(); // the bytes they were read from are not known
        let v = v?;
        match &self.1 {
            Some(last) if **last == v => Some(Arc::clone(last)),
            _ => {
                let v = Arc::new(v);
                self.1 = Some(Arc::clone(&v));
                Some(v)
            }
        }
    }

    /// What a framer over the whole stream starts from: the names and values `framed` kept,
    /// in this one's buffers. Not the bytes [`Names::share_raw`] compares: that framer never
    /// calls it, and [`Names::share`] forgets them.
    fn start_from(&mut self, framed: &Names) {
        self.0.clone_from(&framed.0);
        self.1.clone_from(&framed.1);
        self.2.clear();
        self.3.clear();
    }

    /// An ASCII or Latin-1 name as a string, shared with earlier messages that had the same.
    fn get(&mut self, raw: &[u8]) -> Arc<str> {
        // only ASCII names are kept, so other bytes never match one
        if let Some(s) = self.0.iter().find(|s| s.as_bytes() == raw) {
            return Arc::clone(s);
        }
        let s = latin1(raw);
        if raw.is_ascii() && self.0.len() < 16 {
            self.0.push(Arc::clone(&s));
        }
        s
    }
}

/// The message whose head the scan read at `pos` (its place, length and header values left to
/// the caller), and how its body is delimited.
fn scanned(pos: i64, head: &Head<'_>, answers_head: bool, names: &mut Names) -> (Message, Body) {
    let [cl, te, conn, host] = head.values;
    let keep_alive = conn.is_some_and(|c| contains_ci(c, b"keep-alive"));
    // HTTP/1.0 closes unless it asks to keep alive
    let close = conn.is_some_and(|c| contains_ci(c, b"close")) || (head.v10 && !keep_alive);
    let chunked = te.is_some_and(|t| contains_ci(t, b"chunked"));
    let answers_head = head.status.is_some() && answers_head;
    let body = body_length(head.status, answers_head, chunked, cl);
    let (method, target, host) = match head.start {
        Some((m, t)) => {
            let host = match host {
                Some(h) if !h.is_empty() => Some(names.get(h)),
                _ => None,
            };
            (Some(names.get(m)), Some(latin1(t)), host)
        }
        None => (None, None, None),
    };
    let m = Message {
        offset: pos,
        ts_ns: 0,
        frame: 0,
        parsed: true,
        method,
        target,
        host,
        status: head.status,
        connection_close: close,
        length: None,
        values: None,
    };
    (m, body)
}

/// Where the walk of a chunked body stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkStep {
    /// At a chunk-size line.
    Size,
    /// At the line end after a chunk's data.
    DataEnd,
    /// At a trailer line, after the last chunk.
    Trailer,
}

/// Where framing a direction goes on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Resume {
    /// Nothing framed yet: at the stream's start.
    #[default]
    Start,
    /// The next message starts here.
    At(i64),
    /// Inside this message's chunked body (its head read by the scan), the walk at `at`.
    Chunked {
        message: Box<Slim>,
        at: i64,
        step: ChunkStep,
    },
    /// This message's body lasts until the connection closes: the last message.
    UntilClose(Box<Slim>),
    /// A 101 was framed: what follows is not HTTP/1.x.
    Stopped,
}

/// How far a direction was framed while its bytes arrived (see [`Framing::advance`]): the one
/// framer's state between the steps taken then and the rest, taken when the connection is
/// finished.
///
/// `repr(C)`: what a packet framed touches first, in the order it does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Framing {
    pub resume: Resume,
    /// Final (non-1xx) responses among `messages`.
    pub answered: usize,
    /// The messages framed so far, in order (their offsets and places as they were then).
    pub messages: Kept,
    names: Names,
    /// The client's first request head's header names (`batch::request_header_names`), when
    /// they were read before the stream's first bytes were dropped.
    pub head_names: Option<Option<String>>,
}

/// Messages framed while the bytes arrived, kept small until their connection is finished:
/// the fixed fields in a row each, the method, target and host one after another in a buffer.
///
/// Rows and strings are kept in chunks: the first grows as a `Vec` does, each later one is
/// allocated whole once the one before is full, and full ones are set aside. What is kept is
/// never moved, so a connection with many messages does not copy its (long cold) earlier rows
/// each time it grows, no more than a chunk stands unused, and a message framed touches only
/// the chunk being filled, as it would a plain `Vec`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kept {
    /// The chunk of rows being filled.
    rows: Vec<Slim>,
    /// The chunk of strings being filled: each message's are in one chunk.
    text: Vec<u8>,
    /// The full chunks before them, once there are any: most connections never fill one, and
    /// the connection table holds this struct inline.
    full: Option<Box<Full>>,
}

/// The chunks of a [`Kept`] that are full.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Full {
    rows: Vec<Vec<Slim>>,
    text: Vec<Vec<u8>>,
}

/// The rows a chunk of [`Kept`] holds.
const ROWS_CHUNK: usize = 32;
/// The bytes a chunk of [`Kept`]'s strings holds, unless one message's strings are more.
const TEXT_CHUNK: usize = 4096;

/// A message the scan read, kept small: its method, target and host are bytes of its
/// [`Kept`] buffer, as sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slim {
    offset: i64,
    /// The direction's data row (its packet) that brought its first byte, as the bytes stood
    /// when it was framed: the row has its time and frame, so the message need not.
    row: u64,
    /// `i64::MIN`: not known.
    length: i64,
    values: Option<Arc<Values>>,
    /// Where its strings start (the chunk << 32 | where in it), and their lengths
    /// (`u16::MAX`: none): a method is at most 32 bytes, a target 8192, a host shorter than a
    /// head.
    text: u64,
    lens: [u16; 3],
    /// The status (0: none), three digits, in the low bits; [`CLOSE`] and [`HEAD`] above: the
    /// row fits 48 bytes, and a connection holds one for every message framed.
    code: u16,
}

const NONE: u16 = u16::MAX;
const STATUS: u16 = 0x3FF;
/// "Connection: close", or HTTP/1.0 not asking keep-alive.
const CLOSE: u16 = 1 << 14;
/// A HEAD request.
const HEAD: u16 = 1 << 15;

impl Slim {
    fn status(&self) -> u16 {
        self.code & STATUS
    }
}

impl Kept {
    pub fn len(&self) -> usize {
        self.full_rows().len() * ROWS_CHUNK + self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.full_rows().is_empty()
    }

    fn full_rows(&self) -> &[Vec<Slim>] {
        self.full.as_deref().map_or(&[], |f| &f.rows)
    }

    fn full_text(&self) -> &[Vec<u8>] {
        self.full.as_deref().map_or(&[], |f| &f.text)
    }

    fn row(&self, i: usize) -> Option<&Slim> {
        match self.full_rows().get(i / ROWS_CHUNK) {
            Some(chunk) => chunk.get(i % ROWS_CHUNK),
            None => self
                .rows
                .get(i.checked_sub(self.full_rows().len() * ROWS_CHUNK)?),
        }
    }

    /// Where the strings of a message, `need` bytes, go: the chunk being filled unless they do
    /// not fit (it is then set aside for a new one); and that chunk's number.
    fn text_for(&mut self, need: usize) -> usize {
        if self.text.len().saturating_add(need) > self.text.capacity().max(TEXT_CHUNK) {
            // heads are at most `MAX_HEAD` bytes: so are a message's strings
            let next = Vec::with_capacity(need.max(TEXT_CHUNK));
            let full = std::mem::replace(&mut self.text, next);
            self.full.get_or_insert_with(Box::default).text.push(full);
        }
        self.full_text().len()
    }

    /// The chunk holding strings numbered `n`.
    fn text_chunk(&self, n: usize) -> Option<&[u8]> {
        match self.full_text().get(n) {
            Some(chunk) => Some(chunk),
            None => (n == self.full_text().len()).then_some(&self.text[..]),
        }
    }

    /// A message starting at `pos` whose head the scan read: its strings (as sent) go into the
    /// buffer now; the row is kept by [`Kept::push`] once its length is known.
    fn slim(&mut self, pos: i64, head: &Head<'_>) -> Slim {
        let (method, target) = match head.start {
            Some((m, t)) => (Some(m), Some(t)),
            None => (None, None),
        };
        let host = head.values[3].filter(|h| head.start.is_some() && !h.is_empty());
        // each shorter than a head
        let most = usize::from(NONE - 1);
        let strings = [method, target, host].map(|b| b.map(|b| &b[..b.len().min(most)]));
        let need = strings.iter().flatten().map(|b| b.len()).sum();
        let text = (self.text_for(need) as u64) << 32 | self.text.len() as u64;
        // grown once for the three, not up to once for each: as a Vec doubles, never beyond
        self.text.reserve(need);
        let mut lens = [NONE; 3];
        for (len, b) in lens.iter_mut().zip(strings) {
            if let Some(b) = b {
                *len = b.len() as u16;
                self.text.extend_from_slice(b);
            }
        }
        let conn = head.values[2];
        let keep_alive = conn.is_some_and(|c| contains_ci(c, b"keep-alive"));
        // HTTP/1.0 closes unless it asks to keep alive
        let close = conn.is_some_and(|c| contains_ci(c, b"close")) || (head.v10 && !keep_alive);
        Slim {
            offset: pos,
            row: u64::MAX,
            length: i64::MIN,
            values: None,
            text,
            lens,
            code: head.status.unwrap_or(0) & STATUS
                | if close { CLOSE } else { 0 }
                | if method == Some(b"HEAD") { HEAD } else { 0 },
        }
    }

    fn push(&mut self, m: Slim) {
        if self.rows.len() == ROWS_CHUNK {
            let next = Vec::with_capacity(ROWS_CHUNK);
            let full = std::mem::replace(&mut self.rows, next);
            self.full.get_or_insert_with(Box::default).rows.push(full);
        }
        self.rows.push(m);
    }

    /// Whether request `i` is a HEAD.
    pub fn is_head(&self, i: usize) -> bool {
        self.row(i).is_some_and(|r| r.code & HEAD != 0)
    }

    /// The `which`th (method 0, target 1, host 2) string of message `i`.
    fn string(&self, i: usize, which: usize) -> Option<&[u8]> {
        self.string_of(self.row(i)?, which)
    }

    fn string_of(&self, r: &Slim, which: usize) -> Option<&[u8]> {
        let chunk = self.text_chunk(usize::try_from(r.text >> 32).ok()?)?;
        let mut at = usize::try_from(r.text & u64::from(u32::MAX)).ok()?;
        for (k, &len) in r.lens.iter().enumerate() {
            if len == NONE {
                if k == which {
                    return None;
                }
                continue;
            }
            let bytes = chunk.get(at..at.checked_add(usize::from(len))?)?;
            if k == which {
                return Some(bytes);
            }
            at += usize::from(len);
        }
        None
    }

    pub fn method(&self, i: usize) -> Option<&[u8]> {
        self.string(i, 0)
    }

    /// The data row of its direction (the packet) that brought message `i`'s first byte: its
    /// time is when the message was sent.
    pub fn stamp(&self, i: usize) -> Option<u64> {
        self.row(i).map(|r| r.row)
    }

    pub fn status(&self, i: usize) -> Option<u16> {
        self.row(i)
            .and_then(|r| (r.status() != 0).then_some(r.status()))
    }

    /// Message `i` as framed; its method and host shared through `names`, its time and frame
    /// left 0 (its row, [`Kept::stamp`], has them).
    pub fn get(&self, i: usize, names: &mut Names) -> Option<Message> {
        Some(self.message(self.row(i)?, names))
    }

    /// Every message kept, in order.
    fn slims(&self) -> impl Iterator<Item = &Slim> {
        self.full_rows().iter().flatten().chain(&self.rows)
    }

    /// The method, target and host of a kept message ([`Kept::string_of`] of each), found in
    /// one walk of its lengths.
    fn strings_of(&self, r: &Slim) -> [Option<&[u8]>; 3] {
        let mut out = [None; 3];
        let chunk = usize::try_from(r.text >> 32)
            .ok()
            .and_then(|n| self.text_chunk(n));
        let (Some(chunk), Ok(mut at)) = (chunk, usize::try_from(r.text & u64::from(u32::MAX)))
        else {
            return out;
        };
        for (slot, &len) in out.iter_mut().zip(&r.lens) {
            if len == NONE {
                continue;
            }
            // a string not there: nor are those after it, as `string_of` finds them
            let Some(bytes) = at
                .checked_add(usize::from(len))
                .and_then(|end| chunk.get(at..end))
            else {
                break;
            };
            *slot = Some(bytes);
            at += usize::from(len);
        }
        out
    }

    /// A kept message as framed (its strings as the framer makes them).
    fn message(&self, r: &Slim, names: &mut Names) -> Message {
        let [method, target, host] = self.strings_of(r);
        Message {
            offset: r.offset,
            // placed by the caller: its row ([`Kept::stamp`]) has them
            ts_ns: 0,
            frame: 0,
            parsed: true,
            method: method.map(|b| names.get(b)),
            target: target.map(latin1),
            host: host.map(|b| names.get(b)),
            status: (r.status() != 0).then_some(r.status()),
            connection_close: r.code & CLOSE != 0,
            length: (r.length != i64::MIN).then_some(r.length),
            values: r.values.clone(),
        }
    }

    fn shift(&mut self, by: i64) {
        let full = self
            .full
            .as_deref_mut()
            .map_or(&mut [][..], |f| &mut f.rows[..]);
        for r in full.iter_mut().flatten().chain(&mut self.rows) {
            r.offset = r.offset.saturating_add(by);
        }
    }

    /// Loads where the next message's row and strings will go.
    fn prefetch_ends(&self) {
        crate::reassembly::prefetch(self.rows.as_ptr().wrapping_add(self.rows.len()), 64);
        crate::reassembly::prefetch(self.text.as_ptr().wrapping_add(self.text.len()), 64);
    }

    /// Loads the latest message's row.
    pub(crate) fn prefetch_last(&self) {
        let last = self.rows.len().saturating_sub(1);
        crate::reassembly::prefetch(self.rows.as_ptr().wrapping_add(last), 64);
    }

    pub fn shrink_to_fit(&mut self) {
        self.rows.shrink_to_fit();
        self.text.shrink_to_fit();
    }
}

/// What [`Framing::advance`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advance {
    /// Framed as far as the bytes given allow.
    Going,
    /// The next step needs what only the whole stream tells (the general parser: bursts, the
    /// stream's end, holes): framing goes on from here once the connection is finished.
    Lost,
}

impl Framing {
    /// The first stream offset framing may still read: bytes before it are done with.
    pub fn needs_from(&self) -> i64 {
        match &self.resume {
            Resume::Start => i64::MIN,
            &Resume::At(p) => p,
            Resume::Chunked { at, .. } => *at,
            Resume::UntilClose(_) | Resume::Stopped => i64::MAX,
        }
    }

    /// Whether a chunked body is being walked.
    pub fn in_chunks(&self) -> bool {
        matches!(self.resume, Resume::Chunked { .. })
    }

    /// Loads what framing the next message writes to.
    pub(crate) fn prefetch_buffers(&self) {
        self.messages.prefetch_ends();
        crate::reassembly::prefetch(self.names.2.as_ptr(), 64);
        crate::reassembly::prefetch(self.names.3.as_ptr(), 64);
    }

    /// Every offset by `by` (where the stream's offsets start became known).
    pub fn shift(&mut self, by: i64) {
        if by == 0 {
            return;
        }
        self.messages.shift(by);
        match &mut self.resume {
            Resume::Start | Resume::Stopped => {}
            Resume::At(p) => *p = p.saturating_add(by),
            Resume::Chunked { message, at, .. } => {
                message.offset = message.offset.saturating_add(by);
                *at = at.saturating_add(by);
            }
            Resume::UntilClose(m) => m.offset = m.offset.saturating_add(by),
        }
    }

    /// Frame what `bytes` allow, the steps whose outcome no later byte can change: `bytes`
    /// are the stream from offset `at` to where it ends so far, contiguous and every byte
    /// captured, and none before `at` is needed (`at <= needs_from()`). A head the scan reads
    /// (and so the general parser would read the same) with a Content-Length, a
    /// chunked body walked chunk by chunk, a body until close, a 101, blank lines: what the
    /// framer over the whole stream does there. Anything else is [`Advance::Lost`]. `requests`
    /// are the requests framed so far (for responses to HEAD: a response waits for its
    /// request); `place` gives the data row (the packet) that carried an offset.
    pub fn advance(
        &mut self,
        kind: Kind,
        at: i64,
        bytes: &[u8],
        requests: &Kept,
        place: impl Fn(i64) -> u64,
    ) -> Advance {
        let end = at.saturating_add(bytes.len() as i64);
        if let Resume::Start = self.resume {
            self.resume = Resume::At(at);
        }
        loop {
            let from = self.needs_from();
            if from >= end {
                return Advance::Going;
            }
            let Some(window) = usize::try_from(from.wrapping_sub(at))
                .ok()
                .filter(|_| from >= at)
                .and_then(|k| bytes.get(k..))
            else {
                return Advance::Lost;
            };
            let resume = std::mem::take(&mut self.resume);
            let (next, done) = match resume {
                Resume::At(pos) => match self.head_at(kind, pos, window, requests, &place) {
                    Ok(step) => step,
                    Err(a) => {
                        self.resume = Resume::At(pos);
                        return a;
                    }
                },
                Resume::Chunked {
                    message,
                    at: c,
                    step,
                } => match chunk_step(c, step, window) {
                    Ok(Ok((c, step))) => (
                        Resume::Chunked {
                            message,
                            at: c,
                            step,
                        },
                        None,
                    ),
                    Ok(Err(stop)) => {
                        let mut m = *message;
                        m.length = stop.saturating_sub(m.offset);
                        (Resume::At(stop), Some(m))
                    }
                    Err(a) => {
                        self.resume = Resume::Chunked {
                            message,
                            at: c,
                            step,
                        };
                        return a;
                    }
                },
                other => {
                    self.resume = other;
                    return Advance::Going;
                }
            };
            self.resume = next;
            if let Some(m) = done {
                self.answered += usize::from(m.status() >= 200);
                self.messages.push(m);
            }
        }
    }

    /// One step at `pos`, where a message (or blank lines) starts: `window` the bytes from
    /// there. The step, and the message it completed (placed at the packet that carried its
    /// first byte); or what to answer, having waited.
    fn head_at(
        &mut self,
        kind: Kind,
        pos: i64,
        window: &[u8],
        requests: &Kept,
        place: &impl Fn(i64) -> u64,
    ) -> Result<(Resume, Option<Slim>), Advance> {
        let window = &window[..window.len().min(MAX_HEAD)];
        // more bytes may still come before the decision can be made, within a head's limit
        let wait = || {
            if window.len() >= MAX_HEAD {
                Advance::Lost
            } else {
                Advance::Going
            }
        };
        let peek = &window[..window.len().min(PEEK)];
        let blank = peek
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        if blank > 0 {
            // RFC 9112 §2.2, as the general parser skips them: up to PEEK at once
            if blank == peek.len() && peek.len() < PEEK {
                return Err(Advance::Going);
            }
            return Ok((Resume::At(pos.saturating_add(blank as i64)), None));
        }
        let answers_head = match kind {
            Kind::Request => false,
            Kind::Response if self.answered < requests.len() => requests.is_head(self.answered),
            Kind::Response => return Err(wait()),
        };
        let Some(head) = scan_head(kind, window) else {
            // a head the scan does not read once it is all here: the general parser's
            return Err(if head_of(window).is_some() {
                Advance::Lost
            } else {
                wait()
            });
        };
        // the scan read it, so the general parser reads it the same (`settled`): whatever the
        // rest of the stream, framing it now is right
        let hlen = head.hlen;
        let chunked = head.values[1].is_some_and(|t| contains_ci(t, b"chunked"));
        let answers_head = head.status.is_some() && answers_head;
        let body = body_length(head.status, answers_head, chunked, head.values[0]);
        if body == Body::Unreadable {
            return Err(Advance::Lost);
        }
        let mut m = self.messages.slim(pos, &head);
        m.row = place(pos);
        m.values = self.names.share_raw(kind, head.status, head.reported);
        let after = pos.saturating_add(hlen);
        Ok(match body {
            Body::Length(b) => {
                m.length = hlen.saturating_add(b);
                let next = if m.status() == 101 {
                    Resume::Stopped
                } else {
                    Resume::At(after.saturating_add(b))
                };
                (next, Some(m))
            }
            Body::Chunked => (
                Resume::Chunked {
                    message: Box::new(m),
                    at: after,
                    step: ChunkStep::Size,
                },
                None,
            ),
            Body::UntilClose => (Resume::UntilClose(Box::new(m)), None),
            Body::Unreadable => return Err(Advance::Lost),
        })
    }
}

/// One step of a chunked body's walk at `c` over `window` (the bytes from `c`, as far as they
/// go so far), as `Framer::chunked_end_flat` takes it: where the walk goes on, or where the
/// body ends; or what to answer when the walk must wait for more bytes or is lost.
#[allow(clippy::type_complexity)]
fn chunk_step(
    c: i64,
    step: ChunkStep,
    window: &[u8],
) -> Result<Result<(i64, ChunkStep), i64>, Advance> {
    // a line not ended within `limit` bytes: lost once that many are here
    let line = |limit: usize| match memchr(b'\n', &window[..window.len().min(limit)]) {
        Some(nl) => Ok(nl),
        None if window.len() >= limit => Err(Advance::Lost),
        None => Err(Advance::Going),
    };
    let on = |n: usize| c.checked_add(n as i64).ok_or(Advance::Lost);
    match step {
        ChunkStep::Size => {
            let nl = line(1024)?;
            let size = chunk_size(&window[..nl]).ok_or(Advance::Lost)?;
            let c = on(nl + 1)?;
            if size == 0 {
                return Ok(Ok((c, ChunkStep::Trailer)));
            }
            let c = i64::try_from(size)
                .ok()
                .and_then(|s| c.checked_add(s))
                .ok_or(Advance::Lost)?;
            Ok(Ok((c, ChunkStep::DataEnd)))
        }
        ChunkStep::DataEnd => match window {
            [b'\r', b'\n', ..] => Ok(Ok((on(2)?, ChunkStep::Size))),
            [b'\n', ..] => Ok(Ok((on(1)?, ChunkStep::Size))),
            [] | [b'\r'] => Err(Advance::Going),
            _ => Err(Advance::Lost),
        },
        ChunkStep::Trailer => {
            let nl = line(8192)?;
            let c = on(nl + 1)?;
            if strip(&window[..nl]).is_empty() {
                Ok(Err(c))
            } else {
                Ok(Ok((c, ChunkStep::Trailer)))
            }
        }
    }
}

enum Bursts<'a> {
    Given(&'a [i64]),
    /// Computed on first use from the other direction: only needed when framing is lost.
    From(&'a Stream, OnceCell<Vec<i64>>),
}

/// Walks one direction's stream message by message, falling back to bursts when blind.
struct Framer<'a> {
    kind: Kind,
    midstream: bool,
    s: View<'a>,
    bursts: Bursts<'a>,
    messages: Vec<Message>,
    notes: Vec<Note>,
    names: Names,
}

/// What a step of the quick path did.
enum Quick {
    /// It framed one message: go on here; whether it was a final (non-1xx) response.
    Took(i64, bool),
    /// It framed a 101 response: what follows is not HTTP/1.x.
    Stop,
    /// Not a plain message: the general parser decides.
    No,
}

/// What the quick path reads from a head: the start line, the framing headers' values (in
/// [`FRAMING`]'s order) and the head's length.
#[derive(Debug, PartialEq, Eq)]
struct Head<'b> {
    start: Option<(&'b [u8], &'b [u8])>,
    status: Option<u16>,
    v10: bool,
    values: [Option<&'b [u8]>; 4],
    hlen: i64,
    /// The values of the headers labelling reports ([`REPORTED`]), as the scan met them.
    reported: [Option<&'b [u8]>; 4],
}

impl<'b> Head<'b> {
    fn new(start: Option<(&'b [u8], &'b [u8])>, status: Option<u16>, v10: bool) -> Self {
        Head {
            start,
            status,
            v10,
            values: [None; 4],
            hlen: 0,
            reported: [None; 4],
        }
    }
}

/// The headers labelling reports, as a header line the scan reads starts (with the colon), and
/// their slot in [`Head::reported`]: the request id (the first of three names), `Server`,
/// `Keep-Alive`, `Upgrade`. On a head the scan reads (no white space before a colon), the first such line
/// is the one [`header_values`] finds.
const REPORTED: [(&[u8], usize); 6] = [
    (b"x-request-id:", 0),
    (b"x-correlation-id:", 0),
    (b"request-id:", 0),
    (b"server:", 1),
    (b"keep-alive:", 2),
    (b"upgrade:", 3),
];

/// The line's value into its [`REPORTED`] slot, if the line is one of those headers and the
/// slot is still free. No name is a prefix of another, so a line is at most one of them, and
/// its first and third letters tell which one it may be: one comparison a line, not one a name.
fn note_reported<'b>(slots: &mut [Option<&'b [u8]>; 4], line: &'b [u8]) {
    let lower = |i: usize| line.get(i).map(|&c| c | 0x20);
    let which = match lower(0) {
        Some(b'x') => match lower(2) {
            Some(b'r') => 0,
            Some(b'c') => 1,
            _ => return,
        },
        Some(b'r') => 2,
        Some(b's') => 3,
        Some(b'k') => 4,
        Some(b'u') => 5,
        _ => return,
    };
    let Some(&(name, slot)) = REPORTED.get(which) else {
        return;
    };
    if let Some(free @ None) = slots.get_mut(slot) {
        if starts_with_ci(line, name) {
            *free = line.get(name.len()..).map(strip);
        }
    }
}

/// A framing header name, compared eight bytes at a time: `starts_with_ci` without a loop.
struct CiName {
    /// (offset, lower-case bytes, the 0x20 bit of each letter): a line byte `c` matches where
    /// `c | bit == lower`, which for a letter is either case and otherwise the byte itself.
    words: [(usize, u64, u64); 3],
    n: usize,
}

impl CiName {
    const fn new(name: &[u8]) -> Self {
        // made in constants: a name this cannot hold fails the build, not a run
        assert!(name.len() >= 8 && name.len() <= 24);
        let mut words = [(0, 0, 0); 3];
        let mut n = 0;
        let mut at = 0;
        while at < name.len() {
            // the last word ends with the name, overlapping the one before
            let off = if at + 8 > name.len() {
                name.len().saturating_sub(8)
            } else {
                at
            };
            let (mut lower, mut bits, mut i) = (0u64, 0u64, 0);
            while i < 8 && off + i < name.len() {
                let c = name[off + i];
                lower |= (c as u64) << (8 * i);
                if c.is_ascii_lowercase() {
                    bits |= 0x20 << (8 * i);
                }
                i += 1;
            }
            words[n] = (off, lower, bits);
            n += 1;
            at += 8;
        }
        CiName { words, n }
    }

    /// Whether `line` starts with the name, letters in any case: `starts_with_ci`.
    fn at_start(&self, line: &[u8]) -> bool {
        let mut ok = true;
        for &(off, lower, bits) in &self.words[..self.n] {
            let word = line
                .get(off..off + 8)
                .and_then(|w| <[u8; 8]>::try_from(w).ok())
                .map(u64::from_le_bytes);
            ok &= word.is_some_and(|w| w | bits == lower);
        }
        ok
    }
}

const CONTENT_LENGTH: CiName = CiName::new(FRAMING[0]);
const TRANSFER_ENCODING: CiName = CiName::new(FRAMING[1]);
const CONNECTION: CiName = CiName::new(FRAMING[2]);

impl<'a> Framer<'a> {
    fn new(kind: Kind, stream: &'a Stream, bursts: Bursts<'a>, midstream: bool) -> Self {
        Self::reusing(kind, stream, bursts, midstream, Reuse::default())
    }

    /// A framer writing into `reuse`'s buffers, emptied first: what a caller framing one
    /// connection after another keeps, so that each is not allocated (and freed) again.
    fn reusing(
        kind: Kind,
        stream: &'a Stream,
        bursts: Bursts<'a>,
        midstream: bool,
        reuse: Reuse,
    ) -> Self {
        let s = View::new(stream);
        let Reuse {
            mut messages,
            mut notes,
            names,
        } = reuse;
        messages.clear();
        notes.clear();
        // at most about a message a piece on a keepalive connection: sized by the piece count
        // (never by what the bytes say), and capped, as one piece can be a long body's
        messages.reserve(s.n.min(1024));
        Framer {
            kind,
            midstream,
            messages,
            s,
            bursts,
            notes,
            names,
        }
    }

    fn into_reuse(self) -> Reuse {
        Reuse {
            messages: self.messages,
            notes: self.notes,
            names: self.names,
        }
    }

    fn bursts(&self) -> &[i64] {
        match &self.bursts {
            Bursts::Given(b) => b,
            Bursts::From(other, cell) => cell.get_or_init(|| burst_starts(self.s.st, other)),
        }
    }

    fn name(&mut self, raw: &[u8]) -> Arc<str> {
        self.names.get(raw)
    }

    /// `m` placed at the packet that carried its first byte, and kept.
    fn placed(&mut self, mut m: Message) {
        (m.ts_ns, m.frame) = self.s.place(m.offset);
        self.messages.push(m);
    }

    /// The header values labelling needs from the head of the message at `pos`.
    fn values(&mut self, pos: i64, status: Option<u16>) -> Option<Arc<Values>> {
        let v = values_of(self.kind, self.s.read(pos, MAX_HEAD), status);
        self.names.share(v)
    }

    fn note(&mut self, pos: i64, what: String) {
        let (ts_ns, frame) = self.s.place(pos);
        self.notes.push(Note {
            offset: pos,
            ts_ns,
            frame,
            what,
        });
    }

    /// Where the next burst starts after `pos` (the stream end if none).
    fn next_burst(&self, pos: i64) -> i64 {
        let b = self.bursts();
        b.get(b.partition_point(|&x| x <= pos))
            .copied()
            .unwrap_or(self.s.end)
    }

    /// Record a message that cannot be read at `pos`; resume at the next burst.
    fn blind(&mut self, pos: i64) -> i64 {
        let (ts_ns, frame) = self.s.place(pos);
        self.messages.push(Message::blind(pos, ts_ns, frame));
        self.next_burst(pos)
    }

    /// Bytes from `pos` on, enough to hold the message head if the capture has it. Starts
    /// small and grows: nearly every head fits the first read.
    fn read_head(&self, pos: i64) -> &'a [u8] {
        if let Some(head) = self.s.head_at(pos) {
            return head;
        }
        let mut limit = 2048;
        loop {
            let buf = self.s.read(pos, limit);
            if buf.len() < limit || limit >= MAX_HEAD || head_of(buf).is_some() {
                return buf;
            }
            if limit >= MAX_LINE && memchr(b'\n', &buf[..buf.len().min(MAX_LINE)]).is_none() {
                return buf; // no start line is that long: do not read 64 KiB of garbage per burst
            }
            limit = if limit < MAX_LINE { MAX_LINE } else { MAX_HEAD };
        }
    }

    /// Whether `buf`, read from `pos`, stops at bytes the capture never saw (a hole) rather
    /// than at the end of the stream or at bytes a snaplen left out.
    fn cut_by_hole(&self, pos: i64, buf: &[u8]) -> bool {
        let stop = pos.saturating_add(buf.len() as i64);
        stop < self.s.end && self.s.index(stop).is_none()
    }

    /// What the stream is instead of HTTP/1.x, when a message should start at `pos`.
    fn other_protocol(&self, pos: i64, peek: &[u8]) -> Option<&'static str> {
        if let [0x14..=0x17, 0x03, 0x00..=0x04, ..] = peek {
            return Some("TLS (HTTPS) — the payload is encrypted; its messages cannot be read");
        }
        let at_start =
            self.messages.is_empty() && !self.midstream && self.s.starts().first() == Some(&pos);
        let settings = matches!(peek, [0, _, _, 4, 0 | 1, 0, 0, 0, 0, ..]);
        if peek.starts_with(H2_PREFACE) || (at_start && self.kind == Kind::Response && settings) {
            return Some("HTTP/2 — kaflow reads HTTP/1.x; its messages are not read");
        }
        None
    }

    /// Whether a start line may begin with `peek` (necessary, cheap to check).
    fn may_begin(&self, peek: &[u8]) -> bool {
        match self.kind {
            Kind::Request => {
                method_len(peek).is_some_and(|m| m == peek.len() || peek.get(m) == Some(&b' '))
            }
            Kind::Response => peek.starts_with(b"HTTP/") || b"HTTP/".starts_with(peek),
        }
    }

    /// Whether `buf` may be the beginning of a start line the capture cut off.
    fn could_start(&self, buf: &[u8]) -> bool {
        match self.kind {
            Kind::Response => buf.starts_with(b"HTTP/") || b"HTTP/".starts_with(buf),
            Kind::Request => {
                buf.first().is_some_and(u8::is_ascii_uppercase)
                    && buf.iter().all(|&b| (32..127).contains(&b))
            }
        }
    }

    /// The end of a chunked body starting at `pos`; why it cannot be followed otherwise.
    fn chunked_end(&self, pos: i64) -> Result<i64, ChunkStop> {
        self.chunked_from(pos, ChunkStep::Size)
    }

    /// The end of a chunked body whose walk stands at `pos`, at `step`.
    fn chunked_from(&self, pos: i64, step: ChunkStep) -> Result<i64, ChunkStop> {
        match self.s.base {
            Some(base) => self.chunked_end_flat(pos, base, step),
            None => self.chunked_end_pieces(pos, step),
        }
    }

    fn chunked_end_flat(&self, pos: i64, base: i64, mut step: ChunkStep) -> Result<i64, ChunkStop> {
        let data = self.s.data;
        let behind = pos.checked_sub(base).ok_or(ChunkStop::Missing)?;
        let mut k = usize::try_from(behind).map_err(|_| ChunkStop::Missing)?;
        let at = |k: usize, what: &[u8]| data.get(k..).is_some_and(|d| d.starts_with(what));
        loop {
            match step {
                ChunkStep::Size => {
                    let window = data.get(k..).ok_or(ChunkStop::Missing)?;
                    let nl = memchr(b'\n', &window[..window.len().min(1024)])
                        .ok_or(ChunkStop::Missing)?;
                    let size = chunk_size(&window[..nl]).ok_or(ChunkStop::BadSize)?;
                    k += nl + 1;
                    if size == 0 {
                        if at(k, b"\r\n") {
                            return Ok(k as i64 + 2 + base); // no trailers: the usual end
                        }
                        step = ChunkStep::Trailer;
                    } else {
                        // past the end the stream has no more bytes: cut short
                        k = usize::try_from(size)
                            .ok()
                            .and_then(|s| k.checked_add(s))
                            .ok_or(ChunkStop::Missing)?;
                        step = ChunkStep::DataEnd;
                    }
                }
                ChunkStep::DataEnd => {
                    if at(k, b"\r\n") {
                        k += 2;
                    } else if at(k, b"\n") {
                        k += 1;
                    } else {
                        return Err(ChunkStop::Missing);
                    }
                    step = ChunkStep::Size;
                }
                // a trailer section, ending with an empty line
                ChunkStep::Trailer => {
                    let window = data.get(k..).ok_or(ChunkStop::Missing)?;
                    let tn = memchr(b'\n', &window[..window.len().min(8192)])
                        .ok_or(ChunkStop::Missing)?;
                    let blank = strip(&window[..tn]).is_empty();
                    k += tn + 1;
                    if blank {
                        return Ok(k as i64 + base);
                    }
                }
            }
        }
    }

    fn chunked_end_pieces(&self, mut pos: i64, mut step: ChunkStep) -> Result<i64, ChunkStop> {
        loop {
            match step {
                ChunkStep::Size => {
                    let line = self.s.read(pos, 1024);
                    let nl = memchr(b'\n', line).ok_or(ChunkStop::Missing)?;
                    let size = chunk_size(&line[..nl]).ok_or(ChunkStop::BadSize)?;
                    pos = pos.checked_add(nl as i64 + 1).ok_or(ChunkStop::Missing)?;
                    if size == 0 {
                        step = ChunkStep::Trailer;
                    } else {
                        pos = i64::try_from(size)
                            .ok()
                            .and_then(|s| pos.checked_add(s))
                            .ok_or(ChunkStop::Missing)?;
                        step = ChunkStep::DataEnd;
                    }
                }
                ChunkStep::DataEnd => {
                    let crlf = self.s.read(pos, 2);
                    let skip = if crlf.starts_with(b"\r\n") {
                        2
                    } else if crlf.starts_with(b"\n") {
                        1
                    } else if crlf.is_empty() && self.s.index(pos).is_some() {
                        2 // bytes present but not captured: trust the framing
                    } else {
                        return Err(ChunkStop::Missing);
                    };
                    pos = pos.checked_add(skip).ok_or(ChunkStop::Missing)?;
                    step = ChunkStep::Size;
                }
                ChunkStep::Trailer => {
                    let t = self.s.read(pos, 8192);
                    let tn = memchr(b'\n', t).ok_or(ChunkStop::Missing)?;
                    pos = pos.checked_add(tn as i64 + 1).ok_or(ChunkStop::Missing)?;
                    if strip(&t[..tn]).is_empty() {
                        return Ok(pos);
                    }
                }
            }
        }
    }

    /// Frame the rest of the stream, from where framing while the bytes arrived stopped
    /// (`framed`; from the start if it did not). `methods` are the requests' methods, for
    /// responses to HEAD.
    fn run(&mut self, is_head: impl Fn(usize) -> bool, framed: &Framing) {
        self.names.start_from(&framed.names);
        self.messages.reserve(framed.messages.len());
        for r in framed.messages.slims() {
            // placed again in the stream as it is now (a retransmission stamped earlier, written
            // later, may have brought the byte first)
            let m = framed.messages.message(r, &mut self.names);
            self.placed(m);
        }
        // final (non-1xx) responses seen, to pick the matching request's method
        let mut answered = framed.answered;
        let mut pos = match &framed.resume {
            Resume::Start => {
                let mut pos = self.s.starts().first().copied().unwrap_or(0);
                if !self.midstream && pos < 0 {
                    // Offset 0 is the first byte after the SYN: a byte before it is a keepalive
                    // probe's (one old byte at snd_nxt - 1 on a connection that has sent nothing
                    // yet), not data.
                    pos = if self.s.index(0).is_some() {
                        0
                    } else {
                        self.s.next_start(-1).unwrap_or(self.s.end)
                    };
                }
                pos
            }
            &Resume::At(pos) => pos,
            Resume::Stopped => return,
            Resume::UntilClose(m) => {
                let mut m = framed.messages.message(m, &mut self.names);
                m.length = Some(self.s.end.saturating_sub(m.offset));
                self.placed(m);
                return;
            }
            Resume::Chunked { message, at, step } => {
                // what the general parser would do with the head, which the scan read
                let mut m = framed.messages.message(message, &mut self.names);
                let p = m.offset;
                let next = match self.chunked_from(*at, *step) {
                    Ok(stop) => {
                        m.length = Some(stop.saturating_sub(p));
                        stop
                    }
                    Err(ChunkStop::BadSize) => {
                        self.note(p, "unreadable chunk size".to_string());
                        self.next_burst(p)
                    }
                    Err(ChunkStop::Missing) => self.next_burst(p),
                };
                answered += usize::from(m.status.is_some_and(|c| c >= 200));
                self.placed(m);
                next.max(p.saturating_add(1))
            }
        };
        while pos < self.s.end {
            let answers_head = is_head(answered);
            let quick = match self.s.base {
                Some(_) => self.quick(pos, answers_head),
                None => Quick::No,
            };
            let step = match quick {
                Quick::Took(next, fin) => Some((next, fin)),
                Quick::Stop => None,
                Quick::No => self.general(pos, answers_head),
            };
            let Some((next, final_response)) = step else {
                break;
            };
            answered += usize::from(final_response);
            pos = next;
        }
    }

    /// One plain message of a contiguous stream: start line and header lines ending in CRLF, no
    /// header name written oddly, framing headers once each. Its header lookup is the
    /// reference's quick path's (see the module doc), which on the messages it takes agrees with
    /// the general parser except for header lines with white space before the name.
    fn quick(&mut self, pos: i64, answers_head: bool) -> Quick {
        // The scan reads most heads; what it is not sure of, the careful reading decides.
        let head = match self.scan(pos) {
            Some(head) => head,
            None => match self.quick_head(pos) {
                Some(head) => head,
                None => return Quick::No,
            },
        };
        self.take(pos, head, answers_head)
    }

    /// The bytes from `pos` on, at most [`MAX_HEAD`] of them, when the stream is contiguous.
    fn window(&self, pos: i64) -> Option<&'a [u8]> {
        let k = usize::try_from(pos.checked_sub(self.s.base?)?).ok()?;
        let rest = self.s.data.get(k..)?;
        rest.get(..rest.len().min(MAX_HEAD))
    }

    /// [`Framer::quick_head`]'s answer in one forward pass, line by line, for the usual head;
    /// None whenever anything is unusual (a bare LF, white space before a colon or in the
    /// target, a framing header twice...), and then `quick_head` reads it. Each check below is
    /// one `quick_head` makes, or a stricter one, so where both answer they agree.
    fn scan(&self, pos: i64) -> Option<Head<'a>> {
        scan_head(self.kind, self.window(pos)?)
    }

    /// The reference's quick path's reading of the head at `pos`, None where it declines.
    fn quick_head(&self, pos: i64) -> Option<Head<'a>> {
        let window = self.window(pos)?;
        let nl = memchr(b'\n', window)?;
        let line = &window[..nl];
        if !line.ends_with(b"\r") {
            return None;
        }
        let mut head = match self.kind {
            Kind::Request => {
                if window.starts_with(H2_PREFACE) {
                    return None; // it parses as a request line: the general loop names it
                }
                Head::new(Some(request_line(line)?), None, false)
            }
            Kind::Response => {
                let (ten, code) = status_line(line)?;
                Head::new(None, Some(code), ten)
            }
        };
        // the header lines with the CRLF before each: "\r\nName: value\r\n...\r\n"
        // From the CRLF ending the start line to the first CRLF CRLF, line by line: a bare LF
        // leaves the message to the general parser.
        let from = nl - 1;
        let lines = &window[from..];
        let mut counts = [0u32; 4];
        let mut line_start = 0; // of the current line in `lines`: the first is the start line's
        let mut body_at = None;
        for i in memchr::memchr_iter(b'\n', lines) {
            if i == 0 || lines[i - 1] != b'\r' {
                return None;
            }
            let line = &lines[line_start..i - 1];
            if line.is_empty() && line_start > 0 {
                body_at = Some(from + i - 3);
                break;
            }
            if matches!(line.first(), Some(b' ' | b'\t')) {
                return None; // folded or indented: the general parser decides
            }
            // a framing name's first letter, any case: most lines are none of them
            if matches!(line.first(), Some(b'c' | b'C' | b't' | b'T' | b'h' | b'H')) {
                for (n, name) in FRAMING.iter().enumerate() {
                    if starts_with_ci(line, name) {
                        counts[n] += 1;
                        head.values[n] = Some(strip(&line[name.len()..]));
                    }
                }
            }
            line_start = i + 1;
        }
        let body_at = body_at?;
        // white space before a colon anywhere in the header lines: the general parser decides
        let block = &window[from..body_at + 2];
        if SPACE_COLON.find(block).is_some() || TAB_COLON.find(block).is_some() {
            return None;
        }
        // a second Host only matters on requests
        let hosts_twice = self.kind == Kind::Request && counts[3] > 1;
        if counts[..3].iter().any(|&c| c > 1) || hosts_twice {
            return None;
        }
        head.hlen = (body_at + 4) as i64;
        Some(head)
    }

    /// Frame the message at `pos` whose head the quick path read.
    fn take(&mut self, pos: i64, head: Head<'a>, answers_head: bool) -> Quick {
        let hlen = head.hlen;
        let (mut m, body) = scanned(pos, &head, answers_head, &mut self.names);
        let end = self.s.end;
        let (length, next) = match body {
            Body::Chunked => match self.chunked_end(pos.saturating_add(hlen)) {
                Ok(stop) => (stop.saturating_sub(pos), stop),
                Err(_) => return Quick::No, // the general loop says why and goes on
            },
            Body::UntilClose => (end.saturating_sub(pos), end),
            Body::Unreadable => return Quick::No,
            Body::Length(b) => (hlen + b, pos.saturating_add(hlen + b)),
        };
        m.length = Some(length);
        m.values = self.values(pos, m.status);
        let status = m.status;
        self.placed(m);
        match status {
            Some(101) => Quick::Stop, // switched protocols: no more HTTP/1.x
            Some(code) => Quick::Took(next, code >= 200),
            None => Quick::Took(next, false),
        }
    }

    /// One step of the general parser at `pos`: where to go on and whether it framed a final
    /// (non-1xx) response, or None to stop framing.
    fn general(&mut self, pos: i64, answers_head: bool) -> Option<(i64, bool)> {
        let kind = self.kind;
        let s_end = self.s.end;
        if self.s.index(pos).is_none() {
            // in a gap the capture never saw
            let nxt = self.s.next_start(pos)?;
            let gap = nxt.saturating_sub(pos);
            let plural = if gap != 1 { "s" } else { "" };
            self.note(
                pos,
                format!(
                    "{} byte{plural} missing from the capture",
                    commas(i128::from(gap))
                ),
            );
            return Some((nxt, false));
        }
        let peek = self.s.read(pos, PEEK);
        let blank = peek
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        if blank > 0 {
            // RFC 9112 §2.2: empty lines before a message are ignored (a stray CRLF after a
            // body is common), not a message of their own
            return Some((pos.saturating_add(blank as i64), false));
        }
        if let Some(other) = self.other_protocol(pos, peek) {
            // Not HTTP/1.x at all: say so once, keep one unreadable message for what was sent,
            // and leave the rest of the stream unread.
            self.note(pos, format!("not an HTTP/1.x {}: {other}", kind.as_str()));
            self.blind(pos);
            return None;
        }
        let buf = if self.may_begin(peek) {
            self.read_head(pos)
        } else {
            peek
        };
        if buf.is_empty() {
            return Some((self.blind(pos), false));
        }
        let nl = memchr(b'\n', buf);
        let first = nl.map_or(&b""[..], |n| &buf[..n]);
        let start = match kind {
            Kind::Request => request_line(first).map(|(m, t)| (Some((m, t)), false, None)),
            Kind::Response => status_line(first).map(|(v10, code)| (None, v10, Some(code))),
        };
        // a request line that is not HTTP/1.x but still says what was asked: kept, and said
        let mut loose = None;
        let start = start.or_else(|| {
            let (m, t, nine) = loose_request_line(first).filter(|_| kind == Kind::Request)?;
            loose = Some(nine);
            Some((Some((m, t)), false, None))
        });
        let Some((request, v10, status)) = start else {
            if self.midstream && self.messages.is_empty() && self.s.starts().first() == Some(&pos) {
                // the capture began inside a message: its start was never seen
                self.note(pos, "capture began mid-message".to_string());
                return Some((self.next_burst(pos), false));
            }
            let short = nl.is_none() && self.could_start(buf);
            if short && s_end.saturating_sub(pos) <= buf.len() as i64 {
                self.note(pos, "stream ends inside a message's first line".to_string());
                self.blind(pos);
                return None;
            }
            if short && self.cut_by_hole(pos, buf) {
                let nxt = self.blind(pos);
                self.note(pos, cut_note("start line", nxt.saturating_sub(pos)));
                return Some((nxt, false));
            }
            let shown = if nl.is_some() { first } else { buf };
            let shown = bytes_repr(&shown[..shown.len().min(40)]);
            self.note(
                pos,
                format!("not an HTTP/1.x {} line: {shown}", kind.as_str()),
            );
            return Some((self.blind(pos), false));
        };
        let (ts_ns, frame) = self.s.place(pos);
        if let (Some(nine), Some((m, t))) = (loose, request) {
            let asked = format!("{} {}", latin1(m), latin1(t));
            if nine {
                // HTTP/0.9: the line is the whole request, and the connection closes after
                // the answer
                self.note(
                    pos,
                    format!("HTTP/0.9 request (no version), read as {asked}"),
                );
                let len = first.len() as i64 + 1;
                let (method, target) = (Some(self.name(m)), Some(latin1(t)));
                let values = self.values(pos, None);
                self.messages.push(Message {
                    offset: pos,
                    ts_ns,
                    frame,
                    parsed: true,
                    method,
                    target,
                    host: None,
                    status: None,
                    connection_close: true,
                    length: Some(len),
                    values,
                });
                return Some((pos.saturating_add(len), false));
            }
            let shown = bytes_repr(&first[..first.len().min(40)]);
            self.note(
                pos,
                format!("malformed request line, read as {asked}: {shown}"),
            );
        }
        let head = head_of(buf);
        let hdrs = head
            .map(|(_, block)| Headers::parse(block))
            .unwrap_or_default();
        if hdrs.indented_first {
            self.note(
                pos,
                "header line beginning with white space after the start line (not read)"
                    .to_string(),
            );
        }
        if hdrs.folded {
            self.note(
                pos,
                "header folded over lines (obsolete line folding, unfolded)".to_string(),
            );
        }
        // HTTP/1.0 closes unless it asks to keep alive
        let close = hdrs.close || (v10 && !hdrs.keep_alive);
        let (method, target, host) = match request {
            Some((m, t)) => {
                let host = match &hdrs.host {
                    Some(h) if !h.is_empty() => Some(self.name(h)),
                    _ => None,
                };
                (Some(self.name(m)), Some(latin1(t)), host)
            }
            None => (None, None, None),
        };
        let mut length = None;
        let next = match head {
            Some((hlen, _)) => {
                let hlen = hlen as i64;
                let answers_head = status.is_some() && answers_head;
                match body_length(
                    status,
                    answers_head,
                    hdrs.chunked,
                    hdrs.content_length.as_deref(),
                ) {
                    Body::Chunked => match self.chunked_end(pos.saturating_add(hlen)) {
                        Ok(stop) => {
                            length = Some(stop.saturating_sub(pos));
                            stop
                        }
                        Err(ChunkStop::BadSize) => {
                            self.note(pos, "unreadable chunk size".to_string());
                            self.next_burst(pos)
                        }
                        Err(ChunkStop::Missing) => self.next_burst(pos),
                    },
                    Body::UntilClose => {
                        length = Some(s_end.saturating_sub(pos));
                        s_end
                    }
                    Body::Unreadable => {
                        self.note(pos, "unreadable Content-Length".to_string());
                        self.next_burst(pos)
                    }
                    Body::Length(b) => {
                        length = Some(hlen + b);
                        pos.saturating_add(hlen + b)
                    }
                }
            }
            None => {
                let nxt = self.next_burst(pos);
                if buf.len() >= MAX_HEAD {
                    self.note(pos, format!("header block longer than {MAX_HEAD} bytes"));
                } else if self.cut_by_hole(pos, buf) {
                    // a hole, not a snaplen, cut the head: say what reading skips, never silently
                    self.note(pos, cut_note("head", nxt.saturating_sub(pos)));
                }
                nxt
            }
        };
        let values = self.values(pos, status);
        self.messages.push(Message {
            offset: pos,
            ts_ns,
            frame,
            parsed: true,
            method,
            target,
            host,
            status,
            connection_close: close,
            length,
            values,
        });
        if status == Some(101) {
            return None; // the connection switched protocols: what follows is not HTTP/1.x
        }
        Some((
            next.max(pos.saturating_add(1)),
            status.is_some_and(|c| c >= 200),
        ))
    }
}

/// The messages of one direction's stream, in order, and what could not be read, with the
/// bursts taken from `other`, the opposite direction, only if the framing needs them.
/// `methods` are the requests' methods (for responses to HEAD); `midstream`: the capture began
/// mid-connection, so unreadable leading bytes are the tail of an earlier message.
pub fn frame_rows(
    kind: Kind,
    stream: &Stream,
    other: &Stream,
    methods: &[Option<&str>],
    midstream: bool,
) -> (Vec<Message>, Vec<Note>) {
    let mut f = Framer::new(
        kind,
        stream,
        Bursts::From(other, OnceCell::new()),
        midstream,
    );
    f.run(head_among(methods), &stream.framed);
    (f.messages, f.notes)
}

/// Whether the `i`th of `methods` is HEAD.
fn head_among<'m>(methods: &'m [Option<&str>]) -> impl Fn(usize) -> bool + 'm {
    |i| methods.get(i).copied().flatten() == Some("HEAD")
}

/// The buffers framing a direction fills ([`frame_rows_in`]), kept by a caller labelling one
/// connection after another: its messages and notes are what the last call found.
#[derive(Debug, Default)]
pub struct Reuse {
    pub messages: Vec<Message>,
    pub notes: Vec<Note>,
    names: Names,
}

impl Reuse {
    /// Buffers a connection with many messages grew are not kept for the next ones, which
    /// mostly have few: a long-lived thread does not hold the largest it ever met.
    pub fn trim(&mut self) {
        keep_small(&mut self.messages);
        keep_small(&mut self.notes);
    }
}

/// The most messages (and notes, and rows of labelling's own) a buffer reused between
/// connections keeps room for: what [`Framer`] reserves for a stream of many pieces, and as
/// much again.
const REUSE_MESSAGES: usize = 2048;

/// `v`, reused for the next connection, let go if a connection grew it past
/// [`REUSE_MESSAGES`].
pub(crate) fn keep_small<T>(v: &mut Vec<T>) {
    if v.capacity() > REUSE_MESSAGES {
        *v = Vec::new();
    }
}

/// [`frame_rows`] into `reuse`'s buffers (emptied first): `is_head(i)` says whether the `i`th
/// request's method was HEAD.
pub fn frame_rows_in(
    kind: Kind,
    stream: &Stream,
    other: &Stream,
    is_head: impl Fn(usize) -> bool,
    midstream: bool,
    reuse: &mut Reuse,
) {
    let mut f = Framer::reusing(
        kind,
        stream,
        Bursts::From(other, OnceCell::new()),
        midstream,
        std::mem::take(reuse),
    );
    f.run(is_head, &stream.framed);
    *reuse = f.into_reuse();
}

/// [`frame_rows`] with the bursts given.
pub fn frame_with_bursts(
    kind: Kind,
    stream: &Stream,
    bursts: &[i64],
    methods: &[Option<&str>],
    midstream: bool,
) -> (Vec<Message>, Vec<Note>) {
    let mut f = Framer::new(kind, stream, Bursts::Given(bursts), midstream);
    f.run(head_among(methods), &stream.framed);
    (f.messages, f.notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST_LINES: &[&[u8]] = &[
        b"GET /a HTTP/1.1\r\n",
        b"POST /api/v1/x?q=1 HTTP/1.0\r\n",
        b"get /a HTTP/1.1\r\n",
        b"GET /a b HTTP/1.1\r\n",
        b"GET  /a HTTP/1.1\r\n",
        b"GET /a\tb HTTP/1.1\r\n",
        b"GET /\xe9\x01 HTTP/1.1\r\n",
        b"GET /a HTTP/1.1\n",
        b"GET /a HTTP/1.1\r\r\n",
        b"GET /a HTTP/x.1\r\n",
        b"GET /a HTTP/1.1 \r\n",
        b"GET / HTTP/1.1\r\n",
        b"PRI * HTTP/2.0\r\n",
        b"MMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMM / HTTP/1.1\r\n",
        b"M-1_X /a HTTP/9.9\r\n",
    ];
    const STATUS_LINES: &[&[u8]] = &[
        b"HTTP/1.1 200 OK\r\n",
        b"HTTP/1.0 204\r\n",
        b"HTTP/1.0 200 OK\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n",
        b"HTTP/1.1 20 OK\r\n",
        b"HTTP/1.1 200 O\rK\r\n",
        b"http/1.1 200 OK\r\n",
        b"HTTP/1.1 304 Not Modified\n",
        b"HTTP/1.1 100 Continue\r\n",
        b"HTTP/1.1 404X\r\n",
    ];
    const HEADER_LINES: &[&[u8]] = &[
        b"Host: a\r\n",
        b"host:b \r\n",
        b"HOST :c\r\n",
        b" Host: d\r\n",
        b"Host:\r\n",
        b"Content-Length: 5\r\n",
        b"content-length:7, 8\r\n",
        b"CONTENT-LENGTH: 12\r\n",
        b"Content-Length: 1234567890123456789\r\n",
        b"Content-Length: x\r\n",
        b"Content-Length : 3\r\n",
        b"Content-Length\t: 3\r\n",
        b"Content-Lengthx: 1\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"transfer-encoding: gzip, Chunked\r\n",
        b"Transfer-Encoding:\x0bchunked\x0c\r\n",
        b"Connection: close\r\n",
        b"Connection: keep-alive\r\n",
        b"connection\x0b: close\r\n",
        b"Conn: x\r\n",
        b"Hosts: y\r\n",
        b"X: a :b\r\n",
        b"X: a\t:b\r\n",
        b"Y: v\n",
        b"Z: w\r\r\n",
        b"Date: Sun, 24 Nov 2024 10:00:00 GMT\r\n",
        b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\r\n",
        b":\r\n",
        b" :x\r\n",
        b"\r\n",
        b"\xff\xfe: \x80\r\n",
        b"C\r\n",
        b"t\r\n",
        b"Host\r: e\r\n",
        b"Content-Length\x0c: 4\r\n",
        b"Server: x\r\n",
        b"X-Request-ID: 7\r\n",
        b"Keep-Alive: timeout=5\r\n",
        b"Upgrade: websocket\r\n",
    ];

    /// Random heads, most of them odd (xorshift: the same ones every run).
    struct Heads(u64);

    impl Heads {
        fn next(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }

        /// A request or a status line, up to six header lines, maybe the blank line, and the
        /// start of a body.
        fn head(&mut self) -> (Kind, Vec<u8>) {
            let kind = if self.next(2) == 0 {
                Kind::Request
            } else {
                Kind::Response
            };
            let starts = match kind {
                Kind::Request => REQUEST_LINES,
                Kind::Response => STATUS_LINES,
            };
            let mut data = starts[self.next(starts.len())].to_vec();
            for _ in 0..self.next(7) {
                data.extend_from_slice(HEADER_LINES[self.next(HEADER_LINES.len())]);
            }
            match self.next(4) {
                0 => {}
                1 => data.extend_from_slice(b"\n"),
                _ => data.extend_from_slice(b"\r\n"),
            }
            data.extend_from_slice(b"0\r\n\r\nbody");
            (kind, data)
        }
    }

    /// Random heads, most of them odd, framed by the scan and by the careful reading: where the
    /// scan answers, the careful reading answers the same.
    /// Header lines a value is reported from, in any case, and lines that only look like them.
    const REPORTED_LINES: &[&[u8]] = &[
        b"X-Request-ID: a",
        b"x-request-id:b ",
        b"X-REQUEST-ID:",
        b"X-Request-Id : c",
        b"X-Requestid: d",
        b"X-Correlation-ID: e",
        b"x-correlation-id:f",
        b"X-Real-IP: 1.2.3.4",
        b"Request-Id: g",
        b"request-id:",
        b"Requestid: h",
        b"Server: nginx",
        b"server:",
        b"Serve: x",
        b"S",
        b"Keep-Alive: timeout=5",
        b"keep-alive:",
        b"Upgrade: websocket",
        b"UPGRADE:h2c",
        b"User-Agent: x",
        b"xr",
        b"",
    ];

    #[test]
    fn kept_messages_read_back_across_chunks() {
        let mut kept = Kept::default();
        let mut sent = Vec::new();
        for i in 0..(3 * ROWS_CHUNK + 5) {
            let method: &[u8] = if i % 7 == 0 { b"HEAD" } else { b"GET" };
            // now and then a target longer than a chunk of strings
            let n = if i % 11 == 0 {
                TEXT_CHUNK + i
            } else {
                1 + i % 50
            };
            let target = vec![b'a' + (i % 26) as u8; n];
            let host = format!("h{i}");
            let mut head = Head::new(Some((method, &target)), None, false);
            head.values[3] = (i % 5 != 0).then_some(host.as_bytes());
            let mut m = kept.slim(i as i64 * 10, &head);
            m.row = i as u64;
            kept.push(m);
            sent.push((
                method.to_vec(),
                target.clone(),
                head.values[3].map(<[u8]>::to_vec),
            ));
        }
        assert_eq!(kept.len(), sent.len());
        let mut names = Names::default();
        for (i, (method, target, host)) in sent.iter().enumerate() {
            let m = kept.get(i, &mut names).unwrap();
            assert_eq!(m.method.as_deref().map(str::as_bytes), Some(&method[..]));
            assert_eq!(m.target.as_deref().map(str::as_bytes), Some(&target[..]));
            assert_eq!(m.host.as_deref().map(str::as_bytes), host.as_deref());
            assert_eq!((m.offset, kept.stamp(i)), (i as i64 * 10, Some(i as u64)));
            assert_eq!(kept.is_head(i), method == b"HEAD");
        }
        assert!(kept.get(sent.len(), &mut names).is_none());
    }

    #[test]
    fn a_blank_before_a_colon_is_found_wherever_it_is() {
        let naive = |s: &[u8]| {
            s.windows(2)
                .any(|w| w[1] == b':' && matches!(w[0], b' ' | b'\t' | b'\r' | 0x0b | 0x0c))
        };
        for len in 0..100 {
            for at in 0..len {
                for blank in [
                    b' ', b'\t', b'\r', 0x0b, 0x0c, b'\n', b'a', 0x08, 0x0e, b':',
                ] {
                    let mut s = vec![b'x'; len];
                    s[at] = blank;
                    if at + 1 < len {
                        s[at + 1] = b':';
                    }
                    assert_eq!(blank_before_colon(&s), naive(&s), "{s:?}");
                }
            }
        }
    }

    #[test]
    fn a_reported_header_is_found_by_its_letters_as_by_every_name() {
        // the first line naming any of a slot's headers fills it, the names tried in turn
        let by_every_name = |lines: &[&'static [u8]]| {
            let mut slots: [Option<&[u8]>; 4] = [None; 4];
            for line in lines {
                for &(name, slot) in &REPORTED {
                    if slots[slot].is_none() && starts_with_ci(line, name) {
                        slots[slot] = Some(strip(&line[name.len()..]));
                    }
                }
            }
            slots
        };
        for &a in REPORTED_LINES {
            for &b in REPORTED_LINES {
                for &c in REPORTED_LINES {
                    let lines = [a, b, c];
                    let mut slots = [None; 4];
                    for line in lines {
                        note_reported(&mut slots, line);
                    }
                    assert_eq!(slots, by_every_name(&lines), "{lines:?}");
                }
            }
        }
    }

    #[test]
    fn a_key_compared_in_place_is_the_key_written() {
        let vals: [Option<&[u8]>; 5] = [None, Some(b""), Some(b"a"), Some(b"ab"), Some(b"b")];
        let keeps = [[true, false, false, false], [false, true, true, true]];
        let mut names = Names::default();
        let mut all = vec![];
        for keep in keeps {
            for a in vals {
                for b in vals {
                    all.push((keep, [a, b, b, a]));
                }
            }
        }
        for &(keep, raw) in &all {
            // the key share_raw writes, by hand
            let mut key = vec![];
            for (r, k) in raw.iter().zip(keep) {
                match r.filter(|_| k) {
                    None => key.push(0),
                    Some(b) => {
                        key.push(1);
                        key.extend_from_slice(&(b.len() as u64).to_le_bytes());
                        key.extend_from_slice(b);
                    }
                }
            }
            for &(keep2, raw2) in &all {
                let same = raw
                    .iter()
                    .zip(keep)
                    .map(|(r, k)| r.filter(|_| k))
                    .eq(raw2.iter().zip(keep2).map(|(r, k)| r.filter(|_| k)));
                assert_eq!(same_key(&key, &raw2, keep2), same, "{raw:?} {raw2:?}");
            }
            assert!(!same_key(&key[..key.len() - 1], &raw, keep));
            assert!(!same_key(&[], &raw, keep));
            // and share_raw shares exactly when the values are the same as the last
            let status = if keep[0] { None } else { Some(200) };
            let kind = if keep[0] {
                Kind::Request
            } else {
                Kind::Response
            };
            let a = names.share_raw(kind, status, raw);
            let b = names.share_raw(kind, status, raw);
            assert_eq!(a, b);
        }
    }

    #[test]
    fn scan_agrees_with_the_careful_quick_path() {
        let mut heads = Heads(0x9e37_79b9_7f4a_7c15);
        let (mut answered, mut total) = (0, 0);
        for _ in 0..200_000 {
            let (kind, mut data) = heads.head();
            let cut = data.len() - heads.next(4).min(data.len());
            data.truncate(cut);
            let len = data.len() as u32;
            let st = Stream {
                starts: vec![0],
                lengths: vec![len],
                ts: vec![1],
                frames: vec![1],
                captured: vec![len],
                data_starts: vec![0],
                data,
                ..Stream::default()
            };
            let f = Framer::new(kind, &st, Bursts::Given(&[]), false);
            total += 1;
            if let Some(mut head) = f.scan(0) {
                answered += 1;
                head.reported = [None; 4]; // what only the scan notes
                assert_eq!(
                    Some(head),
                    f.quick_head(0),
                    "{:?}",
                    String::from_utf8_lossy(&st.data)
                );
            }
        }
        assert!(answered > total / 20, "{answered} of {total}");
    }

    /// Where the scan reads a head, the general parser (what frames a stream with a hole, or
    /// cut by a snaplen, anywhere) frames the same message: framing done while the bytes
    /// arrive stays right whatever the rest of the stream turns out to be.
    #[test]
    fn scan_agrees_with_the_general_parser() {
        let mut heads = Heads(0x2545_f491_4f6c_dd1d);
        let (mut compared, mut total) = (0, 0);
        for _ in 0..200_000 {
            let (kind, data) = heads.head();
            let len = data.len() as u32;
            let whole = Stream {
                starts: vec![0],
                lengths: vec![len],
                ts: vec![1],
                frames: vec![1],
                captured: vec![len],
                data_starts: vec![0],
                data: data.clone(),
                ..Stream::default()
            };
            // the same bytes, then a hole and one more byte: no longer one contiguous run
            let holed = Stream {
                starts: vec![0, i64::from(len) + 1000],
                lengths: vec![len, 1],
                ts: vec![1, 2],
                frames: vec![1, 2],
                captured: vec![len, 1],
                data_starts: vec![0, u64::from(len)],
                data: [&data[..], b"x"].concat(),
                ..Stream::default()
            };
            total += 1;
            let f = Framer::new(kind, &whole, Bursts::Given(&[]), false);
            let Some(h) = f.scan(0) else {
                continue;
            };
            assert!(settled(&data[..h.hlen as usize]));
            compared += 1;
            let head = heads.next(2) == 0;
            let methods = [Some(if head { "HEAD" } else { "GET" })];
            let (a, _) = frame_with_bursts(kind, &whole, &[], &methods, false);
            let (b, _) = frame_with_bursts(kind, &holed, &[], &methods, false);
            let (Some(a), Some(b)) = (a.first(), b.first()) else {
                panic!("no message: {:?}", String::from_utf8_lossy(&data));
            };
            // a body "until close" ends where the stream does, which the hole moved
            if a.length == Some(i64::from(len)) {
                assert_eq!(b.length, Some(i64::from(len) + 1001));
                assert_eq!(
                    Message {
                        length: a.length,
                        ..b.clone()
                    },
                    *a
                );
            } else {
                assert_eq!(a, b, "{:?}", String::from_utf8_lossy(&data));
            }
        }
        assert!(compared > total / 20, "{compared} of {total}");
    }
}
