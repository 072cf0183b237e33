"""kaflow: what happened on every nginx↔upstream keepalive connection in a packet capture.

::

    from pcapkit import analyze

    result = analyze("dump.pcap", port=8080)
    for finding in result.findings:
        print(finding.type, finding.connection, finding.message)
    frame = result.events_frame()  # pandas, one row per event

Names are loaded on first use, so ``import pcapkit`` (and ``kaflow --help``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from pcapkit.analysis import DEFAULT_PORT, analyze
    from pcapkit.errors import (
        CaptureError,
        CompressedCaptureError,
        EmptyCaptureError,
        InputError,
        KaflowError,
        MalformedCaptureError,
        NotACaptureError,
        NotOneCaptureError,
        NoUpstreamTrafficError,
        UnsupportedLinkTypeError,
        WrongPortError,
    )
    from pcapkit.model import (
        Advice,
        Analysis,
        Anomaly,
        CaptureFile,
        CaptureSummary,
        Connection,
        ConnectionRef,
        Event,
        Finding,
        Request,
        Summary,
    )

__all__ = [
    "DEFAULT_PORT",
    "Advice",
    "Analysis",
    "Anomaly",
    "CaptureError",
    "CaptureFile",
    "CaptureSummary",
    "CompressedCaptureError",
    "Connection",
    "ConnectionRef",
    "EmptyCaptureError",
    "Event",
    "Finding",
    "InputError",
    "KaflowError",
    "MalformedCaptureError",
    "NoUpstreamTrafficError",
    "NotACaptureError",
    "NotOneCaptureError",
    "Request",
    "Summary",
    "UnsupportedLinkTypeError",
    "WrongPortError",
    "__version__",
    "analyze",
]

_WHERE = {
    "analyze": "pcapkit.analysis",
    "DEFAULT_PORT": "pcapkit.analysis",
    **{n: "pcapkit.errors" for n in __all__ if n.endswith("Error")},
    **{n: "pcapkit.model" for n in __all__ if n[0].isupper() and not n.endswith(("Error", "PORT"))},
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'pcapkit' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
