//! The one place that talks to DynamoDB for the processors, and knows its
//! limits: conditional transactions with idempotency tokens, BatchWriteItem in
//! chunks of 25 and BatchGetItem in chunks of 100 with their unprocessed
//! remainders retried under jittered exponential backoff, and a clear error
//! once the retry budget is spent.
//!
//! An executor can run dry ([`Executor::dry_run`]): every write it would send
//! (transactions, batch writes, conditional puts) is recorded as one JSON
//! line by a [`DryRun`] and answered as successful, while reads still go to
//! the table (through a cache per key, see [`DryRun`]). Its client then
//! refuses every write request, whatever path sends it.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, DeleteRequest, KeysAndAttributes, Put, PutRequest,
    TransactWriteItem, Update, WriteRequest,
};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use serde_json::{Map, Value, json};
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
/// How many times a write is planned again after [`TxOutcome::PlanAgain`]
/// before the executor gives up with a transient error.
pub const MAX_PLAN_AGAIN: u32 = 5;

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
    /// Nothing is known to be written, and sending the same request again
    /// cannot help ([`ErrorClass::PlanAgain`]: its token was used with other
    /// parameters, or a call with it is still running): read again and plan
    /// again, with the new plan's token. Never a dead letter.
    PlanAgain(String),
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

/// What an error answer means for the request that got it. The one
/// classification of the executor: every retry path ([`Executor::transact`],
/// batch writes and reads, [`Executor::conditional`], [`send_retrying`] and
/// [`may_succeed_later`]) goes through [`ErrorClass::of`].
///
/// | answer | class |
/// |---|---|
/// | `ConditionalCheckFailedException`, cancellation reason `ConditionalCheckFailed` | [`ErrorClass::ConditionFailed`] |
/// | `IdempotentParameterMismatchException`, `TransactionInProgressException` | [`ErrorClass::PlanAgain`] |
/// | `ResourceNotFoundException`, `ValidationException`, `SerializationException`, `ItemCollectionSizeLimitExceededException`, `AccessDeniedException`, `UnrecognizedClientException`, `InvalidSignatureException`, `MissingAuthenticationTokenException`, `InvalidArgumentException`, `ExpiredIteratorException`, `TrimmedDataAccessException`, a request that cannot be built | [`ErrorClass::Permanent`] |
/// | anything else: throttling, 5xx, `TransactionConflict`, timeouts, dropped connections, unknown codes | [`ErrorClass::Retry`] |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// A failed condition: an answer, not a fault (retrying gives the same
    /// answer); the caller re-reads if it wants to.
    ConditionFailed,
    /// The same request again, after a pause, can succeed.
    Retry,
    /// The same request again cannot help, a new one can: read again, plan
    /// again (bounded), under the new plan's token. Only a transaction gets
    /// these answers; never a dead letter.
    PlanAgain,
    /// The request can never succeed.
    Permanent,
}

impl ErrorClass {
    /// The class of an AWS error code (`None`: no service answer, such as a
    /// timeout or a dropped connection).
    pub fn of_code(code: Option<&str>) -> Self {
        match code {
            Some("ConditionalCheckFailedException") => Self::ConditionFailed,
            Some("IdempotentParameterMismatchException" | "TransactionInProgressException") => {
                Self::PlanAgain
            }
            Some(
                "ResourceNotFoundException"
                | "ValidationException"
                | "SerializationException"
                | "ItemCollectionSizeLimitExceededException"
                | "AccessDeniedException"
                | "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "MissingAuthenticationTokenException"
                | "InvalidArgumentException"
                | "ExpiredIteratorException"
                | "TrimmedDataAccessException",
            ) => Self::Permanent,
            _ => Self::Retry,
        }
    }

