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
/// GRE carrying a protocol kaflow does not read (MPLS, PPTP's PPP...).
pub(crate) const GRE_NOT_READ: u8 = 7;
/// UDP to a tunnel's port kaflow does not read (GTP-U, L2TP, VXLAN-GPE, MPLS over UDP).
pub(crate) const UDP_TUNNEL_NOT_READ: u8 = 8;
/// IPsec ESP: encrypted, nothing inside can be read.
pub(crate) const ESP: u8 = 9;
/// A fragment whose datagram was put back together: the datagram counts once, as the segment
/// (or skip) of its last fragment.
pub(crate) const IP_FRAGMENT_REASSEMBLED: u8 = 10;

/// Skip reason names, indexed by the codes above (code 0 is "became a segment").
pub const REASONS: [&str; 11] = [
    "",
    "non_ip",
    "non_tcp",
    "ip_fragment",
    "truncated",
    "malformed",
    "unsupported_link_type",
    "gre_not_read",
    "udp_tunnel_not_read",
    "esp",
    "ip_fragment_reassembled",
];

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86DD;
const ETH_PPPOE: u16 = 0x8864;
const ETH_BRIDGED: u16 = 0x6558; // Ethernet inside GRE or Geneve
const ETH_ERSPAN2: u16 = 0x88BE;
const ETH_ERSPAN3: u16 = 0x22EB;
const IPPROTO_IPIP: u8 = 4;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_IPV6: u8 = 41;
const IPPROTO_GRE: u8 = 47;
const IPPROTO_ESP: u8 = 50;
const UDP_VXLAN: u16 = 4789;
/// The Linux kernel's VXLAN port before IANA's (flannel and other overlays still use it).
const UDP_VXLAN_LINUX: u16 = 8472;
/// Tunnels over UDP kaflow does not read: GTP-U, L2TP, VXLAN-GPE, MPLS over UDP.
const UDP_TUNNELS_NOT_READ: [u16; 4] = [2152, 1701, 4790, 6635];
const UDP_GENEVE: u16 = 6081;
/// Tunnels inside tunnels read before giving up: a packet cannot make the decoder recurse
/// without bound.
const MAX_TUNNELS: u8 = 4;
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

/// Where an IP fragment's header is: its family, its start and the packet's end.
pub(crate) type FragmentAt = (u8, usize, usize);

/// The packet at `buf[start..end]`: a segment, or the code of why it is skipped; for an IP
/// fragment (`IP_FRAGMENT`) also where its IP header is, in `fragment`.
/// `end` never exceeds `buf.len()`; every read is checked anyway.
#[inline]
pub(crate) fn decode(
    buf: &[u8],
    frame: u64,
    ts_ns: i64,
    start: usize,
    end: usize,
    lt: Option<&LinkType>,
    fragment: &mut Option<FragmentAt>,
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
            let (fam, at) = after_ethertype(buf, be16(buf, start + lt.proto_at), l3, end)?;
            l3 = at;
            fam
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
    decode_ip(buf, frame, ts_ns, fam, l3, end, fragment)
}

/// The IP packet (of family `fam`) at `buf[l3..end]`, as [`decode`] reads what follows the link
/// header: a reassembled datagram is read this way.
pub(crate) fn decode_ip(
    buf: &[u8],
    frame: u64,
    ts_ns: i64,
    fam: u8,
    l3: usize,
    end: usize,
    fragment: &mut Option<FragmentAt>,
) -> Result<Segment, u8> {
    let ((tcp, ip_end, src, dst), fam) = ip(buf, fam, l3, end, 0, fragment)?;
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
        reassembled: false,
    })
}

type Ip = (usize, usize, [u8; 16], [u8; 16]);

