//! `streamfold import cruddur`: the Cruddur chat table (`cruddur-messages`)
//! into streamfold's table.
//!
//! The old rows: `GRP#{owner}` / `{last_message_at}` conversation-list rows
//! whose `user_*` attributes are the OTHER participant, and `MSG#{group}` /
//! `{created_at}` messages whose `user_*` are the sender; timestamps are
//! Python `isoformat()` strings with `+00:00`; no `type` anywhere.
//!
//! - Pass 1 (a paginated Scan) keeps the `GRP#` rows and, of the messages,
//!   only each group's senders, count and first time; [`resolve`] (pure)
//!   names each group's two participants: the owner of each row from its
//!   `pk`, handle and name from the other participant's row, or, when that
//!   row is missing, from the messages' senders (then any other row or
//!   message of that user). A group that cannot be resolved is reported,
//!   never guessed, and its messages are not imported. Stale and duplicate
//!   `GRP#` rows of one owner collapse (counted).
//! - The `group` items are written (only those missing).
//! - Pass 2 scans the messages again and writes each page's missing ones in
//!   streamfold's format (`{created_at}#{message_uuid}` with the canonical
//!   timestamp, `type = message`) with BatchWriteItem.
//!
//! Previews are never copied: the pipeline makes them from the new message
//! records, or `streamfold rebuild previews` does. Everything is written
//! only if absent, so a rerun after a crash converges and a second import
//! changes nothing.

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;

use anyhow::{Result, anyhow};
use aws_sdk_dynamodb::types::AttributeValue;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use message_groups::Participant;
use serde::Serialize;
use streamfold_shared::attrs::{s, sv};
use streamfold_shared::executor::{Executor, Item};
use streamfold_shared::ids::{GroupId, IdError, MessageId, Timestamp, TimestampError, UserId};
use streamfold_shared::keys::Key;

use crate::app::App;
use crate::chat::NewMessage;

#[derive(Debug, Args)]
pub struct CruddurArgs {
    /// The Cruddur table (keys pk + sk).
    #[arg(long)]
    pub from_table: String,
    /// Read and count everything, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// A user as the old rows show one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub uuid: String,
    pub handle: String,
    pub name: String,
}

/// A conversation-list row: its owner and the other participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpRow {
    pub owner: String,
    pub sk: String,
    pub other: Person,
}

/// What pass 1 keeps of one group.
#[derive(Debug, Clone, Default)]
pub struct OldGroup {
    pub rows: Vec<GrpRow>,
    /// Senders of its messages, by uuid.
    pub senders: BTreeMap<String, Person>,
    pub messages: u64,
    pub first_message_at: Option<Timestamp>,
}

fn person(item: &HashMap<String, AttributeValue>) -> Option<Person> {
    Some(Person {
        uuid: s(item, "user_uuid")?.to_owned(),
        handle: s(item, "user_handle").unwrap_or_default().to_owned(),
        name: s(item, "user_display_name").unwrap_or_default().to_owned(),
    })
}

/// Why an old group's two participants cannot be told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unresolved {
    #[error("its rows disagree: {owner}'s shows {shown}, {other}'s shows {other_shown}")]
    RowsDisagree {
        owner: String,
        shown: String,
        other: String,
        other_shown: String,
    },
    #[error("its only row shows {0} with themself")]
    WithThemself(String),
    #[error("the row of {0} is missing and they sent no message")]
    MissingRow(String),
    #[error("no conversation-list row, and {0} senders")]
    Senders(usize),
    #[error("rows of {0} owners")]
    Owners(usize),
    #[error("both participants are {0}")]
    SameUser(String),
    #[error(transparent)]
    Id(#[from] IdError),
}

