//! The pool itself: which extensions exist (`extensions init`).
//!
//! Init is idempotent and never touches an assigned extension: it reads
//! which ext items exist (BatchGetItem, 100 keys a request) and creates the
//! missing ones with BatchWriteItem, several chunks of 100 at once. Reserved numbers are never
//! created; a reserved one that exists and is free is taken out of the pool
//! (under the condition that it is still free); an assigned one is left to
//! its agent and reported.

use std::collections::BTreeSet;

use futures::StreamExt;
use serde::Serialize;
use std::time::Duration;

use streamfold_shared::attrs::{nv, s, sv};
use streamfold_shared::executor::{
    Conditional, ExecError, Executor, Expr, Item, TRANSACT_MAX, TxOutcome, nonce,
};
use streamfold_shared::ids::ProcessorName;
use streamfold_shared::keys::{Extension, Key, KeyError};

use crate::model::{ExtItem, ExtState, FREE, free_item};

/// The longest extensions `init` creates (10^6 items).
pub const MAX_DIGITS: u8 = 6;

/// Why a pool specification is refused (the message names the flag or the
/// number at fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("--digits must be 1 to {max}, not {0}", max = MAX_DIGITS)]
    Digits(u8),
    #[error("reserved range {0} runs backwards")]
    Backwards(String),
    #[error("reserved number {0:?} is not 1 to {1} digits")]
    NotDigits(String, u8),
    #[error("reserved number {0:?}: {1}")]
    Number(String, std::num::ParseIntError),
    #[error(transparent)]
    Extension(#[from] KeyError),
}

/// Which extensions make the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSpec {
    pub digits: u8,
    pub reserved: BTreeSet<Extension>,
}

impl PoolSpec {
    /// `digits` long extensions, without the reserved ones.
    /// `reserve` is a comma-separated list of numbers and ranges
    /// (`0000,911,9000-9099`); a shorter number is zero-padded (`911` is
    /// `0911` with 4 digits).
    pub fn new(digits: u8, reserve: &str) -> Result<Self, SpecError> {
        if !(1..=MAX_DIGITS).contains(&digits) {
            return Err(SpecError::Digits(digits));
        }
        let mut reserved = BTreeSet::new();
        for part in reserve.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (lo, hi) = match part.split_once('-') {
                Some((a, b)) => (number(a.trim(), digits)?, number(b.trim(), digits)?),
                None => {
                    let n = number(part, digits)?;
                    (n, n)
                }
            };
            if lo > hi {
                return Err(SpecError::Backwards(part.to_owned()));
            }
            for n in lo..=hi {
                reserved.insert(format_ext(n, digits)?);
            }
        }
        Ok(Self { digits, reserved })
    }

    /// How many extensions `digits` digits give before reservations.
    pub fn span(&self) -> u32 {
        10u32.pow(u32::from(self.digits))
    }

    /// Every extension of the pool, lowest first.
    pub fn extensions(&self) -> Result<Vec<Extension>, SpecError> {
        let mut out = Vec::with_capacity(self.span() as usize);
        for n in 0..self.span() {
            let x = format_ext(n, self.digits)?;
            if !self.reserved.contains(&x) {
                out.push(x);
            }
        }
        Ok(out)
    }
}

fn number(text: &str, digits: u8) -> Result<u32, SpecError> {
    if text.is_empty()
        || text.len() > usize::from(digits)
        || !text.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(SpecError::NotDigits(text.to_owned(), digits));
    }
    text.parse()
        .map_err(|e| SpecError::Number(text.to_owned(), e))
}

fn format_ext(n: u32, digits: u8) -> Result<Extension, SpecError> {
    Ok(Extension::new(&format!(
        "{n:0width$}",
        width = usize::from(digits)
    ))?)
}

/// Normalises what a caller typed: digits only, at most `digits` long,
/// zero-padded ("42" is 0042 with 4 digits).
pub fn normalise(input: &str, digits: u8) -> Option<Extension> {
    let t = input.trim();
    if t.is_empty() || t.len() > usize::from(digits) || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Extension::new(&format!("{t:0>width$}", width = usize::from(digits))).ok()
}

/// What `init` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InitReport {
    /// Extensions the spec asks for.
    pub wanted: u64,
    /// Free ext items created now.
    pub created: u64,
    /// Already there (free or assigned): left as they were.
    pub existing: u64,
    /// Reserved extensions taken out of the pool (they were free).
    pub reserved_removed: u64,
    /// Reserved extensions that are assigned: left to their agents.
    pub reserved_assigned: Vec<String>,
}

