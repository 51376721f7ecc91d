//! Transactions: the [`Tx`] builder, [`Executor::transact`] with its
//! idempotency token, [`TxOutcome`], and the tokens themselves.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem, Update,
};
use sha2::{Digest, Sha256};

use super::{
    Attempt, ErrorClass, ExecError, Executor, Item, MAX_PLAN_AGAIN, Op, RequestError, RetryPolicy,
    TRANSACT_MAX,
};
use crate::keys::Key;

/// An expression with its placeholder names and values.
#[derive(Debug, Clone, Default)]
pub struct Expr {
    pub text: String,
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
}

impl Expr {
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            ..Self::default()
        }
    }

    pub fn name(mut self, placeholder: &str, name: &str) -> Self {
        self.names.insert(placeholder.to_owned(), name.to_owned());
        self
    }

    pub fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values.insert(placeholder.to_owned(), value);
        self
    }

    pub fn s(self, placeholder: &str, value: impl Into<String>) -> Self {
        self.value(placeholder, AttributeValue::S(value.into()))
    }

    pub(super) fn names_opt(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    pub(super) fn values_opt(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }

    /// Merges another expression's placeholders (for update + condition).
    pub(super) fn merged(mut self, other: Option<&Expr>) -> Self {
        if let Some(o) = other {
            self.names.extend(o.names.clone());
            self.values.extend(o.values.clone());
        }
        self
    }
}

/// A transaction being built: at most [`TRANSACT_MAX`] actions, never two on
/// the same item.
#[derive(Debug, Clone)]
pub struct Tx {
    pub(super) table: Arc<str>,
    pub(super) items: Vec<TransactWriteItem>,
    pub(super) touched: Vec<(String, String)>,
}

impl Tx {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn touch(&mut self, pk: String, sk: String) -> Result<(), ExecError> {
        if self.touched.iter().any(|(p, s)| *p == pk && *s == sk) {
            return Err(invalid(format!(
                "a transaction may not act twice on {pk} / {sk}"
            )));
        }
        if self.items.len() >= TRANSACT_MAX {
            return Err(invalid(format!(
                "a transaction takes at most {TRANSACT_MAX} actions"
            )));
        }
        self.touched.push((pk, sk));
        Ok(())
    }

    pub(super) fn item_key(item: &Item) -> (String, String) {
        let get = |k: &str| match item.get(k) {
            Some(AttributeValue::S(s)) => s.clone(),
            _ => String::new(),
        };
        (get("pk"), get("sk"))
    }

    /// Puts a whole item, optionally under a condition.
    pub fn put(&mut self, item: Item, condition: Option<Expr>) -> Result<&mut Self, ExecError> {
        let (pk, sk) = Self::item_key(&item);
        self.touch(pk, sk)?;
        let mut put = Put::builder().table_name(&*self.table).set_item(Some(item));
        if let Some(c) = condition {
            put = put
                .condition_expression(&c.text)
                .set_expression_attribute_names(c.names_opt())
                .set_expression_attribute_values(c.values_opt());
        }
        self.items.push(
            TransactWriteItem::builder()
                .put(put.build().map_err(unbuildable)?)
                .build(),
        );
        Ok(self)
    }

    /// Deletes an item, optionally under a condition.
    pub fn delete(&mut self, key: &Key, condition: Option<Expr>) -> Result<&mut Self, ExecError> {
        self.touch(key.pk(), key.sk())?;
        let mut del = Delete::builder()
            .table_name(&*self.table)
            .set_key(Some(key.to_key_map()));
        if let Some(c) = condition {
            del = del
                .condition_expression(&c.text)
                .set_expression_attribute_names(c.names_opt())
                .set_expression_attribute_values(c.values_opt());
        }
        self.items.push(
            TransactWriteItem::builder()
                .delete(del.build().map_err(unbuildable)?)
                .build(),
        );
        Ok(self)
    }

