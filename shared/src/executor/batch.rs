//! Batches: BatchWriteItem in chunks of 25 and BatchGetItem in chunks of
//! 100, their unprocessed remainders retried.

use aws_sdk_dynamodb::types::{DeleteRequest, KeysAndAttributes, PutRequest, WriteRequest};

use super::{
    BATCH_GET_MAX, BATCH_WRITE_MAX, ErrorClass, ExecError, Executor, Item, build_err, classify,
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
}
