//! The pool's census and invariant check (`streamfold extensions stats`,
//! the tests): one paginated Scan of the ext items and agent profiles that
//! reads only ids, extensions and queue keys, never names.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use streamfold_shared::attrs::sv;
use streamfold_shared::executor::{ExecError, Executor, Item};

use crate::model::{ExtItem, ExtState, Profile};

/// Counts and broken invariants of the pool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Census {
    /// Ext items.
    pub pool_size: u64,
    pub free: u64,
    pub assigned: u64,
    /// Kept for a username that has no profile yet (`import extensions`).
    pub reserved: u64,
    /// Agent profiles.
    pub agents: u64,
    /// Profiles waiting for an extension (gsi1 `EXT#WAITING`).
    pub waiting: u64,
    /// Extensions still assigned to an agent whose profile is gone: the
    /// stream has not been processed yet.
    pub pending_release: u64,
    /// Profiles with neither an extension nor a place in the queue.
    pub unqueued: u64,
    /// Reservations whose username has a waiting profile: the processor
    /// has not seen its arrival yet.
    pub pending_reservations: u64,
    /// Every broken invariant, one line each (empty when all hold).
    pub violations: Vec<String>,
}

impl Census {
    /// True when every invariant holds and nothing is pending.
    pub fn is_settled(&self) -> bool {
        self.violations.is_empty() && self.pending_release == 0 && self.pending_reservations == 0
    }
}

/// Every ext item and agent profile of the table (paginated Scan, only the
/// attributes the census needs).
pub async fn scan_pool(exec: &Executor) -> Result<(Vec<Item>, Vec<Item>), ExecError> {
    let (exts, agents, _) = scan_pool_all(exec).await?;
    Ok((exts, agents))
}

/// Every ext item, agent profile and reservation of the table.
pub async fn scan_pool_all(
    exec: &Executor,
) -> Result<(Vec<Item>, Vec<Item>, Vec<Item>), ExecError> {
    let mut exts = Vec::new();
    let mut agents = Vec::new();
    let mut reservations = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let out = exec
            .retrying("Scan", || {
                exec.client()
                    .scan()
                    .table_name(exec.table())
                    .consistent_read(true)
                    .filter_expression("#t = :ext OR #t = :res OR (#t = :agent AND sk = :profile)")
                    .projection_expression(
                        "pk, sk, #t, agent_id, extension, gsi1pk, gsi1sk, assigned_at, \
                         username, reserved_for",
                    )
                    .expression_attribute_values(":res", sv("reservation"))
                    .expression_attribute_names("#t", "type")
                    .expression_attribute_values(":ext", sv("ext"))
                    .expression_attribute_values(":agent", sv("agent"))
                    .expression_attribute_values(":profile", sv("PROFILE"))
                    .set_exclusive_start_key(start.clone())
                    .send()
            })
            .await?;
        for item in out.items.unwrap_or_default() {
            match item.get("type") {
                Some(AttributeValue::S(t)) if t == "ext" => exts.push(item),
                Some(AttributeValue::S(t)) if t == "reservation" => reservations.push(item),
                _ => agents.push(item),
            }
        }
        start = out.last_evaluated_key;
        if start.is_none() {
            return Ok((exts, agents, reservations));
        }
    }
}

/// Checks the invariants over ext items and profiles (pure).
///
/// - every ext item is either free or assigned, never both or neither;
/// - no agent is named by two ext items (no agent with two extensions);
/// - every profile's extension names an ext item assigned to that agent
///   (so no extension is held by two agents);
/// - a profile with an extension is not also waiting;
/// - hence free + assigned = pool size.
pub fn check(exts: &[Item], agents: &[Item]) -> Census {
    check_all(exts, agents, &[])
}

