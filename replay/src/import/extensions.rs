//! `streamfold import extensions`: the awsconnect-extensions table (or its
//! hourly `user,extension` CSV export) into the pool, every assignment kept.
//!
//! The old table is keyed `pk` (the extension) + `sk`: `nu` for a free
//! extension, `agentID` for an assigned one, whose `sk_value` is the Connect
//! username. Its defects are each handled by one rule ([`plan`], pure) and
//! listed in the summary:
//!
//! - an extension of another length than the pool's: not imported;
//! - `nu` without `sk_value` (a release that fell out of its index): free;
//! - both `nu` and `agentID` (a crash between delete and put): assigned;
//! - one username on two extensions: the lower is kept, the other is free.
//!
//! Each kept pair is then adopted by [`extensions::adopt`] (conditional
//! writes, safe while the pipeline runs, idempotent).

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use anyhow::{Context as _, Result, anyhow, bail};
use aws_sdk_dynamodb::types::AttributeValue;
use clap::Args;
use extensions::adopt::{Adopted, adopt};
use futures::StreamExt as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use streamfold_shared::ids::Username;
use streamfold_shared::keys::Extension;

use crate::app::App;

#[derive(Debug, Args)]
pub struct ExtensionsArgs {
    /// The awsconnect-extensions DynamoDB table (keys pk + sk).
    #[arg(
        long,
        conflicts_with = "from_csv",
        required_unless_present = "from_csv"
    )]
    pub from_table: Option<String>,
    /// Its `user,extension` CSV export: a file, or s3://bucket/key.
    #[arg(long)]
    pub from_csv: Option<String>,
    /// The pool's extension length (as given to `extensions init`).
    #[arg(long, default_value_t = 4)]
    pub digits: u8,
    /// Decide and list everything, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Pairs adopted at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// One row of the old table, as it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldRow {
    pub pk: String,
    pub sk: String,
    pub sk_value: Option<String>,
}

/// A username kept on one extension and taken off others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TwoExtensions {
    pub username: String,
    pub kept: String,
    pub freed: Vec<String>,
}

/// What the rows come to before anything is read from streamfold's table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// (username, extension) to adopt, by extension.
    #[serde(skip)]
    pub pairs: Vec<(Username, Extension)>,
    /// Free rows of the old system (nothing to do: free in the pool too).
    pub free_rows: u64,
    /// Extensions of another length than the pool's (not imported).
    pub outside_pool: Vec<String>,
    /// `nu` rows without `sk_value`: free.
    pub free_without_sk_value: Vec<String>,
    /// Extensions present as both free and assigned: assigned wins.
    pub free_and_assigned: Vec<String>,
    /// Usernames on two extensions: the lower is kept.
    pub usernames_on_two: Vec<TwoExtensions>,
    /// Extensions on two usernames (CSV only): the first row is kept.
    pub extensions_on_two: Vec<String>,
    /// Rows that could not be read (what, why).
    pub malformed: Vec<String>,
}

fn extension_of(text: &str, digits: u8, pad: bool) -> Result<Extension, String> {
    let t = text.trim();
    let width = usize::from(digits);
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{t:?} is not an extension"));
    }
    if t.len() > width || (!pad && t.len() != width) {
        return Err(format!("{t} is not {digits} digits"));
    }
    Extension::new(&format!("{t:0>width$}")).map_err(|e| e.to_string())
}

/// Applies the rules to the old table's rows (pure).
pub fn plan(rows: &[OldRow], digits: u8) -> Plan {
    let mut p = Plan::default();
    let mut free: BTreeSet<Extension> = BTreeSet::new();
    let mut assigned: BTreeMap<Extension, String> = BTreeMap::new();
    for r in rows {
        let x = match extension_of(&r.pk, digits, false) {
            Ok(x) => x,
            Err(_) if r.pk.trim().bytes().all(|b| b.is_ascii_digit()) && !r.pk.is_empty() => {
                p.outside_pool.push(r.pk.clone());
                continue;
            }
            Err(e) => {
                p.malformed.push(format!("pk {:?}: {e}", r.pk));
                continue;
            }
        };
        match r.sk.as_str() {
            "nu" => {
                if r.sk_value.is_none() {
                    p.free_without_sk_value.push(x.to_string());
                }
                free.insert(x);
            }
            "agentID" => match r.sk_value.as_deref().map(str::trim) {
                Some(u) if !u.is_empty() => {
                    assigned.insert(x, u.to_owned());
                }
                _ => p
                    .malformed
                    .push(format!("extension {x}: agentID row without sk_value")),
            },
            other => p
                .malformed
                .push(format!("extension {x}: unknown sk {other:?}")),
        }
    }
    for x in &free {
        if assigned.contains_key(x) {
            p.free_and_assigned.push(x.to_string());
        } else {
            p.free_rows += 1;
        }
    }
    pairs_of(&mut p, assigned.into_iter().collect());
    p.outside_pool.sort();
    p.outside_pool.dedup();
    p
}