    /// The class of a failed request of any AWS service.
    pub fn of<E, R>(err: &SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: fmt::Debug,
    {
        match err {
            SdkError::ServiceError(service) => {
                Self::of_code(Some(service.err().code().unwrap_or("")))
            }
            SdkError::ConstructionFailure(_) => Self::Permanent,
            _ => Self::Retry,
        }
    }

    /// What an executor gives up with for this class (`ConditionFailed` is
    /// permanent for a request that should not have had one; `PlanAgain`
    /// outside a transaction is retried later).
    fn error(self, text: String) -> ExecError {
        match self {
            Self::Retry | Self::PlanAgain => ExecError::Transient(text),
            Self::ConditionFailed | Self::Permanent => ExecError::Permanent(text),
        }
    }
}

/// A failed request's class and its one-line description.
fn classify<E, R>(op: &str, err: &SdkError<E, R>) -> (ErrorClass, String)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    let text = match err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            format!(
                "{op}: {}: {}",
                e.code().unwrap_or("Unknown"),
                e.message().unwrap_or("")
            )
        }
        other => format!(
            "{op}: {}",
            aws_smithy_types::error::display::DisplayErrorContext(other)
        ),
    };
    (ErrorClass::of(err), text)
}

/// Whether a failed request to any AWS service may succeed when sent again:
/// throttling, a 5xx, a timeout, a dropped connection, an unknown error code
/// ([`ErrorClass::Retry`]). A missing resource, a validation error, a denied
/// request or a failed condition will not.
pub fn may_succeed_later<E, R>(err: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    ErrorClass::of(err) == ErrorClass::Retry
}

