//! `agents report`: the HTML picture of a day, rendered with headless
//! Chromium (Debian's /usr/bin/chromium; the test skips, saying so, when it
//! is absent) and checked not to be blank.

use std::path::Path;
use std::process::Command;

use streamfold::agents;
use streamfold::pipeline::{Pipeline, ProcessorKind, batch_backoff};
use streamfold_shared::kinesis::KinesisRecord;
use streamfold_tests::{fixture, table};

const CHROMIUM: &str = "/usr/bin/chromium";

fn render(html: &Path, png: &Path) -> bool {
    let profile = std::env::temp_dir().join(format!("sf-chromium-{}", fastrand::u64(..)));
    let ok = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1200,900")
        .arg(format!("file://{}", html.display()))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let _ = std::fs::remove_dir_all(&profile);
    ok && png.exists()
}

#[tokio::test]
async fn the_report_of_a_day_renders_in_headless_chromium_and_is_not_blank() {
    let t = table("aa-report").await;
    let mut lines: Vec<String> = fixture("connect-agent-events.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    let day_start = 1_795_132_800_000; // 2026-11-20T00:00:00Z
    lines.extend(
        agent_activity::synth::shifts(3, 1, day_start, 3 * 3_600_000)
            .iter()
            .map(|v| v.to_string()),
    );
    let records: Vec<KinesisRecord> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| KinesisRecord::from_payload_line("report", i + 1, l))
        .collect();
    let pipeline = Pipeline::new(t.ctx().clone(), &[ProcessorKind::AgentActivity]);
    for batch in records.chunks(500) {
        let c = pipeline
            .run_kinesis_batch_retrying(batch, 3, batch_backoff())
            .await;
        assert_eq!(c.failed + c.dead_lettered, 0, "{c:?}");
    }
    let day = streamfold_shared::ids::Timestamp::parse("2026-11-20T00:00:00Z")
        .expect("the timestamp parses")
        .date();
    let html = agents::report(&t.app, day, None)
        .await
        .expect("the report renders");
    drop(t);
    assert!(
        html.contains("mgarcia") && html.contains("agent00002"),
        "every agent: {html}"
    );
    assert!(!html.contains("<script"), "no scripts");
    assert!(!html.contains("https://"), "nothing from the network");
    let only = html
        .match_indices("http://")
        .all(|(i, _)| html[i..].starts_with("http://www.w3.org/2000/svg"));
    assert!(only, "the only URL is the SVG namespace");

    if !Path::new(CHROMIUM).exists() {
        println!("SKIPPED the rendering: {CHROMIUM} is missing (apt-get install -y chromium)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("sf-report-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).expect("the directory is created");
    let (page, blank) = (dir.join("report.html"), dir.join("blank.html"));
    std::fs::write(&page, &html).expect("the file is written");
    std::fs::write(&blank, "<!DOCTYPE html><html><body></body></html>")
        .expect("the file is written");
    let (page_png, blank_png) = (dir.join("report.png"), dir.join("blank.png"));
    assert!(render(&page, &page_png), "chromium rendered the report");
    assert!(render(&blank, &blank_png), "chromium rendered a blank page");
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let (got, empty) = (size(&page_png), size(&blank_png));
    println!("report PNG {got} bytes, blank page {empty} bytes");
    assert!(
        got > empty * 5,
        "the report renders as more than a blank page: {got} vs {empty}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
