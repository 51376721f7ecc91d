//! Adopting an assignment from another system (`streamfold import
//! extensions`): the extension a Connect username had before stays with it.
//!
//! For each (username, extension) pair:
//!
//! - the username's profile holds it: nothing to do (a second import
//!   changes nothing);
//! - the profile exists without it: one transaction gives it the extension
//!   (from the pool, from its reservation, or from the agent the pipeline
//!   gave it to meanwhile, who is moved to the extension the profile held,
//!   or to the lowest free one, or back to the waiting queue), and frees the
//!   extension the profile held if nobody takes it;
//! - no profile yet: one transaction reserves it (the ext item leaves the
//!   free queue, `reserved_for` = the username, and a
//!   `RESERVATION#{username}` item names it), and the processor gives it to
//!   that username's profile when it arrives.
//!
//! Every write is conditional on what was read; a failed condition re-reads
//! and decides again, so a run alongside the pipeline converges and the
//! pool's invariants hold after every transaction.

use streamfold_shared::engine::Context;
use streamfold_shared::executor::{ExecError, Expr, TxOutcome, token};
use streamfold_shared::ids::{AgentId, Timestamp, Username};
use streamfold_shared::keys::{Extension, Key};
use streamfold_shared::read::Query;

use crate::model::{
    AGENTS, ExtItem, ExtState, FREE, GSI2, Profile, RESERVED, Reservation, WAITING, Waiter,
};

/// How many times one pair is re-read and decided again after a race.
const TRIES: usize = 8;

/// What adopting one pair came to (or would come to, in a dry run).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Adopted {
    /// The username's profile holds it already.
    Kept,
    /// Reserved for the username already.
    AlreadyReserved,
    /// Given to the username's profile now.
    Assigned {
        agent: String,
        /// The extension the profile held before, given back to the pool
        /// (or to `displaced`).
        released: Option<String>,
        displaced: Option<Displaced>,
    },
    /// Reserved for the username (no profile yet).
    Reserved { displaced: Option<Displaced> },
    /// No such extension in the pool.
    NotInPool,
    /// Cannot be adopted without guessing (reported, nothing written).
    Conflict { reason: String },
}

/// An agent the pipeline had given the extension to, moved elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Displaced {
    pub agent: String,
    /// Its new extension; `None`: it waits for one.
    pub to: Option<String>,
}

/// Where the extension comes from, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Free,
    ReservedFor(String),
    /// Assigned to this agent (the one to displace, or the profile itself).
    Agent(AgentId),
}

/// What one transaction will do (pure decision, [`decide`]).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    Done(Adopted),
    Reserve { source: Source },
    Take { profile: Profile, source: Source },
}

/// Decides from what was read (pure).
fn decide(
    username: &str,
    x: &Extension,
    ext: Option<&ExtItem>,
    profile: Option<&Profile>,
    reservation: Option<&Reservation>,
) -> Plan {
    let conflict = |reason: String| Plan::Done(Adopted::Conflict { reason });
    let Some(ext) = ext else {
        return Plan::Done(Adopted::NotInPool);
    };
    if let Some(p) = profile
        && p.extension.as_ref() == Some(x)
    {
        return Plan::Done(Adopted::Kept);
    }
    if let Some(r) = reservation
        && r.extension != *x
    {
        return conflict(format!(
            "{username} has extension {} reserved already",
            r.extension
        ));
    }
    let source = match &ext.state {
        ExtState::Free => Source::Free,
        ExtState::Reserved { username: u } if u == username => {
            if profile.is_none() && reservation.is_some() {
                return Plan::Done(Adopted::AlreadyReserved);
            }
            Source::ReservedFor(u.clone())
        }
        ExtState::Reserved { username: u } => {
            return conflict(format!("extension {x} is reserved for {u}"));
        }
        ExtState::Assigned { agent, .. } => match AgentId::new(agent.as_str()) {
            Ok(a) => Source::Agent(a),
            Err(e) => return conflict(format!("extension {x}: {e}")),
        },
        ExtState::Broken(why) => return conflict(format!("extension {x}: {why}")),
    };
    match profile {
        Some(p) => Plan::Take {
            profile: p.clone(),
            source,
        },
        None => Plan::Reserve { source },
    }
}

