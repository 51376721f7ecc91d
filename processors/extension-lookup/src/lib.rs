//! extension-lookup: the Lambda function a Connect contact flow's "Invoke
//! AWS Lambda function" block calls to find the agent behind an extension.
//!
//! It reads `Details.Parameters.extension`, accepts a short number ("42" is
//! 0042 with 4-digit extensions), and answers a flat map of strings, as
//! Connect requires: `found`, `extension`, `agent_id`, `agent_arn`,
//! `username`, `status`. An unknown, free or malformed extension, or a
//! table that cannot be read in time, answers `found=false` with a
//! `reason`; it never fails. Two reads: GetItem of the ext item, GetItem of
//! the agent's profile (for its status).
//!
//! A contact flow built for the awsconnect-extensions Lambda works
//! unchanged: the extension may come as `Details.Parameters.pk` (that
//! flow's parameter name), and a found answer also carries that Lambda's
//! fields, `pk` (the extension), `sk` (`agentID`) and `sk_value` (the
//! agent's Connect username, which the flow transfers to).

use std::collections::HashMap;

use extensions::init::normalise;
use extensions::model::{ExtItem, ExtState, Profile};
use serde_json::Value;
use streamfold_shared::attrs::s;
use streamfold_shared::executor::Executor;
use streamfold_shared::ids::AgentId;
use streamfold_shared::keys::{Extension, Key};
use tracing::{info, warn};

/// The processor's name (logs).
pub const NAME: &str = "extension-lookup";
/// Environment variable with the pool's extension length (default 4).
pub const DIGITS_ENV: &str = "EXTENSION_DIGITS";

/// Why an extension was not found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No `Details.Parameters.extension` string.
    Missing,
    /// Not 1 to `digits` ASCII digits.
    Malformed,
    /// No such extension in the pool.
    Unknown,
    /// In the pool, assigned to nobody.
    Free,
    /// Kept for a username whose profile has not arrived yet.
    Reserved,
    /// Assigned to an agent whose profile is gone (being released).
    Unassigned,
    /// The table could not be read.
    Unavailable,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Missing => "missing",
            Reason::Malformed => "malformed",
            Reason::Unknown => "unknown",
            Reason::Free => "free",
            Reason::Reserved => "reserved",
            Reason::Unassigned => "unassigned",
            Reason::Unavailable => "unavailable",
        }
    }
}

/// The extension length from the environment (1 to 8; default 4).
pub fn digits_from_env() -> u8 {
    std::env::var(DIGITS_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u8>().ok())
        .filter(|d| (1..=8).contains(d))
        .unwrap_or(4)
}

/// The requested extension of a contact-flow event, as typed:
/// `Details.Parameters.extension`, or `Details.Parameters.pk` as the
/// awsconnect-extensions flow sends it.
pub fn requested(event: &Value) -> Option<String> {
    let value = |name: &str| match event.pointer(&format!("/Details/Parameters/{name}"))? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    value("extension").or_else(|| value("pk"))
}

fn not_found(reason: Reason, extension: Option<&Extension>) -> HashMap<String, String> {
    let mut m = HashMap::from([
        ("found".to_owned(), "false".to_owned()),
        ("reason".to_owned(), reason.as_str().to_owned()),
    ]);
    if let Some(x) = extension {
        m.insert("extension".to_owned(), x.to_string());
    }
    m
}

/// Answers one contact-flow event. Never fails.
pub async fn lookup(exec: &Executor, digits: u8, event: &Value) -> HashMap<String, String> {
    let contact = event
        .pointer("/Details/ContactData/ContactId")
        .and_then(Value::as_str)
        .unwrap_or("");
    let answer = answer(exec, digits, event).await;
    let found = answer.get("found").map(String::as_str) == Some("true");
    info!(
        contact_id = contact,
        found,
        extension = answer.get("extension").map(String::as_str).unwrap_or(""),
        agent_id = answer.get("agent_id").map(String::as_str).unwrap_or(""),
        reason = answer.get("reason").map(String::as_str).unwrap_or(""),
        "extension lookup"
    );
    answer
}

