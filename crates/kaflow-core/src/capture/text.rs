//! The guess at what a non-capture is, and OS errors worded as Python words them.

/// Python's `str(OSError)` for an errno: `[Errno 5] Input/output error`.
pub(crate) fn os_error(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => format!("[Errno {code}] {}", strerror(e)),
        None => e.to_string(),
    }
}

/// Python's `e.strerror`: the C library's text, without Rust's " (os error N)".
pub(crate) fn strerror(e: &std::io::Error) -> String {
    let text = e.to_string();
    match (e.raw_os_error(), text.rfind(" (os error ")) {
        (Some(_), Some(at)) => text[..at].to_string(),
        _ => text,
    }
}

/// A guess at what a non-capture file is, for the error message (reader.py `_looks_like`).
pub(crate) fn looks_like(head: &[u8]) -> &'static str {
    if head.starts_with(b"\x7fELF") {
        return "an executable program (ELF)";
    }
    if head.starts_with(b"snoop\x00") {
        return "a Solaris snoop capture \u{2014} convert it with `editcap -F pcap`";
    }
    if head.starts_with(b"GMBU") {
        return "a Microsoft Network Monitor capture \u{2014} convert it with `editcap -F pcap`";
    }
    if head.get(257..262) == Some(b"ustar".as_slice()) {
        return "a tar archive \u{2014} extract the capture from it";
    }
    if head.starts_with(b"%PDF") {
        return "a PDF document";
    }
    let sample = &head[..head.len().min(2048)];
    let printable = sample
        .iter()
        .filter(|&&c| matches!(c, 9 | 10 | 13) || (32..127).contains(&c) || c >= 0x80)
        .count();
    if sample.contains(&0) || (printable as f64) < 0.95 * (sample.len() as f64) {
        return "binary data of an unknown kind";
    }
    let skip = sample
        .iter()
        .take_while(|c| matches!(c, 0xef | 0xbb | 0xbf | b' ' | b'\t' | b'\r' | b'\n'))
        .count();
    let text = &sample[skip..];
    let lower: Vec<u8> = text.iter().take(64).map(u8::to_ascii_lowercase).collect();
    if text.starts_with(b"#separator") {
        return "a Zeek log";
    }
    if text.starts_with(b"{") || text.starts_with(b"[") {
        return "JSON";
    }
    if lower.starts_with(b"<!doctype html") || lower.starts_with(b"<html") {
        return "an HTML page \u{2014} a download link that served a web page?";
    }
    if text.starts_with(b"<") {
        return "XML";
    }
    if tcpdump_text(sample) {
        return "text \u{2014} tcpdump's printed output?";
    }
    "text"
}

/// reader.py's `_TCPDUMP_TEXT` regex (MULTILINE `search`), by hand: no regex crate for one
/// pattern. Every repetition in it is followed by a byte its class excludes, so matching the
/// maximal run at each step is what the backtracking regex does too.
fn tcpdump_text(sample: &[u8]) -> bool {
    let mut line = 0;
    loop {
        let rest = &sample[line..];
        if rest.starts_with(b"reading from file ") || timestamp_line(rest) {
            return true;
        }
        match memchr::memchr(b'\n', rest) {
            Some(i) => line += i + 1,
            None => return false,
        }
    }
}

fn run(s: &[u8], at: usize, class: impl Fn(u8) -> bool) -> usize {
    s.get(at..)
        .map_or(0, |t| t.iter().take_while(|&&c| class(c)).count())
}

fn digit(c: u8) -> bool {
    c.is_ascii_digit()
}

fn timestamp_line(s: &[u8]) -> bool {
    let at = |i: usize| s.get(i).copied();
    let lead = run(s, 0, digit);
    // \d{2}:\d{2}:\d{2}\.\d{6,9}
    let mut end = None;
    if lead == 2
        && at(2) == Some(b':')
        && run(s, 3, digit) == 2
        && at(5) == Some(b':')
        && run(s, 6, digit) == 2
        && at(8) == Some(b'.')
    {
        let frac = run(s, 9, digit);
        if (6..=9).contains(&frac) {
            end = Some(9 + frac);
        }
    }
    // \d{9,10}\.\d{6,9}
    if end.is_none() && (9..=10).contains(&lead) && at(lead) == Some(b'.') {
        let frac = run(s, lead + 1, digit);
        if (6..=9).contains(&frac) {
            end = Some(lead + 1 + frac);
        }
    }
    // \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d+
    if end.is_none()
        && lead == 4
        && at(4) == Some(b'-')
        && run(s, 5, digit) == 2
        && at(7) == Some(b'-')
        && run(s, 8, digit) == 2
        && at(10) == Some(b' ')
        && run(s, 11, digit) == 2
        && at(13) == Some(b':')
        && run(s, 14, digit) == 2
        && at(16) == Some(b':')
        && run(s, 17, digit) == 2
        && at(19) == Some(b'.')
    {
        let frac = run(s, 20, digit);
        if frac >= 1 {
            end = Some(20 + frac);
        }
    }
    let Some(e) = end else { return false };
    if at(e) != Some(b' ') {
        return false;
    }
    let t = &s[e + 1..];
    if t.starts_with(b"IP ") || t.starts_with(b"IP6 ") || t.starts_with(b"ARP") {
        return true;
    }
    let word = run(t, 0, |c| {
        c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-')
    });
    if word > 0 && t.get(word) == Some(&b' ') {
        let dir = &t[word + 1..];
        if [&b"In "[..], b"Out ", b"P ", b"B ", b"M "]
            .iter()
            .any(|d| dir.starts_with(d))
        {
            return true;
        }
    }
    let word = run(t, 0, |c| {
        !matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
    });
    word > 0 && t.get(word..).is_some_and(|r| r.starts_with(b" > "))
}
