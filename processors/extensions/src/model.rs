//! The two item types this crate reasons about, as read from the table:
//! agent profiles (`AGENT#{id}` / `PROFILE`) and extension items
//! (`EXT#{nnnn}` / `EXT`), plus the gsi1 work-queue queries.
//!
//! Nothing here keeps or logs a person's name: profiles are read for their
//! id, ARN, username and extension only.

use aws_sdk_dynamodb::types::AttributeValue;
use streamfold_shared::attrs::{s, sv};
use streamfold_shared::engine::Context;
use streamfold_shared::executor::{ExecError, Expr, Item};
use streamfold_shared::ids::{AgentId, Username};
use streamfold_shared::keys::{Extension, Key};
use streamfold_shared::read::Query;

/// gsi1 partition of free extensions (`gsi1sk` = the extension).
pub const FREE: &str = "EXT#FREE";
/// gsi1 partition of agents waiting for an extension (`gsi1sk` =
/// `{since}#{agent_id}`, so oldest first).
pub const WAITING: &str = "EXT#WAITING";
/// gsi1 partition of extensions reserved for a username that has no
/// profile yet (`gsi1sk` = the username).
pub const RESERVED: &str = "EXT#RESERVED";
/// The extension work-queue index.
pub const GSI1: &str = "gsi1";
/// The agent-directory index.
pub const GSI2: &str = "gsi2";
/// gsi2 partition of every agent profile (`gsi2sk` = username).
pub const AGENTS: &str = "AGENTS";

/// What this crate reads of an agent profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub agent: AgentId,
    pub agent_arn: Option<String>,
    pub username: Option<String>,
    pub extension: Option<Extension>,
    /// `gsi1pk = EXT#WAITING`.
    pub waiting: bool,
    /// Its place in the waiting queue (`gsi1sk`, `{since}#{agent_id}`)
    /// while it waits.
    pub queue_key: Option<String>,
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.agent.as_str())
    }
}

impl Profile {
    /// From a table item (a GetItem/Query answer). Errors name the agent,
    /// never an attribute's value other than the extension digits.
    pub fn from_item(item: &Item) -> Result<Self, String> {
        let pk = s(item, "pk").unwrap_or_default();
        let sk = s(item, "sk").unwrap_or_default();
        let agent = match Key::parse(pk, sk) {
            Ok(Key::Profile(a)) => a,
            Ok(other) => return Err(format!("{other} is not an agent profile")),
            Err(e) => return Err(format!("agent profile key: {e}")),
        };
        let extension = match item.get("extension") {
            None | Some(AttributeValue::Null(_)) => None,
            Some(AttributeValue::S(x)) => {
                Some(Extension::new(x).map_err(|e| format!("profile of agent {agent}: {e}"))?)
            }
            Some(_) => {
                return Err(format!(
                    "profile of agent {agent}: extension is not a string"
                ));
            }
        };
        Ok(Self {
            agent_arn: s(item, "agent_arn").map(str::to_owned),
            username: s(item, "username").map(str::to_owned),
            waiting: s(item, "gsi1pk") == Some(WAITING),
            queue_key: (s(item, "gsi1pk") == Some(WAITING))
                .then(|| s(item, "gsi1sk").map(str::to_owned))
                .flatten(),
            extension,
            agent,
        })
    }
}

/// The state of an extension item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtState {
    Free,
    Assigned {
        agent: String,
        agent_arn: Option<String>,
        username: Option<String>,
        assigned_at: Option<String>,
    },
    /// Kept for a Connect username that has no profile yet (`streamfold
    /// import extensions`): out of the free queue, given to that
    /// username's profile when it arrives.
    Reserved {
        username: String,
    },
    /// Neither free, assigned nor reserved, or more than one: an invariant
    /// is broken.
    Broken(String),
}

/// What this crate reads of an extension item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtItem {
    pub extension: Extension,
    pub state: ExtState,
}

impl ExtItem {
    pub fn from_item(item: &Item) -> Result<Self, String> {
        let pk = s(item, "pk").unwrap_or_default();
        let sk = s(item, "sk").unwrap_or_default();
        let extension = match Key::parse(pk, sk) {
            Ok(Key::Extension(x)) => x,
            Ok(other) => return Err(format!("{other} is not an extension item")),
            Err(e) => return Err(format!("extension key: {e}")),
        };
        let free = s(item, "gsi1pk") == Some(FREE);
        let agent = s(item, "agent_id");
        let reserved = s(item, "reserved_for");
        let state = match (free, agent, reserved) {
            (true, None, None) => ExtState::Free,
            (false, Some(a), None) => ExtState::Assigned {
                agent: a.to_owned(),
                agent_arn: s(item, "agent_arn").map(str::to_owned),
                username: s(item, "username").map(str::to_owned),
                assigned_at: s(item, "assigned_at").map(str::to_owned),
            },
            (false, None, Some(u)) => ExtState::Reserved {
                username: u.to_owned(),
            },
            (true, Some(a), _) => ExtState::Broken(format!("free and assigned to {a}")),
            (true, None, Some(_)) => ExtState::Broken("free and reserved".to_owned()),
            (false, Some(a), Some(_)) => ExtState::Broken(format!("assigned to {a} and reserved")),
            (false, None, None) => {
                ExtState::Broken("neither free, assigned nor reserved".to_owned())
            }
        };
        Ok(Self { extension, state })
    }
}