/// Reads what [`decide`] needs. The username's profile is found through
/// gsi2 (`AGENTS` / username), then read consistently.
async fn read(
    ctx: &Context,
    username: &Username,
    x: &Extension,
) -> Result<(Option<ExtItem>, Option<Profile>, Option<Reservation>), String> {
    let exec = &ctx.exec;
    let ext = match exec.get(&Key::Extension(x.clone()), true).await {
        Ok(Some(item)) => Some(ExtItem::from_item(&item)?),
        Ok(None) => None,
        Err(e) => return Err(e.to_string()),
    };
    let profile = profile_of(ctx, username).await?;
    let reservation = match exec.get(&Key::Reservation(username.clone()), true).await {
        Ok(Some(item)) => Some(Reservation::from_item(&item)?),
        Ok(None) => None,
        Err(e) => return Err(e.to_string()),
    };
    Ok((ext, profile, reservation))
}

/// The profile whose `username` is this one (gsi2, then a consistent read).
pub async fn profile_of(ctx: &Context, username: &Username) -> Result<Option<Profile>, String> {
    let exec = &ctx.exec;
    let directory = Expr::new("gsi2pk = :a AND gsi2sk = :u")
        .s(":a", AGENTS)
        .s(":u", username.as_str());
    let page = Query::index(GSI2, directory)
        .page(exec, None)
        .await
        .map_err(|e| e.to_string())?;
    let mut found: Vec<Profile> = Vec::new();
    for item in page.items {
        let Ok(p) = Profile::from_item(&item) else {
            continue;
        };
        // The index lags: read the profile itself.
        if let Some(item) = exec
            .get(&Key::Profile(p.agent.clone()), true)
            .await
            .map_err(|e| e.to_string())?
        {
            let p = Profile::from_item(&item)?;
            if p.username.as_deref() == Some(username.as_str()) {
                found.push(p);
            }
        }
    }
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        n => Err(format!("{n} agent profiles have username {username}")),
    }
}

/// The lowest free extension other than `not` (gsi1, eventually consistent:
/// the transaction's condition is what counts).
async fn lowest_free(ctx: &Context, not: &[&Extension]) -> Result<Option<Extension>, ExecError> {
    let mut start = None;
    loop {
        let (items, next) = crate::model::queue_page(ctx, FREE, 25, start).await?;
        for item in &items {
            if let Ok(e) = ExtItem::from_item(item)
                && e.state == ExtState::Free
                && !not.contains(&&e.extension)
            {
                return Ok(Some(e.extension));
            }
        }
        if next.is_none() {
            return Ok(None);
        }
        start = next;
    }
}

fn source_guard(source: &Source) -> Expr {
    match source {
        Source::Free => Expr::new("gsi1pk = :free").s(":free", FREE),
        Source::ReservedFor(u) => Expr::new("reserved_for = :user").s(":user", u.as_str()),
        Source::Agent(a) => Expr::new("agent_id = :from").s(":from", a.as_str()),
    }
}

fn assigned(w: &Waiter, at: Timestamp) -> Expr {
    crate::transactions::assigned_update(w, at)
}

fn freed(x: &Extension, at: Timestamp) -> Expr {
    Expr::new(
        "SET gsi1pk = :free, gsi1sk = :x, freed_at = :at \
         REMOVE agent_id, agent_arn, username, assigned_at, reserved_for, reserved_at",
    )
    .s(":free", FREE)
    .s(":x", x.as_str())
    .s(":at", at.to_string())
}

