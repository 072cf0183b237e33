"""The "build it yourself" alternative to kaflow: dpkt, one Python object per packet.

    python benchmarks/dpkt_baseline.py FILE [--port 8080]

Reads FILE with ``dpkt.pcap.UniversalReader`` (pcap or pcapng), decodes every packet into
dpkt's objects (Ethernet or Linux cooked v1/v2, IP, TCP), groups the TCP segments on the upstream
port into connection attempts by 4-tuple (a SYN with a new ISN starts a new attempt), and decides
who sent the first FIN or RST. It prints the counts: the least a person would write to answer
"who closes my keepalive connections?", and what ``compare.py`` times kaflow against.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import dpkt

SYN, FIN, RST, ACK = dpkt.tcp.TH_SYN, dpkt.tcp.TH_FIN, dpkt.tcp.TH_RST, dpkt.tcp.TH_ACK


def link_decoder(datalink: int) -> Any:
    decoders = {1: dpkt.ethernet.Ethernet, 113: dpkt.sll.SLL, 276: dpkt.sll2.SLL2}
    if datalink not in decoders:
        raise SystemExit(f"dpkt_baseline: link type {datalink} not handled")
    return decoders[datalink]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    port = args.port

    # 4-tuple (client ip, client port, server ip) -> [client ISN, first closer or None, packets]
    open_: dict[tuple[bytes, int, bytes], list[Any]] = {}
    done: list[list[Any]] = []
    packets = tcp_segments = 0
    with open(args.file, "rb") as f:
        reader = dpkt.pcap.UniversalReader(f)
        decode = link_decoder(reader.datalink())
        for _ts, buf in reader:
            packets += 1
            ip = decode(buf).data
            if not isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6):
                continue
            tcp = ip.data
            if not isinstance(tcp, dpkt.tcp.TCP):
                continue
            tcp_segments += 1
            if tcp.dport == port:
                key, side = (ip.src, tcp.sport, ip.dst), "client"
            elif tcp.sport == port:
                key, side = (ip.dst, tcp.dport, ip.src), "server"
            else:
                continue
            flags = tcp.flags
            conn = open_.get(key)
            if side == "client" and flags & SYN and not flags & ACK:
                if conn is not None and conn[0] != tcp.seq:
                    done.append(conn)  # the tuple is reused: a new connection
                    conn = None
                if conn is None:
                    conn = open_[key] = [tcp.seq, None, 0]
            elif conn is None:
                conn = open_[key] = [None, None, 0]  # open before the capture began
            conn[2] += 1
            if conn[1] is None and flags & (FIN | RST):
                conn[1] = side
    done.extend(open_.values())
    closers = {"client": 0, "server": 0, None: 0}
    for conn in done:
        closers[conn[1]] += 1
    sys.stdout.write(
        f"packets {packets} tcp {tcp_segments} connections {len(done)} "
        f"closed_by_client {closers['client']} closed_by_server {closers['server']} "
        f"not_closed {closers[None]}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
