"""The scapy version of ``dpkt_baseline.py``: full dissection, one Packet object per packet.

    python benchmarks/scapy_baseline.py FILE [--port 8080]

scapy does ~7k packets/s here, so ``compare.py`` runs it on a prefix of the capture only.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.utils import PcapReader


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    port = args.port
    open_: dict[tuple[str, int, str], list[Any]] = {}
    done: list[list[Any]] = []
    packets = 0
    with PcapReader(args.file) as reader:  # reads pcap and pcapng
        for pkt in reader:
            packets += 1
            if TCP not in pkt:
                continue
            ip = pkt.getlayer(IP) or pkt.getlayer(IPv6)
            if ip is None:
                continue
            tcp = pkt[TCP]
            if tcp.dport == port:
                key, side = (ip.src, tcp.sport, ip.dst), "client"
            elif tcp.sport == port:
                key, side = (ip.dst, tcp.dport, ip.src), "server"
            else:
                continue
            flags = int(tcp.flags)
            conn = open_.get(key)
            if side == "client" and flags & 0x02 and not flags & 0x10:
                if conn is not None and conn[0] != tcp.seq:
                    done.append(conn)
                    conn = None
                if conn is None:
                    conn = open_[key] = [tcp.seq, None]
            elif conn is None:
                conn = open_[key] = [None, None]
            if conn[1] is None and flags & 0x05:
                conn[1] = side
    done.extend(open_.values())
    closers = {"client": 0, "server": 0, None: 0}
    for conn in done:
        closers[conn[1]] += 1
    sys.stdout.write(
        f"packets {packets} connections {len(done)} closed_by_client {closers['client']} "
        f"closed_by_server {closers['server']} not_closed {closers[None]}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