/// Adopts one (username, extension) pair; `dry_run` decides and writes
/// nothing. An `Err` is a read or write that failed (the caller reports it
/// and goes on).
pub async fn adopt(
    ctx: &Context,
    username: &Username,
    x: &Extension,
    dry_run: bool,
) -> Result<Adopted, String> {
    for _ in 0..TRIES {
        let (ext, profile, reservation) = read(ctx, username, x).await?;
        let plan = decide(
            username.as_str(),
            x,
            ext.as_ref(),
            profile.as_ref(),
            reservation.as_ref(),
        );
        let at = Timestamp::now();
        let mut tx = ctx.exec.tx();
        let e = |e: ExecError| e.to_string();
        let (source, outcome) = match plan {
            Plan::Done(outcome) => return Ok(outcome),
            Plan::Reserve { source } => {
                tx.update(
                    &Key::Extension(x.clone()),
                    Expr::new(
                        "SET gsi1pk = :reserved, gsi1sk = :user, reserved_for = :user, \
                         reserved_at = :at REMOVE agent_id, agent_arn, username, assigned_at",
                    )
                    .s(":reserved", RESERVED)
                    .s(":user", username.as_str())
                    .s(":at", at.to_string()),
                    Some(source_guard(&source)),
                )
                .map_err(e)?;
                let r = Reservation {
                    username: username.clone(),
                    extension: x.clone(),
                };
                tx.put(
                    r.item(&at.to_string()),
                    Some(Expr::new("attribute_not_exists(pk)")),
                )
                .map_err(e)?;
                (source, None)
            }
            Plan::Take { profile, source } => {
                let w = Waiter::from(&profile);
                let prior = profile.extension.clone();
                let cond = match &prior {
                    None => Expr::new("attribute_exists(pk) AND attribute_not_exists(extension)"),
                    Some(y) => {
                        Expr::new("attribute_exists(pk) AND extension = :y").s(":y", y.as_str())
                    }
                };
                tx.update(
                    &Key::Profile(profile.agent.clone()),
                    Expr::new("SET extension = :x REMOVE gsi1pk, gsi1sk").s(":x", x.as_str()),
                    Some(cond),
                )
                .map_err(e)?;
                tx.update(
                    &Key::Extension(x.clone()),
                    assigned(&w, at),
                    Some(source_guard(&source)),
                )
                .map_err(e)?;
                if let Source::ReservedFor(_) = source {
                    tx.delete(
                        &Key::Reservation(username.clone()),
                        Some(Expr::new("extension = :x").s(":x", x.as_str())),
                    )
                    .map_err(e)?;
                }
                (source, Some((profile, prior)))
            }
        };
        // The agent the pipeline gave `x` to meanwhile moves: to the
        // extension the profile held, else the lowest free, else it waits.
        let mut displaced = None;
        let mut released = None;
        let taker = outcome.as_ref().map(|(p, _)| p.agent.clone());
        let prior = outcome.as_ref().and_then(|(_, y)| y.clone());
        if let Source::Agent(q) = &source
            && Some(q) != taker.as_ref()
        {
            let q_profile = match ctx.exec.get(&Key::Profile(q.clone()), true).await {
                Ok(Some(item)) => Some(Profile::from_item(&item)?),
                Ok(None) => None,
                Err(err) => return Err(err.to_string()),
            };
            // A profile that is gone (its release is pending) needs nothing.
            if let Some(qp) = q_profile.filter(|p| p.extension.as_ref() == Some(x)) {
                let qw = Waiter::from(&qp);
                let to = match &prior {
                    Some(y) => Some((y.clone(), true)),
                    None => lowest_free(ctx, &[x]).await.map_err(e)?.map(|z| (z, false)),
                };
                let cond = Expr::new("extension = :held").s(":held", x.as_str());
                match &to {
                    Some((z, from_taker)) => {
                        tx.update(
                            &Key::Profile(q.clone()),
                            Expr::new("SET extension = :z").s(":z", z.as_str()),
                            Some(cond),
                        )
                        .map_err(e)?;
                        let guard = if *from_taker {
                            let p = taker.clone().ok_or("no taker")?;
                            Source::Agent(p)
                        } else {
                            Source::Free
                        };
                        tx.update(
                            &Key::Extension(z.clone()),
                            assigned(&qw, at),
                            Some(source_guard(&guard)),
                        )
                        .map_err(e)?;
                    }
                    None => {
                        tx.update(
                            &Key::Profile(q.clone()),
                            Expr::new("SET gsi1pk = :w, gsi1sk = :since REMOVE extension")
                                .s(":w", WAITING)
                                .s(":since", format!("{at}#{q}")),
                            Some(cond),
                        )
                        .map_err(e)?;
                    }
                }
                displaced = Some(Displaced {
                    agent: q.to_string(),
                    to: to.as_ref().map(|(z, _)| z.to_string()),
                });
            }
        }
        // The extension the profile held goes back to the pool unless the
        // displaced agent took it.
        if let (Some((p, _)), Some(y)) = (&outcome, &prior) {
            let taken = displaced
                .as_ref()
                .is_some_and(|d| d.to.as_deref() == Some(y.as_str()));
            if !taken {
                tx.update(
                    &Key::Extension(y.clone()),
                    freed(y, at),
                    Some(source_guard(&Source::Agent(p.agent.clone()))),
                )
                .map_err(e)?;
            }
            released = Some(y.to_string());
        }
        let result = match &outcome {
            Some((p, _)) => Adopted::Assigned {
                agent: p.agent.to_string(),
                released,
                displaced,
            },
            None => Adopted::Reserved { displaced },
        };
        if dry_run {
            return Ok(result);
        }
        let t = token(&[
            "import-extensions",
            username.as_str(),
            x.as_str(),
            &at.to_string(),
        ]);
        match ctx.exec.transact(tx, &t).await.map_err(e)? {
            TxOutcome::Committed => return Ok(result),
            // Someone else wrote meanwhile: read again and decide again.
            TxOutcome::ConditionFailed(_) => continue,
            // The token met other parameters: read again and plan again
            // (a new time, so a new token).
            TxOutcome::PlanAgain(_) => continue,
        }
    }
    Err(format!(
        "{username} / extension {x}: the pool kept changing under {TRIES} attempts; run the import again"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::free_item;
    use streamfold_shared::attrs::sv;
    use streamfold_shared::executor::Item;

    fn ext(x: &str) -> Extension {
        Extension::new(x).unwrap_or_else(|e| panic!("{e}"))
    }

    fn item(x: &str, state: &[(&str, &str)]) -> ExtItem {
        let mut i: Item = free_item(&ext(x));
        if !state.is_empty() {
            i.remove("gsi1pk");
        }
        for (k, v) in state {
            i.insert((*k).to_owned(), sv(*v));
        }
        ExtItem::from_item(&i).unwrap_or_else(|e| panic!("{e}"))
    }

    fn profile(agent: &str, x: Option<&str>) -> Profile {
        Profile {
            agent: AgentId::new(agent).unwrap_or_else(|e| panic!("{e}")),
            agent_arn: None,
            username: Some("ada".to_owned()),
            extension: x.map(ext),
            waiting: x.is_none(),
            queue_key: None,
        }
    }

    fn reservation(x: &str) -> Reservation {
        Reservation {
            username: Username::new("ada").unwrap_or_else(|e| panic!("{e}")),
            extension: ext(x),
        }
    }

    #[test]
    fn every_case_is_decided() {
        let x = ext("0042");
        let free = item("0042", &[]);
        let mine = item("0042", &[("reserved_for", "ada")]);
        let bobs = item("0042", &[("agent_id", "bob")]);
        let d = |e: Option<&ExtItem>, p: Option<&Profile>, r: Option<&Reservation>| {
            decide("ada", &x, e, p, r)
        };
        assert_eq!(d(None, None, None), Plan::Done(Adopted::NotInPool));
        assert_eq!(
            d(Some(&free), None, None),
            Plan::Reserve {
                source: Source::Free
            }
        );
        assert_eq!(
            d(Some(&mine), None, Some(&reservation("0042"))),
            Plan::Done(Adopted::AlreadyReserved)
        );
        let held = profile("a1", Some("0042"));
        assert_eq!(d(Some(&bobs), Some(&held), None), Plan::Done(Adopted::Kept));
        let waiting = profile("a1", None);
        assert_eq!(
            d(Some(&mine), Some(&waiting), Some(&reservation("0042"))),
            Plan::Take {
                profile: waiting.clone(),
                source: Source::ReservedFor("ada".to_owned())
            }
        );
        assert!(matches!(
            d(Some(&bobs), Some(&waiting), None),
            Plan::Take { source: Source::Agent(a), .. } if a.as_str() == "bob"
        ));
        assert!(matches!(
            d(Some(&free), None, Some(&reservation("0007"))),
            Plan::Done(Adopted::Conflict { .. })
        ));
        let other = item("0042", &[("reserved_for", "bob")]);
        assert!(matches!(
            d(Some(&other), None, None),
            Plan::Done(Adopted::Conflict { .. })
        ));
    }
}
