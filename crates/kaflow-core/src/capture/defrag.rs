//! IP fragments put back together, so the TCP segment (or the tunnel packet) they carry is read.
//!
//! nginx and its upstream rarely fragment (TCP sizes its segments to the path), but a tunnel
//! does: VXLAN or GRE around a full-size frame is larger than the path's MTU, and the outer
//! packets are fragmented. Fragments are kept by datagram (addresses, identification, protocol)
//! until every byte from offset 0 to the last fragment's end is there; where pieces overlap
//! (which only attacks do), the piece starting lower gives the bytes, the earlier one among
//! equals. The datagram is then one packet, decoded like any other and stamped with its last
//! fragment's time and number.
//!
//! Fragments are untrusted: a datagram holds at most [`MAX_PIECES`] pieces and 64 KiB, at most
//! [`MAX_DATAGRAMS`] datagrams wait at once (the oldest is dropped for a new one), and one that
//! waited [`TIMEOUT_NS`] of capture time starts over (RFC 791's reassembly timer). A fragment
//! cut by the snaplen cannot complete its datagram. Whatever never completes stays counted as
//! `ip_fragment`.

use std::collections::HashMap;

/// Datagrams waiting for fragments at once.
pub(crate) const MAX_DATAGRAMS: usize = 1024;
/// Pieces one datagram may be made of (a 64 KiB datagram over a 576-byte MTU is 120).
pub(crate) const MAX_PIECES: usize = 256;
/// How long (capture time) a datagram waits for its fragments.
pub(crate) const TIMEOUT_NS: i64 = 30 * 1_000_000_000;
/// The largest IP payload a datagram can have.
const MAX_PAYLOAD: usize = 65_535;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    family: u8,
    src: [u8; 16],
    dst: [u8; 16],
    id: u32,
    protocol: u8,
}

#[derive(Debug)]
struct Pending {
    first_ts: i64,
    /// The IP header the whole datagram gets: the first fragment's (IPv4), or the fixed header
    /// with the fragment header's next header (IPv6). Known once offset 0 arrived.
    header: Option<Vec<u8>>,
    /// (offset, bytes) in arrival order: the first arrival of a byte wins.
    pieces: Vec<(usize, Vec<u8>)>,
    /// The payload's length, once the last fragment (more-fragments clear) arrived.
    total: Option<usize>,
    /// Fragment records that went into it.
    fragments: u64,
}

/// One fragment as its IP header describes it.
struct Piece<'a> {
    key: Key,
    offset: usize,
    more: bool,
    /// The header the datagram gets, from the fragment at offset 0.
    header: Vec<u8>,
    payload: &'a [u8],
}

fn be16(b: &[u8], at: usize) -> usize {
    match b.get(at..at + 2) {
        Some(&[x, y]) => usize::from(u16::from_be_bytes([x, y])),
        _ => 0,
    }
}

fn addr<const N: usize>(b: &[u8], at: usize) -> [u8; 16] {
    let mut out = [0u8; 16];
    if let Some(s) = b.get(at..at + N) {
        out[16 - N..].copy_from_slice(s);
    }
    out
}

/// The fragment whose IPv4 header is at `s` (the packet ending by `e`), if it is whole.
fn ipv4(buf: &[u8], s: usize, e: usize) -> Option<Piece<'_>> {
    let ihl = usize::from(*buf.get(s)? & 15) * 4;
    let total = be16(buf, s + 2);
    let flags = be16(buf, s + 6);
    let end = s.checked_add(total)?;
    if ihl < 20 || total < ihl || end > e {
        return None; // malformed, or cut by the snaplen
    }
    let mut header = buf.get(s..s + ihl)?.to_vec();
    // the whole datagram: no fragment bits, its length set when it is complete
    header[6] = 0;
    header[7] = 0;
    Some(Piece {
        key: Key {
            family: 4,
            src: addr::<4>(buf, s + 12),
            dst: addr::<4>(buf, s + 16),
            id: u32::try_from(be16(buf, s + 4)).ok()?,
            protocol: *buf.get(s + 9)?,
        },
        offset: (flags & 0x1FFF) * 8,
        more: flags & 0x2000 != 0,
        header,
        payload: buf.get(s + ihl..end)?,
    })
}

