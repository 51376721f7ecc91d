//! Apply: one guarded transaction per group, converging on the truth
//! after a failed condition; the reads `rebuild` shares.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use streamfold_shared::attrs::sv;
use streamfold_shared::engine::{
    Context, Decoded, KeyWork, Processor, Source, Step, each_key, load_items,
};
use streamfold_shared::executor::{ExecError, Expr, Item, TxOutcome, nonce, token};
use streamfold_shared::ids::{GroupId, MessageId, Timestamp, UserId};
use streamfold_shared::keys::Key;
use streamfold_shared::read::Query;
use streamfold_shared::record::StreamRecord;

use crate::NAME;
use crate::decode::{Event, GroupState, Message, MessageKey, Participant, decode, decode_message};
use crate::plan::{Target, plan};

/// How many times a group is re-read and retried when its view keeps moving.
const MAX_CONVERGE: usize = 5;

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
    /// `owner`'s preview of the conversation with `other`, showing `m`
    /// (docs/design.md's `preview`).
    pub fn item(owner: &Participant, other: &Participant, m: &Message) -> Item {
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
    type Key = GroupId;
    type Event = Event;
    type State = Result<GroupState, String>;

    fn name(&self) -> &'static str {
        NAME
    }

    fn decode(&self, record: &StreamRecord) -> Decoded<GroupId, Event> {
        decode(record)
    }

    async fn load(
        &self,
        ctx: &Context,
        keys: &[&GroupId],
    ) -> Result<HashMap<GroupId, Self::State>, ExecError> {
        Ok(load_items(ctx, keys, |g| Key::Group(g.clone()))
            .await?
            .into_iter()
            .map(|(group, item)| (group, GroupState::from_item(item)))
            .collect())
    }

    /// Every group on its own, `ctx.concurrency` at a time, each with its
    /// events' source records (the idempotency token names them).
    async fn apply_batch(
        &self,
        ctx: &Context,
        work: &[KeyWork<'_, GroupId, Self::State, Event>],
    ) -> Vec<Vec<Step>> {
        each_key(ctx, work, |w| {
            apply_key(ctx, w.key, w.state, &w.events, &w.sources)
        })
        .await
    }
}

/// Applies one group's events; `sources` are their records (empty when no
/// record carries them).
async fn apply_key(
    ctx: &Context,
    key: &GroupId,
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
        Err(e) => vec![Step::from(e); events.len()],
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
    let messages = Expr::new("pk = :pk").s(":pk", Key::messages_pk(group));
    let page = Query::table(messages)
        .newest_first()
        .consistent()
        .limit(1)
        .page(&ctx.exec, None)
        .await?;
    let Some(item) = page.items.into_iter().next() else {
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
