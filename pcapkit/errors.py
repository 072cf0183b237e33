"""The errors kaflow raises, and only these.

A capture is untrusted input, so every way it can be unusable has a name here and a message that
tells the operator what to do about it. The CLI turns any :class:`KaflowError` into one line on
stderr and exit code 2; anything else escaping the library is a bug. ``docs/robustness.md`` says
what kaflow trusts in a capture, what it reports, and what it refuses, with every message.

::

    KaflowError
    ├── InputError                  the path itself: missing, a directory, unreadable
    ├── CaptureError                the bytes are not a capture we can read
    │   ├── NotACaptureError        wrong magic; says what the file looks like instead
    │   ├── CompressedCaptureError  xz/bzip2/zstd/lz4/zip/7z: unpack it first (gzip is read)
    │   ├── UnsupportedLinkTypeError  a link type we cannot decode (named)
    │   ├── EmptyCaptureError       no packets at all
    │   └── MalformedCaptureError   structure broken beyond recovery (record header lies)
    ├── NoUpstreamTrafficError      packets, but none to or from the upstream port(s)
    ├── MissingExtraError           a report format needs an optional extra (named) installed
    └── OutputError                 a report cannot be written where asked
"""

from __future__ import annotations


class KaflowError(Exception):
    """Base of every error kaflow raises on purpose; the message is one line meant for a human."""


class InputError(KaflowError):
    """The path cannot be read as a file: missing, a directory, or no permission."""


class CaptureError(KaflowError):
    """The file is not a capture kaflow can read."""


class NotACaptureError(CaptureError):
    """The file does not start with a pcap or pcapng magic number."""


class CompressedCaptureError(CaptureError):
    """The capture is wrapped in a compression format kaflow does not unpack itself."""


class UnsupportedLinkTypeError(CaptureError):
    """Every interface in the capture uses a link type kaflow cannot decode."""


class EmptyCaptureError(CaptureError):
    """The capture has a valid header but no packets."""


class MalformedCaptureError(CaptureError):
    """The capture's structure is broken before any packet could be read."""


class NoUpstreamTrafficError(KaflowError):
    """The capture holds TCP traffic, but none on the upstream port(s) asked for."""


class MissingExtraError(KaflowError):
    """A report format needs a package of an optional extra that is not installed."""


class OutputError(KaflowError):
    """A report cannot be written where asked: the folder cannot be made, a file written."""
