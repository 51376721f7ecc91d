//! The messaging side of the CLI: `messages send` (patterns C and D),
//! `conversations list` (pattern B), `conversations get` (pattern A) and
//! `seed`.

pub mod command;

use std::collections::HashMap;

use anyhow::{Context as _, Result, anyhow, bail};
use aws_sdk_dynamodb::types::AttributeValue;
use message_groups::{Participant, Preview};
use streamfold_shared::attrs::{s, sv};
use streamfold_shared::executor::{Executor, Expr, Item, TxOutcome};
use streamfold_shared::ids::{GroupId, MessageId, Timestamp, UserId};
use streamfold_shared::keys::Key;

/// A new message.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub group: GroupId,
    pub id: MessageId,
    pub at: Timestamp,
    pub sender: Participant,
    pub text: String,
}

impl NewMessage {
    /// The message item.
    pub fn item(&self) -> Item {
        let key = Key::Message {
            group: self.group.clone(),
            created_at: self.at,
            message: self.id.clone(),
        };
        HashMap::from([
            ("pk".to_owned(), sv(key.pk())),
            ("sk".to_owned(), sv(key.sk())),
            ("type".to_owned(), sv("message")),
            ("message_uuid".to_owned(), sv(self.id.as_str())),
            ("message".to_owned(), sv(self.text.as_str())),
            ("user_uuid".to_owned(), sv(self.sender.user_uuid.as_str())),
            (
                "user_handle".to_owned(),
                sv(self.sender.user_handle.as_str()),
            ),
            (
                "user_display_name".to_owned(),
                sv(self.sender.user_display_name.as_str()),
            ),
            ("created_at".to_owned(), sv(self.at.to_string())),
        ])
    }
}

fn participant_value(p: &Participant) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        ("user_uuid".to_owned(), sv(p.user_uuid.as_str())),
        ("user_handle".to_owned(), sv(p.user_handle.as_str())),
        (
            "user_display_name".to_owned(),
            sv(p.user_display_name.as_str()),
        ),
    ]))
}

