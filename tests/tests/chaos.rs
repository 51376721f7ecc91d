//! The chaos suite at CI size: each workload through `streamfold tail` with
//! 30 % of requests failing (throttling, 500s, answers past the timeout,
//! connections dropped after the write, cancelled transactions), the
//! process killed with SIGKILL at random points and restarted, and every
//! record delivered again; the table must end identical to a fault-free
//! run. The `chaos` binary runs the same at thousands of records per
//! workload and prints the report (docs/testing.md, "Chaos").

// Tests say why they expect a value: `.expect("the table is created")`
// (the workspace denies `expect` outside tests, and `unwrap` everywhere).
#![allow(clippy::expect_used)]

use std::time::Duration;

use streamfold_tests::chaos::{Chaos, Report, Runner, Workload, default_log, render};
use streamfold_tests::cli::binary;

fn chaos(seed: u64) -> Chaos {
    Chaos {
        rate: 0.3,
        kills: 2,
        seed,
        attempt_timeout: Duration::from_millis(1_500),
        max_kill_delay: Duration::from_millis(2_000),
    }
}

async fn run(workload: Workload, seed: u64) -> Report {
    streamfold_tests::require_endpoint();
    let runner = Runner {
        bin: binary(),
        upstream: std::env::var("AWS_ENDPOINT_URL").unwrap_or_default(),
        log: default_log(workload.name()),
    };
    let report = runner
        .scenario(workload, chaos(seed))
        .await
        .expect("the scenario runs");
    eprint!("{}", render(std::slice::from_ref(&report)));
    assert!(report.records > 0, "the workload wrote no records");
    assert!(report.faults.faults() > 0, "no fault was injected");
    assert!(report.items > 0, "nothing to compare");
    assert!(
        report.clean(),
        "the chaos run differs from the clean run (tail logs: {}):\n{}",
        runner.log.display(),
        render(std::slice::from_ref(&report))
    );
    report
}

/// The three workloads at once (their waits overlap: backoffs, answers
/// held past the timeout, idle detection), each with its own proxy, tables
/// and seed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_every_workload_at_30_percent_with_kills_ends_identical() {
    let (_, _, extensions) = tokio::join!(
        run(
            Workload::Messaging {
                groups: 6,
                messages: 90,
            },
            11,
        ),
        run(Workload::Agents { agents: 1 }, 12),
        run(
            Workload::Extensions {
                agents: 48,
                pool: 40,
            },
            13,
        ),
    );
    assert_eq!(extensions.invariants.as_deref(), Some("hold"));
}