/// Sends a request of any AWS service (`send` builds and sends it afresh
/// each time) until it succeeds, fails in a way that will not change
/// ([`may_succeed_later`]), or `policy.max_attempts` are spent, pausing
/// [`RetryPolicy::delay`] between attempts. For requests outside the
/// [`Executor`] (describing streams and tables, listing shards), on top of
/// the SDK's own few quick retries.
pub async fn send_retrying<T, E, R, F, Fut>(
    policy: RetryPolicy,
    op: &str,
    mut send: F,
) -> Result<T, SdkError<E, R>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    let mut attempt = 0;
    loop {
        match send().await {
            Err(e) if attempt + 1 < policy.max_attempts && may_succeed_later(&e) => {
                let code = e.as_service_error().and_then(|s| s.code()).unwrap_or("");
                tracing::debug!(op, attempt, code, "retrying");
                tokio::time::sleep(policy.delay(attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Reads and writes one table. Cheap to clone.
#[derive(Clone)]
pub struct Executor {
    client: Client,
    table: Arc<str>,
    retry: RetryPolicy,
    /// Set for a dry run: writes are recorded here instead of sent.
    dry: Option<Arc<DryRun>>,
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executor")
            .field("table", &self.table)
            .field("retry", &self.retry)
            .field("dry_run", &self.dry.is_some())
            .finish()
    }
}

impl Executor {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: Arc::from(table.into()),
            retry: RetryPolicy::default(),
            dry: None,
        }
    }

    /// This executor run dry: every write is handed to `recorder` (which
    /// prints it) and answered as successful instead of being sent; reads
    /// still go to the table, through the recorder's cache. The client is
    /// rebuilt with an interceptor that refuses every request but reads, so
    /// a write that does not come through the executor's own methods fails
    /// instead of reaching the table.
    pub fn dry_run(mut self, recorder: Arc<DryRun>) -> Self {
        let conf = self
            .client
            .config()
            .to_builder()
            .interceptor(ReadOnly)
            .build();
        self.client = Client::from_conf(conf);
        self.dry = Some(recorder);
        self
    }

    /// The recorder of a dry run, if this executor runs dry.
    pub fn dry_run_recorder(&self) -> Option<&Arc<DryRun>> {
        self.dry.as_ref()
    }

    pub fn is_dry_run(&self) -> bool {
        self.dry.is_some()
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
                (ErrorClass::Retry, m) => {
                    tracing::debug!(attempt, reason = %m, "retrying a transaction");
                    last = m;
                }
                (ErrorClass::PlanAgain, m) => {
                    tracing::debug!(attempt, reason = %m, "a transaction to plan again");
                    return Ok(TxOutcome::PlanAgain(m));
                }
                (class, m) => return Err(class.error(m)),
            }
        }
        Err(ExecError::Transient(format!(
            "gave up after {} attempts: {last}",
            self.retry.max_attempts
        )))
    }

    /// Commits a transaction whose plan reads nothing (its conditions alone
    /// decide, as a command's writes): [`Executor::transact`] under the
    /// token of `parts`, and on [`TxOutcome::PlanAgain`] the same actions
    /// again under a new token (`parts` and the round), at most
    /// [`MAX_PLAN_AGAIN`] times. Never answers `PlanAgain`.
    pub async fn transact_planned(&self, tx: Tx, parts: &[&str]) -> Result<TxOutcome, ExecError> {
        let mut last = String::new();
        for round in 0..MAX_PLAN_AGAIN {
            let round_s = round.to_string();
            let mut all: Vec<&str> = parts.to_vec();
            if round > 0 {
                all.extend(["plan-again", round_s.as_str()]);
            }
            match self.transact(tx.clone(), &token(&all)).await? {
                TxOutcome::PlanAgain(m) => last = m,
                done => return Ok(done),
            }
        }
        Err(ExecError::Transient(format!(
            "planned again {MAX_PLAN_AGAIN} times: {last}"
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
        if let Some(dry) = &self.dry {
            let chunks = pending.chunks(BATCH_WRITE_MAX);
            let n = chunks.len();
            for chunk in chunks {
                dry.record_batch_write(&self.table, chunk);
            }
            return Ok(n);
        }
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
                    (ErrorClass::Retry, m) => last = m,
                    (class, m) => return Err(class.error(m)),
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
        let Some(dry) = &self.dry else {
            return self.batch_get_sent(keys, consistent).await;
        };
        let (mut found, missing) = dry.cached(keys);
        if !missing.is_empty() {
            let read = self.batch_get_sent(&missing, consistent).await?;
            dry.remember(&missing, &read);
            found.extend(read);
        }
        Ok(found)
    }

    async fn batch_get_sent(&self, keys: &[Key], consistent: bool) -> Result<Vec<Item>, ExecError> {
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
                        (ErrorClass::Retry, m) => last = m,
                        (class, m) => return Err(class.error(m)),
                    },
                }
            }
        }
        Ok(found)
    }

    /// Reads one item.
    pub async fn get(&self, key: &Key, consistent: bool) -> Result<Option<Item>, ExecError> {
        let Some(dry) = &self.dry else {
            return self.get_sent(key, consistent).await;
        };
        let (found, missing) = dry.cached(std::slice::from_ref(key));
        if missing.is_empty() {
            return Ok(found.into_iter().next());
        }
        let read = self.get_sent(key, consistent).await?;
        dry.remember(&missing, read.as_slice());
        Ok(read)
    }

    async fn get_sent(&self, key: &Key, consistent: bool) -> Result<Option<Item>, ExecError> {
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
        if let Some(dry) = &self.dry {
            dry.record_put(&self.table, &item, Some("attribute_not_exists(pk)"));
            return Ok(true);
        }
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
        if self.dry.is_some() && !is_read(op) {
            return Err(ExecError::Permanent(format!(
                "{op}: a dry run cannot record a request sent around the executor's write methods"
            )));
        }
        let mut last = String::new();
        for attempt in 0..self.retry.max_attempts {
            if attempt > 0 {
                tokio::time::sleep(self.retry.delay(attempt - 1)).await;
            }
            match send().await {
                Ok(v) => return Ok(Conditional::Done(v)),
                Err(e) => match classify(op, &e) {
                    (ErrorClass::ConditionFailed, _) => return Ok(Conditional::ConditionFailed),
                    (ErrorClass::Retry, m) => last = m,
                    (class, m) => return Err(class.error(m)),
                },
            }
        }
        Err(ExecError::Transient(format!(
            "gave up after {} attempts: {last}",
            self.retry.max_attempts
        )))
    }
}

// ---- dry run -----------------------------------------------------------------

/// Of request counts by operation, those that read ([`is_read`]).
pub fn read_requests(requests: &std::collections::BTreeMap<String, u64>) -> u64 {
    requests
        .iter()
        .filter(|(op, _)| is_read(op))
        .map(|(_, n)| n)
        .sum()
}

