//! message-groups: keeps every user's conversation list (pattern B) showing
//! the newest existing message of each of their message groups.
//!
//! - **decode**: a `message` record of the table stream becomes
//!   [`Event::Posted`], [`Event::Edited`] or [`Event::Deleted`], ordered by its
//!   group. Everything else (its own `preview` writes, `group` items, agents,
//!   extensions, TTL deletions) is ignored; a malformed message is refused.
//! - **load**: one consistent BatchGetItem of the batch's group items.
//! - **plan** ([`plan`]): coalesces a group's events into one target: keep,
//!   project one message, or resolve from the source of truth.
//! - **apply**: one TransactWriteItems per group: guard on the group's
//!   `last_message_key`, delete the old previews, put the new ones, and check
//!   that the projected message still exists with that text. A failed
//!   condition means the view is stale: re-read and converge on the truth.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use streamfold_shared::attrs::{redact, sv};
use streamfold_shared::engine::{Context, Decoded, KeyWork, Processor, Source, Step};
use streamfold_shared::executor::{ExecError, Expr, Item, TxOutcome, nonce, token};
use streamfold_shared::ids::{GroupId, MessageId, Timestamp, UserId};
use streamfold_shared::keys::Key;
use streamfold_shared::record::{ChangeKind, StreamRecord};

/// The processor's name.
pub const NAME: &str = "message-groups";

/// How many times a group is re-read and retried when its view keeps moving.
const MAX_CONVERGE: usize = 5;

/// The order of messages in a group: creation time, then id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageKey {
    pub created_at: Timestamp,
    pub id: MessageId,
}

impl MessageKey {
    /// `{created_at}#{message_uuid}`: the message's sort key and the group's
    /// `last_message_key`.
    pub fn render(&self) -> String {
        format!("{}#{}", self.created_at, self.id)
    }

    pub fn parse(value: &str) -> Result<Self, String> {
        let (at, id) = value
            .split_once('#')
            .ok_or_else(|| "last_message_key is not {timestamp}#{message_uuid}".to_owned())?;
        Ok(Self {
            created_at: Timestamp::parse_canonical(at).map_err(|e| e.to_string())?,
            id: MessageId::new(id).map_err(|e| e.to_string())?,
        })
    }
}

/// A message as the previews need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub group: GroupId,
    pub key: MessageKey,
    pub text: String,
    pub sender: UserId,
}

impl Message {
    fn item_key(&self) -> Key {
        Key::Message {
            group: self.group.clone(),
            created_at: self.key.created_at,
            message: self.key.id.clone(),
        }
    }
}

/// A domain event of a message group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Posted(Message),
    Edited(Message),
    Deleted { group: GroupId, key: MessageKey },
}

/// One side of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub user_uuid: UserId,
    pub user_handle: String,
    pub user_display_name: String,
}

/// What the processor reads of a group item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    pub group: GroupId,
    pub participants: [Participant; 2],
    /// The message the previews show now.
    pub last: Option<MessageKey>,
}

#[derive(Deserialize)]
struct GroupImage {
    participants: Vec<Participant>,
    #[serde(default)]
    last_message_key: Option<String>,
}

#[derive(Deserialize)]
struct MessageImage {
    message_uuid: MessageId,
    message: String,
    user_uuid: UserId,
    created_at: String,
}

impl GroupState {
    /// Decodes a group item read from the table.
    pub fn from_item(item: Item) -> Result<Self, String> {
        let pk = streamfold_shared::attrs::s(&item, "pk").unwrap_or_default();
        let sk = streamfold_shared::attrs::s(&item, "sk").unwrap_or_default();
        let group = match Key::parse(pk, sk) {
            Ok(Key::Group(g)) => g,
            Ok(other) => return Err(format!("{other} is not a group item")),
            Err(e) => return Err(e.to_string()),
        };
        let image: GroupImage = serde_dynamo::from_item(item)
            .map_err(|e| format!("group {group} is malformed: {}", redact(e)))?;
        let [a, b]: [Participant; 2] = image.participants.try_into().map_err(|p: Vec<_>| {
            format!(
                "group {group} has {} participants; exactly 2 are expected",
                p.len()
            )
        })?;
        if a.user_uuid == b.user_uuid {
            return Err(format!("group {group} has the same participant twice"));
        }
        let last = image
            .last_message_key
            .as_deref()
            .map(MessageKey::parse)
            .transpose()
            .map_err(|e| format!("group {group}: {e}"))?;
        Ok(Self {
            group,
            participants: [a, b],
            last,
        })
    }
}

