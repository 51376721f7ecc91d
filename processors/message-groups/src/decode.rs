//! The domain: messages, groups and their events, and decoding a stream
//! record into one.

use serde::{Deserialize, Serialize};
use streamfold_shared::attrs::redact;
use streamfold_shared::engine::Decoded;
use streamfold_shared::executor::Item;
use streamfold_shared::ids::{GroupId, MessageId, Timestamp, UserId};
use streamfold_shared::keys::Key;
use streamfold_shared::record::{ChangeKind, StreamRecord};

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
    pub(crate) fn item_key(&self) -> Key {
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
pub(crate) fn decode_message(
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
pub fn decode(record: &StreamRecord) -> Decoded<GroupId, Event> {
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
    let key = group.clone();
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