/// A free extension item, as `extensions init` and a release write it.
pub fn free_item(x: &Extension) -> Item {
    let key = Key::Extension(x.clone());
    Item::from([
        ("pk".to_owned(), sv(key.pk())),
        ("sk".to_owned(), sv(key.sk())),
        ("type".to_owned(), sv("ext")),
        ("extension".to_owned(), sv(x.as_str())),
        ("gsi1pk".to_owned(), sv(FREE)),
        ("gsi1sk".to_owned(), sv(x.as_str())),
    ])
}

/// A reservation item (`RESERVATION#{username}` / `RESERVATION`): the
/// extension kept for a username with no profile yet. Its ext item says
/// `reserved_for = username`; both are written and removed together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub username: Username,
    pub extension: Extension,
}

impl Reservation {
    pub fn from_item(item: &Item) -> Result<Self, String> {
        let pk = s(item, "pk").unwrap_or_default();
        let sk = s(item, "sk").unwrap_or_default();
        let username = match Key::parse(pk, sk) {
            Ok(Key::Reservation(u)) => u,
            Ok(other) => return Err(format!("{other} is not a reservation")),
            Err(e) => return Err(format!("reservation key: {e}")),
        };
        let extension = s(item, "extension")
            .ok_or_else(|| format!("reservation of {username} has no extension"))
            .and_then(|x| {
                Extension::new(x).map_err(|e| format!("reservation of {username}: {e}"))
            })?;
        Ok(Self {
            username,
            extension,
        })
    }

    pub fn key(&self) -> Key {
        Key::Reservation(self.username.clone())
    }

    /// The reservation item.
    pub fn item(&self, at: &str) -> Item {
        let key = self.key();
        Item::from([
            ("pk".to_owned(), sv(key.pk())),
            ("sk".to_owned(), sv(key.sk())),
            ("type".to_owned(), sv("reservation")),
            ("username".to_owned(), sv(self.username.as_str())),
            ("extension".to_owned(), sv(self.extension.as_str())),
            ("reserved_at".to_owned(), sv(at)),
        ])
    }
}

/// An agent waiting for an extension, as gsi1 `EXT#WAITING` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiter {
    pub agent: AgentId,
    pub agent_arn: Option<String>,
    pub username: Option<String>,
}

impl From<&Profile> for Waiter {
    fn from(p: &Profile) -> Self {
        Self {
            agent: p.agent.clone(),
            agent_arn: p.agent_arn.clone(),
            username: p.username.clone(),
        }
    }
}

/// One page of a gsi1 queue, in index order (ascending). GSI reads are
/// eventually consistent: the answer is a list of candidates, and the
/// conditions of the writes that use them are what keeps the table right.
pub async fn queue_page(
    ctx: &Context,
    queue: &str,
    limit: i32,
    start: Option<Item>,
) -> Result<(Vec<Item>, Option<Item>), ExecError> {
    let page = queue_query(queue)
        .limit(limit)
        .page(&ctx.exec, start)
        .await?;
    Ok((page.items, page.next))
}

/// Counts a gsi1 queue (every page, `Select COUNT`).
pub async fn queue_len(ctx: &Context, queue: &str) -> Result<u64, ExecError> {
    queue_query(queue).count(&ctx.exec).await
}

/// A gsi1 queue, in index order.
fn queue_query(queue: &str) -> Query {
    Query::index(GSI1, Expr::new("gsi1pk = :q").s(":q", queue))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_decode_without_names() {
        let item = Item::from([
            ("pk".to_owned(), sv("AGENT#a1")),
            ("sk".to_owned(), sv("PROFILE")),
            ("first_name".to_owned(), sv("Ada")),
            ("username".to_owned(), sv("ada")),
            ("gsi1pk".to_owned(), sv(WAITING)),
        ]);
        let p = Profile::from_item(&item).unwrap_or_else(|e| panic!("{e}"));
        assert!(p.waiting);
        assert_eq!(p.extension, None);
        let mut bad = item.clone();
        bad.insert("extension".to_owned(), sv("12a"));
        let err = Profile::from_item(&bad).err().unwrap_or_default();
        assert!(err.contains("a1") && !err.contains("Ada"), "{err}");
    }

    #[test]
    fn ext_items_are_free_or_assigned() {
        let x = Extension::new("0042").unwrap_or_else(|e| panic!("{e}"));
        let free = ExtItem::from_item(&free_item(&x)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(free.state, ExtState::Free);
        let mut both = free_item(&x);
        both.insert("agent_id".to_owned(), sv("a1"));
        assert!(matches!(
            ExtItem::from_item(&both).map(|e| e.state),
            Ok(ExtState::Broken(_))
        ));
        let mut reserved = free_item(&x);
        reserved.remove("gsi1pk");
        reserved.insert("reserved_for".to_owned(), sv("ada"));
        assert_eq!(
            ExtItem::from_item(&reserved).map(|e| e.state),
            Ok(ExtState::Reserved {
                username: "ada".to_owned()
            })
        );
        reserved.insert("agent_id".to_owned(), sv("a1"));
        assert!(matches!(
            ExtItem::from_item(&reserved).map(|e| e.state),
            Ok(ExtState::Broken(_))
        ));
    }

    #[test]
    fn reservations_round_trip() {
        let r = Reservation {
            username: Username::new("ada@example.com").unwrap_or_else(|e| panic!("{e}")),
            extension: Extension::new("0042").unwrap_or_else(|e| panic!("{e}")),
        };
        assert_eq!(
            Reservation::from_item(&r.item("2026-11-20T10:00:00.000000Z")),
            Ok(r.clone())
        );
        let mut bad = r.item("t");
        bad.insert("extension".to_owned(), sv("4x"));
        assert!(Reservation::from_item(&bad).is_err());
        bad.remove("extension");
        assert!(Reservation::from_item(&bad).is_err());
    }
}
