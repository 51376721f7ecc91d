//! The chaos report: every workload at each fault rate, with kills and a
//! full redelivery, compared item for item with a fault-free run.
//!
//!     cargo run -p streamfold-tests --bin chaos --release -- [SCALE] [RATES] [KILLS] [SEED] [WORKLOADS]
//!
//! Without `--release` the `streamfold` CLI it drives is a debug build too.
//!
//! Defaults: scale 1 (3,000 messages over 60 conversations; a day of 12
//! agents, about 3,300 events; 2,000 extension arrivals on a pool of 1,800,
//! 500 leaving, 500 more), rates `0.1,0.3`, 3 kills per pass, seed 7, every workload
//! (`messaging,agent-activity,extensions`). Needs
//! the endpoint in AWS_ENDPOINT_URL (the item-snapshot one at this size:
//! `STREAMFOLD_MOTO_TXN=items scripts/endpoint start`). Exits 1 unless
//! every scenario ends identical to its fault-free run with no dead letter.

use std::process::ExitCode;
use std::time::Duration;

use streamfold_tests::chaos::{Chaos, Runner, Workload, default_log, render};
use streamfold_tests::runtime_api::build_binary;

fn arg<T: std::str::FromStr>(n: usize, default: T) -> T {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> ExitCode {
    streamfold_tests::require_endpoint();
    // A fraction makes a quick run: 0.024 is 48 extension arrivals.
    let scale: f64 = arg(1, 1.0f64).max(0.001);
    let sized = |n: usize| ((n as f64 * scale).round() as usize).max(1);
    let rates: Vec<f64> = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "0.1,0.3".to_owned())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let kills: u32 = arg(3, 3);
    let seed: u64 = arg(4, 7);
    let only: Vec<String> = std::env::args()
        .nth(5)
        .map(|w| w.split(',').map(|s| s.trim().to_owned()).collect())
        .unwrap_or_default();
    // The CLI in this binary's own profile: `--release` (the report's
    // figures) or debug (a quick run on a warm debug target).
    let bin = match build_binary("streamfold", !cfg!(debug_assertions)) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("chaos: {e}");
            return ExitCode::from(2);
        }
    };
    let runner = Runner {
        bin,
        upstream: std::env::var("AWS_ENDPOINT_URL").unwrap_or_default(),
        log: default_log("report"),
    };
    let workloads = [
        Workload::Messaging {
            groups: sized(60),
            messages: sized(3_000),
        },
        Workload::Agents { agents: sized(12) },
        Workload::Extensions {
            agents: sized(2_000),
            pool: sized(1_800),
        },
    ];
    println!(
        "chaos: scale {scale}, rates {rates:?}, {kills} kills per pass, seed {seed}; tail logs in {}",
        runner.log.display()
    );
    let mut reports = Vec::new();
    for w in workloads
        .into_iter()
        .filter(|w| only.is_empty() || only.iter().any(|o| o == w.name()))
    {
        for (i, &rate) in rates.iter().enumerate() {
            let chaos = Chaos {
                rate,
                kills,
                seed: seed + i as u64,
                attempt_timeout: Duration::from_millis(2_000),
                max_kill_delay: Duration::from_secs(6),
            };
            match runner.scenario(w, chaos).await {
                Ok(r) => {
                    eprintln!("{r}   ({:.0} s)", r.seconds);
                    reports.push(r);
                }
                Err(e) => {
                    eprintln!("chaos: {} at {rate}: {e:#}", w.name());
                    return ExitCode::from(2);
                }
            }
        }
    }
    print!("{}", render(&reports));
    if reports.iter().all(|r| r.clean()) {
        println!("every scenario: final-state diff empty, no dead letters");
        ExitCode::SUCCESS
    } else {
        println!("SOME SCENARIO DIFFERS");
        ExitCode::from(1)
    }
}