/// The rule for usernames on two extensions, and username validation.
fn pairs_of(p: &mut Plan, by_ext: Vec<(Extension, String)>) {
    let mut by_user: BTreeMap<String, Vec<Extension>> = BTreeMap::new();
    for (x, u) in by_ext {
        by_user.entry(u).or_default().push(x);
    }
    for (u, mut xs) in by_user {
        xs.sort();
        let username = match Username::new(u.as_str()) {
            Ok(n) => n,
            Err(e) => {
                p.malformed.push(format!(
                    "extension {}: {e}",
                    xs.first().map(Extension::to_string).unwrap_or_default()
                ));
                continue;
            }
        };
        let kept = xs.remove(0);
        if !xs.is_empty() {
            p.usernames_on_two.push(TwoExtensions {
                username: u.clone(),
                kept: kept.to_string(),
                freed: xs.iter().map(Extension::to_string).collect(),
            });
        }
        p.pairs.push((username, kept));
    }
    p.pairs.sort_by(|a, b| a.1.cmp(&b.1));
}

/// Splits one CSV line into fields (RFC 4180 quoting).
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => out.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    out.push(field);
    out
}

/// The CSV export (`user,extension`, header first) under the same rules:
/// an extension there may have lost its leading zeros, so shorter ones are
/// zero-padded (pure).
pub fn plan_csv(text: &str, digits: u8) -> Result<Plan, String> {
    let mut lines = text
        .trim_start_matches('\u{feff}')
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or("the CSV is empty")?;
    let names: Vec<String> = csv_fields(header)
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let col = |n: &str| names.iter().position(|h| h == n);
    let (Some(user_col), Some(ext_col)) = (col("user"), col("extension")) else {
        return Err(format!(
            "the CSV header is {header:?}; expected the columns user,extension"
        ));
    };
    let mut p = Plan::default();
    let mut by_ext: BTreeMap<Extension, String> = BTreeMap::new();
    for (n, line) in lines {
        let fields = csv_fields(line);
        let (Some(user), Some(ext)) = (fields.get(user_col), fields.get(ext_col)) else {
            p.malformed
                .push(format!("line {}: expected user,extension", n + 1));
            continue;
        };
        let (user, ext) = (user.trim(), ext.trim());
        let x = match extension_of(ext, digits, true) {
            Ok(x) => x,
            Err(_) if !ext.is_empty() && ext.bytes().all(|b| b.is_ascii_digit()) => {
                p.outside_pool.push(ext.to_owned());
                continue;
            }
            Err(e) => {
                p.malformed.push(format!("line {}: {e}", n + 1));
                continue;
            }
        };
        if user.is_empty() {
            p.free_rows += 1;
            continue;
        }
        match by_ext.get(&x) {
            Some(first) if first != user => p.extensions_on_two.push(x.to_string()),
            Some(_) => {}
            None => {
                by_ext.insert(x, user.to_owned());
            }
        }
    }
    pairs_of(&mut p, by_ext.into_iter().collect());
    p.outside_pool.sort();
    p.outside_pool.dedup();
    Ok(p)
}

/// Every row of the old table (paginated Scan).
pub async fn read_table(app: &App, name: &str) -> Result<Vec<OldRow>> {
    let mut rows = Vec::new();
    let mut pages = app
        .ddb()
        .scan()
        .table_name(name)
        .consistent_read(true)
        .into_paginator()
        .send();
    let text = |i: &std::collections::HashMap<String, AttributeValue>, n: &str| match i.get(n) {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        Some(AttributeValue::N(s)) => Some(s.clone()),
        _ => None,
    };
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| super::old_table_error(name, e))?;
        for item in page.items.unwrap_or_default() {
            rows.push(OldRow {
                pk: text(&item, "pk").unwrap_or_default(),
                sk: text(&item, "sk").unwrap_or_default(),
                sk_value: text(&item, "sk_value"),
            });
        }
    }
    Ok(rows)
}

