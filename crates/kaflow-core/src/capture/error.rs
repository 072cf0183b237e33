//! The one error type the reader returns; `kind` says which of `pcapkit.errors` it maps to.

use std::fmt;

/// Mirrors the Python exception classes, so the binding can raise the same one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// `InputError`: the path itself (missing, a directory, unreadable).
    Input,
    /// `NotACaptureError`: wrong magic.
    NotACapture,
    /// `CompressedCaptureError`: xz/bzip2/zstd/lz4/zip/7z.
    Compressed,
    /// `UnsupportedLinkTypeError`.
    UnsupportedLinkType,
    /// `EmptyCaptureError`.
    Empty,
    /// `MalformedCaptureError`.
    Malformed,
    /// `NotOneCaptureError`: files given as pieces of one capture cover the same time.
    Overlap,
}

/// A one-line message naming the file, byte-identical to what kaflow's Python reader raised
/// (the messages `docs/robustness.md` quotes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureError {
    pub kind: ErrorKind,
    pub message: String,
}

impl CaptureError {
    pub(crate) fn new(kind: ErrorKind, message: String) -> Self {
        CaptureError { kind, message }
    }
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CaptureError {}
