//! Link, IPv4/IPv6 and TCP headers of one packet (decode.py, one packet at a time).
//!
//! Every packet ends with exactly one outcome: a segment or one skip reason. Where decode.py
//! computes several faults at once and lets the most basic one win, the checks here run in that
//! order of precedence, so the first fault found is the one Python reports.

use super::link::{Framing, LinkType};
use crate::segment::Segment;

pub(crate) const NON_IP: u8 = 1;
pub(crate) const NON_TCP: u8 = 2;
pub(crate) const IP_FRAGMENT: u8 = 3;
pub(crate) const TRUNCATED: u8 = 4;
pub(crate) const MALFORMED: u8 = 5;
pub(crate) const UNSUPPORTED_LINK_TYPE: u8 = 6;

/// Skip reason names, indexed by the codes above (code 0 is "became a segment").
pub const REASONS: [&str; 7] = [
    "",
    "non_ip",
    "non_tcp",
    "ip_fragment",
    "truncated",
    "malformed",
    "unsupported_link_type",
];

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86DD;
const IPPROTO_TCP: u8 = 6;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_AH: u8 = 51;

#[inline]
fn byte(b: &[u8], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(&[x, y]) => u16::from_be_bytes([x, y]),
        _ => 0,
    }
}

#[inline]
fn be32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(&[w, x, y, z]) => u32::from_be_bytes([w, x, y, z]),
        _ => 0,
    }
}

#[inline]
fn addr16(b: &[u8], at: usize) -> [u8; 16] {
    let mut out = [0u8; 16];
    if let Some(s) = b.get(at..at + 16) {
        out.copy_from_slice(s);
    }
    out
}

#[inline]
fn v4_mapped(b: &[u8], at: usize) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[10] = 0xff;
    out[11] = 0xff;
    if let Some(s) = b.get(at..at + 4) {
        out[12..].copy_from_slice(s);
    }
    out
}

#[inline]
fn is_vlan(etype: u16) -> bool {
    matches!(etype, 0x8100 | 0x88A8 | 0x9100)
}

#[inline]
fn family_of_af(af: u32) -> u8 {
    match af {
        2 => 4,
        24 | 28 | 30 => 6,
        _ => 0,
    }
}

/// The packet at `buf[start..end]`: a segment, or the code of why it is skipped.
/// `end` never exceeds `buf.len()`; every read is checked anyway.
#[inline]
pub(crate) fn decode(
    buf: &[u8],
    frame: u64,
    ts_ns: i64,
    start: usize,
    end: usize,
    lt: Option<&LinkType>,
) -> Result<Segment, u8> {
    let Some(lt) = lt else {
        return Err(UNSUPPORTED_LINK_TYPE);
    };
    let mut l3 = start + lt.header_len;
    if l3 > end {
        return Err(TRUNCATED);
    }
    let fam = match lt.framing {
        Framing::Ethertype => {
            let mut etype = be16(buf, start + lt.proto_at);
            while is_vlan(etype) {
                if l3 + 4 > end {
                    return Err(TRUNCATED);
                }
                etype = be16(buf, l3 + 2);
                l3 += 4;
            }
            match etype {
                ETH_IPV4 => 4,
                ETH_IPV6 => 6,
                _ => return Err(NON_IP),
            }
        }
        Framing::IpVersion => {
            if l3 >= end {
                return Err(TRUNCATED);
            }
            match byte(buf, l3) >> 4 {
                4 => 4,
                6 => 6,
                _ => return Err(MALFORMED),
            }
        }
        Framing::AfNetworkOrder => family_of_af(be32(buf, start)),
        Framing::AfHostOrder => {
            let af = be32(buf, start);
            // Either byte order: a little-endian host's small AF value reads as >= 2**24.
            family_of_af(if af > 0xFFFF { af.swap_bytes() } else { af })
        }
        Framing::FixedIpv4 => 4,
        Framing::FixedIpv6 => 6,
    };
    let s = l3;
    let (tcp, ip_end, src, dst) = if fam == 4 {
        ipv4(buf, s, end)?
    } else if fam == 6 {
        ipv6(buf, s, end)?
    } else {
        return Err(NON_IP);
    };
    if tcp + 20 > end {
        return Err(TRUNCATED);
    }
    let doff = ((byte(buf, tcp + 12) >> 4) as usize) << 2;
    let payload_len = ip_end as i64 - tcp as i64 - doff as i64;
    if doff < 20 || payload_len < 0 {
        return Err(MALFORMED);
    }
    let payload_off = tcp + doff;
    let captured = (end as i64 - payload_off as i64).clamp(0, payload_len);
    Ok(Segment {
        frame,
        ts_ns,
        ip_version: fam,
        src,
        dst,
        sport: be16(buf, tcp),
        dport: be16(buf, tcp + 2),
        seq: be32(buf, tcp + 4),
        ack: be32(buf, tcp + 8),
        flags: byte(buf, tcp + 13) & 0x3F,
        window: be16(buf, tcp + 14),
        payload_len: payload_len as u32,
        captured_len: captured as u32,
        payload_off: payload_off as u32,
    })
}

