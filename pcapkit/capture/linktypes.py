"""Which link layers the reader decodes, and how to find the IP header behind each.

Everything that differs between link types lives in this one table, so supporting another one is
a row here, not a branch in the decoder. Numbers are LINKTYPE_* values as written in pcap and
pcapng files; names are the ones tcpdump prints (``tcpdump -L``, ``-r`` headers), so an error
message names the link type the way the user's tools do.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


class Framing(enum.Enum):
    """How the decoder tells IPv4 from IPv6 (or neither) behind the link header."""

    #: An Ethernet-style protocol field (0x0800 / 0x86DD) at ``proto_at``; VLAN tags may follow.
    ETHERTYPE = "ethertype"
    #: No link header: the version nibble of the first byte says which IP it is.
    IP_VERSION = "ip-version"
    #: A 4-byte BSD address family in the byte order of the host that captured (DLT_NULL).
    AF_HOST_ORDER = "af-host-order"
    #: A 4-byte BSD address family in network byte order (OpenBSD's DLT_LOOP).
    AF_NETWORK_ORDER = "af-network-order"
    #: Always IPv4 (or always IPv6); the version nibble is still checked.
    FIXED_IPV4 = "ipv4"
    FIXED_IPV6 = "ipv6"


@dataclass(frozen=True, slots=True)
class LinkType:
    number: int
    name: str
    framing: Framing
    header_len: int  # bytes before the IP header (before any VLAN tags)
    proto_at: int = 0  # offset of the ethertype field, for Framing.ETHERTYPE


SUPPORTED: Mapping[int, LinkType] = MappingProxyType(
    {
        lt.number: lt
        for lt in (
            LinkType(1, "EN10MB", Framing.ETHERTYPE, header_len=14, proto_at=12),
            # Linux cooked v1: packet type, ARPHRD, address length, 8 address bytes, protocol.
            LinkType(113, "LINUX_SLL", Framing.ETHERTYPE, header_len=16, proto_at=14),
            # Linux cooked v2 (`tcpdump -i any` since libpcap 1.10): protocol comes first.
            LinkType(276, "LINUX_SLL2", Framing.ETHERTYPE, header_len=20, proto_at=0),
            LinkType(101, "RAW", Framing.IP_VERSION, header_len=0),
            # DLT_RAW leaks into files under its platform values: 12 on most systems, 14 on OpenBSD.
            LinkType(12, "RAW", Framing.IP_VERSION, header_len=0),
            LinkType(14, "RAW", Framing.IP_VERSION, header_len=0),
            LinkType(228, "IPV4", Framing.FIXED_IPV4, header_len=0),
            LinkType(229, "IPV6", Framing.FIXED_IPV6, header_len=0),
            LinkType(0, "NULL", Framing.AF_HOST_ORDER, header_len=4),
            LinkType(108, "LOOP", Framing.AF_NETWORK_ORDER, header_len=4),
        )
    }
)

#: Supported link types, number -> tcpdump name.
LINK_TYPES: Mapping[int, str] = MappingProxyType({n: lt.name for n, lt in SUPPORTED.items()})

# Names of link types we do not decode but that users meet, so the refusal names what they have.
_UNSUPPORTED_NAMES: Mapping[int, str] = MappingProxyType(
    {
        6: "IEEE802",
        8: "SLIP",
        9: "PPP",
        10: "FDDI",
        50: "PPP_HDLC",
        51: "PPP_ETHER",
        104: "C_HDLC",
        105: "IEEE802_11",
        119: "PRISM_HEADER",
        127: "IEEE802_11_RADIO",
        143: "DOCSIS",
        163: "IEEE802_11_RADIO_AVS",
        187: "BLUETOOTH_HCI_H4",
        189: "USB_LINUX",
        192: "PPI",
        195: "IEEE802_15_4",
        201: "BLUETOOTH_HCI_H4_WITH_PHDR",
        215: "IEEE802_15_4_NONASK_PHY",
        220: "USB_LINUX_MMAPPED",
        239: "NFLOG",
        249: "USBPCAP",
        253: "NETLINK",
        263: "IEEE802_15_4_TAP",
        279: "DSA_TAG_BRCM",
    }
)


def link_type_name(number: int) -> str:
    """The tcpdump name of any link type number; ``LINKTYPE_<n>`` when we know no name."""
    lt = SUPPORTED.get(number)
    if lt is not None:
        return lt.name
    return _UNSUPPORTED_NAMES.get(number, f"LINKTYPE_{number}")


def supported_names() -> str:
    """The list an unsupported-link-type message ends with."""
    return ", ".join(dict.fromkeys(lt.name for lt in SUPPORTED.values()))


def unsupported_message(path: str, numbers: list[int]) -> str:
    """One line naming the link type(s) we cannot decode and the ones we can."""
    named = ", ".join(f"{n} ({link_type_name(n)})" for n in dict.fromkeys(numbers))
    verb = "is" if len(set(numbers)) == 1 else "are"
    return (
        f"{path}: link type {named} {verb} not supported; kaflow reads {supported_names()} "
        "(capture on the host's interface or with `tcpdump -i any`)"
    )
