//! The transactions: claim (free, reserved, hand-over, restore), free,
//! and the fallbacks that move on to the next candidate after a race.

use std::sync::Arc;

use streamfold_shared::engine::Context;
use streamfold_shared::executor::{ExecError, Expr, MAX_PLAN_AGAIN, TxOutcome, token};
use streamfold_shared::ids::{AgentId, Timestamp, Username};
use streamfold_shared::keys::{Extension, Key};
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::NAME;
use crate::model::{FREE, Reservation, Waiter};
use crate::queues::Queues;

/// How many candidates one action tries before it gives up for this
/// delivery (the record then fails and is retried by the stream).
const MAX_TRIES: usize = 64;

/// The SET/REMOVE expression that makes an ext item assigned to `w`.
pub(crate) fn assigned_update(w: &Waiter, at: Timestamp) -> Expr {
    let mut set = vec!["agent_id = :agent", "assigned_at = :at"];
    let mut remove = vec!["gsi1pk", "gsi1sk", "reserved_for", "reserved_at"];
    let mut e = Expr::new("")
        .s(":agent", w.agent.as_str())
        .s(":at", at.to_string());
    match &w.agent_arn {
        Some(arn) => {
            set.push("agent_arn = :arn");
            e = e.s(":arn", arn.as_str());
        }
        None => remove.push("agent_arn"),
    }
    match &w.username {
        Some(u) => {
            set.push("username = :user");
            e = e.s(":user", u.as_str());
        }
        None => remove.push("username"),
    }
    e.text = format!("SET {} REMOVE {}", set.join(", "), remove.join(", "));
    e
}

/// The profile update that records the extension and leaves the queue.
fn profile_takes(x: &Extension) -> (Expr, Expr) {
    (
        Expr::new("SET extension = :x REMOVE gsi1pk, gsi1sk").s(":x", x.as_str()),
        Expr::new("attribute_exists(pk) AND attribute_not_exists(extension)"),
    )
}

/// What a claim transaction came to.
pub(crate) enum Claim {
    Done,
    /// The ext item was no longer free (or no longer ours to hand over).
    ExtTaken,
    /// The agent is gone or already has an extension.
    AgentDone,
}

/// One transaction: the profile takes `x` (index 0), and the ext item moves
/// from free (or from `from`, the departed agent, who must not hold it
/// again) to the agent. An answer that says to plan again builds the
/// transaction again (a new time, so a new token), a few times: its
/// conditions decide, as for a retried commit whose answer was lost.
pub(crate) async fn claim(
    ctx: &Context,
    w: &Waiter,
    x: &Extension,
    from: Option<&AgentId>,
    purpose: &str,
) -> Result<Claim, ExecError> {
    let mut last = String::new();
    for _ in 0..MAX_PLAN_AGAIN {
        match claim_once(ctx, w, x, from, purpose).await? {
            Ok(claim) => return Ok(claim),
            Err(why) => last = why,
        }
    }
    Err(ExecError::Transient(format!(
        "agent {}: planned the claim of {x} again {MAX_PLAN_AGAIN} times: {last}",
        w.agent
    )))
}

/// One attempt of [`claim`]; `Ok(Err(why))` to plan again.
///
/// The token names this one planned transaction: the agent, the extension,
/// where it comes from and the attempt's own time (`assigned_at`, part of
/// the parameters), so no other claim ever has it and the executor's
/// retries of this one share it.
async fn claim_once(
    ctx: &Context,
    w: &Waiter,
    x: &Extension,
    from: Option<&AgentId>,
    purpose: &str,
) -> Result<Result<Claim, String>, ExecError> {
    let at = Timestamp::now();
    let mut tx = ctx.exec.tx();
    let (set, cond) = profile_takes(x);
    tx.update(&Key::Profile(w.agent.clone()), set, Some(cond))?;
    let guard = match from {
        None => Expr::new("gsi1pk = :free").s(":free", FREE),
        Some(a) => Expr::new("agent_id = :from").s(":from", a.as_str()),
    };
    tx.update(
        &Key::Extension(x.clone()),
        assigned_update(w, at),
        Some(guard),
    )?;
    if let Some(a) = from
        && *a != w.agent
    {
        tx.check(&Key::Profile(a.clone()), not_holding(x))?;
    }
    let from_s = from.map(AgentId::as_str).unwrap_or("pool");
    let t = token(&[
        NAME,
        purpose,
        w.agent.as_str(),
        x.as_str(),
        from_s,
        &at.to_string(),
        w.agent_arn.as_deref().unwrap_or(""),
        w.username.as_deref().unwrap_or(""),
    ]);
    Ok(match ctx.exec.transact(tx, &t).await? {
        TxOutcome::Committed => Ok(Claim::Done),
        TxOutcome::ConditionFailed(failed) if failed.contains(&0) => Ok(Claim::AgentDone),
        TxOutcome::ConditionFailed(_) => Ok(Claim::ExtTaken),
        TxOutcome::PlanAgain(why) => Err(why),
    })
}

