//! The one place that talks to DynamoDB for the processors, and knows its
//! limits: conditional transactions with idempotency tokens, BatchWriteItem in
//! chunks of 25 and BatchGetItem in chunks of 100 with their unprocessed
//! remainders retried under jittered exponential backoff, and a clear error
//! once the retry budget is spent.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, DeleteRequest, KeysAndAttributes, Put, PutRequest,
    TransactWriteItem, Update, WriteRequest,
};
use sha2::{Digest, Sha256};

use crate::keys::Key;

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// BatchWriteItem takes at most this many requests.
pub const BATCH_WRITE_MAX: usize = 25;
/// BatchGetItem takes at most this many keys.
pub const BATCH_GET_MAX: usize = 100;
/// TransactWriteItems takes at most this many actions.
pub const TRANSACT_MAX: usize = 100;

/// An error the executor gives up on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExecError {
    /// Throttling, 5xx, timeouts, conflicts: retrying later can succeed.
    #[error("{0}")]
    Transient(String),
    /// The request can never succeed (validation, item too large, ...).
    #[error("{0}")]
    Permanent(String),
}

impl ExecError {
    pub fn is_transient(&self) -> bool {
        matches!(self, ExecError::Transient(_))
    }
}

/// Jittered exponential backoff ("full jitter").
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(25),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The pause before retry number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let cap = self
            .base_delay
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max_delay);
        let micros = u64::try_from(cap.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(fastrand::u64(0..=micros))
    }
}

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

    fn names_opt(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    fn values_opt(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }

    /// Merges another expression's placeholders (for update + condition).
    fn merged(mut self, other: Option<&Expr>) -> Self {
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
    table: Arc<str>,
    items: Vec<TransactWriteItem>,
    touched: Vec<(String, String)>,
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
            return Err(ExecError::Permanent(format!(
                "a transaction may not act twice on {pk} / {sk}"
            )));
        }
        if self.items.len() >= TRANSACT_MAX {
            return Err(ExecError::Permanent(format!(
                "a transaction takes at most {TRANSACT_MAX} actions"
            )));
        }
        self.touched.push((pk, sk));
        Ok(())
    }

    fn item_key(item: &Item) -> (String, String) {
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
                .put(put.build().map_err(build_err)?)
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
                .delete(del.build().map_err(build_err)?)
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
                .update(upd.build().map_err(build_err)?)
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
                .condition_check(check.build().map_err(build_err)?)
                .build(),
        );
        Ok(self)
    }
}

fn build_err(e: impl fmt::Display) -> ExecError {
    ExecError::Permanent(format!("could not build the request: {e}"))
}

/// What a transaction came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxOutcome {
    Committed,
    /// Cancelled because conditions failed; the indexes of the actions whose
    /// condition failed.
    ConditionFailed(Vec<usize>),
}

/// The answer to a conditional request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conditional<T> {
    /// The condition held and the request was done.
    Done(T),
    /// The condition did not hold; nothing was written.
    ConditionFailed,
}

/// An idempotency token (ClientRequestToken, ≤ 36 chars) derived from the
/// parts that identify a write: the same parts give the same token.
pub fn token(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    let digest = h.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

enum Class {
    Transient(String),
    Permanent(String),
}

fn classify<E, R>(op: &str, err: &SdkError<E, R>) -> Class
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    match err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = e.code().unwrap_or("Unknown");
            let msg = e.message().unwrap_or("");
            let text = format!("{op}: {code}: {msg}");
            match code {
                // A failed condition is an answer, not a fault: retrying the
                // same request gives the same answer. `conditional` turns it
                // into `Conditional::ConditionFailed`.
                "ConditionalCheckFailedException"
                | "ValidationException"
                | "SerializationException"
                | "ItemCollectionSizeLimitExceededException"
                | "IdempotentParameterMismatchException"
                | "AccessDeniedException"
                | "UnrecognizedClientException" => Class::Permanent(text),
                _ => Class::Transient(text),
            }
        }
        other => Class::Transient(format!(
            "{op}: {}",
            aws_smithy_types::error::display::DisplayErrorContext(other)
        )),
    }
}

/// Reads and writes one table. Cheap to clone.
#[derive(Clone)]
pub struct Executor {
    client: Client,
    table: Arc<str>,
    retry: RetryPolicy,
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executor")
            .field("table", &self.table)
            .field("retry", &self.retry)
            .finish()
    }
}

impl Executor {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: Arc::from(table.into()),
            retry: RetryPolicy::default(),
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// Starts a transaction on this table.
    pub fn tx(&self) -> Tx {
        Tx {
            table: self.table.clone(),
            items: Vec::new(),
            touched: Vec::new(),
        }
    }

