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
//!
//! One job per file: `tx.rs` (transactions, tokens), `batch.rs` (batch
//! writes and reads), `retry.rs` (the one retry driver,
//! [`RetryPolicy::run`]), `error.rs` (the one classification,
//! [`ErrorClass`], and [`ExecError`]) and `dry_run.rs` ([`DryRun`]); this
//! file holds the [`Executor`] itself, its single-item requests, and
//! re-exports every public name, so `streamfold_shared::executor::X` paths
//! are unchanged.

mod batch;
mod dry_run;
mod error;
mod retry;
mod tx;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;

use crate::keys::Key;
use dry_run::ReadOnly;
pub use dry_run::{
    DRY_RUN_CACHE_MAX, DryRun, DryRunOutputError, DryRunStats, attr_json, is_read, item_json,
    read_requests,
};
pub use error::{ErrorClass, ExecError, Op, RequestError, may_succeed_later};
pub use retry::{Attempt, Exhausted, RetryPolicy, send_retrying};
pub use tx::{Expr, Tx, TxOutcome, nonce, token};

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

/// The answer to a conditional request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conditional<T> {
    /// The condition held and the request was done.
    Done(T),
    /// The condition did not hold; nothing was written.
    ConditionFailed,
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
        self.retrying(Op::GetItem, || async {
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
            .conditional(Op::PutItem, || {
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

    /// One conditional UpdateItem: `true` if it was applied, `false` if its
    /// condition failed. A single item's conditional write is atomic on its
    /// own and costs half of the same update inside a transaction (which
    /// DynamoDB bills twice); it needs no idempotency token when, as for
    /// every caller here, a repeat of an applied update fails its condition.
    pub async fn update_if(
        &self,
        key: &Key,
        update: Expr,
        condition: Option<Expr>,
    ) -> Result<bool, ExecError> {
        let cond_text = condition.as_ref().map(|c| c.text.clone());
        let all = update.merged(condition.as_ref());
        if let Some(dry) = &self.dry {
            dry.record_update(&self.table, key, &all, cond_text.as_deref());
            return Ok(true);
        }
        let done = self
            .conditional(Op::UpdateItem, || {
                self.client
                    .update_item()
                    .table_name(&*self.table)
                    .set_key(Some(key.to_key_map()))
                    .update_expression(&all.text)
                    .set_condition_expression(cond_text.clone())
                    .set_expression_attribute_names(all.names_opt())
                    .set_expression_attribute_values(all.values_opt())
                    .send()
            })
            .await?;
        Ok(matches!(done, Conditional::Done(_)))
    }

    /// Runs a request with the retry policy for transient errors. A failed
    /// condition is not retried (it is a permanent error here); use
    /// [`Executor::conditional`] for requests that carry one.
    pub async fn retrying<T, E, R, F, Fut>(
        &self,
        op: impl Into<Op>,
        send: F,
    ) -> Result<T, ExecError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, R>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: fmt::Debug,
    {
        let op = op.into();
        match self.conditional(op, send).await? {
            Conditional::Done(v) => Ok(v),
            Conditional::ConditionFailed => {
                let code = "ConditionalCheckFailedException";
                let text = format!("{op}: {code}");
                Err(RequestError::new(op, Some(code), ErrorClass::ConditionFailed, text).into())
            }
        }
    }

    /// Runs a conditional request with the retry policy for transient
    /// errors; a failed condition is the answer
    /// [`Conditional::ConditionFailed`], returned at once.
    pub async fn conditional<T, E, R, F, Fut>(
        &self,
        op: impl Into<Op>,
        mut send: F,
    ) -> Result<Conditional<T>, ExecError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, R>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: fmt::Debug,
    {
        let op = op.into();
        if self.dry.is_some() && !is_read(op.name()) {
            let text = format!(
                "{op}: a dry run cannot record a request sent around the executor's write methods"
            );
            return Err(RequestError::new(op, None, ErrorClass::Permanent, text).into());
        }
        self.retry
            .run(
                op,
                &mut (),
                |_, _| send(),
                |_, sent| match sent {
                    Ok(v) => Attempt::Done(Ok(Conditional::Done(v))),
                    Err(e) => {
                        let failed = RequestError::of(op, &e);
                        match failed.class() {
                            ErrorClass::ConditionFailed => {
                                Attempt::Done(Ok(Conditional::ConditionFailed))
                            }
                            _ => Attempt::failed(failed),
                        }
                    }
                },
            )
            .await
            .unwrap_or_else(|spent| Err(spent.gave_up().into()))
    }
}
