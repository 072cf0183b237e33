//! The record walk for classic pcap: one link type, one timestamp unit, fixed record headers.

use super::link::{lookup, LinkType};
use super::{
    prefetch_to, Sink, Walk, MAX_RECORD_BYTES, NS, PREFETCH_AHEAD, SNAPLEN_FLOOR, SNAPLEN_SLACK,
};
use crate::pytext::commas;

/// What the file header's magic says: byte order, ns per fraction unit, record header size.
pub(crate) fn magic(head: &[u8]) -> Option<(bool, i64, usize)> {
    match head.get(..4)? {
        b"\xd4\xc3\xb2\xa1" => Some((true, 1000, 16)),
        b"\xa1\xb2\xc3\xd4" => Some((false, 1000, 16)),
        b"\x4d\x3c\xb2\xa1" => Some((true, 1, 16)),
        b"\xa1\xb2\x3c\x4d" => Some((false, 1, 16)),
        // Kuznetzov's patched libpcap: 8 more bytes per record (ifindex, protocol, pkt_type, pad).
        b"\x34\xcd\xb2\xa1" => Some((true, 1000, 24)),
        b"\xa1\xb2\xcd\x34" => Some((false, 1000, 24)),
        _ => None,
    }
}

#[inline]
pub(crate) fn u32_at(b: &[u8], at: usize, little: bool) -> u32 {
    match b.get(at..at + 4) {
        Some(&[w, x, y, z]) if little => u32::from_le_bytes([w, x, y, z]),
        Some(&[w, x, y, z]) => u32::from_be_bytes([w, x, y, z]),
        _ => 0,
    }
}

pub(crate) struct PcapWalker {
    little: bool,
    frac_ns: i64,
    rec_len: usize,
    link: Option<&'static LinkType>,
    pub(crate) limit: u64,
}

impl PcapWalker {
    pub(crate) fn new(little: bool, frac_ns: i64, rec_len: usize, link: u32, snaplen: u32) -> Self {
        let limit = MAX_RECORD_BYTES.min((snaplen as u64).max(SNAPLEN_FLOOR) * SNAPLEN_SLACK);
        PcapWalker {
            little,
            frac_ns,
            rec_len,
            link: lookup(link),
            limit,
        }
    }

    /// Walks the records of `buf[..n]` (whole ones only) into `sink`, as one run.
    pub(crate) fn walk(&self, buf: &[u8], n: usize, sink: &mut Sink) -> Walk {
        let walk = self.walk_records(buf, n, sink);
        sink.end_run();
        walk
    }

    fn walk_records(&self, buf: &[u8], n: usize, sink: &mut Sink) -> Walk {
        let mut walk = Walk::default();
        let rec_len = self.rec_len;
        let little = self.little;
        let mut off = 0usize;
        let mut ahead = 0usize;
        // The hot loop: one record header per packet, decoded while its bytes are in cache.
        while off + rec_len <= n {
            prefetch_to(buf, &mut ahead, off + PREFETCH_AHEAD);
            let caplen = u32_at(buf, off + 8, little) as u64;
            if caplen > self.limit {
                walk.bad = Some((
                    off,
                    format!(
                        "claims a {}-byte packet (the limit is {})",
                        commas(caplen as i128),
                        commas(self.limit as i128)
                    ),
                ));
                walk.consumed = off;
                return walk;
            }
            let next = off + rec_len + caplen as usize;
            if next > n {
                // The last record runs past the window: keep it for the next one.
                walk.consumed = off;
                walk.need = next - off;
                return walk;
            }
            let secs = u32_at(buf, off, little) as i64;
            let frac = u32_at(buf, off + 4, little) as i64;
            let ts_ns = secs * NS + frac * self.frac_ns;
            sink.record(
                buf,
                off + rec_len,
                caplen as usize,
                ts_ns,
                self.link,
                little,
            );
            off = next;
        }
        walk.consumed = off;
        walk
    }
}