/// Decodes a message image (stream image or table item) under its key.
fn decode_message(
    group: GroupId,
    created_at: Timestamp,
    id: MessageId,
    image: impl Into<serde_dynamo::Item>,
) -> Result<Message, String> {
    let image: MessageImage = serde_dynamo::from_item(image.into())
        .map_err(|e| format!("message {id} in group {group} is malformed: {}", redact(e)))?;
    if image.message_uuid != id {
        return Err(format!(
            "message_uuid {} disagrees with the item key ({id})",
            image.message_uuid
        ));
    }
    let at = Timestamp::parse(&image.created_at)
        .map_err(|e| format!("message {id}: created_at: {e}"))?;
    if at != created_at {
        return Err(format!(
            "message {id}: created_at {at} disagrees with the item key ({created_at})"
        ));
    }
    Ok(Message {
        group,
        key: MessageKey { created_at, id },
        text: image.message,
        sender: image.user_uuid,
    })
}

/// Decodes one stream record (pure).
pub fn decode(record: &StreamRecord) -> Decoded<Event> {
    let pk = record.key_str("pk").unwrap_or_default();
    match record.item_type() {
        Some("message") => {}
        None if pk.starts_with("MSG#") => {
            return Decoded::Invalid("message record has no type attribute".to_owned());
        }
        _ => return Decoded::Ignore,
    }
    if record.is_ttl_deletion() {
        return Decoded::Ignore;
    }
    let sk = record.key_str("sk").unwrap_or_default();
    let (group, created_at, id) = match Key::parse(pk, sk) {
        Ok(Key::Message {
            group,
            created_at,
            message,
        }) => (group, created_at, message),
        Ok(other) => return Decoded::Invalid(format!("a message item under key {other}")),
        Err(e) => return Decoded::Invalid(format!("message key: {e}")),
    };
    let key = group.to_string();
    let event = match record.kind {
        ChangeKind::Remove => Event::Deleted {
            group,
            key: MessageKey { created_at, id },
        },
        kind => {
            let Some(image) = record.dynamodb.new_image.clone() else {
                return Decoded::Invalid(
                    "message record has no NewImage (the stream must be NEW_AND_OLD_IMAGES)"
                        .to_owned(),
                );
            };
            match decode_message(group, created_at, id, image) {
                Ok(m) if kind == ChangeKind::Insert => Event::Posted(m),
                Ok(m) => Event::Edited(m),
                Err(e) => return Decoded::Invalid(e),
            }
        }
    };
    Decoded::Event { key, event }
}

/// What a group's events come to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    /// Nothing to change.
    Keep,
    /// Show this message.
    Project(&'a Message),
    /// The shown message went away: show the newest remaining one.
    Resolve,
}

/// Coalesces a group's events (oldest first) against the message the
/// previews show now. Pure.
///
/// A newer post moves the view; an older or duplicate post is a no-op; an
/// edit of the shown message (or of a newer one) re-projects it; deleting
/// the shown message means resolving from the table.
pub fn plan<'a>(current: Option<&MessageKey>, events: &[&'a Event]) -> (Target<'a>, Vec<Step>) {
    let mut view: Option<MessageKey> = current.cloned();
    let mut target = Target::Keep;
    // The events that decide the final target; the others were coalesced.
    let mut deciding: Vec<usize> = Vec::new();
    for (i, event) in events.iter().enumerate() {
        match event {
            Event::Posted(m) if view.as_ref().is_none_or(|v| m.key > *v) => {
                view = Some(m.key.clone());
                if target != Target::Resolve {
                    target = Target::Project(m);
                    deciding.clear();
                }
                deciding.push(i);
            }
            Event::Edited(m) if view.as_ref().is_none_or(|v| m.key >= *v) => {
                view = Some(m.key.clone());
                if target != Target::Resolve {
                    target = Target::Project(m);
                    deciding.clear();
                }
                deciding.push(i);
            }
            Event::Deleted { key, .. } if view.as_ref() == Some(key) => {
                // The table decides from here on; later events are read back.
                view = None;
                target = Target::Resolve;
                deciding.clear();
                deciding.push(i);
            }
            _ => {}
        }
    }
    let steps = (0..events.len())
        .map(|i| {
            if deciding.contains(&i) {
                Step::Applied
            } else {
                Step::NoOp
            }
        })
        .collect();
    (target, steps)
}