/// Requests a dry run lets through: reads only.
pub fn is_read(op: &str) -> bool {
    matches!(
        op,
        "GetItem"
            | "BatchGetItem"
            | "Query"
            | "Scan"
            | "TransactGetItems"
            | "DescribeTable"
            | "DescribeTimeToLive"
            | "DescribeContinuousBackups"
            | "DescribeEndpoints"
            | "ListTables"
            | "ListTagsOfResource"
    )
}

/// The interceptor of a dry run's client: it refuses every request that is
/// not a read, so nothing can write to the table, whichever path sends it.
#[derive(Debug, Clone, Copy)]
struct ReadOnly;

impl Intercept for ReadOnly {
    fn name(&self) -> &'static str {
        "DryRunReadOnly"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = crate::metrics::operation_of(context);
        if is_read(op) {
            Ok(())
        } else {
            Err(format!("dry run: {op} refused (a dry run sends reads only)").into())
        }
    }
}

/// How many items (found or known absent) a dry run keeps; when the cache
/// is full it starts over, so memory stays bounded on any input.
pub const DRY_RUN_CACHE_MAX: usize = 50_000;

/// What a dry run recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DryRunStats {
    /// Write requests a real run would have sent, per operation
    /// (`TransactWriteItems`, `BatchWriteItem`, `PutItem`).
    pub requests: std::collections::BTreeMap<String, u64>,
    /// Write actions in them.
    pub puts: u64,
    pub updates: u64,
    pub deletes: u64,
    pub condition_checks: u64,
    /// Keys read from the table, and reads answered from the cache.
    pub keys_read: u64,
    pub cache_hits: u64,
}

#[derive(Default)]
struct DryState {
    cache: HashMap<(String, String), Option<Item>>,
    stats: DryRunStats,
}

/// The recorder of a dry run: prints every write a real run would send as
/// one JSON line (JSON Lines), and caches what was read per key.
///
/// Each line is one request: `{"op": "TransactWriteItems", "table", "token",
/// "actions": [...]}`, `{"op": "BatchWriteItem", "table", "requests": [...]}`
/// (25 at most, as sent) or `{"op": "PutItem", "table", "key", "item",
/// "condition"}`. An action has `action` (`Put`, `Update`, `Delete`,
/// `ConditionCheck`), `key` (plain strings), and as the request has them
/// `item` (DynamoDB JSON), `update`, `condition`, `names`, `values`
/// (DynamoDB JSON). Conditions are printed, not evaluated: every write is
/// answered as successful.
///
/// Nothing is written, so the table a dry run reads does not change under
/// it (other writers aside): an item read once is answered from the cache
/// for the rest of the run, and later reads never see the run's own
/// (unwritten) writes.
pub struct DryRun {
    out: Mutex<Option<Box<dyn Write + Send>>>,
    error: Mutex<Option<String>>,
    state: Mutex<DryState>,
    cache_max: usize,
}

impl fmt::Debug for DryRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DryRun")
            .field("stats", &self.stats())
            .finish()
    }
}

