//! The retry driver: full-jitter exponential backoff, bounded attempts.

use std::fmt;
use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use super::may_succeed_later;

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

#[cfg(test)]
mod tests {
    use super::*;

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