/// Why an old `MSG#` row is not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedMessage {
    #[error("{0:?} is not a message row")]
    NotMessage(String),
    #[error(transparent)]
    Id(#[from] IdError),
    #[error(transparent)]
    Time(#[from] TimestampError),
    #[error("no user_uuid")]
    NoSender,
    #[error("no message")]
    NoText,
}

fn participant(p: &Person) -> Result<Participant, IdError> {
    Ok(Participant {
        user_uuid: UserId::new(p.uuid.as_str())?,
        user_handle: p.handle.clone(),
        user_display_name: p.name.clone(),
    })
}

/// A group's two participants from its rows and senders (pure). Also how
/// many of its rows were stale or duplicates.
pub fn resolve(
    g: &OldGroup,
    directory: &HashMap<String, Person>,
) -> Result<([Participant; 2], u64), Unresolved> {
    // The newest row of each owner; older ones are stale or duplicates.
    let mut by_owner: BTreeMap<&str, &GrpRow> = BTreeMap::new();
    for r in &g.rows {
        match by_owner.get(r.owner.as_str()) {
            Some(seen) if seen.sk >= r.sk => {}
            _ => {
                by_owner.insert(r.owner.as_str(), r);
            }
        }
    }
    let collapsed = (g.rows.len() - by_owner.len()) as u64;
    let known = |uuid: &str| g.senders.get(uuid).or_else(|| directory.get(uuid)).cloned();
    let pair = match by_owner.values().collect::<Vec<_>>().as_slice() {
        [a, b] => {
            if a.other.uuid != b.owner || b.other.uuid != a.owner {
                return Err(Unresolved::RowsDisagree {
                    owner: a.owner.clone(),
                    shown: a.other.uuid.clone(),
                    other: b.owner.clone(),
                    other_shown: b.other.uuid.clone(),
                });
            }
            [b.other.clone(), a.other.clone()]
        }
        [a] => {
            if a.other.uuid == a.owner {
                return Err(Unresolved::WithThemself(a.owner.clone()));
            }
            let Some(me) = known(&a.owner) else {
                return Err(Unresolved::MissingRow(a.other.uuid.clone()));
            };
            [me, a.other.clone()]
        }
        [] => {
            let senders: Vec<&Person> = g.senders.values().collect();
            match senders.as_slice() {
                [a, b] => [(*a).clone(), (*b).clone()],
                _ => {
                    return Err(Unresolved::Senders(senders.len()));
                }
            }
        }
        more => return Err(Unresolved::Owners(more.len())),
    };
    if pair[0].uuid == pair[1].uuid {
        return Err(Unresolved::SameUser(pair[0].uuid.clone()));
    }
    Ok(([participant(&pair[0])?, participant(&pair[1])?], collapsed))
}

/// The message item of an old `MSG#` row, in streamfold's format.
pub fn message_item(
    item: &HashMap<String, AttributeValue>,
) -> Result<(GroupId, Item), MalformedMessage> {
    let pk = s(item, "pk").unwrap_or_default();
    let group = pk
        .strip_prefix("MSG#")
        .ok_or_else(|| MalformedMessage::NotMessage(pk.to_owned()))?;
    let group = GroupId::new(group)?;
    let at = Timestamp::parse(s(item, "sk").unwrap_or_default())?;
    let id = MessageId::new(s(item, "message_uuid").unwrap_or_default())?;
    let sender = person(item).ok_or(MalformedMessage::NoSender)?;
    let text = s(item, "message").ok_or(MalformedMessage::NoText)?;
    let m = NewMessage {
        group: group.clone(),
        id,
        at,
        sender: participant(&sender)?,
        text: text.to_owned(),
    };
    Ok((group, m.item()))
}

/// The group item of a resolved group.
pub fn group_item(group: &GroupId, p: &[Participant; 2], created_at: Timestamp) -> Item {
    let key = Key::Group(group.clone());
    let part = |p: &Participant| {
        AttributeValue::M(HashMap::from([
            ("user_uuid".to_owned(), sv(p.user_uuid.as_str())),
            ("user_handle".to_owned(), sv(p.user_handle.as_str())),
            (
                "user_display_name".to_owned(),
                sv(p.user_display_name.as_str()),
            ),
        ]))
    };
    Item::from([
        ("pk".to_owned(), sv(key.pk())),
        ("sk".to_owned(), sv(key.sk())),
        ("type".to_owned(), sv("group")),
        ("message_group_uuid".to_owned(), sv(group.as_str())),
        (
            "participants".to_owned(),
            AttributeValue::L(p.iter().map(part).collect()),
        ),
        ("created_at".to_owned(), sv(created_at.to_string())),
    ])
}

/// Counts per kind.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub dry_run: bool,
    pub rows: u64,
    pub conversation_rows: u64,
    pub message_rows: u64,
    /// Stale or duplicate `GRP#` rows collapsed into their group.
    pub collapsed_rows: u64,
    pub groups: u64,
    pub groups_written: u64,
    pub groups_existing: u64,
    pub messages_written: u64,
    pub messages_existing: u64,
    /// Messages of unresolved groups, not imported.
    pub messages_skipped: u64,
    /// Groups that could not be resolved: (group, why).
    pub unresolved: Vec<String>,
    /// Rows that could not be read.
    pub malformed: Vec<String>,
    /// Rows that are neither `GRP#` nor `MSG#`.
    pub other_rows: u64,
    /// Wall time and requests (both tables; the command fills them).
    pub seconds: f64,
    pub requests: u64,
}

