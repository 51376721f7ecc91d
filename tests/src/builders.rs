//! What tests build their inputs from: participants and messages as the chat
//! app writes them, waiting agent profiles as agent-activity or reconcile
//! write them, the fixture's stream records, and validated ids that a test
//! knows to be valid.

use std::path::{Path, PathBuf};

use extensions::model::{AGENTS, WAITING};
use message_groups::Participant;
use streamfold::chat::NewMessage;
use streamfold_shared::attrs::sv;
use streamfold_shared::executor::Item;
use streamfold_shared::ids::{AgentId, GroupId, MessageId, Timestamp, UserId};
use streamfold_shared::record::{StreamEventFile, StreamRecord};

use crate::fixture;

/// The Connect instance the tests' agent ARNs name.
pub const INSTANCE: &str = "aaaaaaaa-bbbb-cccc-dddd-111111111111";

/// A participant with the display name `"{handle} display"`.
pub fn user(uuid: &str, handle: &str) -> Participant {
    Participant {
        user_uuid: UserId::new(uuid).expect("the test's user id is valid"),
        user_handle: handle.to_owned(),
        user_display_name: format!("{handle} display"),
    }
}

pub fn group_id(id: &str) -> GroupId {
    GroupId::new(id).expect("the test's group id is valid")
}

pub fn message_id(id: &str) -> MessageId {
    MessageId::new(id).expect("the test's message id is valid")
}

pub fn agent(id: &str) -> AgentId {
    AgentId::new(id).expect("the test's agent id is valid")
}

/// A timestamp the test writes out, e.g. `"2026-11-20T10:00:00Z"`.
pub fn at(text: &str) -> Timestamp {
    Timestamp::parse(text).expect("the test's timestamp parses")
}

/// A message of `group` from `sender`, at a written-out time.
pub fn message(
    group: &str,
    id: &str,
    at_text: &str,
    sender: &Participant,
    text: &str,
) -> NewMessage {
    NewMessage {
        group: group_id(group),
        id: message_id(id),
        at: at(at_text),
        sender: sender.clone(),
        text: text.to_owned(),
    }
}

/// The `n`th agent id, a UUID: `00000000-0000-4000-8000-{n:012}`.
pub fn agent_id(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// A waiting agent profile (`AGENT#{id}` / `PROFILE`, on the waiting and
/// agents indexes), as agent-activity or reconcile write it. By default: on
/// [`INSTANCE`], username `user-{id}`, no names, no status.
#[derive(Debug, Clone)]
pub struct WaitingProfile {
    id: String,
    since: String,
    instance: String,
    username: String,
    first_name: Option<String>,
    last_name: Option<String>,
    status: Option<String>,
}

impl WaitingProfile {
    /// Agent `id`, waiting since `since` (its place in the waiting order).
    pub fn new(id: &str, since: impl ToString) -> Self {
        Self {
            id: id.to_owned(),
            since: since.to_string(),
            instance: INSTANCE.to_owned(),
            username: format!("user-{id}"),
            first_name: None,
            last_name: None,
            status: None,
        }
    }

    pub fn instance(mut self, instance: &str) -> Self {
        instance.clone_into(&mut self.instance);
        self
    }

    pub fn username(mut self, username: &str) -> Self {
        username.clone_into(&mut self.username);
        self
    }

    /// The agent's names (which nothing may log).
    pub fn names(mut self, first: &str, last: Option<&str>) -> Self {
        self.first_name = Some(first.to_owned());
        self.last_name = last.map(str::to_owned);
        self
    }

    pub fn status(mut self, status: &str) -> Self {
        self.status = Some(status.to_owned());
        self
    }

    pub fn item(&self) -> Item {
        let id = &self.id;
        let mut item = Item::from([
            ("pk".to_owned(), sv(format!("AGENT#{id}"))),
            ("sk".to_owned(), sv("PROFILE")),
            ("type".to_owned(), sv("agent")),
            (
                "agent_arn".to_owned(),
                sv(format!(
                    "arn:aws:connect:us-east-1:012345678901:instance/{}/agent/{id}",
                    self.instance
                )),
            ),
            ("username".to_owned(), sv(&self.username)),
            ("gsi1pk".to_owned(), sv(WAITING)),
            ("gsi1sk".to_owned(), sv(format!("{}#{id}", self.since))),
            ("gsi2pk".to_owned(), sv(AGENTS)),
            ("gsi2sk".to_owned(), sv(&self.username)),
        ]);
        for (name, value) in [
            ("first_name", &self.first_name),
            ("last_name", &self.last_name),
            ("status", &self.status),
        ] {
            if let Some(v) = value {
                item.insert(name.to_owned(), sv(v));
            }
        }
        item
    }
}

/// The records of a Lambda DynamoDB Streams event (its JSON text).
pub fn stream_event_records(text: &str) -> Vec<StreamRecord> {
    let file: StreamEventFile =
        serde_json::from_str(text).expect("the text is a Lambda DynamoDB Streams event");
    file.records
}

/// The records of `tests/fixtures/lambda-dynamodb-event.json`.
pub fn fixture_records() -> Vec<StreamRecord> {
    stream_event_records(&fixture("lambda-dynamodb-event.json"))
}

/// Records as JSON Lines, the form `streamfold capture` writes.
pub fn json_lines(records: &[StreamRecord]) -> String {
    let mut text = String::new();
    for r in records {
        text.push_str(&serde_json::to_string(r).expect("a stream record serialises"));
        text.push('\n');
    }
    text
}

/// A directory of its own under the system's temporary directory, created.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("streamfold-it-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("the temporary directory is created");
    dir
}

/// A path as a command-line argument.
pub fn arg(p: &Path) -> String {
    p.display().to_string()
}
