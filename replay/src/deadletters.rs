//! `streamfold deadletters`: list, show, retry and purge the records the
//! processors could not process (`DEADLETTER#{processor}` items).
//!
//! `retry` runs each stored raw record through its processor as a one-record
//! batch, with the processor's own guarded writes: a record whose cause was
//! fixed is applied (or found already reflected) and its dead letter deleted
//! right after; one that still fails stays, with the new error, an attempt
//! count and the time of the retry. The processors are idempotent, so a
//! second retry, or a retry racing the live pipeline, changes nothing more.
//! A dead letter whose raw text is no record (a line `replay` could not
//! decode, `FILE:LINE`) is reported and left as it is.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use clap::Subcommand;
use serde::Serialize;
use serde_json::{Value, json};
use streamfold_shared::attrs::sv;
use streamfold_shared::deadletter::DeadLetter;
use streamfold_shared::engine::{BatchReport, Context, EventSource, Outcome, Records};
use streamfold_shared::executor::{DryRun, Item};
use streamfold_shared::ids::Timestamp;
use streamfold_shared::kinesis::KinesisRecord;
use streamfold_shared::record::StreamRecord;

use crate::app::App;
use crate::pipeline::ProcessorKind;
use crate::render::{table, when};

#[derive(Debug, Subcommand)]
pub enum DeadlettersCmd {
    /// List dead letters, newest first.
    List {
        #[arg(long = "processor", value_enum)]
        processors: Vec<ProcessorKind>,
        #[arg(long, default_value_t = 50)]
        limit: i32,
        #[arg(long)]
        json: bool,
    },
    /// Show dead letters of one record id (as `list` shows it): the record,
    /// decoded where it can be, and the error.
    Show {
        /// The record id (`RECORD` in `list`).
        id: String,
        #[arg(long = "processor", value_enum)]
        processors: Vec<ProcessorKind>,
        #[arg(long)]
        json: bool,
    },
    /// Run dead-lettered records through their processor again, one record
    /// per batch: applied ones are deleted, failing ones stay with the new
    /// error and an attempt count. Exit code 1 when any is left.
    Retry {
        #[arg(long = "processor", value_enum)]
        processors: Vec<ProcessorKind>,
        /// Only the dead letters of this record id.
        #[arg(long)]
        id: Option<String>,
        /// Write nothing: print the writes a retry would send (JSON lines on
        /// stdout) and what would happen to each dead letter (stderr).
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Delete dead letters older than a duration (by when they were
    /// dead-lettered).
    Purge {
        /// `30d`, `12h`, `90m`, `3600s` (or a number of seconds).
        #[arg(long, value_parser = parse_duration)]
        older_than: Duration,
        #[arg(long = "processor", value_enum)]
        processors: Vec<ProcessorKind>,
        /// Really delete them.
        #[arg(long)]
        yes: bool,
        /// Print what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Parses `30d`, `12h`, `90m`, `45s` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is no duration: give e.g. 30d, 12h, 90m or 45s"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("{text:?}: the unit is one of s, m, h, d, w")),
    };
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

/// A dead letter as stored, with its key and retry bookkeeping.
#[derive(Debug, Clone, Serialize)]
pub struct Stored {
    #[serde(flatten)]
    pub letter: DeadLetter,
    /// Retries so far (`deadletters retry`).
    pub attempts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retried_at: Option<String>,
    #[serde(skip)]
    pub pk: String,
    #[serde(skip)]
    pub sk: String,
}

impl Stored {
    fn from_item(item: Item) -> Result<Self> {
        let s = |k: &str| streamfold_shared::attrs::s(&item, k).map(str::to_owned);
        let pk = s("pk").unwrap_or_default();
        let sk = s("sk").unwrap_or_default();
        let retried_at = s("retried_at");
        let attempts = match item.get("attempts") {
            Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
            _ => 0,
        };
        let letter = DeadLetter::from_item(item)?;
        Ok(Self {
            letter,
            attempts,
            retried_at,
            pk,
            sk,
        })
    }

    fn key(&self) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("pk".to_owned(), sv(self.pk.clone())),
            ("sk".to_owned(), sv(self.sk.clone())),
        ])
    }
}

fn kinds_or_all(kinds: &[ProcessorKind]) -> &[ProcessorKind] {
    if kinds.is_empty() {
        ProcessorKind::ALL
    } else {
        kinds
    }
}

fn sdk_error<E, R>(e: aws_sdk_dynamodb::error::SdkError<E, R>) -> anyhow::Error
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    anyhow!("{}", DisplayErrorContext(e))
}

