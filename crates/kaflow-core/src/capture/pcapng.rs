//! The block walk for pcapng: sections (each with its byte order), interfaces, packet blocks.

use super::link::{lookup, LinkType};
use super::pcap::u32_at;
use super::{
    prefetch_to, Sink, Walk, MAX_RECORD_BYTES, NS, PREFETCH_AHEAD, SNAPLEN_FLOOR, SNAPLEN_SLACK,
};
use crate::pytext::commas;

pub(crate) const SHB: u32 = 0x0A0D0D0A;
const IDB: u32 = 1;
const PB: u32 = 2; // obsolete Packet Block
const SPB: u32 = 3;
const EPB: u32 = 6;
const OPT_TSRESOL: u16 = 9;
const OPT_TSOFFSET: u16 = 14;
// if_tsoffset beyond this many seconds (~136 years) is corruption, and would overflow i64 ns.
const MAX_TSOFFSET_S: i64 = 1 << 32;

/// The byte order a Section Header Block's magic says, `Some(true)` for little-endian.
pub(crate) fn byte_order(bom: Option<&[u8]>) -> Option<bool> {
    match bom? {
        b"\x4d\x3c\x2b\x1a" => Some(true),
        b"\x1a\x2b\x3c\x4d" => Some(false),
        _ => None,
    }
}

fn is_packet(btype: u32) -> bool {
    matches!(btype, PB | SPB | EPB)
}

#[derive(Clone, Debug)]
pub(crate) struct Interface {
    pub(crate) link: u32,
    lt: Option<&'static LinkType>,
    snaplen: u32,
    tsresol: u32, // the exponent of the if_tsresol option
    binary: bool, // 2**-tsresol instead of 10**-tsresol
    offset_ns: i64,
    max_raw: u64,
}

impl Interface {
    pub(crate) fn resolution_ns(&self) -> i64 {
        if self.binary {
            // Python's round(): half to even.
            return ((NS as f64) / ((1u64 << self.tsresol) as f64))
                .round_ties_even()
                .max(1.0) as i64;
        }
        if self.tsresol <= 9 {
            10i64.pow(9 - self.tsresol)
        } else {
            1
        }
    }

    /// Exact integer conversion of a raw 64-bit timestamp (wrapping like numpy on garbage,
    /// which only a Simple Packet Block's unused fields can be: its time is replaced).
    fn to_ns(&self, raw: u64) -> i64 {
        let ns = if self.binary {
            let mut k = self.tsresol;
            let secs = (raw >> k) as i64;
            let mut frac = raw & ((1u64 << k) - 1);
            if k > 33 {
                // Keep frac * 1e9 inside 64 bits; sub-nanosecond bits carry nothing.
                frac >>= k - 33;
                k = 33;
            }
            secs.wrapping_mul(NS)
                .wrapping_add(((frac.wrapping_mul(NS as u64)) >> k) as i64)
        } else if self.tsresol <= 9 {
            (raw as i64).wrapping_mul(10i64.pow(9 - self.tsresol))
        } else {
            (raw / 10u64.pow(self.tsresol - 9)) as i64
        };
        ns.wrapping_add(self.offset_ns)
    }

    /// The largest raw timestamp whose nanoseconds (offset included) fit in an i64.
    fn compute_max_raw(&self) -> u64 {
        let budget = (i64::MAX - self.offset_ns.max(0)) as u128;
        let cap = u64::MAX as u128;
        let v = if self.binary {
            ((budget / NS as u128 - 1) << self.tsresol).min(cap)
        } else if self.tsresol <= 9 {
            budget / 10u128.pow(9 - self.tsresol)
        } else {
            (budget * 10u128.pow(self.tsresol - 9)).min(cap)
        };
        v as u64
    }
}

struct Section {
    little: bool,
    interfaces: Vec<Interface>,
}

pub(crate) struct PcapngWalker {
    section: Section,
    last_ts: i64, // a Simple Packet Block has no timestamp: it inherits this
    max_snaplen: u32,
    pub(crate) interfaces_seen: Vec<Interface>,
}

impl PcapngWalker {
    pub(crate) fn new() -> Self {
        PcapngWalker {
            section: Section {
                little: true,
                interfaces: Vec::new(),
            },
            last_ts: 0,
            max_snaplen: 0,
            interfaces_seen: Vec::new(),
        }
    }