/// A preview item: one participant's entry for a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preview {
    pub pk: String,
    pub sk: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub message_group_uuid: GroupId,
    pub message: String,
    pub last_message_uuid: MessageId,
    pub last_sender_uuid: UserId,
    pub last_message_at: Timestamp,
    pub user_uuid: UserId,
    pub user_handle: String,
    pub user_display_name: String,
}

impl Preview {
    fn item(owner: &Participant, other: &Participant, m: &Message) -> Item {
        let key = Key::Preview {
            owner: owner.user_uuid.clone(),
            last_message_at: m.key.created_at,
            group: m.group.clone(),
        };
        HashMap::from([
            ("pk".to_owned(), sv(key.pk())),
            ("sk".to_owned(), sv(key.sk())),
            ("type".to_owned(), sv("preview")),
            ("message_group_uuid".to_owned(), sv(m.group.as_str())),
            ("message".to_owned(), sv(m.text.as_str())),
            ("last_message_uuid".to_owned(), sv(m.key.id.as_str())),
            ("last_sender_uuid".to_owned(), sv(m.sender.as_str())),
            (
                "last_message_at".to_owned(),
                sv(m.key.created_at.to_string()),
            ),
            ("user_uuid".to_owned(), sv(other.user_uuid.as_str())),
            ("user_handle".to_owned(), sv(other.user_handle.as_str())),
            (
                "user_display_name".to_owned(),
                sv(other.user_display_name.as_str()),
            ),
        ])
    }
}

/// The processor.
#[derive(Debug, Clone, Copy, Default)]
pub struct MessageGroups;

impl Processor for MessageGroups {
    type Record = StreamRecord;
    type Event = Event;
    type State = Result<GroupState, String>;

    fn name(&self) -> &'static str {
        NAME
    }

    fn decode(&self, record: &StreamRecord) -> Decoded<Event> {
        decode(record)
    }

    async fn load(
        &self,
        ctx: &Context,
        keys: &[&str],
    ) -> Result<HashMap<String, Self::State>, ExecError> {
        let group_keys: Vec<Key> = keys
            .iter()
            .filter_map(|k| GroupId::new(*k).ok().map(Key::Group))
            .collect();
        let items = ctx.exec.batch_get(&group_keys, true).await?;
        let mut states = HashMap::with_capacity(items.len());
        for item in items {
            let pk = streamfold_shared::attrs::s(&item, "pk").unwrap_or_default();
            let id = pk.strip_prefix("GROUP#").unwrap_or_default().to_owned();
            states.insert(id, GroupState::from_item(item));
        }
        Ok(states)
    }

    async fn apply(
        &self,
        ctx: &Context,
        key: &str,
        state: Option<&Self::State>,
        events: &[&Event],
    ) -> Vec<Step> {
        apply_key(ctx, key, state, events, &[]).await
    }

    /// Every group on its own, `ctx.concurrency` at a time, each with its
    /// events' source records (the idempotency token names them).
    async fn apply_batch(
        &self,
        ctx: &Context,
        work: &[KeyWork<'_, Self::State, Event>],
    ) -> Vec<Vec<Step>> {
        let mut futures = Vec::with_capacity(work.len());
        for (slot, w) in work.iter().enumerate() {
            futures.push(async move {
                (
                    slot,
                    apply_key(ctx, w.key, w.state, &w.events, &w.sources).await,
                )
            });
        }
        let mut results: Vec<(usize, Vec<Step>)> = futures::stream::iter(futures)
            .buffer_unordered(ctx.concurrency.max(1))
            .collect()
            .await;
        results.sort_by_key(|(slot, _)| *slot);
        results.into_iter().map(|(_, steps)| steps).collect()
    }
}