/// The CSV text, from a file or s3://bucket/key.
pub async fn read_csv(app: &App, source: &str) -> Result<String> {
    if source.starts_with("s3://") {
        let (bucket, key) = reconcile::parse_s3_url(source).map_err(|e| anyhow!(e))?;
        let s3 = reconcile::s3_client(&app.sdk);
        let out = s3
            .get_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| {
                use aws_sdk_s3::error::ProvideErrorMetadata as _;
                match (e.code(), e.message()) {
                    (Some(code), Some(message)) => anyhow!("reading {source}: {code}: {message}"),
                    _ => anyhow!(
                        "reading {source}: {}",
                        aws_sdk_s3::error::DisplayErrorContext(e)
                    ),
                }
            })?;
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| anyhow!("reading {source}: {e}"))?
            .into_bytes();
        String::from_utf8(bytes.to_vec()).map_err(|_| anyhow!("{source} is not UTF-8 text"))
    } else {
        tokio::fs::read_to_string(source)
            .await
            .with_context(|| format!("reading {source}"))
    }
}

/// One adopted pair, for the summary.
#[derive(Debug, Clone, Serialize)]
pub struct PairOutcome {
    pub username: String,
    pub extension: String,
    #[serde(flatten)]
    pub adopted: Adopted,
}

/// What an import did (or, with --dry-run, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub dry_run: bool,
    #[serde(flatten)]
    pub plan: Plan,
    /// Already with their agent.
    pub kept: u64,
    /// Given to the username's profile now.
    pub assigned: u64,
    /// Reserved for usernames with no profile yet.
    pub reserved: u64,
    pub already_reserved: u64,
    /// Agents the pipeline had given an imported extension to, moved.
    pub displaced: u64,
    /// Extensions not in streamfold's pool.
    pub not_in_pool: Vec<String>,
    /// Pairs left alone rather than guessed.
    pub conflicts: Vec<String>,
    /// Pairs that failed (run the import again).
    pub errors: Vec<String>,
    /// Every pair that changed or would change.
    pub changes: Vec<PairOutcome>,
    /// Waiting agents given an extension freed by the import.
    pub settled: u64,
    /// Wall time and requests sent to the table (the command fills them).
    pub seconds: f64,
    pub requests: u64,
}

impl Summary {
    fn add(&mut self, username: &Username, x: &Extension, r: Result<Adopted, String>) {
        let adopted = match r {
            Ok(a) => a,
            Err(e) => {
                self.errors.push(format!("{username} / {x}: {e}"));
                return;
            }
        };
        match &adopted {
            Adopted::Kept => self.kept += 1,
            Adopted::AlreadyReserved => self.already_reserved += 1,
            Adopted::Assigned { displaced, .. } => {
                self.assigned += 1;
                self.displaced += u64::from(displaced.is_some());
            }
            Adopted::Reserved { displaced } => {
                self.reserved += 1;
                self.displaced += u64::from(displaced.is_some());
            }
            Adopted::NotInPool => self.not_in_pool.push(x.to_string()),
            Adopted::Conflict { reason } => self.conflicts.push(format!("{username}: {reason}")),
        }
        if matches!(adopted, Adopted::Assigned { .. } | Adopted::Reserved { .. }) {
            self.changes.push(PairOutcome {
                username: username.to_string(),
                extension: x.to_string(),
                adopted,
            });
        }
    }