type Ip = (usize, usize, [u8; 16], [u8; 16]);

#[inline]
fn ipv4(buf: &[u8], s: usize, e: usize) -> Result<Ip, u8> {
    if s + 20 > e {
        return Err(TRUNCATED);
    }
    let vihl = byte(buf, s);
    let ihl = ((vihl & 15) as usize) << 2;
    if vihl >> 4 != 4 || ihl < 20 {
        return Err(MALFORMED);
    }
    if byte(buf, s + 9) != IPPROTO_TCP {
        return Err(NON_TCP);
    }
    if be16(buf, s + 6) & 0x3FFF != 0 {
        return Err(IP_FRAGMENT);
    }
    let mut total = be16(buf, s + 2) as usize;
    // Total length 0 is what TSO-offloaded sends look like on the sending host: trust the capture.
    if total == 0 {
        total = e - s;
    }
    if total < ihl + 20 {
        return Err(MALFORMED);
    }
    Ok((
        s + ihl,
        s + total,
        v4_mapped(buf, s + 12),
        v4_mapped(buf, s + 16),
    ))
}

#[inline]
fn ipv6(buf: &[u8], s: usize, e: usize) -> Result<Ip, u8> {
    if s + 40 > e {
        return Err(TRUNCATED);
    }
    if byte(buf, s) >> 4 != 6 {
        return Err(MALFORMED);
    }
    let nh = byte(buf, s + 6);
    let mut tcp = s + 40;
    if nh != IPPROTO_TCP {
        match nh {
            0 | 43 | 60 | IPV6_AH => tcp = walk_extensions(buf, tcp, nh, e)?,
            IPV6_FRAGMENT => return Err(IP_FRAGMENT),
            _ => return Err(NON_TCP),
        }
    }
    let mut plen = be16(buf, s + 4) as usize;
    // Payload length 0: a jumbogram or a TSO send; either way the capture is the best truth left.
    if plen == 0 {
        plen = e - s - 40;
    }
    Ok((tcp, s + 40 + plen, addr16(buf, s + 8), addr16(buf, s + 24)))
}

/// Follows the extension header chain from `p` to the TCP header.
fn walk_extensions(buf: &[u8], mut p: usize, mut nh: u8, end: usize) -> Result<usize, u8> {
    while matches!(nh, 0 | 43 | 60 | IPV6_AH) {
        if p + 2 > end {
            return Err(TRUNCATED);
        }
        let units = byte(buf, p + 1) as usize;
        let length = if nh == IPV6_AH {
            (units + 2) * 4
        } else {
            (units + 1) * 8
        };
        nh = byte(buf, p);
        p += length;
    }
    match nh {
        IPPROTO_TCP => Ok(p),
        IPV6_FRAGMENT => Err(IP_FRAGMENT),
        _ => Err(NON_TCP),
    }
}
