//! The capture reader against the real fixtures (numbers from the Python reader) and against
//! crafted bytes for every format, link type, skip reason, error and warning, with the exact
//! message texts Python produces.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use kaflow_core::capture::{
    CaptureError, CaptureInfo, Edge, ErrorKind, Merge, Mode, Reader, Window,
};
use kaflow_core::segment::Segment;

const TS: i64 = 1_700_000_000_123_456_789;
const A4: [u8; 4] = [10, 0, 0, 1];
const B4: [u8; 4] = [10, 0, 0, 2];
const A6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const B6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

// ---- crafting ----------------------------------------------------------------------------

fn tcp_header(sport: u16, dport: u16, seq: u32, flags: u8, doff_words: u8) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&seq.to_be_bytes());
    h.extend_from_slice(&7u32.to_be_bytes()); // ack
    h.push(doff_words << 4);
    h.push(flags);
    h.extend_from_slice(&65535u16.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 0]);
    h
}

fn ipv4_with(proto: u8, body: &[u8], total: Option<u16>, frag: u16, ihl: u8) -> Vec<u8> {
    let options = (ihl as usize).saturating_sub(5) * 4;
    let total = total.unwrap_or((20 + options + body.len()) as u16);
    let mut h = vec![0x40 | ihl, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0, 1]);
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&A4);
    h.extend_from_slice(&B4);
    h.extend(std::iter::repeat(1u8).take(options));
    h.extend_from_slice(body);
    h
}

fn tcp4(seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut seg = tcp_header(40000, 8080, seq, 0x18, 5);
    seg.extend_from_slice(payload);
    ipv4_with(6, &seg, None, 0x4000, 5)
}

fn ipv6_with(next: u8, body: &[u8], plen: Option<u16>) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&plen.unwrap_or(body.len() as u16).to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    h.extend_from_slice(&A6);
    h.extend_from_slice(&B6);
    h.extend_from_slice(body);
    h
}

fn tcp6(seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut seg = tcp_header(40000, 8080, seq, 0x18, 5);
    seg.extend_from_slice(payload);
    ipv6_with(6, &seg, None)
}

fn ethertype_of(l3: &[u8]) -> [u8; 2] {
    if l3.first().map(|b| b >> 4) == Some(6) {
        [0x86, 0xdd]
    } else {
        [0x08, 0x00]
    }
}

fn eth(l3: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    f.extend_from_slice(&ethertype_of(l3));
    f.extend_from_slice(l3);
    f
}

fn eth_vlan(l3: &[u8], tags: &[u16]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    for (i, tpid) in tags.iter().enumerate() {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&(i as u16 + 5).to_be_bytes());
    }
    f.extend_from_slice(&ethertype_of(l3));
    f.extend_from_slice(l3);
    f
}

fn frame(l3: &[u8], link: u32) -> Vec<u8> {
    let et = ethertype_of(l3);
    let v6 = et == [0x86, 0xdd];
    let mut f = match link {
        1 => return eth(l3),
        113 => vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, et[0], et[1]],
        276 => vec![
            et[0], et[1], 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0,
        ],
        0 => (if v6 { 30u32 } else { 2 }).to_le_bytes().to_vec(),
        108 => (if v6 { 24u32 } else { 2 }).to_be_bytes().to_vec(),
        _ => Vec::new(),
    };
    f.extend_from_slice(l3);
    f
}

struct Pcap {
    link: u32,
    nano: bool,
    big: bool,
    snaplen: u32,
    modified: bool,
}

impl Default for Pcap {
    fn default() -> Self {
        Pcap {
            link: 1,
            nano: false,
            big: false,
            snaplen: 262_144,
            modified: false,
        }
    }
}

impl Pcap {
    fn u32(&self, v: u32) -> [u8; 4] {
        if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    /// Records of already framed packets.
    fn bytes(&self, packets: &[(i64, Vec<u8>)]) -> Vec<u8> {
        let magic = if self.modified {
            0xA1B2_CD34
        } else if self.nano {
            0xA1B2_3C4D
        } else {
            0xA1B2_C3D4
        };
        let mut out = self.u32(magic).to_vec();
        out.extend_from_slice(&if self.big { [0, 2, 0, 4] } else { [2, 0, 4, 0] });
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&self.u32(self.snaplen));
        out.extend_from_slice(&self.u32(self.link));
        for (ts, data) in packets {
            let caplen = data.len().min(self.snaplen as usize);
            let (secs, rest) = (ts / 1_000_000_000, ts % 1_000_000_000);
            out.extend_from_slice(&self.u32(secs as u32));
            out.extend_from_slice(&self.u32(if self.nano { rest } else { rest / 1000 } as u32));
            out.extend_from_slice(&self.u32(caplen as u32));
            out.extend_from_slice(&self.u32(data.len() as u32));
            if self.modified {
                out.extend_from_slice(&[1, 0, 0, 0, 8, 0, 0, 0]);
            }
            out.extend_from_slice(&data[..caplen]);
        }
        out
    }
}

fn pcap(packets: &[(i64, Vec<u8>)]) -> Vec<u8> {
    Pcap::default().bytes(packets)
}

fn tcp_packets(n: u32) -> Vec<(i64, Vec<u8>)> {
    (0..n)
        .map(|k| {
            let l3 = if k % 3 == 2 {
                tcp6(k, &vec![b'p'; k as usize * 7])
            } else {
                tcp4(k, &vec![b'p'; k as usize * 7])
            };
            (TS + k as i64 * 1_000_003, eth(&l3))
        })
        .collect()
}

/// pcapng blocks, in either byte order.
struct Ng {
    big: bool,
}