impl DryRun {
    /// Records into `out`.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            out: Mutex::new(Some(out)),
            error: Mutex::new(None),
            state: Mutex::new(DryState::default()),
            cache_max: DRY_RUN_CACHE_MAX,
        }
    }

    /// Records to standard output (buffered; [`DryRun::finish`] flushes).
    pub fn stdout() -> Self {
        Self::new(Box::new(std::io::BufWriter::with_capacity(
            1 << 16,
            std::io::stdout(),
        )))
    }

    /// Another cache size (tests).
    pub fn with_cache_max(mut self, max: usize) -> Self {
        self.cache_max = max;
        self
    }

    /// What was recorded so far.
    pub fn stats(&self) -> DryRunStats {
        self.state
            .lock()
            .map(|s| s.stats.clone())
            .unwrap_or_default()
    }

    /// Flushes the output; the first write error, if any.
    pub fn finish(&self) -> Result<DryRunStats, String> {
        if let Ok(mut out) = self.out.lock()
            && let Some(w) = out.as_mut()
            && let Err(e) = w.flush()
        {
            self.fail(&e);
            *out = None;
        }
        match self.error.lock().ok().and_then(|e| e.clone()) {
            Some(e) => Err(e),
            None => Ok(self.stats()),
        }
    }

    fn fail(&self, e: &dyn fmt::Display) {
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert_with(|| format!("writing the dry run's output: {e}"));
        }
    }

    fn emit(&self, line: &Value) {
        let Ok(mut out) = self.out.lock() else {
            return;
        };
        let Some(w) = out.as_mut() else {
            return;
        };
        let written = serde_json::to_writer(&mut *w, line)
            .map_err(|e| e.to_string())
            .and_then(|()| w.write_all(b"\n").map_err(|e| e.to_string()));
        if let Err(e) = written {
            self.fail(&e);
            *out = None;
        }
    }

    fn count(&self, op: &str, f: impl FnOnce(&mut DryRunStats)) {
        if let Ok(mut s) = self.state.lock() {
            *s.stats.requests.entry(op.to_owned()).or_insert(0) += 1;
            f(&mut s.stats);
        }
    }

    /// Splits `keys` into the items the cache knows (found ones; known
    /// absent ones are left out, as a read would) and the keys to read.
    fn cached(&self, keys: &[Key]) -> (Vec<Item>, Vec<Key>) {
        let mut found = Vec::new();
        let mut missing = Vec::new();
        let Ok(mut s) = self.state.lock() else {
            return (found, keys.to_vec());
        };
        for key in keys {
            match s.cache.get(&(key.pk(), key.sk())) {
                Some(Some(item)) => found.push(item.clone()),
                Some(None) => {}
                None => {
                    missing.push(key.clone());
                    continue;
                }
            }
            s.stats.cache_hits += 1;
        }
        (found, missing)
    }

    /// Remembers what reading `keys` found (the rest is absent).
    fn remember(&self, keys: &[Key], found: &[Item]) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        s.stats.keys_read += keys.len() as u64;
        if s.cache.len() + keys.len() > self.cache_max {
            s.cache.clear();
        }
        for key in keys {
            s.cache.insert((key.pk(), key.sk()), None);
        }
        for item in found {
            let (pk, sk) = Tx::item_key(item);
            s.cache.insert((pk, sk), Some(item.clone()));
        }
    }

    fn record_transaction(&self, table: &str, items: &[TransactWriteItem], token: &str) {
        let mut actions = Vec::with_capacity(items.len());
        let (mut puts, mut updates, mut deletes, mut checks) = (0, 0, 0, 0);
        for item in items {
            if let Some(p) = item.put() {
                puts += 1;
                let mut a = action("Put", Some(p.item()));
                a.insert("item".into(), item_json(p.item()));
                add_expr(
                    &mut a,
                    None,
                    p.condition_expression(),
                    p.expression_attribute_names(),
                    p.expression_attribute_values(),
                );
                actions.push(Value::Object(a));
            } else if let Some(u) = item.update() {
                updates += 1;
                let mut a = action("Update", Some(u.key()));
                add_expr(
                    &mut a,
                    Some(u.update_expression()),
                    u.condition_expression(),
                    u.expression_attribute_names(),
                    u.expression_attribute_values(),
                );
                actions.push(Value::Object(a));
            } else if let Some(d) = item.delete() {
                deletes += 1;
                let mut a = action("Delete", Some(d.key()));
                add_expr(
                    &mut a,
                    None,
                    d.condition_expression(),
                    d.expression_attribute_names(),
                    d.expression_attribute_values(),
                );
                actions.push(Value::Object(a));
            } else if let Some(c) = item.condition_check() {
                checks += 1;
                let mut a = action("ConditionCheck", Some(c.key()));
                add_expr(
                    &mut a,
                    None,
                    Some(c.condition_expression()),
                    c.expression_attribute_names(),
                    c.expression_attribute_values(),
                );
                actions.push(Value::Object(a));
            }
        }
        self.count("TransactWriteItems", |s| {
            s.puts += puts;
            s.updates += updates;
            s.deletes += deletes;
            s.condition_checks += checks;
        });
        self.emit(&json!({
            "op": "TransactWriteItems",
            "table": table,
            "token": token,
            "actions": actions,
        }));
    }

    fn record_batch_write(&self, table: &str, chunk: &[WriteRequest]) {
        let (mut puts, mut deletes) = (0, 0);
        let requests: Vec<Value> = chunk
            .iter()
            .filter_map(|r| {
                if let Some(p) = r.put_request() {
                    puts += 1;
                    let mut a = action("Put", Some(p.item()));
                    a.insert("item".into(), item_json(p.item()));
                    Some(Value::Object(a))
                } else {
                    r.delete_request().map(|d| {
                        deletes += 1;
                        Value::Object(action("Delete", Some(d.key())))
                    })
                }
            })
            .collect();
        self.count("BatchWriteItem", |s| {
            s.puts += puts;
            s.deletes += deletes;
        });
        self.emit(&json!({
            "op": "BatchWriteItem",
            "table": table,
            "requests": requests,
        }));
    }

    fn record_put(&self, table: &str, item: &Item, condition: Option<&str>) {
        self.count("PutItem", |s| s.puts += 1);
        let mut line = action("Put", Some(item));
        line.remove("action");
        let mut head = Map::new();
        head.insert("op".into(), "PutItem".into());
        head.insert("table".into(), table.into());
        head.extend(line);
        head.insert("item".into(), item_json(item));
        if let Some(c) = condition {
            head.insert("condition".into(), c.into());
        }
        self.emit(&Value::Object(head));
    }
}