    fn caplen_limit(&self) -> i64 {
        MAX_RECORD_BYTES.min((self.max_snaplen as u64).max(SNAPLEN_FLOOR) * SNAPLEN_SLACK) as i64
    }

    /// Walks the blocks of `buf[..n]` into `sink`, one run per stretch of packet blocks
    /// (skips are counted run by run, as Python does).
    pub(crate) fn walk(&mut self, buf: &[u8], n: usize, sink: &mut Sink) -> Walk {
        let mut walk = Walk::default();
        let mut off = 0usize;
        let mut ahead = 0usize;
        loop {
            let little = self.section.little;
            let limit = self.caplen_limit();
            // The hot loop: packet blocks, each checked and decoded as it is found. Python
            // first finds the run of packet blocks, drops a last one that runs past the window
            // and then checks the run in order; doing it block by block finds the same first
            // damage and keeps each block's bytes in cache while it is used.
            let mut incomplete = false;
            while off + 8 <= n {
                let btype = u32_at(buf, off, little);
                let blen = u32_at(buf, off + 4, little) as usize;
                if !is_packet(btype) || blen < 16 {
                    break;
                }
                if off + blen > n {
                    incomplete = true;
                    break;
                }
                prefetch_to(buf, &mut ahead, off + PREFETCH_AHEAD);
                if !self.take_block(buf, off, blen, limit, sink, &mut walk) {
                    sink.end_run();
                    return walk;
                }
                off += blen;
            }
            sink.end_run();
            walk.consumed = off;
            if off + 8 > n {
                return walk;
            }
            let btype = u32_at(buf, off, little);
            let mut blen = u32_at(buf, off + 4, little) as usize;
            let mut new_order = None;
            if btype == SHB {
                if off + 12 > n {
                    return walk;
                }
                let Some(order) = byte_order(buf.get(off + 8..off + 12)) else {
                    return bad(
                        walk,
                        off,
                        "is a Section Header Block without a valid byte-order magic".into(),
                    );
                };
                blen = u32_at(buf, off + 4, order) as usize;
                new_order = Some(order);
            }
            if blen < 12 || blen % 4 != 0 || blen as u64 > MAX_RECORD_BYTES {
                let why = format!(
                    "is a block of type {btype:#x} claiming length {}",
                    commas(blen as i128)
                );
                return bad(walk, off, why);
            }
            if incomplete && is_packet(btype) && blen as i64 - 16 > self.caplen_limit() {
                let why = format!("is a packet block claiming length {}", commas(blen as i128));
                return bad(walk, off, why);
            }
            if off + blen > n {
                walk.need = blen;
                return walk;
            }
            if let Some(order) = new_order {
                self.section = Section {
                    little: order,
                    interfaces: Vec::new(),
                };
            } else if btype == IDB {
                if let Err(why) = self.add_interface(buf, off, blen) {
                    return bad(walk, off, why);
                }
            } else if is_packet(btype) {
                // Too short to be one (the loop above took the rest).
                return bad(walk, off, format!("is a packet block of only {blen} bytes"));
            }
            off += blen;
            walk.consumed = off;
        }
    }

