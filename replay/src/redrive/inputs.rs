//! Where on-failure records are read from besides files: an SQS queue
//! (messages deleted once settled) and S3 objects (left in place).

use anyhow::{Context as _, Result, anyhow};

use super::{RedriveReport, Redriver};

impl Redriver<'_> {
    pub(super) async fn queue(&self, url: &str, report: &mut RedriveReport) -> Result<()> {
        let sqs = aws_sdk_sqs::Client::new(&self.app.sdk);
        let mut kept: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        loop {
            let out = sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .visibility_timeout(900)
                .send()
                .await
                .map_err(|e| {
                    anyhow!(
                        "reading queue {url}: {}",
                        aws_sdk_sqs::error::DisplayErrorContext(e)
                    )
                })?;
            let messages = out.messages.unwrap_or_default();
            let fresh: Vec<_> = messages
                .into_iter()
                .filter(|m| seen.insert(m.message_id.clone().unwrap_or_default()))
                .collect();
            if fresh.is_empty() {
                break;
            }
            for m in fresh {
                let id = m.message_id.clone().unwrap_or_default();
                let body = m.body.clone().unwrap_or_default();
                let handle = m.receipt_handle.clone().unwrap_or_default();
                let before = report.batches.len();
                let settled = self.input(&format!("message {id}"), &body, report).await?;
                let only_lost = report.batches[before..]
                    .iter()
                    .all(|b| b.settled() || (b.lost.is_some() && self.args.drop_lost))
                    && report.batches.len() > before;
                if !self.args.dry_run && (settled || only_lost) {
                    sqs.delete_message()
                        .queue_url(url)
                        .receipt_handle(&handle)
                        .send()
                        .await
                        .map_err(|e| {
                            anyhow!(
                                "deleting message {id}: {}",
                                aws_sdk_sqs::error::DisplayErrorContext(e)
                            )
                        })?;
                    report.messages_deleted += 1;
                } else {
                    kept.push(handle);
                    report.messages_kept += 1;
                }
            }
        }
        // What is kept is visible again at once, for the next redrive.
        for handle in kept {
            let _ = sqs
                .change_message_visibility()
                .queue_url(url)
                .receipt_handle(handle)
                .visibility_timeout(0)
                .send()
                .await;
        }
        Ok(())
    }

    pub(super) async fn s3(&self, url: &str, report: &mut RedriveReport) -> Result<()> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| anyhow!("--s3 takes s3://BUCKET/PREFIX, not {url}"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let s3 = reconcile::s3_client(&self.app.sdk);
        let mut token: Option<String> = None;
        loop {
            let out = s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    anyhow!(
                        "listing {url}: {}",
                        aws_sdk_s3::error::DisplayErrorContext(e)
                    )
                })?;
            for object in out.contents.unwrap_or_default() {
                let Some(key) = object.key else { continue };
                let body = s3
                    .get_object()
                    .bucket(bucket)
                    .key(&key)
                    .send()
                    .await
                    .map_err(|e| {
                        anyhow!(
                            "reading s3://{bucket}/{key}: {}",
                            aws_sdk_s3::error::DisplayErrorContext(e)
                        )
                    })?
                    .body
                    .collect()
                    .await
                    .with_context(|| format!("reading s3://{bucket}/{key}"))?
                    .into_bytes();
                let text = String::from_utf8_lossy(&body);
                self.input(&format!("s3://{bucket}/{key}"), &text, report)
                    .await?;
            }
            match out.next_continuation_token {
                Some(t) if out.is_truncated == Some(true) => token = Some(t),
                _ => break,
            }
        }
        Ok(())
    }
}
