//! Batches: BatchWriteItem in chunks of 25 and BatchGetItem in chunks of
//! 100, their unprocessed remainders retried.

use aws_sdk_dynamodb::types::{DeleteRequest, KeysAndAttributes, PutRequest, WriteRequest};

use super::{
    Attempt, BATCH_GET_MAX, BATCH_WRITE_MAX, ErrorClass, ExecError, Executor, Item, Op,
    RequestError,
};
use crate::keys::Key;

impl Executor {
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
                            .map_err(|e| RequestError::unbuildable(Op::BatchWriteItem, e))?,
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
                            .map_err(|e| RequestError::unbuildable(Op::BatchWriteItem, e))?,
                    )
                    .build(),
            );
        }
        self.batch_write(pending).await
    }

    /// Sends `pending` in chunks of [`BATCH_WRITE_MAX`], each until nothing
    /// of it is left unprocessed; how many requests that took.
    async fn batch_write(&self, pending: Vec<WriteRequest>) -> Result<usize, ExecError> {
        if let Some(dry) = &self.dry {
            let chunks = pending.chunks(BATCH_WRITE_MAX);
            let n = chunks.len();
            for chunk in chunks {
                dry.record_batch_write(&self.table, chunk);
            }
            return Ok(n);
        }
        let op = Op::BatchWriteItem;
        let table = &*self.table;
        let mut sent = 0;
        for chunk in pending.chunks(BATCH_WRITE_MAX) {
            let mut chunk = chunk.to_vec();
            let written = self
                .retry
                .run(
                    op,
                    &mut chunk,
                    |chunk, _| {
                        sent += 1;
                        (self.client.batch_write_item())
                            .request_items(table, chunk.clone())
                            .send()
                    },
                    |chunk, answer| match answer {
                        Ok(out) => {
                            let rest = (out.unprocessed_items)
                                .and_then(|mut m| m.remove(table))
                                .unwrap_or_default();
                            if rest.is_empty() {
                                return Attempt::Done(Ok(()));
                            }
                            let why = format!("{} items unprocessed", rest.len());
                            *chunk = rest;
                            Attempt::Retry(RequestError::new(op, None, ErrorClass::Retry, why))
                        }
                        Err(e) => Attempt::failed(RequestError::of(op, &e)),
                    },
                )
                .await;
            match written {
                Ok(done) => done?,
                Err(spent) => {
                    let text = format!(
                        "BatchWriteItem left {} items unwritten after {} attempts: {}",
                        chunk.len(),
                        spent.attempts,
                        spent.last
                    );
                    return Err(spent.last.after(spent.attempts, text).into());
                }
            }
        }
        Ok(sent)
    }

    /// Reads items by key with BatchGetItem, 100 at a time, retrying
    /// unprocessed keys. Missing items are simply absent from the answer.
    /// A dry run reads through its cache: only keys it does not know are
    /// read.
    pub async fn batch_get(&self, keys: &[Key], consistent: bool) -> Result<Vec<Item>, ExecError> {
        let (mut found, unknown) = match &self.dry {
            Some(dry) => dry.cached(keys),
            None => (Vec::new(), keys.to_vec()),
        };
        let op = Op::BatchGetItem;
        let table = &*self.table;
        let request = |keys: Vec<Item>| {
            (KeysAndAttributes::builder().set_keys(Some(keys)))
                .consistent_read(consistent)
                .build()
                .map_err(|e| ExecError::from(RequestError::unbuildable(op, e)))
        };
        let mut read = Vec::new();
        for chunk in unknown.chunks(BATCH_GET_MAX) {
            let mut pending = request(chunk.iter().map(Key::to_key_map).collect())?;
            let answered = self
                .retry
                .run(
                    op,
                    &mut pending,
                    |pending, _| {
                        (self.client.batch_get_item())
                            .request_items(table, pending.clone())
                            .send()
                    },
                    |pending, answer| {
                        let out = match answer {
                            Ok(out) => out,
                            Err(e) => return Attempt::failed(RequestError::of(op, &e)),
                        };
                        if let Some(mut r) = out.responses {
                            read.extend(r.remove(table).unwrap_or_default());
                        }
                        let rest = (out.unprocessed_keys)
                            .and_then(|mut m| m.remove(table))
                            .map(|k| k.keys)
                            .unwrap_or_default();
                        if rest.is_empty() {
                            return Attempt::Done(Ok(()));
                        }
                        let why = format!("{} keys unprocessed", rest.len());
                        match request(rest) {
                            Ok(next) => *pending = next,
                            Err(e) => return Attempt::Done(Err(e)),
                        }
                        Attempt::Retry(RequestError::new(op, None, ErrorClass::Retry, why))
                    },
                )
                .await;
            match answered {
                Ok(done) => done?,
                Err(spent) => {
                    let text = format!(
                        "BatchGetItem left {} keys unread after {} attempts: {}",
                        pending.keys().len(),
                        spent.attempts,
                        spent.last
                    );
                    return Err(spent.last.after(spent.attempts, text).into());
                }
            }
        }
        if let Some(dry) = &self.dry
            && !unknown.is_empty()
        {
            dry.remember(&unknown, &read);
        }
        found.extend(read);
        Ok(found)
    }
}