/// The fragment whose IPv6 header is at `s`: its fragment header found after the extension
/// headers before it (hop-by-hop, routing, destination options), which the datagram drops.
fn ipv6(buf: &[u8], s: usize, e: usize) -> Option<Piece<'_>> {
    let end = s.checked_add(40)?.checked_add(be16(buf, s + 4))?;
    if end > e {
        return None;
    }
    let (mut p, mut nh) = (s + 40, *buf.get(s + 6)?);
    for _ in 0..8 {
        if nh != 0 && nh != 43 && nh != 60 {
            break;
        }
        nh = *buf.get(p)?;
        p = p.checked_add((usize::from(*buf.get(p + 1)?) + 1) * 8)?;
    }
    if nh != 44 || p + 8 > end {
        return None;
    }
    let next = *buf.get(p)?;
    let word = be16(buf, p + 2);
    let id = buf.get(p + 4..p + 8)?;
    let mut header = buf.get(s..s + 40)?.to_vec();
    header[6] = next;
    Some(Piece {
        key: Key {
            family: 6,
            src: addr::<16>(buf, s + 8),
            dst: addr::<16>(buf, s + 24),
            id: u32::from_be_bytes([id[0], id[1], id[2], id[3]]),
            protocol: next,
        },
        offset: word & 0xFFF8,
        more: word & 1 != 0,
        header,
        payload: buf.get(p + 8..end)?,
    })
}

/// A datagram made whole: its IP family, its bytes, and how many fragment records it took.
pub(crate) struct Datagram {
    pub(crate) family: u8,
    pub(crate) bytes: Vec<u8>,
    pub(crate) fragments: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Defrag {
    pending: HashMap<Key, Pending>,
}

impl Defrag {
    /// The fragment whose IP header (of `family`) is at `buf[s..]`, the packet ending by `e`,
    /// captured at `ts`: the datagram, if this fragment completed it.
    pub(crate) fn add(
        &mut self,
        family: u8,
        buf: &[u8],
        s: usize,
        e: usize,
        ts: i64,
    ) -> Option<Datagram> {
        let piece = match family {
            4 => ipv4(buf, s, e)?,
            6 => ipv6(buf, s, e)?,
            _ => return None,
        };
        let end = piece.offset.checked_add(piece.payload.len())?;
        if end > MAX_PAYLOAD {
            return None;
        }
        if let Some(p) = self.pending.get(&piece.key) {
            if ts.saturating_sub(p.first_ts) > TIMEOUT_NS {
                self.pending.remove(&piece.key); // its identification came round again
            }
        }
        if !self.pending.contains_key(&piece.key) && self.pending.len() >= MAX_DATAGRAMS {
            let oldest = self
                .pending
                .iter()
                .min_by_key(|(_, p)| p.first_ts)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.pending.remove(&k);
            }
        }
        let p = self.pending.entry(piece.key).or_insert_with(|| Pending {
            first_ts: ts,
            header: None,
            pieces: Vec::new(),
            total: None,
            fragments: 0,
        });
        if p.pieces.len() >= MAX_PIECES {
            return None;
        }
        p.fragments += 1;
        if piece.offset == 0 && p.header.is_none() {
            p.header = Some(piece.header);
        }
        if !piece.more && p.total.is_none() {
            p.total = Some(end);
        }
        p.pieces.push((piece.offset, piece.payload.to_vec()));
        let payload = whole(p)?;
        let done = self.pending.remove(&piece.key)?;
        let mut bytes = done.header?;
        let length = match family {
            4 => bytes.len() + payload.len(),
            _ => payload.len(),
        };
        let at = if family == 4 { 2 } else { 4 };
        let length = u16::try_from(length).ok()?.to_be_bytes();
        bytes.get_mut(at..at + 2)?.copy_from_slice(&length);
        bytes.extend_from_slice(&payload);
        Some(Datagram {
            family,
            bytes,
            fragments: done.fragments,
        })
    }
}