/// Creates the missing free ext items of the pool, `concurrency` chunks of
/// 100 at a time; `progress(n)` is called as n more extensions are done.
pub async fn init(
    exec: &Executor,
    spec: &PoolSpec,
    concurrency: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<InitReport, ExecError> {
    let all = spec
        .extensions()
        .map_err(|e| ExecError::Permanent(e.to_string()))?;
    let lease = Lease::acquire(exec, INIT_LOCK).await?;
    let result = init_locked(exec, spec, all, concurrency, progress).await;
    lease.release().await;
    result
}

async fn init_locked(
    exec: &Executor,
    spec: &PoolSpec,
    all: Vec<Extension>,
    concurrency: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<InitReport, ExecError> {
    let mut report = InitReport {
        wanted: all.len() as u64,
        ..InitReport::default()
    };
    let chunks: Vec<&[Extension]> = all.chunks(TRANSACT_MAX).collect();
    let results: Vec<Result<ChunkReport, ExecError>> = futures::stream::iter(chunks)
        .map(|chunk| async move {
            let r = init_chunk(exec, chunk).await;
            progress(chunk.len() as u64);
            r
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    for r in results {
        let r = r?;
        report.created += r.created;
        report.existing += r.existing;
    }
    // Reserved numbers that exist: out of the pool if free, else reported.
    let reserved: Vec<Key> = spec.reserved.iter().cloned().map(Key::Extension).collect();
    if !reserved.is_empty() {
        for item in exec.batch_get(&reserved, true).await? {
            let Ok(x) = ExtItem::from_item(&item) else {
                continue;
            };
            match x.state {
                ExtState::Free => {
                    let mut tx = exec.tx();
                    tx.delete(
                        &Key::Extension(x.extension.clone()),
                        Some(Expr::new("gsi1pk = :free").s(":free", FREE)),
                    )?;
                    // One planned write of this run: its own nonce.
                    let run = nonce();
                    let parts = ["extensions-init", "reserve", x.extension.as_str(), &run];
                    if exec.transact_planned(tx, &parts).await? == TxOutcome::Committed {
                        report.reserved_removed += 1;
                    } else {
                        report.reserved_assigned.push(x.extension.to_string());
                    }
                }
                _ => report.reserved_assigned.push(x.extension.to_string()),
            }
        }
    }
    Ok(report)
}

/// The lock that keeps two `extensions init` runs apart.
pub const INIT_LOCK: &str = "extensions-init";
/// How long a lease holds without renewal: a killed `init` blocks the next
/// one for at most this long.
const LEASE: Duration = Duration::from_secs(60);

/// A lease on a `LOCK#{name}` item: taken with a conditional put (absent,
/// or expired), renewed in the background while held, deleted on release.
/// Two `init` runs at once could otherwise interleave their reads and blind
/// batch writes so that one overwrites an extension the other created and
/// an agent was since given.
pub struct Lease {
    exec: Executor,
    key: Key,
    owner: String,
    renewer: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Takes the lease, or says who holds it and until when.
    pub async fn acquire(exec: &Executor, name: &str) -> Result<Lease, ExecError> {
        let key =
            Key::Lock(ProcessorName::new(name).map_err(|e| ExecError::Permanent(e.to_string()))?);
        let owner = format!(
            "{}@{}#{:016x}",
            std::process::id(),
            std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".to_owned()),
            fastrand::u64(..)
        );
        if !put_lease(exec, &key, &owner, false).await? {
            let held = exec.get(&key, true).await?;
            let who = held
                .as_ref()
                .and_then(|i| s(i, "owner"))
                .unwrap_or("another run")
                .to_owned();
            let until = held
                .as_ref()
                .and_then(|i| s(i, "lease_until"))
                .unwrap_or("soon")
                .to_owned();
            return Err(ExecError::Permanent(format!(
                "another `extensions init` ({who}) is running; its lease on {} lasts until {until} \
                 unless renewed: wait for it to finish and run init again",
                key.pk()
            )));
        }
        let renewer = {
            let (exec, key, owner) = (exec.clone(), key.clone(), owner.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(LEASE / 3).await;
                    match put_lease(&exec, &key, &owner, true).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(lock = %key.pk(), "lease lost to another run");
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(lock = %key.pk(), error = %e, "lease renewal failed; retrying")
                        }
                    }
                }
            })
        };
        Ok(Lease {
            exec: exec.clone(),
            key,
            owner,
            renewer,
        })
    }

    /// Gives the lease up (a failure to delete it only delays the next run
    /// until it expires).
    pub async fn release(self) {
        self.renewer.abort();
        let key = self.key.to_key_map();
        let exec = &self.exec;
        let done = exec
            .conditional("DeleteItem", || {
                exec.client()
                    .delete_item()
                    .table_name(exec.table())
                    .set_key(Some(key.clone()))
                    .condition_expression("#o = :me")
                    .expression_attribute_names("#o", "owner")
                    .expression_attribute_values(":me", sv(self.owner.as_str()))
                    .send()
            })
            .await;
        if let Err(e) = done {
            tracing::warn!(lock = %self.key.pk(), error = %e, "lease not released; it expires by itself");
        }
    }
}