/// What follows an ethertype at `l3` (VLAN tags and PPPoE sessions stepped over): the IP
/// family and where its header starts.
fn after_ethertype(
    buf: &[u8],
    mut etype: u16,
    mut l3: usize,
    end: usize,
) -> Result<(u8, usize), u8> {
    while is_vlan(etype) {
        if l3 + 4 > end {
            return Err(TRUNCATED);
        }
        etype = be16(buf, l3 + 2);
        l3 += 4;
    }
    if etype == ETH_PPPOE {
        // PPPoE session header (6 bytes), then the PPP protocol (2)
        if l3 + 8 > end {
            return Err(TRUNCATED);
        }
        let fam = match be16(buf, l3 + 6) {
            0x0021 => 4,
            0x0057 => 6,
            _ => return Err(NON_IP),
        };
        return Ok((fam, l3 + 8));
    }
    match etype {
        ETH_IPV4 => Ok((4, l3)),
        ETH_IPV6 => Ok((6, l3)),
        _ => Err(NON_IP),
    }
}

/// The IP packet at `s` down to its TCP header, through the tunnels clouds mirror traffic in
/// (VXLAN, Geneve, GRE, ERSPAN): the innermost packet's addresses (and family) are the
/// connection's.
fn ip(
    buf: &[u8],
    fam: u8,
    s: usize,
    e: usize,
    depth: u8,
    fragment: &mut Option<FragmentAt>,
) -> Result<(Ip, u8), u8> {
    let got = match fam {
        4 => ipv4(buf, s, e),
        6 => ipv6(buf, s, e),
        _ => return Err(NON_IP),
    };
    match got {
        Err(Inner(proto, at, ip_end)) if depth < MAX_TUNNELS => {
            let (fam, inner) = tunnel(buf, proto, at, ip_end.min(e))?;
            ip(buf, fam, inner, ip_end.min(e), depth + 1, fragment)
        }
        Err(Inner(..)) => Err(NON_TCP),
        Err(Skip(IP_FRAGMENT)) => {
            *fragment = Some((fam, s, e));
            Err(IP_FRAGMENT)
        }
        Err(Skip(code)) => Err(code),
        Ok(found) => Ok((found, fam)),
    }
}

/// Why an IP packet gave no TCP header: a skip reason, or a tunnel's payload to look inside
/// (its IP protocol, where the payload starts, where the packet ends).
enum NotTcp {
    Skip(u8),
    Inner(u8, usize, usize),
}
use NotTcp::{Inner, Skip};

impl From<u8> for NotTcp {
    fn from(code: u8) -> Self {
        Skip(code)
    }
}

/// The frame a tunnel carries at `at`: the IP family and where the inner IP header starts.
fn tunnel(buf: &[u8], proto: u8, at: usize, end: usize) -> Result<(u8, usize), u8> {
    let ethernet = |l2: usize| -> Result<(u8, usize), u8> {
        if l2 + 14 > end {
            return Err(TRUNCATED);
        }
        after_ethertype(buf, be16(buf, l2 + 12), l2 + 14, end)
    };
    match proto {
        IPPROTO_UDP => {
            if at + 8 > end {
                return Err(TRUNCATED);
            }
            let body = at + 8;
            match be16(buf, at + 2) {
                // VXLAN: 8 bytes, then an Ethernet frame (AWS VPC traffic mirroring)
                UDP_VXLAN | UDP_VXLAN_LINUX => ethernet(body + 8),
                // Geneve: 8 bytes and its options, then what its protocol type says
                UDP_GENEVE => {
                    let options = usize::from(byte(buf, body) & 0x3F) * 4;
                    let inner = body + 8 + options;
                    match be16(buf, body + 2) {
                        ETH_BRIDGED => ethernet(inner),
                        ETH_IPV4 => Ok((4, inner)),
                        ETH_IPV6 => Ok((6, inner)),
                        _ => Err(NON_IP),
                    }
                }
                port if UDP_TUNNELS_NOT_READ.contains(&port) => Err(UDP_TUNNEL_NOT_READ),
                _ => Err(NON_TCP),
            }
        }
        // IP in IP, IPv6 in IP (6in4, 6to4)
        IPPROTO_IPIP => Ok((4, at)),
        IPPROTO_IPV6 => Ok((6, at)),
        IPPROTO_GRE => {
            if at + 4 > end {
                return Err(TRUNCATED);
            }
            let flags = be16(buf, at);
            // checksum/routing, key and sequence number fields each add 4 bytes
            let extra = 4
                * (usize::from(flags & 0xC000 != 0)
                    + usize::from(flags & 0x2000 != 0)
                    + usize::from(flags & 0x1000 != 0));
            let body = at + 4 + extra;
            match be16(buf, at + 2) {
                ETH_IPV4 => Ok((4, body)),
                ETH_IPV6 => Ok((6, body)),
                ETH_BRIDGED => ethernet(body),
                ETH_ERSPAN2 => ethernet(body + 8),
                ETH_ERSPAN3 => {
                    // 12 bytes, and an 8-byte platform subheader when its O bit is set
                    let optional = if byte(buf, body + 11) & 1 != 0 { 8 } else { 0 };
                    ethernet(body + 12 + optional)
                }
                _ => Err(GRE_NOT_READ),
            }
        }
        _ => Err(NON_TCP),
    }
}