impl Ng {
    fn u16(&self, v: u16) -> [u8; 2] {
        if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn u32(&self, v: u32) -> [u8; 4] {
        if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn block(&self, btype: u32, body: &[u8]) -> Vec<u8> {
        let mut body = body.to_vec();
        while body.len() % 4 != 0 {
            body.push(0);
        }
        let len = body.len() as u32 + 12;
        let mut out = self.u32(btype).to_vec();
        out.extend_from_slice(&self.u32(len));
        out.extend_from_slice(&body);
        out.extend_from_slice(&self.u32(len));
        out
    }
    fn shb(&self) -> Vec<u8> {
        let mut body = self.u32(0x1A2B_3C4D).to_vec();
        body.extend_from_slice(&self.u16(1));
        body.extend_from_slice(&self.u16(0));
        body.extend_from_slice(&[0xff; 8]);
        self.block(0x0A0D_0D0A, &body)
    }
    fn idb(&self, link: u16, tsresol: u8, tsoffset: Option<i64>) -> Vec<u8> {
        let mut body = self.u16(link).to_vec();
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&self.u32(262_144));
        body.extend_from_slice(&self.u16(9));
        body.extend_from_slice(&self.u16(1));
        body.extend_from_slice(&[tsresol, 0, 0, 0]);
        if let Some(off) = tsoffset {
            body.extend_from_slice(&self.u16(14));
            body.extend_from_slice(&self.u16(8));
            body.extend_from_slice(&if self.big {
                off.to_be_bytes()
            } else {
                off.to_le_bytes()
            });
        }
        body.extend_from_slice(&[0, 0, 0, 0]);
        self.block(1, &body)
    }
    fn epb(&self, iface: u32, units: u64, data: &[u8]) -> Vec<u8> {
        let mut body = self.u32(iface).to_vec();
        body.extend_from_slice(&self.u32((units >> 32) as u32));
        body.extend_from_slice(&self.u32(units as u32));
        body.extend_from_slice(&self.u32(data.len() as u32));
        body.extend_from_slice(&self.u32(data.len() as u32));
        body.extend_from_slice(data);
        self.block(6, &body)
    }
    fn spb(&self, data: &[u8]) -> Vec<u8> {
        let mut body = self.u32(data.len() as u32).to_vec();
        body.extend_from_slice(data);
        self.block(3, &body)
    }
    fn pb(&self, iface: u16, units: u64, data: &[u8]) -> Vec<u8> {
        let mut body = self.u16(iface).to_vec();
        body.extend_from_slice(&self.u16(0));
        body.extend_from_slice(&self.u32((units >> 32) as u32));
        body.extend_from_slice(&self.u32(units as u32));
        body.extend_from_slice(&self.u32(data.len() as u32));
        body.extend_from_slice(&self.u32(data.len() as u32));
        body.extend_from_slice(data);
        self.block(2, &body)
    }
}

const LE: Ng = Ng { big: false };

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

// ---- reading -----------------------------------------------------------------------------

struct Read {
    segments: Vec<Segment>,
    payloads: Vec<Vec<u8>>,
    info: CaptureInfo,
}

fn drain(mut reader: Reader) -> Result<Read, CaptureError> {
    let mut segments = Vec::new();
    let mut payloads = Vec::new();
    loop {
        match reader.next_window() {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(e),
        }
        assert!(!reader.segments().is_empty() || !reader.skipped_records().is_empty());
        for s in reader.segments() {
            payloads.push(s.payload(reader.window()).to_vec());
            segments.push(*s);
        }
    }
    let info = reader.info().clone();
    assert_eq!(
        info.packets,
        info.tcp_segments + info.skipped.iter().map(|(_, n)| n).sum::<u64>()
    );
    assert_eq!(info.tcp_segments, segments.len() as u64);
    Ok(Read {
        segments,
        payloads,
        info,
    })
}

fn temp(name: &str, data: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kaflow-capture-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path
}

fn read_file_with(path: &Path, window: usize) -> Result<Read, CaptureError> {
    drain(Reader::open_with_window(path, window)?)
}

fn read_bytes(name: &str, data: &[u8]) -> Result<Read, CaptureError> {
    read_file_with(&temp(name, data), 4 << 20)
}

fn read_stream(name: &str, data: &[u8], window: usize) -> Result<Read, CaptureError> {
    let input = Box::new(Cursor::new(data.to_vec()));
    drain(Reader::from_read_with_window(name, input, window)?)
}

fn ok(name: &str, data: &[u8]) -> Read {
    match read_bytes(name, data) {
        Ok(r) => r,
        Err(e) => panic!("{name}: {e}"),
    }
}

/// The error, and that its message is `name`'s path followed by `rest` (or `rest` with
/// `{path}` standing for the path).
fn fails(name: &str, data: &[u8], kind: ErrorKind, expected: &str) {
    let path = temp(name, data);
    let shown = path.display().to_string();
    let expected = expected.replace("{path}", &shown);
    for err in [
        read_file_with(&path, 4 << 20).err(),
        read_stream(&shown, data, 4 << 20).err(),
    ] {
        let err = err.unwrap_or_else(|| panic!("{name} did not fail"));
        assert_eq!(err.kind, kind, "{name}: {}", err.message);
        assert_eq!(err.message, expected, "{name}");
    }
}

fn seqs(r: &Read) -> Vec<u32> {
    r.segments.iter().map(|s| s.seq).collect()
}

fn skipped(r: &Read) -> Vec<(&'static str, u64)> {
    r.info.skipped.clone()
}

#[test]
fn a_reader_can_move_to_another_thread() {
    fn send<T: Send>() {}
    send::<Reader>();
}

// ---- fixtures ----------------------------------------------------------------------------

#[test]
fn fixtures_match_the_python_reader() {
    // (fixture, link type, ts resolution, packets, tcp segments, bytes, first ts, last ts),
    // from `pcapkit.capture.open_capture`.
    type Row = (&'static str, &'static str, i64, u64, u64, u64, i64, i64);
    let table: &[Row] = &[
        (
            "accept-overflow/capture.pcap",
            "EN10MB",
            1000,
            37,
            37,
            3672,
            1795563024643632000,
            1795563036657316000,
        ),
        (
            "agree/capture.pcap",
            "EN10MB",
            1000,
            97,
            97,
            13108,
            1795562981173695000,
            1795562983809400000,
        ),
        (
            "formats/capture.pcap",
            "EN10MB",
            1000,
            52,
            52,
            5688,
            1795563041616047000,
            1795563049048744000,
        ),
        (
            "formats/capture.pcapng",
            "EN10MB",
            1,
            52,
            52,
            6996,
            1795563041616045366,
            1795563049048742791,
        ),
        (
            "idle-close/capture.pcap",
            "EN10MB",
            1000,
            52,
            52,
            5688,
            1795562987524776000,
            1795562994949167000,
        ),
        (
            "idle-race-get/capture.pcap",
            "EN10MB",
            1000,
            64,
            64,
            6600,
            1795562998813065000,
            1795563005919088000,
        ),
        (
            "idle-race-post/capture.pcap",
            "EN10MB",
            1000,
            44,
            44,
            5488,
            1795563009581520000,
            1795563014646245000,
        ),
        (
            "ipv6/capture.pcap",
            "EN10MB",
            1000,
            52,
            52,
            6728,
            1795563055119853000,
            1795563062556862000,
        ),
        (
            "max-requests/capture.pcap",
            "EN10MB",
            1000,
            88,
            88,
            10742,
            1795563019146387000,
            1795563020149861000,
        ),
        (
            "formats/any.pcap",
            "LINUX_SLL2",
            1000,
            52,
            52,
            6000,
            1795563041616044000,
            1795563049048742000,
        ),
        (
            "formats/ethernet.pcap",
            "EN10MB",
            1000,
            52,
            52,
            5688,
            1795563041616047000,
            1795563049048744000,
        ),
        (
            "formats/nano.pcap",
            "EN10MB",
            1,
            52,
            52,
            5688,
            1795563041616046462,
            1795563049048743952,
        ),
        (
            "formats/sll1.pcap",
            "LINUX_SLL",
            1000,
            52,
            52,
            5792,
            1795563041616044000,
            1795563049048741000,
        ),
        (
            "formats/snap64.pcap",
            "EN10MB",
            1000,
            52,
            52,
            4184,
            1795563041616045000,
            1795563049048743000,
        ),
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    for &(name, link, res, packets, segments, bytes, first, last) in table {
        let path = root.join(name);
        let r = read_file_with(&path, 4 << 20).unwrap_or_else(|e| panic!("{name}: {e}"));
        let i = &r.info;
        assert_eq!(i.link_types, vec![link.to_string()], "{name}");
        assert_eq!(
            i.format,
            if name.ends_with("ng") {
                "pcapng"
            } else {
                "pcap"
            }
        );
        assert_eq!(
            (i.ts_resolution_ns, i.packets, i.tcp_segments, i.bytes_read),
            (res, packets, segments, bytes),
            "{name}"
        );
        assert_eq!(
            (i.first_ts_ns, i.last_ts_ns),
            (Some(first), Some(last)),
            "{name}"
        );
        assert!(i.warnings.is_empty() && i.truncated_at_offset.is_none());
        let frames: Vec<u64> = r.segments.iter().map(|s| s.frame).collect();
        assert_eq!(frames, (1..=packets).collect::<Vec<_>>());
        // Small windows, and a stream that cannot seek, read the same.
        let data = std::fs::read(&path).unwrap();
        for window in [1, 100, 1000] {
            let small = read_file_with(&path, window).unwrap();
            assert_eq!(small.segments.len(), r.segments.len());
            assert_eq!(small.payloads, r.payloads);
            let streamed = read_stream(name, &data, window).unwrap();
            assert_eq!(streamed.payloads, r.payloads);
            assert_eq!(streamed.info.bytes_read, i.bytes_read);
        }
    }
}

// ---- formats -----------------------------------------------------------------------------

#[test]
fn pcap_variants_microseconds_nanoseconds_both_byte_orders() {
    let packets = tcp_packets(20);
    for nano in [false, true] {
        for big in [false, true] {
            let data = Pcap {
                nano,
                big,
                ..Pcap::default()
            }
            .bytes(&packets);
            let r = ok("v.pcap", &data);
            assert_eq!(r.info.format, "pcap");
            assert_eq!(r.info.ts_resolution_ns, if nano { 1 } else { 1000 });
            let expected: Vec<i64> = packets
                .iter()
                .map(|(ts, _)| if nano { *ts } else { ts / 1000 * 1000 })
                .collect();
            let got: Vec<i64> = r.segments.iter().map(|s| s.ts_ns).collect();
            assert_eq!(got, expected);
            assert_eq!(seqs(&r), (0..20).collect::<Vec<_>>());
            assert_eq!(r.info.bytes_read, data.len() as u64);
            assert_eq!(r.info.first_ts_ns, expected.first().copied());
            assert_eq!(r.info.last_ts_ns, expected.last().copied());
        }
    }
}

#[test]
fn kuznetzov_modified_pcap_reads_like_plain() {
    let packets = tcp_packets(10);
    let plain = ok("p.pcap", &pcap(&packets));
    for big in [false, true] {
        let modified = Pcap {
            modified: true,
            big,
            ..Pcap::default()
        };
        let r = ok("m.pcap", &modified.bytes(&packets));
        assert_eq!(r.payloads, plain.payloads);
        assert_eq!(seqs(&r), seqs(&plain));
    }
}

#[test]
fn link_type_field_upper_bits_are_ignored() {
    let mut data = pcap(&tcp_packets(2));
    data[20..24].copy_from_slice(&(1u32 | (1 << 26) | (4 << 28)).to_le_bytes());
    assert_eq!(ok("fcs.pcap", &data).segments.len(), 2);
}

#[test]
fn every_link_type_carries_both_ip_versions() {
    for (link, name) in [
        (1, "EN10MB"),
        (113, "LINUX_SLL"),
        (276, "LINUX_SLL2"),
        (101, "RAW"),
        (12, "RAW"),
        (14, "RAW"),
        (0, "NULL"),
        (108, "LOOP"),
    ] {
        let packets = vec![
            (TS, frame(&tcp4(1, b"GET / HTTP/1.1\r\n"), link)),
            (TS + 1, frame(&tcp6(2, b"abc"), link)),
        ];
        let r = ok(
            "l.pcap",
            &Pcap {
                link,
                ..Pcap::default()
            }
            .bytes(&packets),
        );
        assert_eq!(r.info.link_types, vec![name.to_string()]);
        assert_eq!(seqs(&r), vec![1, 2], "{name}");
        let (v4, v6) = (&r.segments[0], &r.segments[1]);
        assert_eq!((v4.ip_version, v6.ip_version), (4, 6));
        let mut mapped = [0u8; 16];
        mapped[10] = 0xff;
        mapped[11] = 0xff;
        mapped[12..].copy_from_slice(&A4);
        assert_eq!(v4.src, mapped);
        assert_eq!((v6.src, v6.dst), (A6, B6));
        assert_eq!(
            (v4.sport, v4.dport, v4.ack, v4.flags, v4.window),
            (40000, 8080, 7, 0x18, 65535)
        );
        assert_eq!(
            r.payloads,
            vec![b"GET / HTTP/1.1\r\n".to_vec(), b"abc".to_vec()]
        );
        assert_eq!((v4.payload_len, v4.captured_len), (16, 16));
    }
    let fixed = [(TS, tcp4(1, b"")), (TS, tcp6(2, b""))];
    let r4 = ok(
        "v4.pcap",
        &Pcap {
            link: 228,
            ..Pcap::default()
        }
        .bytes(&fixed[..1]),
    );
    let r6 = ok(
        "v6.pcap",
        &Pcap {
            link: 229,
            ..Pcap::default()
        }
        .bytes(&fixed[1..]),
    );
    assert_eq!((seqs(&r4), seqs(&r6)), (vec![1], vec![2]));
    // DLT_NULL in the other byte order, and every BSD value for IPv6.
    let mut packets = Vec::new();
    for af in [
        2u32.to_be_bytes(),
        24u32.to_le_bytes(),
        28u32.to_be_bytes(),
        30u32.to_le_bytes(),
    ] {
        let mut f = af.to_vec();
        f.extend_from_slice(&if af.contains(&2) {
            tcp4(0, b"")
        } else {
            tcp6(0, b"")
        });
        packets.push((TS, f));
    }
    let r = ok(
        "null.pcap",
        &Pcap {
            link: 0,
            ..Pcap::default()
        }
        .bytes(&packets),
    );
    assert_eq!(r.segments.len(), 4);
}

#[test]
fn vlan_tags_are_stepped_over_and_cut_tags_are_truncated() {
    let mut packets = Vec::new();
    for tags in [
        &[0x8100u16][..],
        &[0x88A8],
        &[0x88A8, 0x8100],
        &[0x9100, 0x8100],
        &[0x88A8, 0x8100, 0x8100],
    ] {
        packets.push((TS, eth_vlan(&tcp4(1, b"x"), tags)));
        packets.push((TS, eth_vlan(&tcp6(2, b"y"), tags)));
    }
    packets.push((
        TS,
        eth_vlan(&tcp4(3, b""), &[0x88A8, 0x8100])[..16].to_vec(),
    ));
    let r = ok("vlan.pcap", &pcap(&packets));
    assert_eq!(r.segments.len(), 10);
    assert!(r.payloads.iter().all(|p| p == b"x" || p == b"y"));
    assert_eq!(skipped(&r), vec![("truncated", 1)]);
}

#[test]
fn skip_reasons_are_counted_in_order_of_first_appearance() {
    let tcp = |doff: u8| tcp_header(1, 2, 0, 0x10, doff);
    let frag = [6u8, 0, 0, 1, 0, 0, 0x12, 0x34];
    let mut ext_frag = vec![44u8, 0, 1, 4, 0, 0, 0, 0];
    ext_frag.extend_from_slice(&frag);
    ext_frag.extend_from_slice(&tcp(5));
    let mut ah = vec![6u8, 1];
    ah.extend_from_slice(&[0; 10]);
    ah.extend_from_slice(&tcp(5));
    let mut bad_version = tcp4(0, b"");
    bad_version[0] = 0x55;
    let cases: Vec<(Vec<u8>, Option<&str>)> = vec![
        (
            ipv4_with(6, &tcp(5), Some(30), 0x4000, 5),
            Some("malformed"),
        ),
        (ipv4_with(6, &tcp(5), None, 0x4000, 4), Some("malformed")),
        (ipv4_with(6, &tcp(4), None, 0x4000, 5), Some("malformed")),
        (ipv4_with(6, &tcp(15), None, 0x4000, 5), Some("malformed")),
        (ipv6_with(6, &tcp(5), Some(12)), Some("malformed")),
        (ipv4_with(6, &tcp(5), None, 0x2000, 5), Some("ip_fragment")),
        (ipv4_with(6, &tcp(5), None, 0x0010, 5), Some("ip_fragment")),
        (ipv4_with(17, &[0; 8], None, 0x4000, 5), Some("non_tcp")),
        // a UDP fragment may carry a tunnel: kept for reassembly, and this one never completes
        (ipv4_with(17, &[0; 8], None, 0x2000, 5), Some("ip_fragment")),
        (
            ipv6_with(58, &[0x80, 0, 0, 0, 0, 0, 0, 0], None),
            Some("non_tcp"),
        ),
        (ipv6_with(59, b"", None), Some("non_tcp")),
        (
            ipv6_with(44, &[&frag[..], &tcp(5)].concat(), None),
            Some("ip_fragment"),
        ),
        (ipv6_with(0, &ext_frag, None), Some("ip_fragment")),
        (ipv6_with(51, &ah, None), None),
        (bad_version, Some("malformed")),
        (ipv4_with(6, &tcp(5), None, 0x4000, 8), None), // IPv4 options
        (
            ipv4_with(
                6,
                &[&tcp(5)[..], &[b'y'; 3000]].concat(),
                Some(0),
                0x4000,
                5,
            ),
            None,
        ), // TSO
    ];
    for (l3, reason) in &cases {
        let r = ok("reason.pcap", &pcap(&[(TS, eth(l3))]));
        match reason {
            Some(reason) => assert_eq!(skipped(&r), vec![(*reason, 1)]),
            None => assert_eq!((r.segments.len(), skipped(&r)), (1, vec![])),
        }
    }
    let tso = ok("tso.pcap", &pcap(&[(TS, eth(&cases[16].0))]));
    assert_eq!(tso.segments[0].payload_len, 3000);
    // Ethernet padding is not payload; non-IP ethertypes; empty records.
    let mut padded = eth(&tcp4(0, b""));
    padded.extend_from_slice(&[0xee; 6]);
    let mut arp = eth(&[0; 28]);
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    let r = ok(
        "misc.pcap",
        &pcap(&[
            (TS, padded),
            (TS, arp),
            (TS, Vec::new()),
            (TS, eth(&ipv4_with(17, &[0; 8], None, 0, 5))),
        ]),
    );
    assert_eq!(
        (r.segments[0].payload_len, r.segments[0].captured_len),
        (0, 0)
    );
    assert_eq!(
        skipped(&r),
        vec![("non_ip", 1), ("non_tcp", 1), ("truncated", 1)]
    );
    for link in [1, 101, 0, 276] {
        let r = ok(
            "e.pcap",
            &Pcap {
                link,
                ..Pcap::default()
            }
            .bytes(&[(TS, Vec::new())]),
        );
        assert_eq!(skipped(&r), vec![("truncated", 1)]);
    }
}

#[test]
fn a_snaplen_cut_keeps_the_true_payload_length() {
    let payload: Vec<u8> = (0..100).collect();
    let cut = Pcap {
        snaplen: 14 + 20 + 20 + 30,
        ..Pcap::default()
    };
    let r = ok("snap.pcap", &cut.bytes(&[(TS, eth(&tcp4(1, &payload)))]));
    let s = r.segments[0];
    assert_eq!((s.payload_len, s.captured_len), (100, 30));
    assert_eq!(r.payloads[0], payload[..30].to_vec());
    for snap in [14 + 19, 14 + 20 + 19, 14 + 10] {
        let cut = Pcap {
            snaplen: snap,
            ..Pcap::default()
        };
        let r = ok("snap.pcap", &cut.bytes(&[(TS, eth(&tcp4(1, &payload)))]));
        assert_eq!(skipped(&r), vec![("truncated", 1)]);
    }
}

#[test]
fn pcapng_interfaces_resolutions_and_offsets() {
    let ng = LE;
    let mut data = ng.shb();
    data.extend(ng.idb(1, 6, None));
    data.extend(ng.idb(276, 9, None));
    data.extend(ng.idb(101, 0x80 | 20, None));
    data.extend(ng.idb(101, 12, Some(-5)));
    data.extend(ng.idb(101, 9, Some(1_600_000_000)));
    let l3 = tcp4(1, b"x");
    let units: u64 = 1_700_000_000_123_456;
    data.extend(ng.epb(0, units, &eth(&l3)));
    data.extend(ng.epb(1, units * 1000 + 789, &frame(&l3, 276)));
    data.extend(ng.epb(2, (1_700_000_000u64 << 20) | 0x80000, &l3));
    data.extend(ng.epb(3, 86_400_000_000_123_456, &l3));
    data.extend(ng.epb(4, 100_000_000_123, &l3));
    let r = ok("ng.pcapng", &data);
    assert_eq!(r.info.format, "pcapng");
    assert_eq!(r.info.link_types, vec!["EN10MB", "LINUX_SLL2", "RAW"]);
    assert_eq!(r.info.ts_resolution_ns, 1000);
    let ts: Vec<i64> = r.segments.iter().map(|s| s.ts_ns).collect();
    assert_eq!(
        ts,
        vec![
            1_700_000_000_123_456_000,
            1_700_000_000_123_456_789,
            1_700_000_000_500_000_000,
            86_400_000_000_123 - 5_000_000_000,
            1_600_000_100_000_000_123,
        ]
    );
    assert_eq!(
        (r.info.first_ts_ns, r.info.last_ts_ns),
        (Some(ts[3]), Some(ts[2]))
    );
}

#[test]
fn pcapng_big_endian_simple_and_obsolete_blocks_and_sections() {
    let be = Ng { big: true };
    let mut data = be.shb();
    data.extend(be.idb(1, 9, None));
    data.extend(be.epb(0, TS as u64, &eth(&tcp4(1, b""))));
    data.extend(be.spb(&eth(&tcp4(2, b""))));
    data.extend(be.spb(&eth(&tcp4(3, b""))));
    data.extend(be.pb(0, TS as u64 + 5, &eth(&tcp4(4, b""))));
    data.extend(be.spb(&eth(&tcp4(5, b""))));
    // A second section, little-endian, with its own interfaces.
    data.extend(LE.shb());
    data.extend(LE.idb(276, 6, None));
    data.extend(LE.idb(101, 9, None));
    data.extend(LE.pb(1, TS as u64 + 7, &tcp6(6, b"")));
    data.extend(LE.epb(0, 1_700_000_000_000_001, &frame(&tcp4(7, b""), 276)));
    // Blocks the reader has no use for are stepped over.
    data.extend(LE.block(0x0BAD, b"custom"));
    data.extend(LE.block(5, &[0; 12]));
    let r = ok("be.pcapng", &data);
    let got: Vec<(u32, i64)> = r.segments.iter().map(|s| (s.seq, s.ts_ns)).collect();
    assert_eq!(
        got,
        vec![
            (1, TS),
            (2, TS),
            (3, TS),
            (4, TS + 5),
            (5, TS + 5),
            (6, TS + 7),
            (7, 1_700_000_000_000_001_000)
        ]
    );
    assert_eq!(r.info.link_types, vec!["EN10MB", "LINUX_SLL2", "RAW"]);
    assert_eq!(r.info.ts_resolution_ns, 1);
}

#[test]
fn pcapng_binary_resolution_rounds_like_python() {
    for (k, res) in [(10u8, 976_562), (20, 954), (30, 1), (1, 500_000_000)] {
        let mut data = LE.shb();
        data.extend(LE.idb(101, 0x80 | k, None));
        data.extend(LE.epb(0, (5u64 << k) + 1, &tcp4(1, b"")));
        let r = ok("bin.pcapng", &data);
        assert_eq!(r.info.ts_resolution_ns, res, "2^-{k}");
        assert_eq!(r.segments[0].ts_ns, 5_000_000_000 + (1_000_000_000 >> k));
    }
}

#[test]
fn pcapng_unsupported_interface_beside_a_supported_one_is_counted() {
    let mut data = LE.shb();
    data.extend(LE.idb(1, 6, None));
    data.extend(LE.idb(105, 6, None));
    data.extend(LE.epb(0, 1, &eth(&tcp4(1, b""))));
    data.extend(LE.epb(1, 1, &[8, 2, 0, 0]));
    let r = ok("u.pcapng", &data);
    assert_eq!(skipped(&r), vec![("unsupported_link_type", 1)]);
    assert_eq!(r.info.link_types, vec!["EN10MB", "IEEE802_11"]);
}

#[test]
fn gzip_is_read_transparently_from_files_and_streams() {
    let packets = tcp_packets(300);
    let plain = pcap(&packets);
    let mut ng = LE.shb();
    ng.extend(LE.idb(1, 9, None));
    for (ts, f) in &packets {
        ng.extend(LE.epb(0, *ts as u64, f));
    }
    for (data, format) in [(plain, "pcap (gzip)"), (ng, "pcapng (gzip)")] {
        let reference = ok("plain", &data);
        let gz = gzip(&data);
        let path = temp("c.gz", &gz);
        for window in [1000, 4 << 20] {
            let r = read_file_with(&path, window).unwrap();
            assert_eq!(r.info.format, format);
            assert_eq!(r.payloads, reference.payloads);
            assert_eq!(r.info.bytes_read, data.len() as u64);
            let s = read_stream("c.gz", &gz, window).unwrap();
            assert_eq!(s.payloads, reference.payloads);
        }
        let mut reader = Reader::open(&path).unwrap();
        assert!(reader.is_gzip() && !reader.rereadable());
        while reader.next_window().unwrap() {
            assert_eq!(reader.file_base(), None);
        }
        assert_eq!(reader.progress(), (gz.len() as u64, gz.len() as u64));
    }
}

#[test]
fn any_window_size_reads_the_same() {
    let packets = tcp_packets(60);
    let mut ng = LE.shb();
    ng.extend(LE.idb(1, 9, None));
    ng.extend(LE.idb(113, 6, None));
    for (k, (ts, f)) in packets.iter().enumerate() {
        let ts = if k % 2 == 0 {
            *ts as u64
        } else {
            *ts as u64 / 1000
        };
        let f = if k % 2 == 0 {
            f.clone()
        } else {
            frame(&f[14..], 113)
        };
        ng.extend(LE.epb((k % 2) as u32, ts, &f));
    }
    for data in [pcap(&packets), ng.clone(), gzip(&pcap(&packets))] {
        let whole = ok("w", &data);
        assert_eq!(whole.info.packets, 60);
        for window in [1, 17, 100, 333, 1500, 4096] {
            let path = temp("w", &data);
            let r = read_file_with(&path, window).unwrap();
            assert_eq!(
                r.segments.iter().map(|s| s.frame).collect::<Vec<_>>(),
                (1..=60).collect::<Vec<_>>()
            );
            assert_eq!(r.payloads, whole.payloads);
            assert_eq!(
                read_stream("w", &data, window).unwrap().payloads,
                whole.payloads
            );
        }
    }
}

#[test]
fn file_base_points_at_payloads_in_the_file_and_progress_reaches_the_end() {
    let data = pcap(&tcp_packets(50));
    let path = temp("fb.pcap", &data);
    let mut reader = Reader::open_with_window(&path, 1000).unwrap();
    assert!(reader.rereadable());
    let mut windows = 0;
    while reader.next_window().unwrap() {
        windows += 1;
        let base = reader.file_base().unwrap() as usize;
        for s in reader.segments() {
            let at = base + s.payload_off as usize;
            let off = s.payload_off as usize;
            let in_window = reader
                .window()
                .get(off..off + s.captured_len as usize)
                .unwrap_or(&[]);
            assert_eq!(&data[at..at + s.captured_len as usize], in_window);
        }
    }
    assert!(windows > 3);
    assert_eq!(reader.progress(), (data.len() as u64, data.len() as u64));
    let mut streamed = Reader::from_read("-", Box::new(Cursor::new(data))).unwrap();
    while streamed.next_window().unwrap() {
        assert_eq!(streamed.file_base(), None);
    }
    assert_eq!(streamed.progress(), (0, 0));
}

// ---- refusals and warnings ----------------------------------------------------------------

#[test]
fn path_errors() {
    let dir = std::env::temp_dir().join(format!("kaflow-capture-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("nope.pcap");
    let err = Reader::open(&missing).err().unwrap();
    assert_eq!(
        (err.kind, err.message),
        (
            ErrorKind::Input,
            format!("{}: no such file", missing.display())
        )
    );
    let err = Reader::open(&dir).err().unwrap();
    assert_eq!(
        err.message,
        format!("{} is a directory, not a capture file", dir.display())
    );
    let file = temp("plain.pcap", &pcap(&tcp_packets(1)));
    let under = file.join("x");
    let err = Reader::open(&under).err().unwrap();
    assert_eq!(
        err.message,
        format!("{}: cannot read it (Not a directory)", under.display())
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let secret = temp("secret.pcap", &pcap(&tcp_packets(1)));
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
        if std::fs::File::open(&secret).is_err() {
            // (root reads anything: then there is nothing to check)
            let err = Reader::open(&secret).err().unwrap();
            assert_eq!(
                err.message,
                format!("{}: permission denied", secret.display())
            );
        }
    }
}

#[test]
fn empty_and_header_only_files() {
    fails(
        "empty.pcap",
        b"",
        ErrorKind::Empty,
        "{path} is empty (0 bytes): tcpdump wrote nothing to it (killed before its first flush? \
         use `tcpdump -U -w FILE` and stop it with Ctrl-C)",
    );
    let header = pcap(&[]);
    let err = read_bytes("h.pcap", &header).err().unwrap();
    assert_eq!(err.kind, ErrorKind::Empty);
    assert!(err.message.ends_with(
        "h.pcap has a pcap header but no packets (nothing matched the filter, or tcpdump was \
         killed before it flushed: use `tcpdump -U -w FILE`)"
    ));
    // A stream's size is unknown: Python says this instead, after reading.
    let err = read_stream("h.pcap", &header, 4 << 20).err().unwrap();
    assert_eq!(err.message, "h.pcap holds no packets (pcap headers only)");
    let mut ng = LE.shb();
    ng.extend(LE.idb(1, 6, None));
    fails(
        "h.pcapng",
        &ng,
        ErrorKind::Empty,
        "{path} holds no packets (pcapng headers only)",
    );
    fails(
        "h.pcap.gz",
        &gzip(&header),
        ErrorKind::Empty,
        "{path} holds no packets (pcap (gzip) headers only)",
    );
    fails(
        "e.gz",
        &gzip(b""),
        ErrorKind::Empty,
        "{path} is gzip-compressed but it holds nothing",
    );
}

#[test]
fn compressed_wrappers_are_named() {
    let inner = pcap(&tcp_packets(3));
    let cases: [(&[u8], &str, &str); 6] = [
        (b"\xfd7zXZ\x00", "xz-compressed", "xz -dk"),
        (b"BZh91AY&SY", "bzip2-compressed", "bunzip2 -k"),
        (b"\x28\xb5\x2f\xfd", "zstd-compressed", "zstd -d"),
        (b"\x04\x22\x4d\x18", "lz4-compressed", "lz4 -d"),
        (b"PK\x03\x04", "a zip archive", "unzip"),
        (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "7z x"),
    ];
    for (magic, what, command) in cases {
        let data = [magic, &inner[..]].concat();
        let expected = format!("{{path}} is {what}; decompress it first: `{command} {{path}}`");
        fails("c.bin", &data, ErrorKind::Compressed, &expected);
        // Inside gzip too.
        fails("c.bin", &gzip(&data), ErrorKind::Compressed, &expected);
    }
}

#[test]
fn not_a_capture_says_what_it_looks_like() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"12:01:02.123456 IP 10.0.0.1.40000 > 10.0.0.2.8080: Flags [S], seq 1\n".to_vec(),
            "text \u{2014} tcpdump's printed output?",
        ),
        (
            b"reading from file x.pcap, link-type EN10MB (Ethernet)\n".to_vec(),
            "text \u{2014} tcpdump's printed output?",
        ),
        (
            b"x\n1700000000.123456 eth0 Out IP 1.2.3.4 > 5.6.7.8\n".to_vec(),
            "text \u{2014} tcpdump's printed output?",
        ),
        (
            b"2024-01-02 12:01:02.1 foo.bar > baz\n".to_vec(),
            "text \u{2014} tcpdump's printed output?",
        ),
        (b"12:01:02.1234567890 IP x\n".to_vec(), "text"),
        (b"[{\"_index\": \"packets\"}]".to_vec(), "JSON"),
        (b"\xef\xbb\xbf {\"ts\":1}\n".to_vec(), "JSON"),
        (
            b"<!DOCTYPE html><html></html>".to_vec(),
            "an HTML page \u{2014} a download link that served a web page?",
        ),
        (b"#separator \\x09\n".to_vec(), "a Zeek log"),
        (b"<?xml version='1.0'?>".to_vec(), "XML"),
        (b"hello, world\n".to_vec(), "text"),
        (
            (0..=255u8).cycle().take(1024).collect(),
            "binary data of an unknown kind",
        ),
        (
            [&b"x"[..]; 95]
                .concat()
                .into_iter()
                .chain([1u8; 5])
                .collect(),
            "text",
        ),
        (
            [&b"x"[..]; 94]
                .concat()
                .into_iter()
                .chain([1u8; 6])
                .collect(),
            "binary data of an unknown kind",
        ),
        (
            [&b"\x7fELF\x02\x01\x01"[..], &[0; 100]].concat(),
            "an executable program (ELF)",
        ),
        (
            [&b"snoop\x00\x00\x00"[..], &[0; 100]].concat(),
            "a Solaris snoop capture \u{2014} convert it with `editcap -F pcap`",
        ),
        (
            b"GMBU\x00\x02".to_vec(),
            "a Microsoft Network Monitor capture \u{2014} convert it with `editcap -F pcap`",
        ),
        (
            [&[b'a'; 257][..], b"ustar", &[b'b'; 10]].concat(),
            "a tar archive \u{2014} extract the capture from it",
        ),
        (b"%PDF-1.4\n".to_vec(), "a PDF document"),
    ];
    for (content, looks) in cases {
        fails(
            "x.txt",
            &content,
            ErrorKind::NotACapture,
            &format!("{{path}} is not a pcap or pcapng capture (it looks like {looks}); capture with `tcpdump -w FILE`"),
        );
    }
}

const SUPPORTED: &str =
    "kaflow reads EN10MB, LINUX_SLL, LINUX_SLL2, RAW, IPV4, IPV6, NULL, LOOP, NFLOG \
                         (capture on the host's interface or with `tcpdump -i any`)";

#[test]
fn unsupported_link_types() {
    for (link, named) in [
        (105, "105 (IEEE802_11) is"),
        (4242, "4242 (LINKTYPE_4242) is"),
    ] {
        let data = Pcap {
            link,
            ..Pcap::default()
        }
        .bytes(&[(TS, vec![0; 40])]);
        fails(
            "w.pcap",
            &data,
            ErrorKind::UnsupportedLinkType,
            &format!("{{path}}: link type {named} not supported; {SUPPORTED}"),
        );
    }
    let mut ng = LE.shb();
    ng.extend(LE.idb(220, 6, None));
    ng.extend(LE.idb(105, 6, None));
    ng.extend(LE.epb(0, 1, &[0; 64]));
    ng.extend(LE.epb(1, 1, &[0; 30]));
    fails(
        "usb.pcapng",
        &ng,
        ErrorKind::UnsupportedLinkType,
        &format!("{{path}}: link type 220 (USB_LINUX_MMAPPED), 105 (IEEE802_11) are not supported; {SUPPORTED}"),
    );
}

#[test]
fn a_capture_ending_mid_record_keeps_what_came_before() {
    let packets = tcp_packets(10);
    let mut ng = LE.shb();
    ng.extend(LE.idb(1, 6, None));
    for (ts, f) in &packets {
        ng.extend(LE.epb(0, *ts as u64 / 1000, f));
    }
    for data in [pcap(&packets), ng] {
        let full = ok("whole", &data);
        for cut in [1, 8, 15, 30] {
            let short = &data[..data.len() - cut];
            for r in [
                read_file_with(&temp("k", short), 100).unwrap(),
                read_stream("k", short, 100).unwrap(),
            ] {
                assert_eq!(r.payloads, full.payloads[..9].to_vec());
                assert_eq!(r.info.packets, 9);
                let at = r.info.truncated_at_offset.unwrap();
                assert_eq!(
                    at as usize,
                    data.len()
                        - (data.len() - full.info.bytes_read as usize)
                        - (data.len() - at as usize)
                );
                assert_eq!(
                    r.info.warnings,
                    vec![format!(
                        "the capture ends mid-record at byte {} (tcpdump killed?); analyzed the 9 packets before it",
                        commas(at)
                    )]
                );
                assert_eq!(r.info.bytes_read, short.len() as u64);
            }
        }
    }
    fails(
        "cutfirst.pcap",
        &pcap(&tcp_packets(1))[..30],
        ErrorKind::Empty,
        "{path} holds no complete packet: the capture ends mid-record at byte 24 (tcpdump killed?); \
         capture with `tcpdump -U -w FILE` and stop it with Ctrl-C",
    );
}

fn commas(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[test]
fn damaged_gzip() {
    let data = pcap(&tcp_packets(400));
    let gz = gzip(&data);
    let cut = &gz[..gz.len() * 3 / 4];
    for r in [
        read_bytes("cut.gz", cut).unwrap(),
        read_stream("cut.gz", cut, 2000).unwrap(),
    ] {
        assert!(r.info.packets > 0 && r.info.packets < 400);
        assert_eq!(seqs(&r), (0..r.info.packets as u32).collect::<Vec<_>>());
        let at = r.info.truncated_at_offset.unwrap();
        assert_eq!(
            r.info.warnings,
            vec![format!(
                "the gzip stream is damaged or cut short (Compressed file ended before the \
                 end-of-stream marker was reached) at byte {} of the decompressed data; analyzed \
                 the {} packets before it",
                commas(at),
                r.info.packets
            )]
        );
    }
    // A wrong CRC is found after the last byte.
    let mut crc = gz.clone();
    let n = crc.len();
    crc[n - 6] ^= 0xff;
    let r = read_bytes("crc.gz", &crc).unwrap();
    assert_eq!(r.info.packets, 400);
    assert!(r.info.warnings[0]
        .starts_with("the gzip stream is damaged or cut short (CRC check failed 0x"));
    fails(
        "bad.gz",
        b"\x1f\x8b\x08\x00garbage-not-deflate\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
        ErrorKind::Malformed,
        "{path} is gzip-compressed but the gzip stream is damaged or cut short (Error -3 while \
         decompressing data: invalid code lengths set)",
    );
    fails(
        "bad2.gz",
        b"\x1f\x8b\x09\x00\x00\x00\x00\x00\x00\x00\x00\x00",
        ErrorKind::Malformed,
        "{path} is gzip-compressed but the gzip stream is damaged or cut short (Unknown compression method)",
    );
    let trailing = [&gzip(&data[..200])[..], b"\x1f"].concat();
    let r = read_bytes("t.gz", &trailing).unwrap();
    assert!(r.info.warnings[0].starts_with(
        "the gzip stream is damaged or cut short (Not a gzipped file (b'\\x1f')) at byte"
    ));
    // Members one after the other, zero padding between them: one stream.
    let multi = [&gzip(&data[..1000])[..], &[0; 7], &gzip(&data[1000..])].concat();
    assert_eq!(ok("m.gz", &multi).info.packets, 400);
}

#[test]
fn absurd_record_lengths() {
    let packets = tcp_packets(5);
    let good = pcap(&packets[..3]).len();
    for caplen in [0xFFFF_FFFFu32, 300 << 20, 262_144 * 4 + 1] {
        let mut data = pcap(&packets);
        data[good + 8..good + 12].copy_from_slice(&caplen.to_le_bytes());
        let r = ok("corrupt.pcap", &data);
        assert_eq!(seqs(&r), vec![0, 1, 2]);
        assert_eq!(r.info.truncated_at_offset, Some(good as u64));
        assert_eq!(
            r.info.warnings,
            vec![format!(
                "the record at byte {} claims a {}-byte packet (the limit is 1,048,576): the \
                 capture is corrupt from there; analyzed the 3 packets before it",
                commas(good as u64),
                commas(caplen as u64)
            )]
        );
    }
    let mut data = pcap(&packets[..2]);
    data[32..36].copy_from_slice(&0x8000_0000u32.to_le_bytes());
    fails(
        "first.pcap",
        &data,
        ErrorKind::Malformed,
        "{path}: the first record (at byte 24) claims a 2,147,483,648-byte packet (the limit is \
         1,048,576); the file is corrupt",
    );
    // A claim within the limit in a short file: read what is there, then "ends mid-record".
    let mut data = pcap(&packets);
    data[good + 8..good + 12].copy_from_slice(&(1u32 << 20).to_le_bytes());
    let r = ok("big.pcap", &data);
    assert_eq!(r.info.packets, 3);
    assert!(r.info.warnings[0].starts_with("the capture ends mid-record at byte"));
}

#[test]
fn pcapng_damage_stops_with_a_warning() {
    let epb = |k: u32| LE.epb(0, TS as u64 / 1000 + k as u64, &eth(&tcp4(k, b"")));
    let head = [LE.shb(), LE.idb(1, 6, None)].concat();
    let set = |b: &[u8], at: usize, v: u32| {
        let mut b = b.to_vec();
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
        b
    };
    let e2 = epb(2);
    let n = e2.len();
    let damages: Vec<(Vec<u8>, String)> = vec![
        (set(&e2, 4, 13), "is a block of type 0x6 claiming length 13".into()),
        (set(&e2, 4, 8), "is a block of type 0x6 claiming length 8".into()),
        (set(&e2, 4, 0), "is a block of type 0x6 claiming length 0".into()),
        (set(&e2, 4, 0xFFFF_FFF0), "is a block of type 0x6 claiming length 4,294,967,280".into()),
        (set(&e2, n - 4, 999), format!("is a packet block (length {n}, captured length 54, interface 0) that contradicts itself")),
        (set(&e2, 20, 0xFF_FFFF), format!("is a packet block (length {n}, captured length 16,777,215, interface 0) that contradicts itself")),
        (set(&e2, 8, 9), format!("is a packet block (length {n}, captured length 54, interface 9) that contradicts itself")),
        (set(&e2, 4, 12), "is a packet block of only 12 bytes".into()),
        (set(&set(&e2, 12, 0xFFFF_FFFF), 16, 0xFFFF_FFFF), "is a packet block with a timestamp (18,446,744,073,709,551,615 units of interface 0) beyond what nanoseconds since 1970 can hold (the year 2262)".into()),
    ];
    for (bad, why) in damages {
        let data = [&head[..], &epb(0), &epb(1), &bad, &epb(3)].concat();
        let at = head.len() + epb(0).len() + epb(1).len();
        let r = ok("corrupt.pcapng", &data);
        assert_eq!(seqs(&r), vec![0, 1]);
        assert_eq!(r.info.truncated_at_offset, Some(at as u64));
        assert_eq!(
            r.info.warnings,
            vec![format!(
                "the record at byte {at} {why}: the capture is corrupt from there; analyzed the 2 packets before it"
            )]
        );
        let first = [&head[..], &bad, &epb(1)].concat();
        fails(
            "first.pcapng",
            &first,
            ErrorKind::Malformed,
            &format!(
                "{{path}}: the first record (at byte {}) {why}; the file is corrupt",
                head.len()
            ),
        );
    }
    // Interface options that cannot be true.
    let idb_with = |opts: &[u8]| {
        let mut body = vec![1, 0, 0, 0, 0, 0, 4, 0];
        body.extend_from_slice(opts);
        LE.block(1, &body)
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            LE.block(1, &[1, 0, 0, 0]),
            "is an Interface Description Block of only 16 bytes",
        ),
        (
            idb_with(&[9, 0, 40, 0, 6, 0, 0, 0]),
            "is an Interface Description Block whose options overrun it",
        ),
        (
            idb_with(&[9, 0, 1, 0, 19, 0, 0, 0]),
            "declares a timestamp resolution of 10^-19",
        ),
        (
            idb_with(&[9, 0, 1, 0, 0x80 | 63, 0, 0, 0]),
            "declares a timestamp resolution of 2^-63",
        ),
        (
            idb_with(&[&[14, 0, 8, 0][..], &(-(1i64 << 40)).to_le_bytes()].concat()),
            "declares a timestamp offset of -1,099,511,627,776 seconds",
        ),
    ];
    for (idb, why) in cases {
        let data = [&head[..], &epb(0), &idb, &epb(1)].concat();
        let at = head.len() + epb(0).len();
        let r = ok("idb.pcapng", &data);
        assert_eq!(
            r.info.warnings,
            vec![format!("the record at byte {at} {why}: the capture is corrupt from there; analyzed the 1 packets before it")]
        );
    }
    let bad_shb = [
        &head[..],
        &epb(0),
        b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00XXXX",
        &[0; 16],
    ]
    .concat();
    let r = ok("shb.pcapng", &bad_shb);
    assert!(
        r.info.warnings[0].contains("is a Section Header Block without a valid byte-order magic")
    );
}

#[test]
fn broken_headers() {
    fails(
        "short.pcap",
        &pcap(&[])[..10],
        ErrorKind::Malformed,
        "{path}: the pcap file header is cut short (10 of 24 bytes)",
    );
    fails(
        "bad.pcapng",
        &[&b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00XXXX"[..], &[0; 16]].concat(),
        ErrorKind::Malformed,
        "{path} starts like a pcapng file but its Section Header Block is broken",
    );
}

#[test]
fn garbage_never_panics() {
    // A cheap deterministic fuzz: flipped bytes, cut files, odd windows; the invariant holds.
    let mut ng = LE.shb();
    ng.extend(LE.idb(1, 9, None));
    ng.extend(LE.idb(276, 6, None));
    for (k, (ts, f)) in tcp_packets(40).iter().enumerate() {
        let f = if k % 2 == 1 {
            frame(&f[14..], 276)
        } else {
            f.clone()
        };
        ng.extend(LE.epb((k % 2) as u32, *ts as u64, &f));
    }
    let sources = [pcap(&tcp_packets(40)), ng];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..400 {
        let mut data = sources[round % 2].clone();
        for _ in 0..(1 + next() % 6) {
            let at = (next() as usize) % data.len();
            match next() % 4 {
                0 => data[at] ^= (next() % 255 + 1) as u8,
                1 => data.truncate(at.max(1)),
                2 => {
                    let v = [0xFFFF_FFFFu32, 0, 16, 6, 1 << 20][(next() % 5) as usize];
                    let end = (at + 4).min(data.len());
                    let bytes = v.to_le_bytes();
                    data[at..end].copy_from_slice(&bytes[..end - at]);
                }
                _ => data.insert(at, next() as u8),
            }
        }
        if round % 7 == 0 {
            data = gzip(&data);
        }
        let window = [7, 64, 1000, 1 << 20][(next() % 4) as usize];
        if let Err(e) = read_stream("fuzz", &data, window) {
            assert!(!e.message.contains('\n'));
        }
    }
}

// ---- several files as one capture ------------------------------------------------------------

/// One segment as the merge handed it out: (frame, timestamp, seq, payload).
type Taken = (u64, i64, u32, Vec<u8>);

/// Every segment the merge hands out.
fn merged(paths: &[PathBuf], mode: Mode, window: Window) -> Result<Vec<Taken>, CaptureError> {
    let mut merge = Merge::open(paths, mode, window)?;
    let mut out = Vec::new();
    while let Some(n) = merge.next_segment()? {
        out.push((n.frame, n.seg.ts_ns, n.seg.seq, n.payload.to_vec()));
    }
    Ok(out)
}

/// A non-TCP record (UDP) among the TCP ones: the merge numbers it too.
fn udp_at(ts: i64) -> (i64, Vec<u8>) {
    (ts, eth(&ipv4_with(17, &[0; 8], None, 0, 5)))
}

#[test]
fn a_split_capture_merges_back_to_the_whole_with_the_same_frames() {
    let mut packets = tcp_packets(12);
    packets.insert(5, udp_at(packets[4].0));
    let whole = temp("merge-whole.pcap", &pcap(&packets));
    let parts: Vec<PathBuf> = packets
        .chunks(4)
        .enumerate()
        .map(|(k, chunk)| temp(&format!("merge-part{k}.pcap"), &pcap(chunk)))
        .collect();
    let one = merged(&[whole], Mode::Auto, Window::default()).unwrap();
    let reversed: Vec<PathBuf> = parts.iter().rev().cloned().collect();
    assert_eq!(
        merged(&reversed, Mode::Auto, Window::default()).unwrap(),
        one
    );
    // the UDP record is frame 6: the TCP segments after it keep their numbers in the whole
    assert_eq!(
        one.iter().map(|s| s.0).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13]
    );
    let merge = {
        let mut m = Merge::open(&parts, Mode::Auto, Window::default()).unwrap();
        while m.next_segment().unwrap().is_some() {}
        m
    };
    let files = merge.files();
    assert_eq!(
        files
            .iter()
            .map(|f| (f.first_frame, f.last_frame))
            .collect::<Vec<_>>(),
        [(1, 4), (5, 8), (9, 12), (13, 13)]
    );
    assert_eq!(merge.info().packets, 13);
    assert_eq!(merge.info().skipped, vec![("non_tcp", 1)]);
}

#[test]
fn overlapping_files_are_refused_unless_merged_and_then_interleave_by_time() {
    let a: Vec<(i64, Vec<u8>)> = (0..4)
        .map(|k| (TS + k * 10_000_000, eth(&tcp4(k as u32, b"a"))))
        .collect();
    let b: Vec<(i64, Vec<u8>)> = (0..4)
        .map(|k| {
            (
                TS + 5_000_000 + k * 10_000_000,
                eth(&tcp4(100 + k as u32, b"b")),
            )
        })
        .collect();
    let paths = [
        temp("overlap-a.pcap", &pcap(&a)),
        temp("overlap-b.pcap", &pcap(&b)),
    ];
    let e = merged(&paths, Mode::Auto, Window::default()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Overlap);
    assert!(e.message.contains("overlap in time"), "{}", e.message);
    let got = merged(&paths, Mode::Force, Window::default()).unwrap();
    let seqs: Vec<u32> = got.iter().map(|s| s.2).collect();
    assert_eq!(seqs, [0, 100, 1, 101, 2, 102, 3, 103]);
    assert_eq!(
        got.iter().map(|s| s.0).collect::<Vec<_>>(),
        (1..=8).collect::<Vec<u64>>()
    );
}

#[test]
fn a_time_window_keeps_since_to_before_until_and_numbers_as_the_file() {
    let packets = tcp_packets(10); // 1_000_003 ns apart, stored to the microsecond
    let stored = |k: usize| packets[k].0 / 1000 * 1000;
    let path = temp("window.pcap", &pcap(&packets));
    let window = Window {
        since: Some(Edge::AfterStart(2_000_000)),
        until: Some(Edge::At(stored(7))),
    };
    let mut merge = Merge::open(std::slice::from_ref(&path), Mode::Auto, window).unwrap();
    let mut frames = Vec::new();
    while let Some(n) = merge.next_segment().unwrap() {
        frames.push(n.frame);
    }
    // the third packet is stamped exactly 2 ms after the first: in; the eighth at until: out
    assert_eq!(stored(2), stored(0) + 2_000_000);
    assert_eq!(frames, [3, 4, 5, 6, 7]);
    assert_eq!(merge.outside(), 5);
    assert_eq!(
        merge.window(),
        (Some(stored(0) + 2_000_000), Some(stored(7)))
    );
}

#[test]
fn nflog_records_in_both_byte_orders() {
    let l3 = tcp4(7, b"GET / HTTP/1.1\r\n\r\n");
    for big in [false, true] {
        let u16b = |v: u16| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut rec = vec![2, 0, 0, 13];
        // NFULA_PACKET_HDR (1): hw_protocol, hook, pad
        rec.extend_from_slice(&u16b(8));
        rec.extend_from_slice(&u16b(1));
        rec.extend_from_slice(&[8, 0, 3, 0]);
        // NFULA_PAYLOAD (9), its value padded to 4 bytes
        rec.extend_from_slice(&u16b(4 + l3.len() as u16));
        rec.extend_from_slice(&u16b(9));
        rec.extend_from_slice(&l3);
        rec.resize(rec.len() + (4 - l3.len() % 4) % 4, 0);
        let data = Pcap {
            link: 239,
            big,
            ..Pcap::default()
        }
        .bytes(&[(TS, rec)]);
        let got = read_bytes(&format!("nflog-{big}.pcap"), &data).unwrap();
        assert_eq!(got.segments.len(), 1, "big-endian: {big}");
        assert_eq!(got.segments[0].seq, 7);
        assert_eq!(got.payloads[0], b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(got.info.link_types, ["NFLOG"]);
    }
}