/// Writes the lease item; `renew` requires that `owner` still holds it,
/// else it must be absent or expired. `false` when the condition failed.
async fn put_lease(
    exec: &Executor,
    key: &Key,
    owner: &str,
    renew: bool,
) -> Result<bool, ExecError> {
    let now = chrono::Utc::now();
    let until = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
    let item = Item::from([
        ("pk".to_owned(), sv(key.pk())),
        ("sk".to_owned(), sv(key.sk())),
        ("type".to_owned(), sv("lock")),
        ("owner".to_owned(), sv(owner)),
        (
            "lease_until".to_owned(),
            sv(until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        ),
        ("lease_until_epoch".to_owned(), nv(until.timestamp())),
        // TTL: DynamoDB deletes a stale lease by itself.
        ("expires_at".to_owned(), nv(until.timestamp() + 3_600)),
    ]);
    let (condition, values) = if renew {
        ("#o = :me", Item::from([(":me".to_owned(), sv(owner))]))
    } else {
        (
            "attribute_not_exists(pk) OR lease_until_epoch < :now",
            Item::from([(":now".to_owned(), nv(now.timestamp()))]),
        )
    };
    let done = exec
        .conditional("PutItem", || {
            let req = exec
                .client()
                .put_item()
                .table_name(exec.table())
                .set_item(Some(item.clone()))
                .condition_expression(condition)
                .set_expression_attribute_values(Some(values.clone()));
            let req = if renew {
                req.expression_attribute_names("#o", "owner")
            } else {
                req
            };
            req.send()
        })
        .await?;
    Ok(matches!(done, Conditional::Done(_)))
}

#[derive(Debug, Default)]
struct ChunkReport {
    created: u64,
    existing: u64,
}

async fn init_chunk(exec: &Executor, chunk: &[Extension]) -> Result<ChunkReport, ExecError> {
    let keys: Vec<Key> = chunk.iter().cloned().map(Key::Extension).collect();
    let found = exec.batch_get(&keys, true).await?;
    let mut r = ChunkReport::default();
    let present: BTreeSet<String> = found
        .iter()
        .filter_map(|i| streamfold_shared::attrs::s(i, "pk").map(str::to_owned))
        .collect();
    let missing: Vec<&Extension> = chunk
        .iter()
        .filter(|x| !present.contains(&Key::Extension((*x).clone()).pk()))
        .collect();
    r.existing = (chunk.len() - missing.len()) as u64;
    // Only what was missing a moment ago is written: an existing item, free
    // or assigned, is never overwritten. BatchWriteItem takes no condition;
    // the one window (an item created by a second `init` and assigned before
    // this write lands) is closed by the lease: one `init` at a time.
    let items = missing.iter().map(|x| free_item(x)).collect();
    exec.batch_put(items).await?;
    r.created = missing.len() as u64;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_lists_are_padded_and_ranged() {
        let spec = PoolSpec::new(4, "0000, 911,9990-9999").unwrap_or_else(|e| panic!("{e}"));
        let r: Vec<&str> = spec.reserved.iter().map(|x| x.as_str()).collect();
        assert_eq!(r.len(), 12);
        assert!(r.contains(&"0911") && r.contains(&"0000") && r.contains(&"9995"));
        let all = spec.extensions().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(all.len(), 10_000 - 12);
        assert_eq!(all[0].as_str(), "0001");
        assert!(PoolSpec::new(4, "12345").is_err());
        assert!(PoolSpec::new(4, "9-1").is_err());
        assert!(PoolSpec::new(4, "x").is_err());
        assert!(PoolSpec::new(0, "").is_err());
        assert!(PoolSpec::new(7, "").is_err());
        assert_eq!(PoolSpec::new(2, "").map(|s| s.span()), Ok(100));
    }

    #[test]
    fn caller_input_is_normalised() {
        let n = |s: &str| normalise(s, 4).map(|x| x.to_string());
        assert_eq!(n("42").as_deref(), Some("0042"));
        assert_eq!(n(" 0042 ").as_deref(), Some("0042"));
        assert_eq!(n("12345"), None);
        assert_eq!(n("4a"), None);
        assert_eq!(n(""), None);
        assert_eq!(n("-1"), None);
    }
}
