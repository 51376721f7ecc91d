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
use streamfold_shared::executor::{ExecError, Executor, Expr, TRANSACT_MAX, TxOutcome, token};
use streamfold_shared::keys::{Extension, Key};

use crate::model::{ExtItem, ExtState, FREE, free_item};

/// The longest extensions `init` creates (10^6 items).
pub const MAX_DIGITS: u8 = 6;

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
    pub fn new(digits: u8, reserve: &str) -> Result<Self, String> {
        if !(1..=MAX_DIGITS).contains(&digits) {
            return Err(format!("--digits must be 1 to {MAX_DIGITS}, not {digits}"));
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
                return Err(format!("reserved range {part} runs backwards"));
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
    pub fn extensions(&self) -> Result<Vec<Extension>, String> {
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

fn number(text: &str, digits: u8) -> Result<u32, String> {
    if text.is_empty()
        || text.len() > usize::from(digits)
        || !text.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!(
            "reserved number {text:?} is not 1 to {digits} digits"
        ));
    }
    text.parse()
        .map_err(|e| format!("reserved number {text:?}: {e}"))
}

fn format_ext(n: u32, digits: u8) -> Result<Extension, String> {
    Extension::new(&format!("{n:0width$}", width = usize::from(digits))).map_err(|e| e.to_string())
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
    let all = spec.extensions().map_err(ExecError::Permanent)?;
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
                    let t = token(&["extensions-init", "reserve", x.extension.as_str()]);
                    if exec.transact(tx, &t).await? == TxOutcome::Committed {
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
    // or assigned, is never overwritten. (BatchWriteItem takes no
    // condition; the one window, an item created by a second `init` running
    // at the same time and assigned before this write lands, is why two
    // inits must not run at once. Conditional puts would close it at 25
    // times the requests; TransactWriteItems too, but the local endpoint
    // copies the whole table for every action of a transaction.)
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
