//! What an import did, as text and JSON.

use anyhow::Result;
use extensions::adopt::Adopted;
use serde::Serialize;
use streamfold_shared::ids::Username;
use streamfold_shared::keys::Extension;

use super::Plan;

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
    pub(super) fn add(&mut self, username: &Username, x: &Extension, r: Result<Adopted, String>) {
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