/// Applies one group's events; `sources` are their records (empty when no
/// record carries them).
async fn apply_key(
    ctx: &Context,
    key: &str,
    state: Option<&Result<GroupState, String>>,
    events: &[&Event],
    sources: &[Source<'_>],
) -> Vec<Step> {
    let state = match state {
        None => {
            let why = format!("group {key} does not exist yet; the message will be retried");
            return vec![Step::Failed(why); events.len()];
        }
        Some(Err(e)) => return vec![Step::Invalid(e.clone()); events.len()],
        Some(Ok(s)) => s,
    };
    let (target, steps) = plan(state.last.as_ref(), events);
    if target == Target::Keep {
        return steps;
    }
    match converge(ctx, state.clone(), target, &origin(sources)).await {
        Ok(()) => steps,
        Err(e) if e.is_transient() => vec![Step::Failed(e.to_string()); events.len()],
        Err(e) => vec![Step::Invalid(e.to_string()); events.len()],
    }
}

/// What the group's writes of one delivery apply, for their idempotency
/// tokens: a digest of the identities of the source records (sequence
/// numbers and record ids), so the same batch delivered again names the
/// same writes and any other event never does; without records (a rebuild,
/// a direct call) a [`nonce`], one per call.
fn origin(sources: &[Source<'_>]) -> String {
    if sources.is_empty() {
        return nonce();
    }
    let parts: Vec<&str> = sources.iter().flat_map(|s| s.parts()).collect();
    token(&parts)
}

/// Commits the target; on a failed condition, or an answer that says to
/// plan again (the token was used with other parameters, or its call still
/// runs), re-reads the group and the newest message and tries again, a few
/// times. Each round's transaction has its own token: `origin` (the source
/// records), the round and the plan.
async fn converge(
    ctx: &Context,
    mut state: GroupState,
    target: Target<'_>,
    origin: &str,
) -> Result<(), ExecError> {
    let mut want = target;
    for round in 0..MAX_CONVERGE {
        let newest;
        let show = match want {
            Target::Keep => return Ok(()),
            Target::Project(m) => Some(m),
            Target::Resolve => {
                newest = newest_message(ctx, &state.group).await?;
                newest.as_ref()
            }
        };
        match commit(ctx, &state, show, &[origin, &round.to_string()]).await? {
            TxOutcome::Committed => return Ok(()),
            TxOutcome::ConditionFailed(_) | TxOutcome::PlanAgain(_) => {
                let item = ctx.exec.get(&Key::Group(state.group.clone()), true).await?;
                let Some(item) = item else {
                    return Err(ExecError::Transient(format!(
                        "group {} disappeared while its previews were moved",
                        state.group
                    )));
                };
                state = GroupState::from_item(item).map_err(ExecError::Permanent)?;
                want = Target::Resolve;
            }
        }
    }
    Err(ExecError::Transient(format!(
        "group {} kept changing; gave up after {MAX_CONVERGE} attempts",
        state.group
    )))
}

/// What a group's previews should be, from its source items alone: the
/// newest message (consistent read) and the two preview items showing it.
#[derive(Debug, Clone)]
pub struct Expected {
    pub state: GroupState,
    pub newest: Option<Message>,
    /// The preview items the group should have (none without messages).
    pub previews: Vec<Item>,
}

/// Reads what a group's previews should be (for `rebuild`).
pub async fn expected_previews(ctx: &Context, state: GroupState) -> Result<Expected, ExecError> {
    let newest = newest_message(ctx, &state.group).await?;
    let previews = match &newest {
        Some(m) => {
            let [a, b] = &state.participants;
            vec![Preview::item(a, b, m), Preview::item(b, a, m)]
        }
        None => Vec::new(),
    };
    Ok(Expected {
        state,
        newest,
        previews,
    })
}

/// Rewrites a group's previews from its newest message, with the same
/// guarded transaction the processor uses: safe while the pipeline runs.
pub async fn resolve(ctx: &Context, state: GroupState) -> Result<(), ExecError> {
    converge(ctx, state, Target::Resolve, &nonce()).await
}

/// The newest message of a group, read consistently.
async fn newest_message(ctx: &Context, group: &GroupId) -> Result<Option<Message>, ExecError> {
    let pk = Key::Group(group.clone()).pk().replacen("GROUP#", "MSG#", 1);
    let out = ctx
        .exec
        .retrying("Query", || {
            ctx.exec
                .client()
                .query()
                .table_name(ctx.exec.table())
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                .scan_index_forward(false)
                .consistent_read(true)
                .limit(1)
                .send()
        })
        .await?;
    let Some(item) = out.items.and_then(|mut v| v.pop()) else {
        return Ok(None);
    };
    let pk = streamfold_shared::attrs::s(&item, "pk").unwrap_or_default();
    let sk = streamfold_shared::attrs::s(&item, "sk").unwrap_or_default();
    match Key::parse(pk, sk) {
        Ok(Key::Message {
            group,
            created_at,
            message,
        }) => decode_message(group, created_at, message, item)
            .map(Some)
            .map_err(ExecError::Permanent),
        Ok(other) => Err(ExecError::Permanent(format!("{other} is not a message"))),
        Err(e) => Err(ExecError::Permanent(format!("newest message key: {e}"))),
    }
}

/// One transaction moving a group's previews from `state.last` to `show`
/// (or removing them when `show` is `None`). Its token: `attempt` (what
/// the write applies: the source records' digest and the round) and the
/// plan (old and new message key, text, sender).
async fn commit(
    ctx: &Context,
    state: &GroupState,
    show: Option<&Message>,
    attempt: &[&str],
) -> Result<TxOutcome, ExecError> {
    let group_key = Key::Group(state.group.clone());
    let old = state.last.as_ref();
    let guard = match old {
        Some(k) => Expr::new("last_message_key = :old").s(":old", k.render()),
        None => Expr::new("attribute_not_exists(last_message_key)"),
    };
    let mut tx = ctx.exec.tx();
    let [a, b] = &state.participants;
    let new_at = show.map(|m| m.key.created_at);
    for owner in [a, b] {
        if let Some(old) = old.filter(|o| Some(o.created_at) != new_at) {
            let stale = Key::Preview {
                owner: owner.user_uuid.clone(),
                last_message_at: old.created_at,
                group: state.group.clone(),
            };
            tx.delete(&stale, None)?;
        }
    }
    let material = match show {
        Some(m) => {
            tx.update(
                &group_key,
                Expr::new("SET last_message_key = :new, last_message_at = :at")
                    .s(":new", m.key.render())
                    .s(":at", m.key.created_at.to_string()),
                Some(guard),
            )?;
            tx.put(Preview::item(a, b, m), None)?;
            tx.put(Preview::item(b, a, m), None)?;
            tx.check(
                &m.item_key(),
                Expr::new("attribute_exists(pk) AND #m = :text")
                    .name("#m", "message")
                    .s(":text", m.text.as_str()),
            )?;
            m.key.render() + "|" + &token(&[&m.text, m.sender.as_str()])
        }
        None => {
            if old.is_none() {
                return Ok(TxOutcome::Committed);
            }
            tx.update(
                &group_key,
                Expr::new("REMOVE last_message_key, last_message_at"),
                Some(guard),
            )?;
            "none".to_owned()
        }
    };
    let old_rendered = old.map(MessageKey::render).unwrap_or_default();
    let mut parts = vec![NAME, state.group.as_str()];
    parts.extend_from_slice(attempt);
    parts.extend([old_rendered.as_str(), material.as_str()]);
    let token = token(&parts);
    ctx.exec.transact(tx, &token).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamfold_shared::record::StreamEventFile;
    use streamfold_shared::testing::fixture;

    fn fixture_records() -> Vec<StreamRecord> {
        let file: StreamEventFile = serde_json::from_str(&fixture("lambda-dynamodb-event.json"))
            .unwrap_or_else(|e| panic!("{e}"));
        file.records
    }

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn msg(at: &str, id: &str, text: &str) -> Message {
        Message {
            group: GroupId::new("g").unwrap_or_else(|e| panic!("{e}")),
            key: MessageKey {
                created_at: ts(at),
                id: MessageId::new(id).unwrap_or_else(|e| panic!("{e}")),
            },
            text: text.to_owned(),
            sender: UserId::new("u").unwrap_or_else(|e| panic!("{e}")),
        }
    }

    #[test]
    fn decodes_every_fixture_record() {
        let decoded: Vec<Decoded<Event>> = fixture_records().iter().map(decode).collect();
        assert_eq!(decoded.len(), 8);
        assert!(matches!(decoded[0], Decoded::Ignore), "group item");
        assert!(matches!(
            &decoded[1],
            Decoded::Event { key, event: Event::Posted(m) }
                if key == "5ae290ed-55d1-47a0-bc6d-fe2bc2700399"
                && m.key.id.as_str() == "11111111-1111-4111-8111-111111111111"
                && m.text == "Hey, are you coming to the review?"
        ));
        assert!(matches!(decoded[2], Decoded::Ignore), "own preview write");
        assert!(
            matches!(&decoded[3], Decoded::Event { event: Event::Posted(m), .. } if m.text == "Yes, five minutes.")
        );
        assert!(
            matches!(&decoded[4], Decoded::Event { event: Event::Edited(m), .. } if m.text == "Yes, ten minutes.")
        );
        assert!(matches!(
            &decoded[5],
            Decoded::Event { event: Event::Deleted { key, .. }, .. }
                if key.id.as_str() == "22222222-2222-4222-8222-222222222222"
        ));
        assert!(
            matches!(decoded[6], Decoded::Ignore),
            "TTL delete of an activity"
        );
        match &decoded[7] {
            Decoded::Invalid(why) => assert!(why.contains("contains '#'"), "{why}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn missing_attributes_are_refused_without_leaking_values() {
        let mut records = fixture_records();
        let mut r = records.swap_remove(1);
        if let Some(img) = r.dynamodb.new_image.as_mut() {
            img.remove("message_uuid");
        }
        match decode(&r) {
            Decoded::Invalid(why) => {
                assert!(why.contains("message_uuid"), "{why}");
                assert!(!why.contains("review"), "{why}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn ttl_deletion_of_a_message_is_ignored() {
        let mut records = fixture_records();
        let mut r = records.swap_remove(5);
        r.user_identity = Some(streamfold_shared::record::UserIdentity {
            kind: "Service".into(),
            principal_id: "dynamodb.amazonaws.com".into(),
        });
        assert!(matches!(decode(&r), Decoded::Ignore));
    }

    #[test]
    fn plan_coalesces_to_the_newest_post() {
        let m: Vec<Event> = (0..1000)
            .map(|i| {
                Event::Posted(msg(
                    &format!("2026-11-20T10:00:00.{:06}Z", (i * 7919) % 1000),
                    &format!("m{i:04}"),
                    "t",
                ))
            })
            .collect();
        let refs: Vec<&Event> = m.iter().collect();
        let (target, steps) = plan(None, &refs);
        let Target::Project(newest) = target else {
            panic!("expected a projection")
        };
        let max = m
            .iter()
            .filter_map(|e| match e {
                Event::Posted(m) => Some(&m.key),
                _ => None,
            })
            .max();
        assert_eq!(Some(&newest.key), max);
        assert_eq!(steps.len(), 1000);
    }

    #[test]
    fn plan_ignores_older_and_duplicate_posts() {
        let a = Event::Posted(msg("2026-11-20T10:00:00Z", "a", "x"));
        let b = Event::Posted(msg("2026-11-20T10:00:01Z", "b", "y"));
        let (t, steps) = plan(
            match &b {
                Event::Posted(m) => Some(&m.key),
                _ => None,
            },
            &[&a, &b],
        );
        assert_eq!(t, Target::Keep);
        assert_eq!(steps, [Step::NoOp, Step::NoOp]);
    }

    #[test]
    fn plan_edit_of_shown_message_reprojects_and_old_edit_is_noop() {
        let a = msg("2026-11-20T10:00:00Z", "a", "x");
        let b = msg("2026-11-20T10:00:01Z", "b", "y");
        let edit_b = Event::Edited(Message {
            text: "y2".into(),
            ..b.clone()
        });
        let edit_a = Event::Edited(Message {
            text: "x2".into(),
            ..a.clone()
        });
        let (t, steps) = plan(Some(&b.key), &[&edit_a, &edit_b]);
        assert!(matches!(t, Target::Project(m) if m.text == "y2"));
        assert_eq!(steps, [Step::NoOp, Step::Applied]);
    }

    #[test]
    fn plan_delete_of_shown_message_resolves() {
        let a = msg("2026-11-20T10:00:00Z", "a", "x");
        let b = msg("2026-11-20T10:00:01Z", "b", "y");
        let post_b = Event::Posted(b.clone());
        let del_b = Event::Deleted {
            group: b.group.clone(),
            key: b.key.clone(),
        };
        let del_a = Event::Deleted {
            group: a.group.clone(),
            key: a.key.clone(),
        };
        let (t, _) = plan(Some(&a.key), &[&post_b, &del_b]);
        assert_eq!(t, Target::Resolve);
        // Deleting a message that is not shown changes nothing.
        let (t, steps) = plan(Some(&b.key), &[&del_a]);
        assert_eq!(t, Target::Keep);
        assert_eq!(steps, [Step::NoOp]);
    }

    #[test]
    fn group_items_decode() {
        let item: Item = HashMap::from([
            ("pk".to_owned(), sv("GROUP#g1")),
            ("sk".to_owned(), sv("GROUP")),
            (
                "participants".to_owned(),
                AttributeValue::L(vec![
                    AttributeValue::M(HashMap::from([
                        ("user_uuid".to_owned(), sv("u1")),
                        ("user_handle".to_owned(), sv("a")),
                        ("user_display_name".to_owned(), sv("A")),
                    ])),
                    AttributeValue::M(HashMap::from([
                        ("user_uuid".to_owned(), sv("u2")),
                        ("user_handle".to_owned(), sv("b")),
                        ("user_display_name".to_owned(), sv("B")),
                    ])),
                ]),
            ),
            (
                "last_message_key".to_owned(),
                sv("2026-11-20T10:00:00.000000Z#m1"),
            ),
        ]);
        let state = GroupState::from_item(item.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(state.group.as_str(), "g1");
        assert_eq!(
            state.last.map(|k| k.render()).as_deref(),
            Some("2026-11-20T10:00:00.000000Z#m1")
        );
        let mut one = item;
        one.insert("participants".to_owned(), AttributeValue::L(vec![]));
        assert!(GroupState::from_item(one).is_err());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use streamfold_shared::record::StreamEventFile;
    use streamfold_shared::testing::fixture;

    fn records() -> Vec<StreamRecord> {
        serde_json::from_str::<StreamEventFile>(&fixture("lambda-dynamodb-event.json"))
            .map(|f| f.records)
            .unwrap_or_default()
    }

    fn any_attr() -> impl Strategy<Value = serde_dynamo::AttributeValue> {
        use serde_dynamo::AttributeValue as A;
        prop_oneof![
            ".{0,40}".prop_map(A::S),
            "[0-9.e-]{0,10}".prop_map(A::N),
            any::<bool>().prop_map(A::Bool),
            Just(A::Null(true)),
            prop::collection::vec(".{0,10}".prop_map(A::S), 0..3).prop_map(A::L),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Any attribute of any fixture record replaced by any value: decode
        /// never panics, and a refusal never quotes the message text.
        #[test]
        fn decode_never_panics(which in 0usize..8, name in prop::sample::select(vec![
            "pk", "sk", "type", "message_uuid", "message", "user_uuid", "created_at", "participants",
        ]), value in any_attr(), in_keys in any::<bool>()) {
            let mut all = records();
            prop_assume!(!all.is_empty());
            let mut r = all.swap_remove(which % all.len());
            if in_keys {
                r.dynamodb.keys.insert(name.to_owned(), value.clone());
            }
            if let Some(img) = r.dynamodb.new_image.as_mut() {
                img.insert(name.to_owned(), value);
            }
            if let Decoded::Invalid(why) = decode(&r) {
                prop_assert!(!why.contains("Hey, are you coming"));
            }
        }

        /// Coalescing: whatever the order and duplication of posts, the
        /// projection is the newest post.
        #[test]
        fn plan_projects_the_newest_post(times in prop::collection::vec(0u32..50, 1..40), dup in 0usize..3) {
            let events: Vec<Event> = times
                .iter()
                .enumerate()
                .flat_map(|(i, t)| {
                    let m = Message {
                        group: GroupId::new("g").unwrap_or_else(|e| panic!("{e}")),
                        key: MessageKey {
                            created_at: Timestamp::from_epoch_millis(1_763_632_800_000 + i64::from(*t) * 1000)
                                .unwrap_or_else(Timestamp::now),
                            id: MessageId::new(format!("m{i}")).unwrap_or_else(|e| panic!("{e}")),
                        },
                        text: format!("t{i}"),
                        sender: UserId::new("u").unwrap_or_else(|e| panic!("{e}")),
                    };
                    std::iter::repeat_n(Event::Posted(m), dup + 1)
                })
                .collect();
            let refs: Vec<&Event> = events.iter().collect();
            let newest = events.iter().filter_map(|e| match e {
                Event::Posted(m) => Some(&m.key),
                _ => None,
            }).max();
            let (target, _) = plan(None, &refs);
            match target {
                Target::Project(m) => prop_assert_eq!(Some(&m.key), newest),
                other => prop_assert!(false, "expected a projection, got {:?}", other),
            }
            let mut rev = refs.clone();
            rev.reverse();
            let (target, _) = plan(None, &rev);
            prop_assert!(matches!(target, Target::Project(m) if Some(&m.key) == newest));
        }
    }
}