/// [`check`] with reservations (`import extensions`), which add:
///
/// - every reserved ext item has the reservation item of its username and
///   every reservation item names an ext item reserved for it;
/// - a reservation's username has no profile holding another extension
///   (one waiting for it is pending: the processor gives it on arrival);
/// - free + assigned + reserved = pool size.
pub fn check_all(exts: &[Item], agents: &[Item], reservations: &[Item]) -> Census {
    let mut c = Census::default();
    let mut reserved_ext: HashMap<String, String> = HashMap::new();
    let mut holder: HashMap<String, String> = HashMap::new();
    let mut by_agent: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for item in exts {
        c.pool_size += 1;
        match ExtItem::from_item(item) {
            Err(e) => c.violations.push(e),
            Ok(x) => match x.state {
                ExtState::Free => c.free += 1,
                ExtState::Assigned { agent, .. } => {
                    c.assigned += 1;
                    holder.insert(x.extension.to_string(), agent.clone());
                    by_agent
                        .entry(agent)
                        .or_default()
                        .push(x.extension.to_string());
                }
                ExtState::Reserved { username } => {
                    c.reserved += 1;
                    reserved_ext.insert(x.extension.to_string(), username);
                }
                ExtState::Broken(why) => {
                    c.violations
                        .push(format!("extension {}: {why}", x.extension));
                }
            },
        }
    }
    for (agent, xs) in &by_agent {
        if xs.len() > 1 {
            c.violations.push(format!(
                "agent {agent} is assigned {} extensions: {}",
                xs.len(),
                xs.join(", ")
            ));
        }
    }
    let mut profile_ext: HashMap<String, Option<String>> = HashMap::new();
    let mut by_username: HashMap<String, Option<String>> = HashMap::new();
    for item in agents {
        c.agents += 1;
        let p = match Profile::from_item(item) {
            Ok(p) => p,
            Err(e) => {
                c.violations.push(e);
                continue;
            }
        };
        let id = p.agent.to_string();
        match &p.extension {
            Some(x) => {
                if p.waiting {
                    c.violations
                        .push(format!("agent {id} has extension {x} and is still waiting"));
                }
                match holder.get(x.as_str()) {
                    Some(h) if *h == id => {}
                    Some(h) => c.violations.push(format!(
                        "agent {id} holds extension {x}, which is assigned to agent {h}"
                    )),
                    None => c.violations.push(format!(
                        "agent {id} holds extension {x}, which is not assigned in the pool"
                    )),
                }
            }
            None if p.waiting => c.waiting += 1,
            None => c.unqueued += 1,
        }
        if let Some(u) = &p.username {
            by_username.insert(u.clone(), p.extension.as_ref().map(|x| x.to_string()));
        }
        profile_ext.insert(id, p.extension.map(|x| x.to_string()));
    }
    for (x, agent) in &holder {
        match profile_ext.get(agent) {
            None => c.pending_release += 1,
            Some(Some(held)) if held == x => {}
            Some(Some(_)) => {} // reported from the profile's side
            Some(None) => c.violations.push(format!(
                "extension {x} is assigned to agent {agent}, whose profile has no extension"
            )),
        }
    }
    let mut named: HashMap<String, String> = HashMap::new();
    for item in reservations {
        match crate::model::Reservation::from_item(item) {
            Err(e) => c.violations.push(e),
            Ok(r) => {
                let (u, x) = (r.username.to_string(), r.extension.to_string());
                match reserved_ext.get(&x) {
                    Some(owner) if *owner == u => {}
                    _ => c.violations.push(format!(
                        "reservation of {u} names extension {x}, which is not reserved for it"
                    )),
                }
                match by_username.get(&u) {
                    None => {}
                    Some(None) => c.pending_reservations += 1,
                    Some(Some(held)) => c.violations.push(format!(
                        "extension {x} is reserved for {u}, whose profile holds {held}"
                    )),
                }
                named.insert(x, u);
            }
        }
    }
    for (x, u) in &reserved_ext {
        if named.get(x) != Some(u) {
            c.violations.push(format!(
                "extension {x} is reserved for {u}, who has no reservation item"
            ));
        }
    }
    if c.free + c.assigned + c.reserved != c.pool_size {
        c.violations.push(format!(
            "free {} + assigned {} + reserved {} != pool size {}",
            c.free, c.assigned, c.reserved, c.pool_size
        ));
    }
    c.violations.sort();
    c
}