    /// Commits a transaction with an idempotency token, retrying transient
    /// errors and conflicts; a failed condition is an answer, not an error.
    pub async fn transact(&self, tx: Tx, token: &str) -> Result<TxOutcome, ExecError> {
        if tx.is_empty() {
            return Ok(TxOutcome::Committed);
        }
        let mut last = String::new();
        for attempt in 0..self.retry.max_attempts {
            if attempt > 0 {
                tokio::time::sleep(self.retry.delay(attempt - 1)).await;
            }
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(tx.items.clone()))
                .client_request_token(token)
                .send()
                .await;
            let err = match sent {
                Ok(_) => return Ok(TxOutcome::Committed),
                Err(e) => e,
            };
            if let Some(
                aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c),
            ) = err.as_service_error()
            {
                let reasons = c.cancellation_reasons();
                let code = |r: &aws_sdk_dynamodb::types::CancellationReason| {
                    r.code().unwrap_or("None").to_owned()
                };
                let failed: Vec<usize> = reasons
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| code(r) == "ConditionalCheckFailed")
                    .map(|(i, _)| i)
                    .collect();
                if !failed.is_empty() {
                    return Ok(TxOutcome::ConditionFailed(failed));
                }
                let codes: Vec<String> = reasons.iter().map(code).collect();
                if codes.iter().any(|c| c == "ValidationError") {
                    return Err(ExecError::Permanent(format!(
                        "TransactWriteItems cancelled: {}",
                        codes.join(", ")
                    )));
                }
                last = format!("TransactWriteItems cancelled: {}", codes.join(", "));
                tracing::debug!(attempt, reason = %last, "retrying a transaction");
                continue;
            }
            match classify("TransactWriteItems", &err) {
                Class::Permanent(m) => return Err(ExecError::Permanent(m)),
                Class::Transient(m) => {
                    tracing::debug!(attempt, reason = %m, "retrying a transaction");
                    last = m;
                }
            }
        }
        Err(ExecError::Transient(format!(
            "gave up after {} attempts: {last}",
            self.retry.max_attempts
        )))
    }

    /// Puts items with BatchWriteItem, 25 at a time, retrying what comes back
    /// unprocessed. Returns how many requests were sent.
    pub async fn batch_put(&self, items: Vec<Item>) -> Result<usize, ExecError> {
        let mut pending: Vec<WriteRequest> = Vec::with_capacity(items.len());
        for item in items {
            pending.push(
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(item))
                            .build()
                            .map_err(build_err)?,
                    )
                    .build(),
            );
        }
        self.batch_write(pending).await
    }

    /// Deletes items by key with BatchWriteItem, 25 at a time (unconditional:
    /// for items no condition protects, such as orphans and expired data).
    /// Returns how many requests were sent.
    pub async fn batch_delete(&self, keys: &[Key]) -> Result<usize, ExecError> {
        let mut pending: Vec<WriteRequest> = Vec::with_capacity(keys.len());
        for key in keys {
            pending.push(
                WriteRequest::builder()
                    .delete_request(
                        DeleteRequest::builder()
                            .set_key(Some(key.to_key_map()))
                            .build()
                            .map_err(build_err)?,
                    )
                    .build(),
            );
        }
        self.batch_write(pending).await
    }

    async fn batch_write(&self, pending: Vec<WriteRequest>) -> Result<usize, ExecError> {
        let mut requests = 0;
        for chunk in pending.chunks(BATCH_WRITE_MAX) {
            requests += self.batch_write_chunk(chunk.to_vec()).await?;
        }
        Ok(requests)
    }

    async fn batch_write_chunk(&self, mut chunk: Vec<WriteRequest>) -> Result<usize, ExecError> {
        let mut last = String::new();
        let mut sent_count = 0;
        for attempt in 0..self.retry.max_attempts {
            if attempt > 0 {
                tokio::time::sleep(self.retry.delay(attempt - 1)).await;
            }
            sent_count += 1;
            let sent = self
                .client
                .batch_write_item()
                .request_items(self.table.to_string(), chunk.clone())
                .send()
                .await;
            match sent {
                Ok(out) => {
                    let rest = out
                        .unprocessed_items
                        .and_then(|mut m| m.remove(&*self.table))
                        .unwrap_or_default();
                    if rest.is_empty() {
                        return Ok(sent_count);
                    }
                    last = format!("{} items unprocessed", rest.len());
                    chunk = rest;
                }
                Err(e) => match classify("BatchWriteItem", &e) {
                    Class::Permanent(m) => return Err(ExecError::Permanent(m)),
                    Class::Transient(m) => last = m,
                },
            }
        }
        Err(ExecError::Transient(format!(
            "BatchWriteItem left {} items unwritten after {} attempts: {last}",
            chunk.len(),
            self.retry.max_attempts
        )))
    }

    /// Reads items by key with BatchGetItem, 100 at a time, retrying
    /// unprocessed keys. Missing items are simply absent from the answer.
    pub async fn batch_get(&self, keys: &[Key], consistent: bool) -> Result<Vec<Item>, ExecError> {
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH_GET_MAX) {
            let mut pending: Vec<Item> = chunk.iter().map(Key::to_key_map).collect();
            let mut attempt = 0;
            let mut last = String::new();
            while !pending.is_empty() {
                if attempt >= self.retry.max_attempts {
                    return Err(ExecError::Transient(format!(
                        "BatchGetItem left {} keys unread after {attempt} attempts: {last}",
                        pending.len()
                    )));
                }
                if attempt > 0 {
                    tokio::time::sleep(self.retry.delay(attempt - 1)).await;
                }
                attempt += 1;
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(pending.clone()))
                    .consistent_read(consistent)
                    .build()
                    .map_err(build_err)?;
                match self
                    .client
                    .batch_get_item()
                    .request_items(self.table.to_string(), request)
                    .send()
                    .await
                {
                    Ok(out) => {
                        if let Some(mut r) = out.responses {
                            found.extend(r.remove(&*self.table).unwrap_or_default());
                        }
                        pending = out
                            .unprocessed_keys
                            .and_then(|mut m| m.remove(&*self.table))
                            .map(|k| k.keys)
                            .unwrap_or_default();
                        last = format!("{} keys unprocessed", pending.len());
                    }
                    Err(e) => match classify("BatchGetItem", &e) {
                        Class::Permanent(m) => return Err(ExecError::Permanent(m)),
                        Class::Transient(m) => last = m,
                    },
                }
            }
        }
        Ok(found)
    }

    /// Reads one item.
    pub async fn get(&self, key: &Key, consistent: bool) -> Result<Option<Item>, ExecError> {
        self.retrying("GetItem", || async {
            self.client
                .get_item()
                .table_name(&*self.table)
                .set_key(Some(key.to_key_map()))
                .consistent_read(consistent)
                .send()
                .await
                .map(|o| o.item)
        })
        .await
    }

    /// Puts an item unless one with its key exists; `true` if it was written.
    pub async fn put_if_absent(&self, item: Item) -> Result<bool, ExecError> {
        let done = self
            .conditional("PutItem", || {
                self.client
                    .put_item()
                    .table_name(&*self.table)
                    .set_item(Some(item.clone()))
                    .condition_expression("attribute_not_exists(pk)")
                    .send()
            })
            .await?;
        Ok(matches!(done, Conditional::Done(_)))
    }

    /// Runs a request with the retry policy for transient errors. A failed
    /// condition is not retried (it is a permanent error here); use
    /// [`Executor::conditional`] for requests that carry one.
    pub async fn retrying<T, E, R, F, Fut>(&self, op: &str, send: F) -> Result<T, ExecError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, R>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: fmt::Debug,
    {
        match self.conditional(op, send).await? {
            Conditional::Done(v) => Ok(v),
            Conditional::ConditionFailed => Err(ExecError::Permanent(format!(
                "{op}: ConditionalCheckFailedException"
            ))),
        }
    }

    /// Runs a conditional request with the retry policy for transient
    /// errors; a failed condition is the answer
    /// [`Conditional::ConditionFailed`], returned at once.
    pub async fn conditional<T, E, R, F, Fut>(
        &self,
        op: &str,
        mut send: F,
    ) -> Result<Conditional<T>, ExecError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, R>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: fmt::Debug,
    {
        let mut last = String::new();
        for attempt in 0..self.retry.max_attempts {
            if attempt > 0 {
                tokio::time::sleep(self.retry.delay(attempt - 1)).await;
            }
            match send().await {
                Ok(v) => return Ok(Conditional::Done(v)),
                Err(e) => {
                    if e.as_service_error()
                        .and_then(|s| s.code())
                        .is_some_and(|c| c == "ConditionalCheckFailedException")
                    {
                        return Ok(Conditional::ConditionFailed);
                    }
                    match classify(op, &e) {
                        Class::Permanent(m) => return Err(ExecError::Permanent(m)),
                        Class::Transient(m) => last = m,
                    }
                }
            }
        }
        Err(ExecError::Transient(format!(
            "gave up after {} attempts: {last}",
            self.retry.max_attempts
        )))
    }
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
    fn backoff_is_capped_and_jittered() {
        let p = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
        };
        for attempt in 0..40 {
            assert!(p.delay(attempt) <= Duration::from_millis(100));
        }
        assert!(p.delay(0) <= Duration::from_millis(10));
    }
}
