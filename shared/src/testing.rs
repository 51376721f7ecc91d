//! Helpers for tests and benchmarks: where the repository's own fixtures are
//! (`tests/fixtures/`, real-shaped AWS payloads described in its README).

use std::path::PathBuf;

/// The fixtures folder: `STREAMFOLD_FIXTURES` when set, else the
/// repository's `tests/fixtures/`.
pub fn fixtures_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("STREAMFOLD_FIXTURES") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("tests")
        .join("fixtures")
}

/// The text of a fixture file; panics with a clear message when missing
/// (tests only).
pub fn fixture(name: &str) -> String {
    let path = fixtures_dir().join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("fixture {} not readable: {e}", path.display()))
}