    /// The summary as text.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut o = String::new();
        let verb = if self.dry_run { "would be " } else { "" };
        let p = &self.plan;
        let _ = writeln!(
            o,
            "{} assignments read; {} free rows",
            p.pairs.len(),
            p.free_rows
        );
        let _ = writeln!(
            o,
            "kept already {}, {verb}assigned {}, {verb}reserved {} (already reserved {}), agents {verb}moved {}",
            self.kept, self.assigned, self.reserved, self.already_reserved, self.displaced
        );
        let list = |o: &mut String, what: &str, xs: &[String]| {
            if !xs.is_empty() {
                let _ = writeln!(o, "{what} ({}): {}", xs.len(), xs.join(", "));
            }
        };
        list(
            &mut o,
            "outside the pool's digits, not imported",
            &p.outside_pool,
        );
        list(
            &mut o,
            "free rows without sk_value (free)",
            &p.free_without_sk_value,
        );
        list(
            &mut o,
            "both free and assigned (assigned kept)",
            &p.free_and_assigned,
        );
        for t in &p.usernames_on_two {
            let _ = writeln!(
                o,
                "username {} on {} extensions: kept {}, freed {}",
                t.username,
                t.freed.len() + 1,
                t.kept,
                t.freed.join(", ")
            );
        }
        list(
            &mut o,
            "extensions on two usernames (first row kept)",
            &p.extensions_on_two,
        );
        list(&mut o, "malformed rows", &p.malformed);
        list(&mut o, "not in streamfold's pool", &self.not_in_pool);
        list(&mut o, "conflicts, left alone", &self.conflicts);
        list(&mut o, "errors (run again)", &self.errors);
        for c in &self.changes {
            let what = match &c.adopted {
                Adopted::Assigned {
                    agent,
                    released,
                    displaced,
                } => {
                    let mut s = format!("to agent {agent}");
                    if let Some(r) = released {
                        let _ = write!(s, ", which gives up {r}");
                    }
                    if let Some(d) = displaced {
                        let _ = write!(
                            s,
                            "; agent {} moves to {}",
                            d.agent,
                            d.to.as_deref().unwrap_or("the waiting queue")
                        );
                    }
                    s
                }
                Adopted::Reserved { displaced } => {
                    let mut s = "reserved (no profile yet)".to_owned();
                    if let Some(d) = displaced {
                        let _ = write!(
                            s,
                            "; agent {} moves to {}",
                            d.agent,
                            d.to.as_deref().unwrap_or("the waiting queue")
                        );
                    }
                    s
                }
                _ => continue,
            };
            let _ = writeln!(o, "  {verb}{} {}: {what}", c.extension, c.username);
        }
        if self.settled > 0 {
            let _ = writeln!(
                o,
                "{} waiting agents got an extension the import freed",
                self.settled
            );
        }
        if self.requests > 0 {
            let _ = writeln!(
                o,
                "{:.1} s, {} requests to the table",
                self.seconds, self.requests
            );
        }
        if self.dry_run {
            o.push_str("dry run: nothing was written\n");
        }
        o
    }
}