/// A fresh random id (UUID v4 form).
pub fn new_uuid() -> String {
    let mut b: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Pattern D: a new group and its first message, in one transaction.
/// `false` if the group already existed (nothing written).
pub async fn create_group(
    exec: &Executor,
    participants: [Participant; 2],
    created_at: Timestamp,
    first: &NewMessage,
) -> Result<bool> {
    if participants[0].user_uuid == participants[1].user_uuid {
        bail!("a conversation needs two different users");
    }
    let group_key = Key::Group(first.group.clone());
    let group_item: Item = HashMap::from([
        ("pk".to_owned(), sv(group_key.pk())),
        ("sk".to_owned(), sv(group_key.sk())),
        ("type".to_owned(), sv("group")),
        ("message_group_uuid".to_owned(), sv(first.group.as_str())),
        (
            "participants".to_owned(),
            AttributeValue::L(participants.iter().map(participant_value).collect()),
        ),
        ("created_at".to_owned(), sv(created_at.to_string())),
    ]);
    let mut tx = exec.tx();
    tx.put(group_item, Some(Expr::new("attribute_not_exists(pk)")))?;
    tx.put(first.item(), Some(Expr::new("attribute_not_exists(pk)")))?;
    // The group's and its first message's ids (fresh UUIDs) name the write.
    let parts = ["create-group", first.group.as_str(), first.id.as_str()];
    match exec.transact_planned(tx, &parts).await? {
        TxOutcome::Committed => Ok(true),
        TxOutcome::ConditionFailed(_) => Ok(false),
        TxOutcome::PlanAgain(why) => bail!("group {}: {why}", first.group),
    }
}

/// Pattern C: a message into an existing group. `false` if that message
/// already exists; an error if the group does not.
pub async fn post(exec: &Executor, message: &NewMessage) -> Result<bool> {
    let mut tx = exec.tx();
    tx.check(
        &Key::Group(message.group.clone()),
        Expr::new("attribute_exists(pk)"),
    )?;
    tx.put(message.item(), Some(Expr::new("attribute_not_exists(pk)")))?;
    // The message's id (a fresh UUID) names the write.
    let parts = ["post", message.group.as_str(), message.id.as_str()];
    match exec.transact_planned(tx, &parts).await? {
        TxOutcome::Committed => Ok(true),
        TxOutcome::ConditionFailed(which) if which.contains(&0) => {
            bail!("group {} does not exist", message.group)
        }
        TxOutcome::ConditionFailed(_) => Ok(false),
        TxOutcome::PlanAgain(why) => bail!("message {}: {why}", message.id),
    }
}

/// The participants of a group.
pub async fn participants(exec: &Executor, group: &GroupId) -> Result<[Participant; 2]> {
    let item = exec
        .get(&Key::Group(group.clone()), true)
        .await?
        .ok_or_else(|| anyhow!("group {group} does not exist"))?;
    let state = message_groups::GroupState::from_item(item).map_err(|e| anyhow!(e))?;
    Ok(state.participants)
}

/// Parses `UUID:HANDLE:DISPLAY NAME`.
pub fn parse_participant(spec: &str) -> Result<Participant> {
    let mut parts = spec.splitn(3, ':');
    let (Some(uuid), Some(handle), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        bail!("expected UUID:HANDLE:DISPLAY NAME, got {spec:?}");
    };
    Ok(Participant {
        user_uuid: UserId::new(uuid)?,
        user_handle: handle.to_owned(),
        user_display_name: name.to_owned(),
    })
}

/// One page of a user's conversation list, newest first.
pub async fn list_conversations(
    exec: &Executor,
    user: &UserId,
    limit: i32,
    cursor: Option<&str>,
) -> Result<(Vec<Preview>, Option<String>)> {
    let pk = format!("GRP#{user}");
    let mut q = exec
        .client()
        .query()
        .table_name(exec.table())
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", sv(pk.clone()))
        .scan_index_forward(false)
        .limit(limit.max(1));
    if let Some(c) = cursor {
        q = q
            .exclusive_start_key("pk", sv(pk.clone()))
            .exclusive_start_key("sk", sv(c));
    }
    let out = q
        .send()
        .await
        .map_err(|e| anyhow!(aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
    let previews = out
        .items
        .unwrap_or_default()
        .into_iter()
        .map(|i| serde_dynamo::from_item(i).context("a preview item is malformed"))
        .collect::<Result<Vec<Preview>>>()?;
    let next = out
        .last_evaluated_key
        .as_ref()
        .and_then(|k| s(k, "sk").map(str::to_owned));
    Ok((previews, next))
}

/// Finds a user's uuid from a handle, through the previews that show them.
pub async fn resolve_user(exec: &Executor, user: &str) -> Result<UserId> {
    let out = exec
        .client()
        .query()
        .table_name(exec.table())
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", sv(format!("GRP#{user}")))
        .limit(1)
        .send()
        .await
        .map_err(|e| anyhow!(aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
    if out.count > 0 {
        return Ok(UserId::new(user)?);
    }
    let mut pages = exec
        .client()
        .scan()
        .table_name(exec.table())
        .filter_expression("#t = :t AND user_handle = :h")
        .expression_attribute_names("#t", "type")
        .expression_attribute_values(":t", sv("preview"))
        .expression_attribute_values(":h", sv(user))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| anyhow!(aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
        if let Some(uuid) = page
            .items
            .unwrap_or_default()
            .iter()
            .find_map(|i| s(i, "user_uuid").map(str::to_owned))
        {
            return Ok(UserId::new(uuid)?);
        }
    }
    Ok(UserId::new(user)?)
}

/// A message as shown in a conversation.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ShownMessage {
    pub message_uuid: String,
    pub created_at: String,
    pub user_uuid: String,
    pub user_handle: String,
    pub user_display_name: String,
    pub message: String,
}

/// Pattern A: the newest `limit` messages before `before` (a sort key),
/// returned oldest first, and the cursor for older ones.
pub async fn get_conversation(
    exec: &Executor,
    group: &GroupId,
    limit: i32,
    before: Option<&str>,
) -> Result<(Vec<ShownMessage>, Option<String>)> {
    let pk = format!("MSG#{group}");
    let mut q = exec
        .client()
        .query()
        .table_name(exec.table())
        .scan_index_forward(false)
        .limit(limit.max(1));
    q = match before {
        Some(b) => q
            .key_condition_expression("pk = :pk AND sk < :b")
            .expression_attribute_values(":pk", sv(pk))
            .expression_attribute_values(":b", sv(b)),
        None => q
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", sv(pk)),
    };
    let out = q
        .send()
        .await
        .map_err(|e| anyhow!(aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
    let mut messages = out
        .items
        .unwrap_or_default()
        .into_iter()
        .map(|i| serde_dynamo::from_item(i).context("a message item is malformed"))
        .collect::<Result<Vec<ShownMessage>>>()?;
    let cursor = out
        .last_evaluated_key
        .as_ref()
        .and_then(|k| s(k, "sk").map(str::to_owned));
    messages.reverse();
    Ok((messages, cursor))
}

/// The seed's users: the two main ones first.
pub fn seed_users() -> Result<[Participant; 4]> {
    let p = |u: &str, h: &str, n: &str| -> Result<Participant> {
        Ok(Participant {
            user_uuid: UserId::new(u)?,
            user_handle: h.to_owned(),
            user_display_name: n.to_owned(),
        })
    };
    Ok([
        p(
            "b4c1a6e2-2d1f-4f6a-9a3e-6d7b8c9d0e1f",
            "andrewbrown",
            "Andrew Brown",
        )?,
        p(
            "e2f3a4b5-c6d7-4e8f-9a0b-1c2d3e4f5a6b",
            "bayko",
            "Andrew Bayko",
        )?,
        p(
            "7c3e9f11-4a2b-4c5d-8e6f-0a1b2c3d4e5f",
            "londo",
            "Londo Mollari",
        )?,
        p("9d8c7b6a-5e4f-4a3b-9c2d-1e0f9a8b7c6d", "worf", "Worf")?,
    ])
}

/// A seeded conversation: group id, its two users, and its lines
/// (sent by the first user?, minutes after 10:00, text).
type Conversation<'a> = (
    &'a str,
    &'a Participant,
    &'a Participant,
    &'a [(bool, u32, &'a str)],
);

/// What `seed` wrote.
#[derive(Debug, Default, Clone, Copy)]
pub struct Seeded {
    pub groups: usize,
    pub messages: usize,
}

/// Writes two users' conversations, like the bootcamp seed script.
/// Idempotent: fixed ids, conditional writes.
pub async fn seed(exec: &Executor) -> Result<Seeded> {
    let [andrew, bayko, londo, worf] = seed_users()?;
    // (group, a, b, [(sender is a?, minute offset, text)])
    let conversations: [Conversation<'_>; 3] = [
        (
            "5ae290ed-55d1-47a0-bc6d-fe2bc2700399",
            &andrew,
            &bayko,
            &[
                (true, 0, "Hey, are you coming to the review?"),
                (false, 2, "Yes, five minutes."),
                (true, 3, "Great, I'll save you a seat."),
                (false, 9, "Running late, start without me!"),
            ],
        ),
        (
            "0c5b8e3a-2f4d-4b6e-8a1c-3d5f7e9a1b2c",
            &andrew,
            &londo,
            &[
                (
                    false,
                    15,
                    "Ambassador Mollari here. We need to talk about the budget.",
                ),
                (true, 17, "Sure, tomorrow at ten?"),
                (false, 31, "Tomorrow at ten. Bring the numbers."),
            ],
        ),
        (
            "4f1e2d3c-5b6a-4798-8a9b-0c1d2e3f4a5b",
            &bayko,
            &worf,
            &[
                (true, 5, "Can you review my pull request?"),
                (false, 6, "Today is a good day to review."),
            ],
        ),
    ];
    let base = Timestamp::parse("2026-11-20T10:00:00Z")?;
    let mut seeded = Seeded::default();
    for (group, a, b, lines) in conversations {
        let group = GroupId::new(group)?;
        for (n, (from_a, minutes, text)) in lines.iter().enumerate() {
            let sender = if *from_a { a } else { b };
            let message = NewMessage {
                group: group.clone(),
                id: MessageId::new(format!("{}-{n:04}", &group.as_str()[..8]))?,
                at: base.plus_seconds(i64::from(*minutes) * 60 + n as i64),
                sender: sender.clone(),
                text: (*text).to_owned(),
            };
            let wrote = if n == 0 {
                let created =
                    create_group(exec, [a.clone(), b.clone()], message.at, &message).await?;
                seeded.groups += usize::from(created);
                created
            } else {
                post(exec, &message).await?
            };
            seeded.messages += usize::from(wrote);
        }
    }
    Ok(seeded)
}