/// `{"action": name, "key": {"pk": .., "sk": ..}}` (the key as plain strings).
fn action(name: &str, item: Option<&Item>) -> Map<String, Value> {
    let mut a = Map::new();
    a.insert("action".into(), name.into());
    if let Some(item) = item {
        let mut key = Map::new();
        for k in ["pk", "sk"] {
            match item.get(k) {
                Some(AttributeValue::S(s)) => {
                    key.insert(k.into(), s.as_str().into());
                }
                Some(other) => {
                    key.insert(k.into(), attr_json(other));
                }
                None => {}
            }
        }
        a.insert("key".into(), Value::Object(key));
    }
    a
}

fn add_expr(
    a: &mut Map<String, Value>,
    update: Option<&str>,
    condition: Option<&str>,
    names: Option<&HashMap<String, String>>,
    values: Option<&HashMap<String, AttributeValue>>,
) {
    if let Some(u) = update {
        a.insert("update".into(), u.into());
    }
    if let Some(c) = condition {
        a.insert("condition".into(), c.into());
    }
    if let Some(n) = names.filter(|n| !n.is_empty()) {
        let names: Map<String, Value> = n
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        a.insert("names".into(), Value::Object(names));
    }
    if let Some(v) = values.filter(|v| !v.is_empty()) {
        a.insert("values".into(), item_json(v));
    }
}

/// An item (or expression values) as DynamoDB JSON, keys sorted.
pub fn item_json(item: &HashMap<String, AttributeValue>) -> Value {
    serde_json::to_value(serde_dynamo::Item::from(item.clone())).unwrap_or(Value::Null)
}

