//! reconcile: the scheduled job that brings the agent profiles in line with
//! the Connect instance's users.
//!
//! 1. Lists every user of the instance with ListUsers, every page, paced
//!    under Connect's request quota (`min_interval` between requests) and
//!    retrying throttling (429), 5xx and timeouts with jittered exponential
//!    backoff (the SDK's own retries are off, so the pacing is ours alone).
//! 2. Reads the agent directory (gsi2 `AGENTS`).
//! 3. Creates a waiting profile for each new user (conditional put: an
//!    existing profile is never overwritten), deletes the profiles of users
//!    that no longer exist (their extensions are freed by the extensions
//!    processor, through the stream), renames changed usernames, and leaves
//!    unchanged users alone. Only profiles of this instance are deleted, and
//!    a run that would delete more than `max_deletes` profiles (or every
//!    profile, because Connect answered no user) stops unless forced.
//! 4. Optionally hands free extensions to agents still waiting ([`settle`])
//!    and exports the extension directory as CSV to S3.
//!
//! Names are never logged: only ids and counts.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_connect::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::ReturnValue;
use extensions::model::{AGENTS, GSI2, WAITING};
use serde::Serialize;
use streamfold_shared::attrs::{s, sv};
use streamfold_shared::engine::Context;
use streamfold_shared::executor::{ExecError, Expr, Item, RetryPolicy, TxOutcome, nonce};
use streamfold_shared::ids::{AgentId, Timestamp};
use streamfold_shared::keys::Key;
use streamfold_shared::read::Query;
use tracing::{info, warn};

pub use extensions::{Settled, settle};

/// The job's name (logs).
pub const NAME: &str = "reconcile";

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Connect ListUsers failed: {0}")]
    Connect(String),
    #[error("Connect ListUsers kept throttling: gave up after {0} attempts")]
    Throttled(u32),
    #[error(transparent)]
    Table(#[from] ExecError),
    #[error(
        "refusing to delete {would} agent profiles (more than --max-deletes {max}); \
         check the instance id, or pass --force"
    )]
    TooManyDeletes { would: usize, max: usize },
    #[error(
        "Connect answered no user for instance {0} while the table has profiles of it; \
         refusing to delete them all (pass --force if that is right)"
    )]
    NoUsers(String),
    #[error("S3 export: {0}")]
    Export(String),
}

/// How a run behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// The Connect instance: its id or ARN.
    pub instance_id: String,
    /// ListUsers page size (1 to 1000).
    pub page_size: i32,
    /// At least this long between two Connect requests.
    pub min_interval: Duration,
    /// Backoff on throttling, 5xx and timeouts.
    pub backoff: RetryPolicy,
    /// Most profiles one run may delete unless `force`.
    pub max_deletes: usize,
    pub force: bool,
    /// Compute and report, change nothing.
    pub dry_run: bool,
    /// Hand free extensions to waiting agents afterwards.
    pub settle: bool,
}

impl Options {
    pub fn new(instance_id: impl Into<String>) -> Self {
        Self {
            instance_id: instance_id.into(),
            page_size: 100,
            min_interval: Duration::from_millis(500),
            backoff: RetryPolicy {
                max_attempts: 8,
                base_delay: Duration::from_millis(250),
                max_delay: Duration::from_secs(8),
            },
            max_deletes: 100,
            force: false,
            dry_run: false,
            settle: true,
        }
    }

    /// The bare instance id (the segment after `instance/` of an ARN).
    pub fn instance(&self) -> &str {
        instance_of(&self.instance_id)
    }
}

fn instance_of(id: &str) -> &str {
    match id.split_once("instance/") {
        Some((_, rest)) => rest.split('/').next().unwrap_or(rest),
        None => id,
    }
}

/// A Connect user, as ListUsers lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: AgentId,
    pub arn: String,
    pub username: String,
}

/// What listing the users took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ListStats {
    pub pages: u64,
    pub requests: u64,
    pub throttled: u64,
    /// Users skipped because their id is not a valid key part.
    pub invalid: u64,
}

/// A Connect client for reconcile: the SDK's retries are off, because
/// [`list_users`] paces and backs off itself. `endpoint` overrides the
/// endpoint (tests talk to a local stub).
pub fn connect_client(sdk: &SdkConfig, endpoint: Option<&str>) -> aws_sdk_connect::Client {
    let mut b = aws_sdk_connect::config::Builder::from(sdk)
        .retry_config(aws_sdk_connect::config::retry::RetryConfig::disabled());
    if let Some(url) = endpoint {
        b = b.endpoint_url(url);
    }
    aws_sdk_connect::Client::from_conf(b.build())
}