#[inline]
fn ipv4(buf: &[u8], s: usize, e: usize) -> Result<Ip, NotTcp> {
    if s + 20 > e {
        return Err(Skip(TRUNCATED));
    }
    let vihl = byte(buf, s);
    let ihl = ((vihl & 15) as usize) << 2;
    if vihl >> 4 != 4 || ihl < 20 {
        return Err(Skip(MALFORMED));
    }
    let proto = byte(buf, s + 9);
    let tunnel = matches!(
        proto,
        IPPROTO_UDP | IPPROTO_GRE | IPPROTO_IPIP | IPPROTO_IPV6
    );
    if proto == IPPROTO_ESP {
        return Err(Skip(ESP));
    }
    if proto != IPPROTO_TCP && !tunnel {
        return Err(Skip(NON_TCP));
    }
    if be16(buf, s + 6) & 0x3FFF != 0 {
        // read once its datagram is whole (capture::defrag)
        return Err(Skip(IP_FRAGMENT));
    }
    let mut total = be16(buf, s + 2) as usize;
    // Total length 0 is what TSO-offloaded sends look like on the sending host: trust the capture.
    if total == 0 {
        total = e - s;
    }
    if proto != IPPROTO_TCP {
        return Err(Inner(proto, s + ihl, s + total));
    }
    if total < ihl + 20 {
        return Err(Skip(MALFORMED));
    }
    Ok((
        s + ihl,
        s + total,
        v4_mapped(buf, s + 12),
        v4_mapped(buf, s + 16),
    ))
}

#[inline]
fn ipv6(buf: &[u8], s: usize, e: usize) -> Result<Ip, NotTcp> {
    if s + 40 > e {
        return Err(Skip(TRUNCATED));
    }
    if byte(buf, s) >> 4 != 6 {
        return Err(Skip(MALFORMED));
    }
    let mut nh = byte(buf, s + 6);
    let mut tcp = s + 40;
    if matches!(nh, 0 | 43 | 60 | IPV6_AH) {
        (tcp, nh) = walk_extensions(buf, tcp, nh, e)?;
    }
    let mut plen = be16(buf, s + 4) as usize;
    // Payload length 0: a jumbogram or a TSO send; either way the capture is the best truth left.
    if plen == 0 {
        plen = e - s - 40;
    }
    match nh {
        IPPROTO_TCP => Ok((tcp, s + 40 + plen, addr16(buf, s + 8), addr16(buf, s + 24))),
        IPPROTO_UDP | IPPROTO_GRE | IPPROTO_IPIP | IPPROTO_IPV6 => {
            Err(Inner(nh, tcp, s + 40 + plen))
        }
        IPPROTO_ESP => Err(Skip(ESP)),
        IPV6_FRAGMENT => Err(Skip(IP_FRAGMENT)),
        _ => Err(Skip(NON_TCP)),
    }
}

/// Follows the extension header chain from `p`: where the next header starts, and what it is.
fn walk_extensions(buf: &[u8], mut p: usize, mut nh: u8, end: usize) -> Result<(usize, u8), u8> {
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
    Ok((p, nh))
}