impl Summary {
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut o = String::new();
        let verb = if self.dry_run { "to write" } else { "written" };
        let _ = writeln!(
            o,
            "{} rows read: {} conversation rows, {} messages, {} other",
            self.rows, self.conversation_rows, self.message_rows, self.other_rows
        );
        let _ = writeln!(
            o,
            "groups: {} resolved, {} {verb}, {} already there; {} stale or duplicate conversation rows collapsed",
            self.groups, self.groups_written, self.groups_existing, self.collapsed_rows
        );
        let _ = writeln!(
            o,
            "messages: {} {verb}, {} already there, {} skipped (unresolved group)",
            self.messages_written, self.messages_existing, self.messages_skipped
        );
        for u in &self.unresolved {
            let _ = writeln!(o, "unresolved group {u}");
        }
        for m in &self.malformed {
            let _ = writeln!(o, "malformed row: {m}");
        }
        if self.requests > 0 {
            let _ = writeln!(o, "{:.1} s, {} requests", self.seconds, self.requests);
        }
        if self.dry_run {
            o.push_str("dry run: nothing was written\n");
        } else if self.messages_written > 0 {
            o.push_str(
                "previews: the pipeline makes them from the new messages; without it, run `streamfold rebuild previews`\n",
            );
        }
        o
    }
}

/// Writes the items whose keys are not in the table yet (one consistent
/// BatchGetItem, then BatchWriteItem); returns (written, existing).
async fn put_missing(exec: &Executor, items: Vec<Item>, dry_run: bool) -> Result<(u64, u64)> {
    if items.is_empty() {
        return Ok((0, 0));
    }
    let keys: Vec<Key> = items
        .iter()
        .filter_map(|i| Key::parse(s(i, "pk")?, s(i, "sk")?).ok())
        .collect();
    let existing: std::collections::HashSet<(String, String)> = exec
        .batch_get(&keys, true)
        .await?
        .iter()
        .filter_map(|i| Some((s(i, "pk")?.to_owned(), s(i, "sk")?.to_owned())))
        .collect();
    let missing: Vec<Item> = items
        .into_iter()
        .filter(|i| {
            let k = (
                s(i, "pk").unwrap_or_default().to_owned(),
                s(i, "sk").unwrap_or_default().to_owned(),
            );
            !existing.contains(&k)
        })
        .collect();
    let written = missing.len() as u64;
    if !dry_run && !missing.is_empty() {
        exec.batch_put(missing).await?;
    }
    Ok((written, existing.len() as u64))
}

