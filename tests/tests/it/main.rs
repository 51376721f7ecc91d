//! The integration tests: one binary, one module per component or
//! guarantee, every test against the local endpoint (moto patched by
//! `scripts/moto_server.py`) with the real SDK clients. No mocks of AWS.
//!
//! # Where a new test goes
//!
//! - A guarantee of a processor's projection: that processor's file
//!   (`message_groups.rs`, `agent_activity.rs`, `extensions.rs`); a property
//!   test over generated inputs: `properties.rs`.
//! - A CLI command through the real binary: the command's file (`replay.rs`,
//!   `tail.rs` for `tail` and `capture`, `import.rs`, `redrive.rs`,
//!   `ops.rs` for `deadletters` and `status`, `report.rs`, `rebuild.rs`);
//!   the first mistakes a user makes and their messages: `errors.rs`.
//! - A Lambda function binary as Lambda runs it: `lambda_runtime.rs`.
//! - What DynamoDB's idempotency tokens ask of a write: `tokens.rs`.
//! - `template.yaml` against the code: `template.rs`.
//! - A new component: a new file here, named after it, with a `mod` line
//!   below and a row in docs/testing.md ("Where each guarantee is checked").
//!   A suite that needs a process of its own (a global `tracing`
//!   subscriber, minutes of chaos) is its own file in `tests/tests/`.
//!
//! # What to build it from
//!
//! - A table: `let t = streamfold_tests::table("short-prefix").await;` a
//!   fresh table of `schemas/table.json`, deleted when `t` drops, whether
//!   the test passes or fails: never delete it by hand. `t.ctx()`,
//!   `t.exec()`, `t.snapshot()`, `t.items_of_type(..)`, `t.stream_records()`
//!   read it back. Another table the test creates itself: hold a
//!   `streamfold_tests::guard::TableGuard` for it.
//! - Inputs: `streamfold_tests::builders` (`user`, `message`, `at`,
//!   `group_id`, `WaitingProfile`, `fixture_records`, `json_lines`, …) and
//!   the fixtures (`streamfold_tests::fixture("name")`, described in
//!   `tests/fixtures/README.md`); Kinesis streams and S3 objects:
//!   `streamfold_tests::kinesis`, `streamfold_tests::s3`.
//! - The CLI: `streamfold_tests::cli` (`run`, `run_ok`, `summary`, `cli`);
//!   Lambda binaries: `streamfold_tests::runtime_api`; the Connect stub,
//!   the chaos and serial proxies: their modules in `tests/src/`.
//! - A helper two test files need goes into `tests/src/`, not into both.
//!
//! Errors: `.expect("what was expected")` or `?`, never `unwrap()` (the
//! workspace lints deny it).
//!
//! # Running one test
//!
//! ```sh
//! # STREAMFOLD_ENDPOINT_PORT picks another port than 4566
//! STREAMFOLD_MOTO_TXN=items scripts/endpoint start; eval "$(scripts/endpoint env)"
//! cargo test -j2 -p streamfold-tests --test it -- message_groups::stale_redelivery
//! ```
//!
//! or `scripts/test -- FILTER`, which starts and stops the endpoint itself.

// Tests say why they expect a value: `.expect("the table is created")`
// (the workspace denies `expect` outside tests, and `unwrap` everywhere).
#![allow(clippy::expect_used)]

mod agent_activity;
mod capacity;
mod errors;
mod extensions;
mod import;
mod lambda_runtime;
mod message_groups;
mod ops;
mod properties;
mod rebuild;
mod redrive;
mod replay;
mod report;
mod tail;
mod template;
mod tokens;