    /// Updates an item; `update` and `condition` may share placeholders.
    pub fn update(
        &mut self,
        key: &Key,
        update: Expr,
        condition: Option<Expr>,
    ) -> Result<&mut Self, ExecError> {
        self.touch(key.pk(), key.sk())?;
        let cond_text = condition.as_ref().map(|c| c.text.clone());
        let all = update.merged(condition.as_ref());
        let upd = Update::builder()
            .table_name(&*self.table)
            .set_key(Some(key.to_key_map()))
            .update_expression(&all.text)
            .set_condition_expression(cond_text)
            .set_expression_attribute_names(all.names_opt())
            .set_expression_attribute_values(all.values_opt());
        self.items.push(
            TransactWriteItem::builder()
                .update(upd.build().map_err(unbuildable)?)
                .build(),
        );
        Ok(self)
    }

    /// Asserts a condition on an item the transaction does not write.
    pub fn check(&mut self, key: &Key, condition: Expr) -> Result<&mut Self, ExecError> {
        self.touch(key.pk(), key.sk())?;
        let check = ConditionCheck::builder()
            .table_name(&*self.table)
            .set_key(Some(key.to_key_map()))
            .condition_expression(&condition.text)
            .set_expression_attribute_names(condition.names_opt())
            .set_expression_attribute_values(condition.values_opt());
        self.items.push(
            TransactWriteItem::builder()
                .condition_check(check.build().map_err(unbuildable)?)
                .build(),
        );
        Ok(self)
    }
}

/// A transaction that can never be sent as built.
fn invalid(text: String) -> ExecError {
    RequestError::new(Op::TransactWriteItems, None, ErrorClass::Permanent, text).into()
}

fn unbuildable(e: impl std::fmt::Display) -> ExecError {
    RequestError::unbuildable(Op::TransactWriteItems, e).into()
}

/// What a transaction came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxOutcome {
    Committed,
    /// Cancelled because conditions failed; the indexes of the actions whose
    /// condition failed.
    ConditionFailed(Vec<usize>),
    /// Nothing is known to be written, and sending the same request again
    /// cannot help ([`ErrorClass::PlanAgain`]: its token was used with other
    /// parameters, or a call with it is still running): read again and plan
    /// again, with the new plan's token. Never a dead letter.
    PlanAgain(String),
}