/// One attribute value as DynamoDB JSON (`{"S": "x"}`, `{"N": "1"}`, ...),
/// by serde_dynamo (the same form stream images are read in).
pub fn attr_json(v: &AttributeValue) -> Value {
    serde_json::to_value(serde_dynamo::AttributeValue::from(v.clone())).unwrap_or(Value::Null)
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
    fn one_classification_of_every_answer() {
        use ErrorClass as C;
        for (code, class) in [
            (Some("ConditionalCheckFailedException"), C::ConditionFailed),
            (Some("IdempotentParameterMismatchException"), C::PlanAgain),
            (Some("TransactionInProgressException"), C::PlanAgain),
            (Some("ResourceNotFoundException"), C::Permanent),
            (Some("ValidationException"), C::Permanent),
            (Some("ProvisionedThroughputExceededException"), C::Retry),
            (Some("ThrottlingException"), C::Retry),
            (Some("InternalServerError"), C::Retry),
            (Some("SomethingNew"), C::Retry),
            (None, C::Retry),
        ] {
            assert_eq!(ErrorClass::of_code(code), class, "{code:?}");
        }
        // Planning again is never a dead letter.
        assert!(C::PlanAgain.error("x".into()).is_transient());
        assert!(!C::Permanent.error("x".into()).is_transient());
    }

    #[test]
    fn nonces_differ() {
        let a = nonce();
        assert_eq!(a.len(), 32);
        assert_ne!(a, nonce());
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

    fn key(pk: &str) -> Key {
        Key::parse(pk, "GROUP").unwrap_or_else(|e| panic!("{e}"))
    }

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn dry_run_records_a_transaction_as_one_line() {
        let out = Shared::default();
        let dry = DryRun::new(Box::new(out.clone()));
        let tx = Tx {
            table: Arc::from("t"),
            items: Vec::new(),
            touched: Vec::new(),
        };
        let mut tx = tx;
        let k = key("GROUP#g1");
        let item = Item::from([
            ("pk".to_owned(), AttributeValue::S("GRP#u1".into())),
            ("sk".to_owned(), AttributeValue::S("2026#g1".into())),
            ("n".to_owned(), AttributeValue::N("3".into())),
        ]);
        tx.update(
            &k,
            Expr::new("SET a = :a").s(":a", "x"),
            Some(Expr::new("attribute_exists(pk)")),
        )
        .and_then(|t| t.put(item, None))
        .unwrap_or_else(|e| panic!("{e}"));
        dry.record_transaction("t", &tx.items, "tok");
        let stats = dry.finish().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stats.requests.get("TransactWriteItems"), Some(&1));
        assert_eq!((stats.puts, stats.updates), (1, 1));
        let text = String::from_utf8(out.0.lock().map(|b| b.clone()).unwrap_or_default())
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1);
        let v: Value = serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["op"], "TransactWriteItems");
        assert_eq!(v["token"], "tok");
        assert_eq!(v["actions"][0]["action"], "Update");
        assert_eq!(v["actions"][0]["key"]["pk"], "GROUP#g1");
        assert_eq!(v["actions"][0]["update"], "SET a = :a");
        assert_eq!(v["actions"][0]["condition"], "attribute_exists(pk)");
        assert_eq!(v["actions"][0]["values"][":a"]["S"], "x");
        assert_eq!(v["actions"][1]["action"], "Put");
        assert_eq!(v["actions"][1]["item"]["n"]["N"], "3");
    }

    #[test]
    fn dry_run_cache_answers_hits_and_misses_and_stays_bounded() {
        let dry = DryRun::new(Box::new(std::io::sink())).with_cache_max(3);
        let (a, b) = (key("GROUP#a"), key("GROUP#b"));
        let found = Item::from([
            ("pk".to_owned(), AttributeValue::S("GROUP#a".into())),
            ("sk".to_owned(), AttributeValue::S("GROUP".into())),
        ]);
        let (hit, missing) = dry.cached(&[a.clone(), b.clone()]);
        assert!(hit.is_empty());
        assert_eq!(missing.len(), 2);
        dry.remember(&missing, std::slice::from_ref(&found));
        let (hit, missing) = dry.cached(&[a.clone(), b.clone()]);
        assert_eq!(hit, vec![found]);
        assert!(missing.is_empty());
        // Past the limit the cache starts over.
        dry.remember(&[key("GROUP#c"), key("GROUP#d")], &[]);
        let (_, missing) = dry.cached(&[a, b]);
        assert_eq!(missing.len(), 2);
        assert_eq!(dry.stats().cache_hits, 2);
    }

    #[test]
    fn only_reads_pass_a_dry_run() {
        assert!(is_read("BatchGetItem") && is_read("Query"));
        assert!(!is_read("PutItem") && !is_read("TransactWriteItems"));
    }
}