/// The datagram's payload, when every byte up to its end has arrived.
fn whole(p: &Pending) -> Option<Vec<u8>> {
    let total = p.total?;
    p.header.as_ref()?;
    let mut order: Vec<usize> = (0..p.pieces.len()).collect();
    // by offset, and among equal offsets by arrival: the first arrival of a byte wins
    order.sort_by_key(|&i| (p.pieces.get(i).map_or(0, |x| x.0), i));
    let mut out = Vec::with_capacity(total);
    for i in order {
        let (offset, bytes) = p.pieces.get(i)?;
        if *offset > out.len() {
            return None; // a hole
        }
        if let Some(new) = bytes.get(out.len() - offset..) {
            out.extend_from_slice(new);
        }
        if out.len() >= total {
            break;
        }
    }
    if out.len() < total {
        return None;
    }
    out.truncate(total);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 fragment of datagram `id`: `payload` at `offset`, more to come or not.
    fn v4(id: u16, offset: usize, more: bool, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let total = u16::try_from(20 + payload.len()).unwrap_or(u16::MAX);
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[4..6].copy_from_slice(&id.to_be_bytes());
        let word = u16::try_from(offset / 8).unwrap_or(0) | if more { 0x2000 } else { 0 };
        p[6..8].copy_from_slice(&word.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn add(d: &mut Defrag, pkt: &[u8], ts: i64) -> Option<Vec<u8>> {
        d.add(4, pkt, 0, pkt.len(), ts).map(|g| g.bytes)
    }

    #[test]
    fn pieces_in_any_order_make_the_datagram_once() {
        let mut d = Defrag::default();
        assert!(add(&mut d, &v4(1, 8, false, b"BBBB"), 0).is_none());
        let whole = add(&mut d, &v4(1, 0, true, b"AAAAAAAA"), 1);
        let whole = whole.unwrap_or_default();
        assert_eq!(&whole[20..], b"AAAAAAAABBBB");
        assert_eq!(u16::from_be_bytes([whole[2], whole[3]]), 32);
        assert_eq!((whole[6], whole[7]), (0, 0));
        assert!(d.pending.is_empty());
    }

    #[test]
    fn overlaps_keep_the_lower_offsets_bytes_and_holes_wait() {
        let mut d = Defrag::default();
        assert!(add(&mut d, &v4(2, 16, false, b"CCCC"), 0).is_none());
        assert!(add(&mut d, &v4(2, 0, true, b"AAAAAAAA"), 0).is_none()); // 8..16 missing
        let whole = add(&mut d, &v4(2, 8, true, b"BBBBBBBBXX"), 0).unwrap_or_default();
        // 16..18 is in both: the piece starting lower (at 8) gives it
        assert_eq!(&whole[20..], b"AAAAAAAABBBBBBBBXXCC");
    }

    #[test]
    fn hostile_fragments_are_bounded() {
        let mut d = Defrag::default();
        // past 64 KiB: never kept
        assert!(add(&mut d, &v4(3, 65_528, false, &[0; 16]), 0).is_none());
        assert!(d.pending.is_empty());
        // a datagram of endless small pieces stops growing
        for k in 0..(MAX_PIECES + 50) {
            add(&mut d, &v4(4, 8 + 8 * k, true, &[1; 8]), 0);
        }
        assert_eq!(
            d.pending.values().map(|p| p.pieces.len()).sum::<usize>(),
            MAX_PIECES
        );
        // many datagrams at once: the oldest go
        for id in 0..(MAX_DATAGRAMS as u16 + 10) {
            add(&mut d, &v4(1000 + id, 8, true, &[2; 8]), i64::from(id));
        }
        assert_eq!(d.pending.len(), MAX_DATAGRAMS);
        // a fragment cut by the snaplen cannot complete anything
        let cut = v4(5, 0, false, b"AAAAAAAA");
        assert!(d.add(4, &cut, 0, cut.len() - 1, 0).is_none());
    }

    #[test]
    fn an_identification_seen_again_after_the_timeout_starts_over() {
        let mut d = Defrag::default();
        add(&mut d, &v4(6, 0, true, b"OLDOLDOL"), 0);
        assert!(add(&mut d, &v4(6, 8, false, b"NEW!"), TIMEOUT_NS + 1).is_none());
        let whole = add(&mut d, &v4(6, 0, true, b"newnewne"), TIMEOUT_NS + 2);
        assert_eq!(&whole.unwrap_or_default()[20..], b"newnewneNEW!");
    }
}