/// One transaction: the profile takes `x` (index 0), the ext item moves
/// from reserved-for-`username` to the agent, and the reservation item is
/// deleted. An answer that says to plan again builds it again (a new time,
/// so a new token), a few times, as [`claim`] does.
pub(crate) async fn claim_reserved(
    ctx: &Context,
    w: &Waiter,
    x: &Extension,
    username: &str,
) -> Result<Claim, ExecError> {
    let mut last = String::new();
    for _ in 0..MAX_PLAN_AGAIN {
        match claim_reserved_once(ctx, w, x, username).await? {
            Ok(claim) => return Ok(claim),
            Err(why) => last = why,
        }
    }
    Err(ExecError::Transient(format!(
        "agent {}: planned the claim of reserved {x} again {MAX_PLAN_AGAIN} times: {last}",
        w.agent
    )))
}

/// One attempt of [`claim_reserved`]; `Ok(Err(why))` to plan again.
async fn claim_reserved_once(
    ctx: &Context,
    w: &Waiter,
    x: &Extension,
    username: &str,
) -> Result<Result<Claim, String>, ExecError> {
    let user = Username::new(username).map_err(|e| ExecError::Permanent(e.to_string()))?;
    let at = Timestamp::now();
    let mut tx = ctx.exec.tx();
    let (set, cond) = profile_takes(x);
    tx.update(&Key::Profile(w.agent.clone()), set, Some(cond))?;
    tx.update(
        &Key::Extension(x.clone()),
        assigned_update(w, at),
        Some(Expr::new("reserved_for = :user").s(":user", username)),
    )?;
    tx.delete(
        &Key::Reservation(user),
        Some(Expr::new("extension = :x").s(":x", x.as_str())),
    )?;
    let t = token(&[
        NAME,
        "reserved",
        w.agent.as_str(),
        x.as_str(),
        username,
        &at.to_string(),
        w.agent_arn.as_deref().unwrap_or(""),
    ]);
    Ok(match ctx.exec.transact(tx, &t).await? {
        TxOutcome::Committed => Ok(Claim::Done),
        TxOutcome::ConditionFailed(failed) if failed.contains(&0) => Ok(Claim::AgentDone),
        TxOutcome::ConditionFailed(_) => Ok(Claim::ExtTaken),
        TxOutcome::PlanAgain(why) => Err(why),
    })
}

/// The reservation of `w`'s username, if any (a consistent read).
async fn reservation_of(ctx: &Context, w: &Waiter) -> Result<Option<Reservation>, ExecError> {
    let Some(user) = w.username.as_deref().and_then(|u| Username::new(u).ok()) else {
        return Ok(None);
    };
    Ok(ctx
        .exec
        .get(&Key::Reservation(user), true)
        .await?
        .and_then(|item| Reservation::from_item(&item).ok()))
}

/// "This agent does not hold `x`": true for a deleted profile too.
fn not_holding(x: &Extension) -> Expr {
    Expr::new("attribute_not_exists(extension) OR extension <> :held").s(":held", x.as_str())
}

/// Gives the agent an extension: `prior` if the ext item still names it,
/// else the lowest free one, moving on after a lost race. `Ok(false)` when
/// nothing changed: the agent already had one or is gone, or the pool is
/// exhausted (the agent stays waiting; a release hands it one).
pub(crate) async fn assign(
    ctx: &Context,
    queues: &Arc<Mutex<Queues>>,
    w: &Waiter,
    prior: Option<&Extension>,
) -> Result<bool, ExecError> {
    if let Some(x) = prior {
        // The profile was overwritten without its extension: give it back.
        if let Claim::Done = claim(ctx, w, x, Some(&w.agent), "restore").await? {
            info!(agent_id = %w.agent, extension = %x, "extension restored to its agent");
            return Ok(true);
        }
    }
    // Kept for this username by an import (settle, or a fallback).
    if let Some(r) = reservation_of(ctx, w).await? {
        match claim_reserved(ctx, w, &r.extension, r.username.as_str()).await? {
            Claim::Done => {
                info!(agent_id = %w.agent, extension = %r.extension, "reserved extension assigned");
                return Ok(true);
            }
            Claim::AgentDone => return Ok(false),
            Claim::ExtTaken => {}
        }
    }
    for _ in 0..MAX_TRIES {
        let candidate = {
            let mut p = queues.lock().await;
            match p.next_free(ctx).await? {
                Some(x) => x,
                None => {
                    p.enqueue_waiter(w.clone());
                    warn!(
                        agent_id = %w.agent,
                        "extension pool exhausted: the agent stays waiting until an extension is freed"
                    );
                    return Ok(false);
                }
            }
        };
        match claim(ctx, w, &candidate, None, "claim").await? {
            Claim::Done => {
                info!(agent_id = %w.agent, extension = %candidate, "extension assigned");
                return Ok(true);
            }
            Claim::AgentDone => {
                // The agent had one already (or left): `candidate` was not
                // used, the batch's next agent gets it (a retried commit
                // whose answer was lost ends here too, and the next claim
                // of it then finds it taken).
                queues.lock().await.free.items.push_front(candidate);
                return Ok(false);
            }
            Claim::ExtTaken => continue,
        }
    }
    Err(ExecError::Transient(format!(
        "agent {}: {MAX_TRIES} free extensions in a row were taken by others; retrying later",
        w.agent
    )))
}

