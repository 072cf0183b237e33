"""The capture stage: a pcap or pcapng file in, columnar TCP segments out.

::

    with open_capture("upstream.pcap") as reader:
        for batch in reader:          # one SegmentBatch per window of the file
            ...
        reader.info                   # what was read and what was skipped, and why
"""

from __future__ import annotations

from .linktypes import LINK_TYPES
from .reader import CaptureReader, open_capture
from .reread import FileBytes
from .types import (
    ACK,
    FIN,
    PSH,
    RST,
    SYN,
    URG,
    CaptureInfo,
    SegmentBatch,
    format_endpoint,
    format_ip,
)

__all__ = [
    "ACK",
    "FIN",
    "LINK_TYPES",
    "PSH",
    "RST",
    "SYN",
    "URG",
    "CaptureInfo",
    "CaptureReader",
    "FileBytes",
    "SegmentBatch",
    "format_endpoint",
    "format_ip",
    "open_capture",
]