/// An idempotency token (ClientRequestToken, ≤ 36 chars) derived from the
/// parts that identify a write: the same parts give the same token.
///
/// DynamoDB answers a second TransactWriteItems with the same token and the
/// same parameters within 10 minutes with success *without writing*, so a
/// token must name one logical write, never a state transition that can
/// recur: its parts are the identities of the source records whose effect
/// the write applies (sequence numbers, event ids) and the attempt's plan,
/// so that a retry of the same batch reuses it and a later, different event
/// never does. A write no source record identifies (a command, a rebuild)
/// takes a [`nonce`] made once per planned write. `docs/design.md` reviews
/// every caller against this rule. [`Executor::transact`] adds the table's
/// name, so the same write on two tables never shares a token.
pub fn token(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    let digest = h.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh random id (128 bits, hex) naming one planned write that no source
/// record identifies (a command's write, a rebuild's repair): taken once per
/// plan, so the executor's retries of that plan share its token and no other
/// write ever gets it.
pub fn nonce() -> String {
    format!("{:032x}", fastrand::u128(..))
}

impl Executor {
    /// Starts a transaction on this table.
    pub fn tx(&self) -> Tx {
        Tx {
            table: self.table.clone(),
            items: Vec::new(),
            touched: Vec::new(),
        }
    }

    /// Commits a transaction with an idempotency token, retrying transient
    /// errors and conflicts with the same token; a failed condition is an
    /// answer, not an error, and so is [`TxOutcome::PlanAgain`]. The token
    /// sent is `token` bound to this table (see [`token`]).
    pub async fn transact(&self, tx: Tx, token: &str) -> Result<TxOutcome, ExecError> {
        if tx.is_empty() {
            return Ok(TxOutcome::Committed);
        }
        let token = self::token(&[&self.table, token]);
        let token = token.as_str();
        if let Some(dry) = &self.dry {
            dry.record_transaction(&self.table, &tx.items, token);
            return Ok(TxOutcome::Committed);
        }
        let op = Op::TransactWriteItems;
        self.retry
            .run(
                op,
                &mut (),
                |_, _| {
                    (self.client.transact_write_items())
                        .set_transact_items(Some(tx.items.clone()))
                        .client_request_token(token)
                        .send()
                },
                |_, sent| {
                    let err = match sent {
                        Ok(_) => return Attempt::Done(Ok(TxOutcome::Committed)),
                        Err(e) => e,
                    };
                    let failed = match cancellation(&err) {
                        Some(Cancelled::ConditionFailed(at)) => {
                            return Attempt::Done(Ok(TxOutcome::ConditionFailed(at)));
                        }
                        Some(Cancelled::Other(failed)) => failed,
                        None => RequestError::of(op, &err),
                    };
                    if failed.class() == ErrorClass::PlanAgain {
                        tracing::debug!(reason = %failed, "a transaction to plan again");
                        return Attempt::Done(Ok(TxOutcome::PlanAgain(failed.to_string())));
                    }
                    Attempt::failed(failed)
                },
            )
            .await
            .unwrap_or_else(|spent| Err(spent.gave_up().into()))
    }

    /// Commits a transaction whose plan reads nothing (its conditions alone
    /// decide, as a command's writes): [`Executor::transact`] under the
    /// token of `parts`, and on [`TxOutcome::PlanAgain`] the same actions
    /// again under a new token (`parts` and the round), at most
    /// [`MAX_PLAN_AGAIN`] times. Never answers `PlanAgain`.
    pub async fn transact_planned(&self, tx: Tx, parts: &[&str]) -> Result<TxOutcome, ExecError> {
        // One token per round: the first of `parts`, then `parts` and the round.
        let tokens: Vec<String> = (0..MAX_PLAN_AGAIN)
            .map(|round| {
                let round_s = round.to_string();
                let mut all: Vec<&str> = parts.to_vec();
                if round > 0 {
                    all.extend(["plan-again", round_s.as_str()]);
                }
                token(&all)
            })
            .collect();
        let at = |round: u32| {
            let i = usize::try_from(round).unwrap_or(usize::MAX);
            tokens.get(i).map_or("", String::as_str)
        };
        RetryPolicy::immediate(MAX_PLAN_AGAIN)
            .run(
                Op::TransactWriteItems,
                &mut (),
                |_, round| self.transact(tx.clone(), at(round)),
                |_, done| match done {
                    Ok(TxOutcome::PlanAgain(m)) => Attempt::Retry(m),
                    done => Attempt::Done(done),
                },
            )
            .await
            .unwrap_or_else(|spent| {
                let text = format!("planned again {} times: {}", spent.attempts, spent.last);
                let op = Op::TransactWriteItems;
                let failed = RequestError::new(op, None, ErrorClass::PlanAgain, "");
                Err(failed.after(spent.attempts, text).into())
            })
    }
}

/// What a cancelled transaction's reasons say ([`ErrorClass::of_cancellation`]).
enum Cancelled {
    /// The indexes of the actions whose condition failed.
    ConditionFailed(Vec<usize>),
    /// Cancelled for another reason: `TransactWriteItems cancelled: {the
    /// reasons, one per action}`.
    Other(RequestError),
}

fn cancellation<R>(
    err: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        R,
    >,
) -> Option<Cancelled> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    let Some(TransactWriteItemsError::TransactionCanceledException(c)) = err.as_service_error()
    else {
        return None;
    };
    let codes: Vec<&str> = c
        .cancellation_reasons()
        .iter()
        .map(|r| r.code().unwrap_or("None"))
        .collect();
    let class = ErrorClass::of_cancellation(codes.iter().copied());
    if class == ErrorClass::ConditionFailed {
        let at = (codes.iter().enumerate())
            .filter(|(_, c)| **c == "ConditionalCheckFailed")
            .map(|(i, _)| i)
            .collect();
        return Some(Cancelled::ConditionFailed(at));
    }
    let text = format!("TransactWriteItems cancelled: {}", codes.join(", "));
    let code = Some("TransactionCanceledException");
    Some(Cancelled::Other(RequestError::new(
        Op::TransactWriteItems,
        code,
        class,
        text,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stable_and_short() {
        let a = token(&["message-groups", "g1", "k1"]);
        assert_eq!(a, token(&["message-groups", "g1", "k1"]));
        assert_ne!(a, token(&["message-groups", "g1k", "1"]));
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn nonces_differ() {
        let a = nonce();
        assert_eq!(a.len(), 32);
        assert_ne!(a, nonce());
    }
}