/// Runs the import.
pub async fn import(app: &App, from: &str, dry_run: bool, progress: bool) -> Result<Summary> {
    let exec = &app.ctx.exec;
    let mut sum = Summary {
        dry_run,
        ..Summary::default()
    };
    // Pass 1: conversation rows, and each group's senders.
    let spin = if progress {
        let b = ProgressBar::new_spinner();
        b.set_style(
            ProgressStyle::with_template("{spinner} reading {msg}: {pos} rows ({per_sec})")
                .map_err(|e| anyhow!(e))?,
        );
        b.set_message(from.to_owned());
        b
    } else {
        ProgressBar::hidden()
    };
    let mut groups: BTreeMap<String, OldGroup> = BTreeMap::new();
    let mut directory: HashMap<String, Person> = HashMap::new();
    let mut pages = app
        .ddb()
        .scan()
        .table_name(from)
        .consistent_read(true)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| super::old_table_error(from, e))?;
        for item in page.items.unwrap_or_default() {
            sum.rows += 1;
            spin.inc(1);
            let pk = s(&item, "pk").unwrap_or_default();
            if let Some(owner) = pk.strip_prefix("GRP#") {
                sum.conversation_rows += 1;
                let (Some(g), Some(other)) = (s(&item, "message_group_uuid"), person(&item)) else {
                    sum.malformed
                        .push(format!("{pk}: no message_group_uuid or user_uuid"));
                    continue;
                };
                directory.insert(other.uuid.clone(), other.clone());
                groups.entry(g.to_owned()).or_default().rows.push(GrpRow {
                    owner: owner.to_owned(),
                    sk: s(&item, "sk").unwrap_or_default().to_owned(),
                    other,
                });
            } else if let Some(g) = pk.strip_prefix("MSG#") {
                sum.message_rows += 1;
                let entry = groups.entry(g.to_owned()).or_default();
                entry.messages += 1;
                if let Ok(at) = Timestamp::parse(s(&item, "sk").unwrap_or_default())
                    && entry.first_message_at.is_none_or(|f| at < f)
                {
                    entry.first_message_at = Some(at);
                }
                if let Some(p) = person(&item) {
                    directory.entry(p.uuid.clone()).or_insert_with(|| p.clone());
                    entry.senders.entry(p.uuid.clone()).or_insert(p);
                }
            } else {
                sum.other_rows += 1;
            }
        }
    }
    spin.finish_and_clear();

    // The groups, resolved, written if missing.
    let mut resolved: HashMap<String, ()> = HashMap::new();
    let mut items = Vec::new();
    for (g, old) in &groups {
        let id = match GroupId::new(g.as_str()) {
            Ok(id) => id,
            Err(e) => {
                sum.unresolved.push(format!("{g:?}: {e}"));
                sum.messages_skipped += old.messages;
                continue;
            }
        };
        match resolve(old, &directory) {
            Ok((p, collapsed)) => {
                sum.collapsed_rows += collapsed;
                let created = old
                    .first_message_at
                    .or_else(|| {
                        old.rows
                            .iter()
                            .filter_map(|r| Timestamp::parse(&r.sk).ok())
                            .min()
                    })
                    .unwrap_or_else(Timestamp::now);
                items.push(group_item(&id, &p, created));
                resolved.insert(g.clone(), ());
            }
            Err(why) => {
                sum.unresolved.push(format!("{g}: {why}"));
                sum.messages_skipped += old.messages;
            }
        }
    }
    sum.groups = items.len() as u64;
    for chunk in items.chunks(100) {
        let (w, e) = put_missing(exec, chunk.to_vec(), dry_run).await?;
        sum.groups_written += w;
        sum.groups_existing += e;
    }

    // Pass 2: the messages of resolved groups, a page at a time.
    let bar = if progress {
        let b = ProgressBar::new(sum.message_rows);
        b.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} messages {per_sec} eta {eta}")
                .map_err(|e| anyhow!(e))?,
        );
        b
    } else {
        let b = ProgressBar::new(sum.message_rows);
        b.set_draw_target(ProgressDrawTarget::hidden());
        b
    };
    let mut pages = app
        .ddb()
        .scan()
        .table_name(from)
        .consistent_read(true)
        .filter_expression("begins_with(pk, :msg)")
        .expression_attribute_values(":msg", sv("MSG#"))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| super::old_table_error(from, e))?;
        let mut batch = Vec::new();
        for item in page.items.unwrap_or_default() {
            bar.inc(1);
            let group = s(&item, "pk")
                .and_then(|p| p.strip_prefix("MSG#"))
                .unwrap_or_default();
            if !resolved.contains_key(group) {
                continue;
            }
            match message_item(&item) {
                Ok((_, m)) => batch.push(m),
                Err(why) => {
                    let at = s(&item, "sk").unwrap_or_default();
                    sum.malformed.push(format!("MSG#{group} / {at}: {why}"));
                }
            }
        }
        for chunk in batch.chunks(100) {
            let (w, e) = put_missing(exec, chunk.to_vec(), dry_run).await?;
            sum.messages_written += w;
            sum.messages_existing += e;
        }
    }
    bar.finish_and_clear();
    Ok(sum)
}

/// `streamfold import cruddur`. Exit status 1 when a group was unresolved
/// or a row malformed (everything else is imported).
pub async fn run_cli(app: &App, args: CruddurArgs) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    app.counter.reset();
    let mut s = import(app, &args.from_table, args.dry_run, !args.json).await?;
    s.seconds = started.elapsed().as_secs_f64();
    s.requests = app.counter.total();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", s.render());
    }
    Ok(if s.unresolved.is_empty() && s.malformed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests;
