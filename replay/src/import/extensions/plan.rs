//! The old system's rows under the import's rules (pure): which pairs to
//! adopt, and every defect found.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use serde::Serialize;
use streamfold_shared::ids::Username;
use streamfold_shared::keys::Extension;

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

/// Why a cell of the old system is not an extension of the pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtensionError {
    #[error("{0:?} is not an extension")]
    NotDigits(String),
    #[error("{text} is not {digits} digits")]
    Length { text: String, digits: u8 },
    #[error("{0}")]
    Invalid(String),
}

/// Why a CSV export cannot be read at all (a row that cannot is listed as
/// malformed instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    #[error("the CSV is empty")]
    Empty,
    #[error("the CSV header is {0:?}; expected the columns user,extension")]
    Header(String),
}

fn extension_of(text: &str, digits: u8, pad: bool) -> Result<Extension, ExtensionError> {
    let t = text.trim();
    let width = usize::from(digits);
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ExtensionError::NotDigits(t.to_owned()));
    }
    if t.len() > width || (!pad && t.len() != width) {
        return Err(ExtensionError::Length {
            text: t.to_owned(),
            digits,
        });
    }
    Extension::new(&format!("{t:0>width$}")).map_err(|e| ExtensionError::Invalid(e.to_string()))
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
pub fn plan_csv(text: &str, digits: u8) -> Result<Plan, CsvError> {
    let mut lines = text
        .trim_start_matches('\u{feff}')
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or(CsvError::Empty)?;
    let names: Vec<String> = csv_fields(header)
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let col = |n: &str| names.iter().position(|h| h == n);
    let (Some(user_col), Some(ext_col)) = (col("user"), col("extension")) else {
        return Err(CsvError::Header(header.to_owned()));
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
