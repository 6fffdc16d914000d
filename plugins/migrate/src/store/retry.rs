//! Retry with exponential backoff for transient storage errors (connection failures, 5xx, 429).

use std::future::Future;
use std::time::Duration;

/// How often and how patiently a request is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, the first included.
    pub attempts: u32,
    /// Delay before the second attempt; each later delay doubles.
    pub initial_delay: Duration,
    /// Upper bound of one delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            initial_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
        }
    }
}

impl RetryPolicy {
    /// Returns the delay after failed attempt number `attempt` (1-based).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.initial_delay
            .saturating_mul(factor)
            .min(self.max_delay)
    }
}

/// Outcome of one failed attempt: retry it, or stop with this value.
#[derive(Debug)]
pub enum AttemptError<E> {
    /// Worth another attempt.
    Transient(Transient),
    /// Final, returned as it is.
    Fatal(E),
}

/// The cause of a transient failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transient {
    /// No HTTP answer: connection refused, reset, timed out, DNS failure.
    Transport(String),
    /// An HTTP status worth retrying, with the S3 error code when the body carried one.
    Status { status: u16, code: String },
}

/// Reason [`retry`] gave up.
#[derive(Debug)]
pub enum RetryError<E> {
    /// An attempt failed in a way that another attempt cannot fix.
    Fatal(E),
    /// Every attempt failed transiently; `cause` is the last failure.
    Exhausted { cause: Transient, attempts: u32 },
}

/// Runs `attempt` until it succeeds, fails fatally, or the policy's attempts are used up.
pub async fn retry<T, E, F, Fut>(policy: RetryPolicy, mut attempt: F) -> Result<T, RetryError<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AttemptError<E>>>,
{
    let mut number = 1;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(AttemptError::Fatal(error)) => return Err(RetryError::Fatal(error)),
            Err(AttemptError::Transient(cause)) => {
                if number >= policy.attempts {
                    return Err(RetryError::Exhausted {
                        cause,
                        attempts: number,
                    });
                }
                let delay = policy.delay_after(number);
                tracing::debug!(?cause, attempt = number, ?delay, "retrying storage request");
                tokio::time::sleep(delay).await;
                number += 1;
            }
        }
    }
}

/// Reports whether an HTTP status from S3 is worth retrying.
pub fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_maximum() {
        let policy = RetryPolicy {
            attempts: 6,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
        };
        let delays: Vec<u128> = (1..=5).map(|n| policy.delay_after(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 500, 500]);
    }

    #[test]
    fn transient_statuses() {
        assert!(is_transient_status(503));
        assert!(is_transient_status(429));
        assert!(!is_transient_status(403));
        assert!(!is_transient_status(404));
    }

    #[tokio::test]
    async fn retry_stops_after_the_attempts() {
        let policy = RetryPolicy {
            attempts: 3,
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
        };
        let mut calls = 0;
        let result: Result<(), _> = retry::<(), String, _, _>(policy, || {
            calls += 1;
            async {
                Err(AttemptError::Transient(Transient::Transport(
                    "refused".into(),
                )))
            }
        })
        .await;
        assert_eq!(calls, 3);
        match result.unwrap_err() {
            RetryError::Exhausted { cause, attempts } => {
                assert_eq!(attempts, 3);
                assert_eq!(cause, Transient::Transport("refused".into()));
            }
            RetryError::Fatal(error) => panic!("unexpected fatal error {error}"),
        }
    }

    #[tokio::test]
    async fn retry_returns_fatal_errors_at_once() {
        let mut calls = 0;
        let result: Result<(), _> = retry(RetryPolicy::default(), || {
            calls += 1;
            async { Err(AttemptError::Fatal("denied".to_string())) }
        })
        .await;
        assert_eq!(calls, 1);
        assert!(matches!(result, Err(RetryError::Fatal(ref e)) if e == "denied"));
    }

    #[tokio::test]
    async fn retry_succeeds_after_transient_failures() {
        let policy = RetryPolicy {
            attempts: 4,
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
        };
        let mut calls = 0;
        let result = retry::<u32, String, _, _>(policy, || {
            calls += 1;
            let now = calls;
            async move {
                if now < 3 {
                    Err(AttemptError::Transient(Transient::Status {
                        status: 503,
                        code: "SlowDown".into(),
                    }))
                } else {
                    Ok(now)
                }
            }
        })
        .await;
        assert_eq!(result.unwrap(), 3);
    }
}
