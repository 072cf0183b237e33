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
    ├── NotOneCaptureError          files given as one capture are not: overlapping, same-named
    ├── NoUpstreamTrafficError      packets, but none to or from the upstream port(s)
    ├── WrongPortError              the port given is the client's side; names the upstream's
    ├── ConfigError                 an nginx or upstream config kaflow cannot read (says where)
    ├── LogError                    an nginx log that cannot be read at all (bad lines are counted)
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


class ConfigError(KaflowError):
    """A configuration file cannot be read: missing, malformed, hostile (an include cycle, an XML
    entity, a file past the size limit) or of a kind kaflow does not know."""


class LogError(KaflowError):
    """An nginx log file cannot be read at all; lines it cannot parse are counted, not raised."""


class NotOneCaptureError(KaflowError):
    """Files given as the pieces of one capture are not: their times overlap, or two have the
    same name (captures of two hosts, or two interfaces), to be analyzed one by one, or merged
    on purpose (``merge=True``)."""


class NoUpstreamTrafficError(KaflowError):
    """The capture holds TCP traffic, but none on the upstream port(s) asked for."""


class WrongPortError(KaflowError):
    """The port given is the client's side of the connections: their SYNs leave from it.

    Analyzing them the wrong way round would call nginx's SYNs unanswered connects and its
    requests responses, so kaflow stops and names the port the SYNs go to."""


class MissingExtraError(KaflowError):
    """A report format needs a package of an optional extra that is not installed."""


class OutputError(KaflowError):
    """A report cannot be written where asked: the folder cannot be made, a file written."""