/// Dead letters of `kind`, newest first, at most `limit` (all with `None`).
pub async fn load(app: &App, kind: ProcessorKind, limit: Option<i32>) -> Result<Vec<Stored>> {
    let mut out = Vec::new();
    let mut start: Option<HashMap<String, AttributeValue>> = None;
    loop {
        let mut q = app
            .ddb()
            .query()
            .table_name(&app.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", sv(format!("DEADLETTER#{}", kind.name())))
            .scan_index_forward(false)
            .set_exclusive_start_key(start.take());
        if let Some(l) = limit {
            q = q.limit(l.max(1));
        }
        let page = q.send().await.map_err(sdk_error)?;
        for item in page.items.unwrap_or_default() {
            out.push(Stored::from_item(item)?);
        }
        match (limit, page.last_evaluated_key) {
            (None, Some(k)) if !k.is_empty() => start = Some(k),
            _ => return Ok(out),
        }
    }
}

/// How many dead letters each processor has (every page read).
pub async fn count(app: &App) -> Result<Vec<(ProcessorKind, u64)>> {
    let mut out = Vec::new();
    for kind in ProcessorKind::ALL {
        out.push((*kind, load(app, *kind, None).await?.len() as u64));
    }
    Ok(out)
}

pub async fn run_cli(app: &App, cmd: DeadlettersCmd) -> Result<ExitCode> {
    match cmd {
        DeadlettersCmd::List {
            processors,
            limit,
            json,
        } => list(app, &processors, limit, json).await,
        DeadlettersCmd::Show {
            id,
            processors,
            json,
        } => show(app, &id, &processors, json).await,
        DeadlettersCmd::Retry {
            processors,
            id,
            dry_run,
            json,
        } => {
            let report = retry(app, &processors, id.as_deref(), dry_run).await?;
            let text = if json {
                format!("{}\n", serde_json::to_string_pretty(&report)?)
            } else {
                report.render()
            };
            // A dry run's stdout holds only its writes.
            if dry_run {
                eprint!("{text}");
            } else {
                print!("{text}");
            }
            Ok(if report.left() > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        DeadlettersCmd::Purge {
            older_than,
            processors,
            yes,
            dry_run,
        } => purge(app, older_than, &processors, yes, dry_run).await,
    }
}

async fn list(app: &App, kinds: &[ProcessorKind], limit: i32, json: bool) -> Result<ExitCode> {
    let mut letters = Vec::new();
    for kind in kinds_or_all(kinds) {
        for s in load(app, *kind, Some(limit)).await? {
            letters.push(s.letter);
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&letters)?);
    } else {
        let rows: Vec<Vec<String>> = letters
            .iter()
            .map(|d| {
                vec![
                    when(&d.received_at.to_string()),
                    d.processor.clone(),
                    d.record_id.clone(),
                    d.error.clone(),
                ]
            })
            .collect();
        print!(
            "{}",
            table(&["RECEIVED", "PROCESSOR", "RECORD", "ERROR"], &rows)
        );
        println!("{} dead letters", letters.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// Dead letters of record `id` (or whose sort key is `id`).
async fn find(app: &App, id: &str, kinds: &[ProcessorKind]) -> Result<Vec<Stored>> {
    let mut found = Vec::new();
    for kind in kinds_or_all(kinds) {
        for s in load(app, *kind, None).await? {
            if s.letter.record_id == id || s.sk == id {
                found.push(s);
            }
        }
    }
    Ok(found)
}

/// The raw record, decoded where it can be: the record JSON, and for a
/// Kinesis record its payload (JSON, else text).
pub fn decoded(letter: &DeadLetter) -> Value {
    let Ok(raw) = serde_json::from_str::<Value>(&letter.raw) else {
        return json!({"text": letter.raw, "decoded": false});
    };
    let kind = ProcessorKind::ALL
        .iter()
        .find(|k| k.name() == letter.processor);
    if matches!(kind, Some(k) if k.reads_kinesis()) {
        if let Ok(r) = KinesisRecord::from_json_value(&raw) {
            let payload = serde_json::from_slice::<Value>(&r.data)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&r.data).into_owned()));
            return json!({"record": raw, "payload": payload, "decoded": true});
        }
    } else if StreamRecord::from_json_value(&raw).is_ok() {
        return json!({"record": raw, "decoded": true});
    }
    json!({"record": raw, "decoded": false})
}

async fn show(app: &App, id: &str, kinds: &[ProcessorKind], json: bool) -> Result<ExitCode> {
    let found = find(app, id, kinds).await?;
    if found.is_empty() {
        bail!("no dead letter of record {id:?} (see `streamfold deadletters list`)");
    }
    if json {
        let docs: Vec<Value> = found
            .iter()
            .map(|s| {
                let mut v = serde_json::to_value(s).unwrap_or_default();
                v["decoded"] = decoded(&s.letter);
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&docs)?);
        return Ok(ExitCode::SUCCESS);
    }
    for s in &found {
        let d = &s.letter;
        println!("processor:        {}", d.processor);
        println!("record:           {}", d.record_id);
        if !d.sequence_number.is_empty() {
            println!("sequence number:  {}", d.sequence_number);
        }
        println!("received:         {}", d.received_at);
        println!("dead-lettered:    {}", d.dead_lettered_at);
        println!("retries:          {}", s.attempts);
        if let Some(at) = &s.retried_at {
            println!("last retried:     {at}");
        }
        println!("error:            {}", d.error);
        let dec = decoded(d);
        if let Some(payload) = dec.get("payload") {
            println!("payload:\n{}", serde_json::to_string_pretty(payload)?);
        }
        match dec.get("record") {
            Some(r) if dec["decoded"] == true => {
                println!("record:\n{}", serde_json::to_string_pretty(r)?)
            }
            Some(r) => println!(
                "raw (not a record this processor can read):\n{}",
                serde_json::to_string_pretty(r)?
            ),
            None => println!("raw (not JSON):\n{}", d.raw),
        }
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

/// What a retry did to one dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "result", content = "detail")]
pub enum RetryResult {
    /// Applied (or already reflected, or no longer this processor's): the
    /// dead letter is deleted (a dry run deletes nothing).
    Applied,
    NoOp,
    Ignored,
    /// Still failing: kept with the new error and one more attempt.
    StillFailing(String),
    /// Its raw text is no record the processor can read: left as it is.
    Undecodable(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct RetryRow {
    pub processor: String,
    pub record_id: String,
    #[serde(flatten)]
    pub result: RetryResult,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RetryReport {
    pub dry_run: bool,
    pub rows: Vec<RetryRow>,
}

impl RetryReport {
    /// Dead letters a retry resolved (deleted, or would delete).
    pub fn resolved(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| {
                matches!(
                    r.result,
                    RetryResult::Applied | RetryResult::NoOp | RetryResult::Ignored
                )
            })
            .count()
    }

    /// Dead letters left.
    pub fn left(&self) -> usize {
        self.rows.len() - self.resolved()
    }

    pub fn render(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                let (what, detail) = match &r.result {
                    RetryResult::Applied => ("applied", String::new()),
                    RetryResult::NoOp => ("already reflected", String::new()),
                    RetryResult::Ignored => ("not the processor's", String::new()),
                    RetryResult::StillFailing(e) => ("still failing", e.clone()),
                    RetryResult::Undecodable(e) => ("not a record, left", e.clone()),
                };
                vec![
                    r.processor.clone(),
                    r.record_id.clone(),
                    what.to_owned(),
                    detail,
                ]
            })
            .collect();
        let mut out = table(&["PROCESSOR", "RECORD", "RESULT", "ERROR"], &rows);
        out.push_str(&format!(
            "{} dead letters retried: {} {}, {} left\n",
            self.rows.len(),
            self.resolved(),
            if self.dry_run {
                "would be resolved (dry run)"
            } else {
                "resolved and deleted"
            },
            self.left()
        ));
        out
    }
}

/// A one-record batch of `raw` through `kind`, or why it is no record.
async fn run_one(ctx: &Context, kind: ProcessorKind, raw: &str) -> Result<BatchReport, String> {
    let value: Value = serde_json::from_str(raw).map_err(|_| {
        "the stored text is not JSON (a line replay could not read); fix the capture and replay it"
            .to_owned()
    })?;
    let projection = kind.projection();
    Ok(match kind.source() {
        EventSource::Kinesis => {
            let record = KinesisRecord::from_json_value(&value)
                .map_err(|e| format!("not a Kinesis record: {e}"))?;
            let records = Records::Kinesis(std::slice::from_ref(&record));
            projection.run_batch(ctx, records).await
        }
        EventSource::TableStream => {
            let record = StreamRecord::from_json_value(&value)
                .map_err(|e| format!("not a DynamoDB stream record: {e}"))?;
            let records = Records::TableStream(std::slice::from_ref(&record));
            projection.run_batch(ctx, records).await
        }
    })
}

/// `deadletters retry`: see the module docs.
pub async fn retry(
    app: &App,
    kinds: &[ProcessorKind],
    id: Option<&str>,
    dry_run: bool,
) -> Result<RetryReport> {
    let mut ctx = app.ctx.clone();
    if dry_run {
        ctx.exec = ctx.exec.dry_run(std::sync::Arc::new(DryRun::stdout()));
    }
    let mut report = RetryReport {
        dry_run,
        rows: Vec::new(),
    };
    for kind in kinds_or_all(kinds) {
        for stored in load(app, *kind, None).await? {
            if id.is_some_and(|id| stored.letter.record_id != id && stored.sk != id) {
                continue;
            }
            let result = match run_one(&ctx, *kind, &stored.letter.raw).await {
                Err(why) => RetryResult::Undecodable(why),
                Ok(batch) => match batch.outcomes.first() {
                    Some(Outcome::Applied) => RetryResult::Applied,
                    Some(Outcome::NoOp) => RetryResult::NoOp,
                    Some(Outcome::Ignored) => RetryResult::Ignored,
                    Some(Outcome::DeadLettered(e) | Outcome::Failed(e)) => {
                        RetryResult::StillFailing(e.clone())
                    }
                    None => RetryResult::StillFailing("the batch gave no outcome".to_owned()),
                },
            };
            if !dry_run {
                settle(app, &stored, &result).await?;
            }
            report.rows.push(RetryRow {
                processor: stored.letter.processor.clone(),
                record_id: stored.letter.record_id.clone(),
                result,
            });
        }
    }
    Ok(report)
}

/// Deletes a resolved dead letter; records the new error and one more
/// attempt on a failing one; leaves an undecodable one.
async fn settle(app: &App, stored: &Stored, result: &RetryResult) -> Result<()> {
    match result {
        RetryResult::Applied | RetryResult::NoOp | RetryResult::Ignored => {
            app.ddb()
                .delete_item()
                .table_name(&app.table)
                .set_key(Some(stored.key()))
                .send()
                .await
                .map_err(sdk_error)?;
        }
        RetryResult::StillFailing(error) => {
            app.ddb()
                .update_item()
                .table_name(&app.table)
                .set_key(Some(stored.key()))
                .update_expression(
                    "SET #error = :error, retried_at = :now, attempts = if_not_exists(attempts, :zero) + :one",
                )
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_names("#error", "error")
                .expression_attribute_values(":error", sv(error.clone()))
                .expression_attribute_values(":now", sv(Timestamp::now().to_string()))
                .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .send()
                .await
                .map_err(sdk_error)?;
        }
        RetryResult::Undecodable(_) => {}
    }
    Ok(())
}

async fn purge(
    app: &App,
    older_than: Duration,
    kinds: &[ProcessorKind],
    yes: bool,
    dry_run: bool,
) -> Result<ExitCode> {
    let cutoff = Timestamp::now().plus_seconds(-(older_than.as_secs().min(i64::MAX as u64) as i64));
    let mut old = Vec::new();
    for kind in kinds_or_all(kinds) {
        old.extend(
            load(app, *kind, None)
                .await?
                .into_iter()
                .filter(|s| s.letter.dead_lettered_at < cutoff),
        );
    }
    if dry_run || !yes {
        for s in &old {
            println!(
                "{}  {}  {}",
                s.letter.dead_lettered_at, s.letter.processor, s.letter.record_id
            );
        }
        if dry_run {
            println!(
                "{} dead letters dead-lettered before {cutoff} would be deleted (dry run)",
                old.len()
            );
            return Ok(ExitCode::SUCCESS);
        }
        bail!(
            "{} dead letters dead-lettered before {cutoff} would be deleted: pass --yes",
            old.len()
        );
    }
    for s in &old {
        app.ddb()
            .delete_item()
            .table_name(&app.table)
            .set_key(Some(s.key()))
            .send()
            .await
            .map_err(sdk_error)?;
    }
    println!(
        "deleted {} dead letters dead-lettered before {cutoff}",
        old.len()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_operators_write_them() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("3y").is_err());
        assert!(parse_duration("d").is_err());
    }

    #[test]
    fn undecodable_raw_text_is_reported_not_decoded() {
        let letter = DeadLetter::new(
            "message-groups",
            "capture.jsonl:3",
            "",
            None,
            "{not json".into(),
            "bad".into(),
            1,
        );
        assert_eq!(decoded(&letter)["decoded"], false);
    }
}