async fn answer(exec: &Executor, digits: u8, event: &Value) -> HashMap<String, String> {
    let Some(typed) = requested(event) else {
        return not_found(Reason::Missing, None);
    };
    let Some(x) = normalise(&typed, digits) else {
        return not_found(Reason::Malformed, None);
    };
    let item = match exec.get(&Key::Extension(x.clone()), false).await {
        Ok(Some(item)) => item,
        Ok(None) => return not_found(Reason::Unknown, Some(&x)),
        Err(e) => {
            warn!(extension = %x, error = %e, "ext item could not be read");
            return not_found(Reason::Unavailable, Some(&x));
        }
    };
    let agent = match ExtItem::from_item(&item).map(|e| e.state) {
        Ok(ExtState::Assigned { agent, .. }) => agent,
        Ok(ExtState::Free) => return not_found(Reason::Free, Some(&x)),
        Ok(ExtState::Reserved { .. }) => return not_found(Reason::Reserved, Some(&x)),
        Ok(ExtState::Broken(why)) => {
            warn!(extension = %x, error = %why, "ext item is inconsistent");
            return not_found(Reason::Unavailable, Some(&x));
        }
        Err(e) => {
            warn!(extension = %x, error = %e, "ext item is malformed");
            return not_found(Reason::Unavailable, Some(&x));
        }
    };
    let Ok(agent) = AgentId::new(agent) else {
        return not_found(Reason::Unavailable, Some(&x));
    };
    let profile = match exec.get(&Key::Profile(agent.clone()), false).await {
        Ok(Some(p)) => p,
        Ok(None) => return not_found(Reason::Unassigned, Some(&x)),
        Err(e) => {
            warn!(extension = %x, agent_id = %agent, error = %e, "profile could not be read");
            return not_found(Reason::Unavailable, Some(&x));
        }
    };
    match Profile::from_item(&profile) {
        Ok(p) if p.extension.as_ref() == Some(&x) => {}
        // The profile does not (or no longer) hold it: a release is under way.
        _ => return not_found(Reason::Unassigned, Some(&x)),
    }
    let text = |name: &str| s(&profile, name).unwrap_or_default().to_owned();
    HashMap::from([
        // The awsconnect-extensions Lambda's answer, for flows built on it.
        ("pk".to_owned(), x.to_string()),
        ("sk".to_owned(), "agentID".to_owned()),
        ("sk_value".to_owned(), text("username")),
        ("found".to_owned(), "true".to_owned()),
        ("extension".to_owned(), x.to_string()),
        ("agent_id".to_owned(), agent.to_string()),
        ("agent_arn".to_owned(), text("agent_arn")),
        ("username".to_owned(), text("username")),
        ("status".to_owned(), {
            let st = text("status");
            if st.is_empty() {
                "unknown".to_owned()
            } else {
                st
            }
        }),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parameter_is_read_leniently() {
        let text = streamfold_shared::testing::fixture("connect-contact-flow-event.json");
        let event: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(requested(&event).as_deref(), Some("42"));
        let n: Value = serde_json::json!({"Details": {"Parameters": {"extension": 42}}});
        assert_eq!(requested(&n).as_deref(), Some("42"));
        assert_eq!(requested(&serde_json::json!({})), None);
        assert_eq!(requested(&serde_json::json!([1])), None);
        // The awsconnect-extensions flow's parameter name.
        let old: Value = serde_json::json!({"Details": {"Parameters": {"pk": "0042"}}});
        assert_eq!(requested(&old).as_deref(), Some("0042"));
        let both: Value =
            serde_json::json!({"Details": {"Parameters": {"extension": "7", "pk": "0042"}}});
        assert_eq!(requested(&both).as_deref(), Some("7"));
    }
}