/// An S3 client; path-style addressing when an endpoint is configured (a
/// local endpoint has no per-bucket host names).
pub fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    let b = aws_sdk_s3::config::Builder::from(sdk).force_path_style(sdk.endpoint_url().is_some());
    aws_sdk_s3::Client::from_conf(b.build())
}

fn retryable<E: ProvideErrorMetadata>(
    err: &aws_sdk_connect::error::SdkError<E, aws_sdk_connect::config::http::HttpResponse>,
) -> bool {
    use aws_sdk_connect::error::SdkError;
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(e) => {
            let status = e.raw().status().as_u16();
            let code = e.err().code().unwrap_or("");
            status == 429
                || status >= 500
                || matches!(
                    code,
                    "ThrottlingException"
                        | "TooManyRequestsException"
                        | "LimitExceededException"
                        | "InternalServiceException"
                )
        }
        _ => false,
    }
}

/// Every user of the instance, every page.
pub async fn list_users(
    client: &aws_sdk_connect::Client,
    opts: &Options,
) -> Result<(Vec<User>, ListStats), ReconcileError> {
    let mut users = Vec::new();
    let mut stats = ListStats::default();
    let mut token: Option<String> = None;
    let mut last: Option<Instant> = None;
    loop {
        let mut attempt = 0u32;
        let page = loop {
            if let Some(at) = last {
                let wait = opts.min_interval.saturating_sub(at.elapsed());
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
            last = Some(Instant::now());
            stats.requests += 1;
            let sent = client
                .list_users()
                .instance_id(opts.instance())
                .max_results(opts.page_size.clamp(1, 1000))
                .set_next_token(token.clone())
                .send()
                .await;
            match sent {
                Ok(page) => break page,
                Err(e) if retryable(&e) => {
                    stats.throttled += 1;
                    attempt += 1;
                    if attempt >= opts.backoff.max_attempts {
                        return Err(ReconcileError::Throttled(attempt));
                    }
                    let pause = opts.backoff.delay(attempt - 1);
                    warn!(
                        attempt,
                        pause_ms = pause.as_millis() as u64,
                        error = %aws_sdk_connect::error::DisplayErrorContext(&e),
                        "Connect throttled or failed; backing off"
                    );
                    tokio::time::sleep(pause).await;
                }
                Err(e) => {
                    return Err(ReconcileError::Connect(
                        aws_sdk_connect::error::DisplayErrorContext(&e).to_string(),
                    ));
                }
            }
        };
        stats.pages += 1;
        for u in page.user_summary_list() {
            let (Some(id), Some(arn)) = (u.id(), u.arn()) else {
                stats.invalid += 1;
                continue;
            };
            match AgentId::new(id) {
                Ok(id) => users.push(User {
                    username: u.username().unwrap_or(id.as_str()).to_owned(),
                    arn: arn.to_owned(),
                    id,
                }),
                Err(e) => {
                    stats.invalid += 1;
                    warn!(error = %e, "a Connect user id is not a valid agent id; skipped");
                }
            }
        }
        token = page
            .next_token()
            .map(str::to_owned)
            .filter(|t| !t.is_empty());
        if token.is_none() {
            return Ok((users, stats));
        }
    }
}

/// What reconcile reads of a profile (no names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirEntry {
    pub agent_id: String,
    pub agent_arn: Option<String>,
    pub username: Option<String>,
    pub extension: Option<String>,
    pub status: Option<String>,
}

/// The agent directory (gsi2 `AGENTS`), every page, by agent id.
pub async fn directory(ctx: &Context) -> Result<BTreeMap<String, DirEntry>, ExecError> {
    let mut out = BTreeMap::new();
    let query = Query::index(GSI2, Expr::new("gsi2pk = :a").s(":a", AGENTS))
        .project(Expr::new("pk, sk, agent_arn, username, extension, #st").name("#st", "status"));
    let mut start: Option<Item> = None;
    loop {
        let page = query.page(&ctx.exec, start).await?;
        for item in page.items {
            let pk = s(&item, "pk").unwrap_or_default();
            let sk = s(&item, "sk").unwrap_or_default();
            let Ok(Key::Profile(agent)) = Key::parse(pk, sk) else {
                continue;
            };
            let text = |n: &str| s(&item, n).map(str::to_owned);
            out.insert(
                agent.to_string(),
                DirEntry {
                    agent_id: agent.to_string(),
                    agent_arn: text("agent_arn"),
                    username: text("username"),
                    extension: text("extension"),
                    status: text("status"),
                },
            );
        }
        start = page.next;
        if start.is_none() {
            return Ok(out);
        }
    }
}