/// Frees `x` of the departed agent and, in the same transaction, hands it to
/// the longest-waiting agent if there is one. `Ok(false)` when it was
/// already released (a duplicate or late record).
pub(crate) async fn release(
    ctx: &Context,
    queues: &Arc<Mutex<Queues>>,
    from: &AgentId,
    x: &Extension,
) -> Result<bool, ExecError> {
    for _ in 0..MAX_TRIES {
        let waiter = { queues.lock().await.next_waiter(ctx).await? };
        // A waiter with a reservation gets its reserved extension, not this.
        if let Some(w) = &waiter
            && reservation_of(ctx, w).await?.is_some()
        {
            continue;
        }
        match waiter {
            Some(w) => match claim(ctx, &w, x, Some(from), "handover").await? {
                Claim::Done => {
                    info!(agent_id = %w.agent, extension = %x, released_by = %from, "extension handed over to the longest-waiting agent");
                    return Ok(true);
                }
                // The waiter got one meanwhile, or left: the next one.
                Claim::AgentDone => continue,
                // `x` is no longer the departed agent's: `w` did not get
                // it and stays first in line for the batch's next release.
                Claim::ExtTaken => {
                    queues.lock().await.waiting.items.push_front(w);
                    return Ok(false);
                }
            },
            None => {
                if !free(ctx, from, x).await? {
                    return Ok(false);
                }
                info!(agent_id = %from, extension = %x, "extension freed");
                // An agent of this batch may have started waiting meanwhile.
                let late = {
                    let mut p = queues.lock().await;
                    p.free.items.push_front(x.clone());
                    p.free.exhausted = false;
                    p.waiting.items.pop_front()
                };
                if let Some(w) = late
                    && let Err(e) = assign(ctx, queues, &w, None).await
                {
                    warn!(agent_id = %w.agent, error = %e, "a waiting agent could not take a freed extension yet");
                }
                return Ok(true);
            }
        }
    }
    Err(ExecError::Transient(format!(
        "extension {x}: {MAX_TRIES} waiting agents in a row could not take it; retrying later"
    )))
}

/// One transaction: the ext item goes back to the pool if it is still
/// assigned to `from` and `from` does not hold it again. Planned again (a
/// new time, a new token) a few times if the answer says so.
pub(crate) async fn free(ctx: &Context, from: &AgentId, x: &Extension) -> Result<bool, ExecError> {
    let mut last = String::new();
    for _ in 0..MAX_PLAN_AGAIN {
        match free_once(ctx, from, x).await? {
            Ok(freed) => return Ok(freed),
            Err(why) => last = why,
        }
    }
    Err(ExecError::Transient(format!(
        "extension {x}: planned its release again {MAX_PLAN_AGAIN} times: {last}"
    )))
}

/// One attempt of [`free`]; `Ok(Err(why))` to plan again. Its token: the
/// agent, the extension and the attempt's own time (`freed_at`).
async fn free_once(
    ctx: &Context,
    from: &AgentId,
    x: &Extension,
) -> Result<Result<bool, String>, ExecError> {
    let at = Timestamp::now();
    let mut tx = ctx.exec.tx();
    tx.update(
        &Key::Extension(x.clone()),
        Expr::new(
            "SET gsi1pk = :free, gsi1sk = :x, freed_at = :at \
             REMOVE agent_id, agent_arn, username, assigned_at",
        )
        .s(":free", FREE)
        .s(":x", x.as_str())
        .s(":at", at.to_string()),
        Some(Expr::new("agent_id = :from").s(":from", from.as_str())),
    )?;
    tx.check(&Key::Profile(from.clone()), not_holding(x))?;
    let t = token(&[NAME, "free", from.as_str(), x.as_str(), &at.to_string()]);
    Ok(match ctx.exec.transact(tx, &t).await? {
        TxOutcome::Committed => Ok(true),
        TxOutcome::ConditionFailed(_) => Ok(false),
        TxOutcome::PlanAgain(why) => Err(why),
    })
}
