//! The one retry driver of the executor: [`RetryPolicy::run`] makes
//! attempts (a closure that sends, a closure that judges the answer) until
//! one is done or the policy's attempts are spent, pausing a full-jitter exponential backoff between
//! them. Every retrying path goes through it: transactions (and planning
//! again), batch writes and reads with their unprocessed remainders,
//! single requests ([`super::Executor::conditional`]) and
//! [`send_retrying`] for requests outside the executor. What is worth
//! another attempt is the caller's [`Attempt::Retry`], decided by the one
//! classification, [`super::ErrorClass`].

use std::fmt;
use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use super::{ErrorClass, ExecError, Op, RequestError, may_succeed_later};

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
    /// `max_attempts` attempts with no pause between them (for planning
    /// again: each attempt already reads and plans anew).
    pub fn immediate(max_attempts: u32) -> Self {
        Self {
            max_attempts,
            base_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
        }
    }

    /// The pause before retry number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let cap = self
            .base_delay
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max_delay);
        let micros = u64::try_from(cap.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(fastrand::u64(0..=micros))
    }

    /// Makes attempts until one is [`Attempt::Done`] (its value is the
    /// answer) or `max_attempts` (at least one) were made, pausing
    /// [`RetryPolicy::delay`]`(n)` after attempt n. An attempt is `send`
    /// (which builds and sends the request afresh from `state`, returning a
    /// future that owns what it needs) and then `judge` on its answer (which
    /// may update `state`: what a batch left unprocessed, what it found so
    /// far). A spent budget is [`Exhausted`], with the last attempt's
    /// reason; `state` is then what the last attempt left.
    ///
    /// The attempt is two closures rather than one async closure so that the
    /// future of a retried request nests one level deep, not three (deeply
    /// nested futures hit the compiler's recursion limit in crates that
    /// await many of them).
    pub async fn run<S, R, T, W, Fut>(
        &self,
        op: impl Into<Op>,
        state: &mut S,
        mut send: impl FnMut(&S, u32) -> Fut,
        mut judge: impl FnMut(&mut S, R) -> Attempt<T, W>,
    ) -> Result<T, Exhausted<W>>
    where
        Fut: Future<Output = R>,
        W: fmt::Display,
    {
        let op = op.into();
        let max = self.max_attempts.max(1);
        let mut n = 0;
        loop {
            let answer = send(state, n).await;
            let why = match judge(state, answer) {
                Attempt::Done(v) => return Ok(v),
                Attempt::Retry(why) => why,
            };
            n += 1;
            if n >= max {
                return Err(Exhausted {
                    attempts: n,
                    last: why,
                });
            }
            tracing::debug!(%op, attempt = n - 1, reason = %why, "retrying");
            let pause = self.delay(n - 1);
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// What one attempt of [`RetryPolicy::run`] came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt<T, W> {
    /// Finished, well or not: the driver answers this.
    Done(T),
    /// Another attempt may succeed; why this one did not.
    Retry(W),
}

impl<T> Attempt<Result<T, ExecError>, RequestError> {
    /// A failed request: tried again if its class is [`ErrorClass::Retry`],
    /// the answer otherwise.
    pub fn failed(failed: RequestError) -> Self {
        match failed.class() {
            ErrorClass::Retry => Self::Retry(failed),
            _ => Self::Done(Err(failed.into())),
        }
    }
}

/// The attempts of a [`RetryPolicy`] are spent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exhausted<W> {
    /// Attempts made.
    pub attempts: u32,
    /// Why the last one did not succeed.
    pub last: W,
}

impl Exhausted<RequestError> {
    /// The last failure, as what the executor gives up with: `gave up after
    /// {n} attempts: {the last failure}`.
    pub fn gave_up(self) -> RequestError {
        let text = format!("gave up after {} attempts: {}", self.attempts, self.last);
        self.last.after(self.attempts, text)
    }
}