/// What a run did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub instance_id: String,
    pub dry_run: bool,
    pub users: u64,
    pub profiles: u64,
    pub created: u64,
    pub deleted: u64,
    pub renamed: u64,
    pub unchanged: u64,
    /// Profiles of other instances (or without an ARN): left alone.
    pub foreign: u64,
    pub connect: ListStats,
    pub settled: Option<Settled>,
    /// Rows written to S3, with the object's URL.
    pub exported: Option<(u64, String)>,
}

/// A new user's profile: waiting for an extension, in the directory.
pub fn new_profile(u: &User, now: Timestamp) -> Item {
    let key = Key::Profile(u.id.clone());
    Item::from([
        ("pk".to_owned(), sv(key.pk())),
        ("sk".to_owned(), sv(key.sk())),
        ("type".to_owned(), sv("agent")),
        ("agent_arn".to_owned(), sv(u.arn.as_str())),
        ("username".to_owned(), sv(u.username.as_str())),
        ("gsi2pk".to_owned(), sv(AGENTS)),
        ("gsi2sk".to_owned(), sv(u.username.as_str())),
        ("gsi1pk".to_owned(), sv(WAITING)),
        ("gsi1sk".to_owned(), sv(format!("{now}#{}", u.id))),
        ("created_at".to_owned(), sv(now.to_string())),
        ("created_by".to_owned(), sv(NAME)),
    ])
}

fn of_instance(arn: Option<&str>, instance: &str) -> bool {
    arn.is_some_and(|a| a.contains(&format!("instance/{instance}/agent/")))
}

/// One reconcile run against the table of `ctx`.
pub async fn reconcile(
    ctx: &Context,
    connect: &aws_sdk_connect::Client,
    opts: &Options,
) -> Result<Report, ReconcileError> {
    let instance = opts.instance().to_owned();
    let (users, stats) = list_users(connect, opts).await?;
    let dir = directory(ctx).await?;
    let mut report = Report {
        instance_id: instance.clone(),
        dry_run: opts.dry_run,
        users: users.len() as u64,
        profiles: dir.len() as u64,
        connect: stats,
        ..Report::default()
    };
    let by_id: HashMap<&str, &User> = users.iter().map(|u| (u.id.as_str(), u)).collect();
    let mine: Vec<&DirEntry> = dir
        .values()
        .filter(|p| {
            let ok = of_instance(p.agent_arn.as_deref(), &instance);
            if !ok {
                report.foreign += 1;
            }
            ok
        })
        .collect();
    let gone: Vec<&DirEntry> = mine
        .iter()
        .copied()
        .filter(|p| !by_id.contains_key(p.agent_id.as_str()))
        .collect();
    if !opts.force {
        if users.is_empty() && !mine.is_empty() {
            return Err(ReconcileError::NoUsers(instance));
        }
        if gone.len() > opts.max_deletes {
            return Err(ReconcileError::TooManyDeletes {
                would: gone.len(),
                max: opts.max_deletes,
            });
        }
    }
    let now = Timestamp::now();
    for u in &users {
        match dir.get(u.id.as_str()) {
            None => {
                if opts.dry_run || ctx.exec.put_if_absent(new_profile(u, now)).await? {
                    report.created += 1;
                    info!(agent_id = %u.id, "profile created for a new Connect user");
                } else {
                    report.unchanged += 1;
                }
            }
            Some(p) if p.username.as_deref() != Some(u.username.as_str()) => {
                if opts.dry_run || rename(ctx, u).await? {
                    report.renamed += 1;
                    info!(agent_id = %u.id, "username changed in Connect; profile updated");
                }
            }
            Some(_) => report.unchanged += 1,
        }
    }
    for p in gone {
        let Ok(agent) = AgentId::new(p.agent_id.as_str()) else {
            continue;
        };
        if opts.dry_run || remove_profile(ctx, &agent).await?.is_some() {
            report.deleted += 1;
            info!(agent_id = %agent, extension = p.extension.as_deref().unwrap_or(""), "profile deleted: the user is no longer in Connect");
        }
    }
    if opts.settle && !opts.dry_run {
        report.settled = Some(settle(ctx).await?);
    }
    Ok(report)
}

async fn rename(ctx: &Context, u: &User) -> Result<bool, ExecError> {
    let mut tx = ctx.exec.tx();
    tx.update(
        &Key::Profile(u.id.clone()),
        Expr::new("SET username = :u, gsi2sk = :u").s(":u", u.username.as_str()),
        Some(Expr::new("attribute_exists(pk)")),
    )?;
    // A rename can recur (A to B, back to A, to B again within minutes):
    // each planned rename is its own write, named by a nonce.
    let run = nonce();
    let parts = [NAME, "rename", u.id.as_str(), &u.username, &run];
    Ok(ctx.exec.transact_planned(tx, &parts).await? == TxOutcome::Committed)
}

