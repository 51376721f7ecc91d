//! Small error types shared by several modules.

/// An invariant a fuzz body found broken (the fuzz targets in `fuzz/` panic
/// with it; the proptests fail with it): what broke, without the input's
/// values where they could be personal data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BrokenInvariant(pub String);