/// Scans the table and checks the invariants.
pub async fn census(exec: &Executor) -> Result<Census, ExecError> {
    let (exts, agents, reservations) = scan_pool_all(exec).await?;
    Ok(check_all(&exts, &agents, &reservations))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FREE, WAITING, free_item};
    use streamfold_shared::keys::Extension;

    fn ext(x: &str) -> Extension {
        Extension::new(x).unwrap_or_else(|e| panic!("{e}"))
    }

    fn assigned(x: &str, agent: &str) -> Item {
        let mut i = free_item(&ext(x));
        i.remove("gsi1pk");
        i.remove("gsi1sk");
        i.insert("agent_id".into(), sv(agent));
        i
    }

    fn profile(agent: &str, x: Option<&str>) -> Item {
        let mut i = Item::from([
            ("pk".to_owned(), sv(format!("AGENT#{agent}"))),
            ("sk".to_owned(), sv("PROFILE")),
            ("type".to_owned(), sv("agent")),
        ]);
        match x {
            Some(x) => {
                i.insert("extension".into(), sv(x));
            }
            None => {
                i.insert("gsi1pk".into(), sv(WAITING));
            }
        }
        i
    }

    #[test]
    fn a_consistent_pool_passes() {
        let exts = vec![free_item(&ext("0001")), assigned("0002", "a")];
        let agents = vec![profile("a", Some("0002")), profile("b", None)];
        let c = check(&exts, &agents);
        assert!(c.is_settled(), "{c:?}");
        assert_eq!((c.pool_size, c.free, c.assigned, c.waiting), (2, 1, 1, 1));
    }

    #[test]
    fn double_assignment_is_caught() {
        let exts = vec![assigned("0001", "a"), assigned("0002", "a")];
        let agents = vec![profile("a", Some("0001")), profile("b", Some("0001"))];
        let c = check(&exts, &agents);
        assert!(
            c.violations
                .iter()
                .any(|v| v.contains("assigned 2 extensions"))
        );
        assert!(
            c.violations
                .iter()
                .any(|v| v.contains("agent b holds extension 0001"))
        );
        let mut both = free_item(&ext("0003"));
        both.insert("agent_id".into(), sv("c"));
        let c = check(&[both], &[]);
        assert!(!c.violations.is_empty());
        assert_eq!(c.pool_size, 1);
        let _ = FREE;
    }

    #[test]
    fn reservations_are_counted_and_checked() {
        let mut reserved = free_item(&ext("0009"));
        reserved.remove("gsi1pk");
        reserved.insert("reserved_for".into(), sv("ada"));
        let r = crate::model::Reservation {
            username: "ada".parse().unwrap_or_else(|e| panic!("{e:?}")),
            extension: ext("0009"),
        };
        let exts = vec![free_item(&ext("0001")), reserved.clone()];
        let c = check_all(&exts, &[], &[r.item("t")]);
        assert!(c.is_settled(), "{c:?}");
        assert_eq!((c.pool_size, c.free, c.reserved), (2, 1, 1));
        // Without its reservation item, or with a profile holding another.
        let c = check_all(&exts, &[], &[]);
        assert!(
            c.violations
                .iter()
                .any(|v| v.contains("no reservation item"))
        );
        let mut p = profile("a", Some("0001"));
        p.insert("username".into(), sv("ada"));
        let c = check_all(&exts, &[p], &[r.item("t")]);
        assert!(
            c.violations
                .iter()
                .any(|v| v.contains("whose profile holds")),
            "{c:?}"
        );
        let mut w = profile("a", None);
        w.insert("username".into(), sv("ada"));
        let c = check_all(&exts, &[w], &[r.item("t")]);
        assert_eq!(c.pending_reservations, 1);
        assert!(c.violations.is_empty(), "{c:?}");
    }

    #[test]
    fn a_removed_profile_is_pending_until_released() {
        let c = check(&[assigned("0001", "gone")], &[]);
        assert_eq!(c.pending_release, 1);
        assert!(c.violations.is_empty());
        assert!(!c.is_settled());
    }
}