/// Deletes an agent's profile; its extension is freed through the stream.
/// Returns the extension it held, `None` if there was no profile.
pub async fn remove_profile(
    ctx: &Context,
    agent: &AgentId,
) -> Result<Option<Option<String>>, ExecError> {
    let exec = &ctx.exec;
    let key = Key::Profile(agent.clone()).to_key_map();
    let out = exec
        .retrying("DeleteItem", || {
            exec.client()
                .delete_item()
                .table_name(exec.table())
                .set_key(Some(key.clone()))
                .return_values(ReturnValue::AllOld)
                .send()
        })
        .await?;
    Ok(out
        .attributes
        .map(|old| s(&old, "extension").map(str::to_owned)))
}

/// `s3://bucket/key` as (bucket, key).
pub fn parse_s3_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("{url:?} is not an s3://bucket/key URL"))?;
    match rest.split_once('/') {
        Some((b, k)) if !b.is_empty() && !k.is_empty() => Ok((b.to_owned(), k.to_owned())),
        _ => Err(format!("{url:?} is not an s3://bucket/key URL")),
    }
}

/// One CSV field: quoted when needed, and a leading `= + - @` defused so a
/// spreadsheet does not run it as a formula.
fn csv_field(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@']) {
        format!("'{v}")
    } else {
        v.to_owned()
    };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

/// The extension directory as CSV, by extension:
/// `extension,agent_id,username,agent_arn,status`.
pub fn directory_csv(dir: &BTreeMap<String, DirEntry>) -> (String, u64) {
    let mut rows: Vec<&DirEntry> = dir.values().filter(|p| p.extension.is_some()).collect();
    rows.sort_by(|a, b| a.extension.cmp(&b.extension));
    let mut out = String::from("extension,agent_id,username,agent_arn,status\n");
    for p in &rows {
        let cells = [
            p.extension.as_deref().unwrap_or(""),
            &p.agent_id,
            p.username.as_deref().unwrap_or(""),
            p.agent_arn.as_deref().unwrap_or(""),
            p.status.as_deref().unwrap_or(""),
        ];
        let line: Vec<String> = cells.iter().map(|c| csv_field(c)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    (out, rows.len() as u64)
}

/// Writes the extension directory to `s3://bucket/key`; returns the rows.
pub async fn export(
    ctx: &Context,
    s3: &aws_sdk_s3::Client,
    url: &str,
) -> Result<u64, ReconcileError> {
    let (bucket, key) = parse_s3_url(url).map_err(ReconcileError::Export)?;
    let dir = directory(ctx).await?;
    let (csv, rows) = directory_csv(&dir);
    s3.put_object()
        .bucket(&bucket)
        .key(&key)
        .content_type("text/csv; charset=utf-8")
        .body(aws_sdk_s3::primitives::ByteStream::from(csv.into_bytes()))
        .send()
        .await
        .map_err(|e| {
            ReconcileError::Export(aws_sdk_s3::error::DisplayErrorContext(&e).to_string())
        })?;
    info!(rows, bucket = %bucket, key = %key, "extension directory exported");
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_and_arns_agree() {
        let arn = "arn:aws:connect:us-east-1:012345678901:instance/aaaa-1";
        assert_eq!(instance_of(arn), "aaaa-1");
        assert_eq!(instance_of("aaaa-1"), "aaaa-1");
        assert!(of_instance(Some(&format!("{arn}/agent/x")), "aaaa-1"));
        assert!(!of_instance(Some("arn:…:instance/other/agent/x"), "aaaa-1"));
        assert!(!of_instance(None, "aaaa-1"));
    }

    #[test]
    fn s3_urls_parse() {
        assert_eq!(
            parse_s3_url("s3://b/k/x.csv"),
            Ok(("b".to_owned(), "k/x.csv".to_owned()))
        );
        assert!(parse_s3_url("s3://b").is_err());
        assert!(parse_s3_url("https://b/k").is_err());
    }

    #[test]
    fn csv_is_quoted_and_defused() {
        let mut dir = BTreeMap::new();
        for (id, x, user) in [
            ("b", "0002", "=cmd()"),
            ("a", "0001", "x,y"),
            ("c", "", "n"),
        ] {
            dir.insert(
                id.to_owned(),
                DirEntry {
                    agent_id: id.to_owned(),
                    agent_arn: None,
                    username: Some(user.to_owned()),
                    extension: (!x.is_empty()).then(|| x.to_owned()),
                    status: Some("Available".to_owned()),
                },
            );
        }
        let (csv, rows) = directory_csv(&dir);
        assert_eq!(rows, 2);
        assert_eq!(
            csv,
            "extension,agent_id,username,agent_arn,status\n\
             0001,a,\"x,y\",,Available\n\
             0002,b,'=cmd(),,Available\n"
        );
    }
}
