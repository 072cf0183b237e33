//! Which link layers the reader decodes (linktypes.py): one table row per link type.

/// How the decoder tells IPv4 from IPv6 (or neither) behind the link header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// An Ethernet-style protocol field at `proto_at`; VLAN tags may follow.
    Ethertype,
    /// No link header: the version nibble says which IP it is.
    IpVersion,
    /// A 4-byte BSD address family in the capturing host's byte order (DLT_NULL).
    AfHostOrder,
    /// A 4-byte BSD address family in network byte order (OpenBSD's DLT_LOOP).
    AfNetworkOrder,
    FixedIpv4,
    FixedIpv6,
    /// Linux NFLOG (`tcpdump -i nflog`): a 4-byte header whose first byte is the address
    /// family, then type-length-value attributes; the packet is the NFULA_PAYLOAD attribute.
    Nflog,
}

#[derive(Debug, PartialEq, Eq)]
pub struct LinkType {
    pub number: u32,
    pub name: &'static str,
    pub framing: Framing,
    /// Bytes before the IP header (before any VLAN tags).
    pub header_len: usize,
    /// Offset of the ethertype field, for `Framing::Ethertype`.
    pub proto_at: usize,
}

const fn lt(
    number: u32,
    name: &'static str,
    framing: Framing,
    header_len: usize,
    proto_at: usize,
) -> LinkType {
    LinkType {
        number,
        name,
        framing,
        header_len,
        proto_at,
    }
}

/// In linktypes.py's order: the refusal message lists the names in it.
pub static SUPPORTED: [LinkType; 11] = [
    lt(1, "EN10MB", Framing::Ethertype, 14, 12),
    lt(113, "LINUX_SLL", Framing::Ethertype, 16, 14),
    lt(276, "LINUX_SLL2", Framing::Ethertype, 20, 0),
    lt(101, "RAW", Framing::IpVersion, 0, 0),
    lt(12, "RAW", Framing::IpVersion, 0, 0),
    lt(14, "RAW", Framing::IpVersion, 0, 0),
    lt(228, "IPV4", Framing::FixedIpv4, 0, 0),
    lt(229, "IPV6", Framing::FixedIpv6, 0, 0),
    lt(0, "NULL", Framing::AfHostOrder, 4, 0),
    lt(108, "LOOP", Framing::AfNetworkOrder, 4, 0),
    lt(239, "NFLOG", Framing::Nflog, 4, 0),
];

static UNSUPPORTED_NAMES: [(u32, &str); 23] = [
    (6, "IEEE802"),
    (8, "SLIP"),
    (9, "PPP"),
    (10, "FDDI"),
    (50, "PPP_HDLC"),
    (51, "PPP_ETHER"),
    (104, "C_HDLC"),
    (105, "IEEE802_11"),
    (119, "PRISM_HEADER"),
    (127, "IEEE802_11_RADIO"),
    (143, "DOCSIS"),
    (163, "IEEE802_11_RADIO_AVS"),
    (187, "BLUETOOTH_HCI_H4"),
    (189, "USB_LINUX"),
    (192, "PPI"),
    (195, "IEEE802_15_4"),
    (201, "BLUETOOTH_HCI_H4_WITH_PHDR"),
    (215, "IEEE802_15_4_NONASK_PHY"),
    (220, "USB_LINUX_MMAPPED"),
    (249, "USBPCAP"),
    (253, "NETLINK"),
    (263, "IEEE802_15_4_TAP"),
    (279, "DSA_TAG_BRCM"),
];

pub fn lookup(number: u32) -> Option<&'static LinkType> {
    SUPPORTED.iter().find(|lt| lt.number == number)
}

/// The tcpdump name of any link type number; `LINKTYPE_<n>` when there is none.
pub fn link_type_name(number: u32) -> String {
    if let Some(lt) = lookup(number) {
        return lt.name.to_string();
    }
    match UNSUPPORTED_NAMES.iter().find(|(n, _)| *n == number) {
        Some((_, name)) => (*name).to_string(),
        None => format!("LINKTYPE_{number}"),
    }
}

pub fn supported_names() -> String {
    let mut names: Vec<&str> = Vec::new();
    for lt in &SUPPORTED {
        if !names.contains(&lt.name) {
            names.push(lt.name);
        }
    }
    names.join(", ")
}

/// One line naming the link type(s) we cannot decode and the ones we can.
pub fn unsupported_message(path: &str, numbers: &[u32]) -> String {
    let mut unique: Vec<u32> = Vec::new();
    for &n in numbers {
        if !unique.contains(&n) {
            unique.push(n);
        }
    }
    let named: Vec<String> = unique
        .iter()
        .map(|&n| format!("{n} ({})", link_type_name(n)))
        .collect();
    let verb = if unique.len() == 1 { "is" } else { "are" };
    format!(
        "{path}: link type {} {verb} not supported; kaflow reads {} \
         (capture on the host's interface or with `tcpdump -i any`)",
        named.join(", "),
        supported_names()
    )
}