/// Adopts every pair of `plan` (concurrently), then looks again at the
/// reservations made (a profile may have arrived meanwhile) and hands
/// extensions the import freed to waiting agents.
pub async fn import(
    app: &App,
    plan: Plan,
    dry_run: bool,
    concurrency: usize,
    bar: &ProgressBar,
) -> Result<Summary> {
    let ctx = &app.ctx;
    bar.set_length(plan.pairs.len() as u64);
    let results: Vec<(usize, Result<Adopted, String>)> =
        futures::stream::iter(plan.pairs.iter().enumerate())
            .map(|(i, (u, x))| async move {
                let r = adopt(ctx, u, x, dry_run).await;
                bar.inc(1);
                (i, r)
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
    let mut results: BTreeMap<usize, Result<Adopted, String>> = results.into_iter().collect();
    if !dry_run {
        // A profile that arrived while its reservation was written, and was
        // served before it, gets its own extension now.
        for (i, r) in results.iter_mut() {
            if let Ok(Adopted::Reserved { .. }) = r
                && let Some((u, x)) = plan.pairs.get(*i)
                && let Ok(a @ Adopted::Assigned { .. }) = adopt(ctx, u, x, false).await
            {
                *r = Ok(a);
            }
        }
    }
    let mut s = Summary {
        dry_run,
        ..Summary::default()
    };
    for (i, r) in results {
        if let Some((u, x)) = plan.pairs.get(i) {
            s.add(u, x, r);
        }
    }
    s.plan = plan;
    if !dry_run && (s.assigned > 0 || s.displaced > 0) {
        s.settled = extensions::settle(ctx).await?.assigned;
    }
    Ok(s)
}

/// `streamfold import extensions`. Exit status 1 when a pair failed,
/// conflicted or names an extension streamfold's pool does not have (the
/// rest is done; rerun after fixing).
pub async fn run_cli(app: &App, args: ExtensionsArgs) -> Result<ExitCode> {
    if !(1..=8).contains(&args.digits) {
        bail!("--digits must be 1 to 8, not {}", args.digits);
    }
    let plan = match (&args.from_table, &args.from_csv) {
        (Some(table), None) => plan(&read_table(app, table).await?, args.digits),
        (None, Some(csv)) => {
            plan_csv(&read_csv(app, csv).await?, args.digits).map_err(|e| anyhow!(e))?
        }
        _ => bail!("give --from-table NAME or --from-csv FILE|s3://bucket/key"),
    };
    let bar = ProgressBar::new(plan.pairs.len() as u64);
    if args.json {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} assignments {per_sec} eta {eta}")
            .map_err(|e| anyhow!(e))?,
    );
    let started = std::time::Instant::now();
    app.counter.reset();
    let mut s = import(app, plan, args.dry_run, args.concurrency, &bar).await?;
    bar.finish_and_clear();
    s.seconds = started.elapsed().as_secs_f64();
    s.requests = app.counter.total();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", s.render());
    }
    Ok(
        if s.errors.is_empty() && s.conflicts.is_empty() && s.not_in_pool.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pk: &str, sk: &str, v: Option<&str>) -> OldRow {
        OldRow {
            pk: pk.into(),
            sk: sk.into(),
            sk_value: v.map(str::to_owned),
        }
    }

    #[test]
    fn each_defect_is_handled_by_its_rule() {
        let rows = [
            row("0001", "agentID", Some("ada")),
            row("0002", "nu", Some("0002")),
            row("0003", "nu", None),
            row("0004", "nu", Some("0004")),
            row("0004", "agentID", Some("bob")),
            row("0009", "agentID", Some("cy")),
            row("0005", "agentID", Some("cy")),
            row("12345", "agentID", Some("dee")),
            row("42", "nu", Some("42")),
            row("00x1", "nu", None),
            row("0006", "agentID", None),
        ];
        let p = plan(&rows, 4);
        let pairs: Vec<(String, String)> = p
            .pairs
            .iter()
            .map(|(u, x)| (u.to_string(), x.to_string()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("ada".to_owned(), "0001".to_owned()),
                ("bob".to_owned(), "0004".to_owned()),
                ("cy".to_owned(), "0005".to_owned()),
            ]
        );
        assert_eq!(p.free_without_sk_value, vec!["0003"]);
        assert_eq!(p.free_and_assigned, vec!["0004"]);
        assert_eq!(p.free_rows, 2);
        assert_eq!(
            p.usernames_on_two,
            vec![TwoExtensions {
                username: "cy".into(),
                kept: "0005".into(),
                freed: vec!["0009".into()]
            }]
        );
        assert_eq!(p.outside_pool, vec!["12345", "42"]);
        assert_eq!(p.malformed.len(), 2, "{:?}", p.malformed);
    }

    #[test]
    fn the_csv_export_is_read_with_its_quirks() {
        let text = "\u{feff}user,extension\r\nada,1\r\n\"o\"\"neil\",0002\nbob,0003\nbob,0007\ncy,0003\n,0008\nx,99999\nbad\n";
        let p = plan_csv(text, 4).unwrap_or_else(|e| panic!("{e}"));
        let pairs: Vec<(String, String)> = p
            .pairs
            .iter()
            .map(|(u, x)| (u.to_string(), x.to_string()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("ada".to_owned(), "0001".to_owned()),
                ("o\"neil".to_owned(), "0002".to_owned()),
                ("bob".to_owned(), "0003".to_owned()),
            ]
        );
        assert_eq!(p.extensions_on_two, vec!["0003"]);
        assert_eq!(p.usernames_on_two.len(), 1);
        assert_eq!(p.outside_pool, vec!["99999"]);
        assert_eq!(p.free_rows, 1);
        assert_eq!(p.malformed.len(), 1);
        assert!(plan_csv("name,number\n", 4).is_err());
        assert!(plan_csv("", 4).is_err());
    }
}
