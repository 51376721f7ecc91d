//! Decode: an agent profile record of the table stream into an [`Event`].

use streamfold_shared::engine::Decoded;
use streamfold_shared::ids::AgentId;
use streamfold_shared::keys::{Extension, Key};
use streamfold_shared::record::{ChangeKind, StreamRecord};

/// A domain event of one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The profile exists and has no extension (INSERT, or a MODIFY that
    /// still waits). `prior` is the extension the old image had, when a
    /// writer overwrote the profile without it.
    Arrived {
        agent: AgentId,
        prior: Option<Extension>,
    },
    /// The profile holding `extension` was deleted (by reconcile, an
    /// operator, or TTL when `ttl`).
    Departed {
        agent: AgentId,
        extension: Extension,
        ttl: bool,
    },
}

fn image_ext(image: &serde_dynamo::Item, agent: &AgentId) -> Result<Option<Extension>, String> {
    match image.get("extension") {
        None | Some(serde_dynamo::AttributeValue::Null(_)) => Ok(None),
        Some(serde_dynamo::AttributeValue::S(x)) => Extension::new(x)
            .map(Some)
            .map_err(|e| format!("profile of agent {agent}: {e}")),
        Some(_) => Err(format!(
            "profile of agent {agent}: extension is not a string"
        )),
    }
}

/// Decodes one stream record (pure).
pub fn decode(record: &StreamRecord) -> Decoded<AgentId, Event> {
    let pk = record.key_str("pk").unwrap_or_default();
    let sk = record.key_str("sk").unwrap_or_default();
    match record.item_type() {
        Some("agent") => {}
        None if pk.starts_with("AGENT#") && sk == "PROFILE" => {
            // An image of the key alone carries nothing to act on (the
            // local endpoint's UpdateItem of a new item emits one before
            // the record with the attributes, which follows): ignored.
            let image = record
                .dynamodb
                .new_image
                .as_ref()
                .or(record.dynamodb.old_image.as_ref());
            if image.is_some_and(|i| i.keys().all(|k| k == "pk" || k == "sk")) {
                return Decoded::Ignore;
            }
            return Decoded::Invalid("agent profile record has no type attribute".to_owned());
        }
        _ => return Decoded::Ignore,
    }
    let agent = match Key::parse(pk, sk) {
        Ok(Key::Profile(a)) => a,
        Ok(other) => return Decoded::Invalid(format!("an agent item under key {other}")),
        Err(e) => return Decoded::Invalid(format!("agent profile key: {e}")),
    };
    let key = agent.clone();
    match record.kind {
        ChangeKind::Remove => {
            let Some(old) = &record.dynamodb.old_image else {
                return Decoded::Invalid(
                    "profile REMOVE has no OldImage (the stream must be NEW_AND_OLD_IMAGES)"
                        .to_owned(),
                );
            };
            match image_ext(old, &agent) {
                // A waiting agent left: there is nothing to free.
                Ok(None) => Decoded::Ignore,
                Ok(Some(extension)) => Decoded::Event {
                    key,
                    event: Event::Departed {
                        agent,
                        extension,
                        ttl: record.is_ttl_deletion(),
                    },
                },
                Err(e) => Decoded::Invalid(e),
            }
        }
        ChangeKind::Insert | ChangeKind::Modify => {
            let Some(new) = &record.dynamodb.new_image else {
                return Decoded::Invalid(
                    "profile record has no NewImage (the stream must be NEW_AND_OLD_IMAGES)"
                        .to_owned(),
                );
            };
            match image_ext(new, &agent) {
                // It has one (our own assignment, or any later change).
                Ok(Some(_)) => Decoded::Ignore,
                Ok(None) => {
                    let prior = match record.dynamodb.old_image.as_ref() {
                        Some(old) => image_ext(old, &agent).ok().flatten(),
                        None => None,
                    };
                    Decoded::Event {
                        key,
                        event: Event::Arrived { agent, prior },
                    }
                }
                Err(e) => Decoded::Invalid(e),
            }
        }
    }
}