    fn add_interface(&mut self, buf: &[u8], off: usize, blen: usize) -> Result<(), String> {
        let little = self.section.little;
        if blen < 20 {
            return Err(format!(
                "is an Interface Description Block of only {blen} bytes"
            ));
        }
        let u16_at = |at: usize| -> u16 {
            match buf.get(at..at + 2) {
                Some(&[x, y]) if little => u16::from_le_bytes([x, y]),
                Some(&[x, y]) => u16::from_be_bytes([x, y]),
                _ => 0,
            }
        };
        let link = u16_at(off + 8) as u32;
        let snaplen = u32_at(buf, off + 12, little);
        let mut iface = Interface {
            link,
            lt: lookup(link),
            snaplen,
            tsresol: 6,
            binary: false,
            offset_ns: 0,
            max_raw: 0,
        };
        let mut p = off + 16;
        let end = off + blen - 4;
        while p + 4 <= end {
            let code = u16_at(p);
            let length = u16_at(p + 2) as usize;
            if code == 0 {
                break;
            }
            let value = p + 4;
            if value + length > end {
                return Err("is an Interface Description Block whose options overrun it".into());
            }
            if code == OPT_TSRESOL && length >= 1 {
                let v = buf.get(value).copied().unwrap_or(0);
                iface.binary = v & 0x80 != 0;
                iface.tsresol = (v & 0x7F) as u32;
                if iface.tsresol > if iface.binary { 62 } else { 18 } {
                    let base = if iface.binary { 2 } else { 10 };
                    return Err(format!(
                        "declares a timestamp resolution of {base}^-{}",
                        iface.tsresol
                    ));
                }
            } else if code == OPT_TSOFFSET && length >= 8 {
                let seconds = match buf.get(value..value + 8) {
                    Some(s) => {
                        let a: [u8; 8] = s.try_into().unwrap_or([0; 8]);
                        if little {
                            i64::from_le_bytes(a)
                        } else {
                            i64::from_be_bytes(a)
                        }
                    }
                    None => 0,
                };
                if seconds.unsigned_abs() > MAX_TSOFFSET_S as u64 {
                    return Err(format!(
                        "declares a timestamp offset of {} seconds",
                        commas(seconds as i128)
                    ));
                }
                iface.offset_ns = seconds * NS;
            }
            p = value + length.div_ceil(4) * 4;
        }
        iface.max_raw = iface.compute_max_raw();
        self.section.interfaces.push(iface.clone());
        self.interfaces_seen.push(iface);
        self.max_snaplen = self.max_snaplen.max(snaplen);
        Ok(())
    }

    /// Checks one packet block (`buf[o..o + blen]`, at least 16 bytes, inside the window) and
    /// hands its packet to `sink`; false on damage (Python's `_take_run`, one row of it).
    fn take_block(
        &mut self,
        buf: &[u8],
        o: usize,
        blen: usize,
        limit: i64,
        sink: &mut Sink,
        walk: &mut Walk,
    ) -> bool {
        let little = self.section.little;
        let ifaces = &self.section.interfaces;
        let u = |at: usize| u32_at(buf, at, little);
        let btype = u(o);
        let spb = btype == SPB;
        let blen_i = blen as i64;
        let mut iface = u(o + 8) as i64;
        let mut caplen = u(o + 20) as i64;
        if btype == PB {
            // The obsolete Packet Block: a 16-bit interface id, then a drops counter.
            iface = if little { iface & 0xFFFF } else { iface >> 16 };
        }
        if spb {
            caplen = (u(o + 8) as i64).min(blen_i - 16);
            if let Some(first) = ifaces.first() {
                if first.snaplen != 0 {
                    caplen = caplen.min(first.snaplen as i64);
                }
            }
            iface = 0;
        }
        let body = if spb { blen_i - 16 } else { blen_i - 32 };
        let contradicts = blen % 4 != 0
            || u(o + blen - 4) as usize != blen
            || body < 0
            || caplen > body
            || caplen > limit
            || iface >= ifaces.len() as i64;
        let raw = ((u(o + 12) as u64) << 32) | u(o + 16) as u64;
        let interface = if contradicts {
            None
        } else {
            ifaces.get(iface as usize)
        };
        let late = !spb && interface.is_some_and(|i| raw > i.max_raw);
        let Some(interface) = interface.filter(|_| !late) else {
            let why = if late {
                format!(
                    "is a packet block with a timestamp ({} units of interface {iface}) beyond \
                     what nanoseconds since 1970 can hold (the year 2262)",
                    commas(raw as i128)
                )
            } else {
                format!(
                    "is a packet block (length {}, captured length {}, interface {iface}) that \
                     contradicts itself",
                    commas(blen as i128),
                    commas(caplen as i128)
                )
            };
            walk.bad = Some((o, why));
            walk.consumed = o;
            return false;
        };
        let ts = if spb {
            self.last_ts
        } else {
            interface.to_ns(raw)
        };
        self.last_ts = ts;
        let start = o + if spb { 12 } else { 28 };
        sink.record(buf, start, caplen as usize, ts, interface.lt, little);
        true
    }
}

fn bad(mut walk: Walk, off: usize, why: String) -> Walk {
    walk.bad = Some((off, why));
    walk
}