/// Sends a request of any AWS service (`send` builds and sends it afresh
/// each time) until it succeeds, fails in a way that will not change
/// ([`may_succeed_later`]), or `policy.max_attempts` are spent, pausing
/// [`RetryPolicy::delay`] between attempts; the last error if none
/// succeeded. For requests outside the [`super::Executor`] (describing
/// streams and tables, listing shards), on top of the SDK's own few quick
/// retries.
pub async fn send_retrying<T, E, R, F, Fut>(
    policy: RetryPolicy,
    op: impl Into<Op>,
    mut send: F,
) -> Result<T, SdkError<E, R>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    policy
        .run(
            op,
            &mut (),
            |_, _| send(),
            |_, sent| match sent {
                Err(e) if may_succeed_later(&e) => Attempt::Retry(Answer(e)),
                other => Attempt::Done(other),
            },
        )
        .await
        .unwrap_or_else(|spent| Err(spent.last.0))
}

/// A failed request's answer as a retry reason: its error code, or the SDK's
/// error chain without a service answer.
struct Answer<E, R>(SdkError<E, R>);

impl<E, R> fmt::Display for Answer<E, R>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_service_error().and_then(|s| s.code()) {
            Some(code) => f.write_str(code),
            None => write!(
                f,
                "{}",
                aws_smithy_types::error::display::DisplayErrorContext(&self.0)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

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
        assert_eq!(RetryPolicy::immediate(3).delay(10), Duration::ZERO);
    }

    fn quick(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        }
    }

    /// An attempt that answers its number at once.
    fn number<S>(_: &S, n: u32) -> std::future::Ready<u32> {
        std::future::ready(n)
    }

    #[tokio::test]
    async fn the_driver_answers_the_first_done_attempt() {
        let mut seen = Vec::new();
        let answer = quick(8)
            .run(Op::Query, &mut seen, number, |seen, n| {
                seen.push(n);
                if n < 2 {
                    Attempt::Retry(format!("busy {n}"))
                } else {
                    Attempt::Done(n * 10)
                }
            })
            .await;
        assert_eq!(answer, Ok(20));
        assert_eq!(seen, vec![0, 1, 2]);
    }

    #[tokio::test]
    async fn the_driver_stops_after_max_attempts_with_the_last_reason() {
        let mut seen = Vec::new();
        let answer: Result<(), _> = quick(4)
            .run(Op::GetItem, &mut seen, number, |seen, n| {
                seen.push(n);
                Attempt::Retry(format!("busy {n}"))
            })
            .await;
        let spent = Exhausted {
            attempts: 4,
            last: "busy 3".to_owned(),
        };
        assert_eq!(answer, Err(spent));
        assert_eq!(seen, vec![0, 1, 2, 3]);
    }

    #[tokio::test]
    async fn the_driver_always_makes_one_attempt_and_a_done_error_is_not_retried() {
        let mut seen = Vec::new();
        let answer: Result<(), _> = quick(0)
            .run("DescribeStream", &mut seen, number, |seen, n| {
                seen.push(n);
                Attempt::Retry("busy")
            })
            .await;
        assert_eq!(answer.map_err(|e| e.attempts), Err(1));
        let answer: Result<Result<(), &str>, Exhausted<&str>> = quick(5)
            .run(Op::PutItem, &mut seen, number, |seen, n| {
                seen.push(n);
                Attempt::Done(Err("invalid"))
            })
            .await;
        assert_eq!(answer, Ok(Err("invalid")));
        assert_eq!(seen, vec![0, 0]);
    }

    #[tokio::test]
    async fn the_driver_pauses_within_the_policy_bounds() {
        let policy = RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(20),
        };
        let again = |_: &mut Vec<u32>, _| Attempt::<(), _>::Retry("again");
        let started = Instant::now();
        let _ = RetryPolicy::immediate(50)
            .run(Op::Scan, &mut Vec::new(), number, again)
            .await;
        assert!(started.elapsed() < Duration::from_millis(50));
        let started = Instant::now();
        let _ = policy.run(Op::Scan, &mut Vec::new(), number, again).await;
        // Three pauses of at most 20 ms each (plus the scheduler's slack).
        assert!(started.elapsed() < Duration::from_millis(60 + 200));
    }
}
