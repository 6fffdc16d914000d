//! Fault injection: make chosen requests fail with a status, or slow every request down.

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A rule that fails matching requests.
#[derive(Debug, Clone)]
struct Rule {
    /// Fails the request with this 1-based sequence number; `None` matches by verb and resource.
    request_number: Option<u64>,
    /// Kubernetes verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, ...); "*" for any.
    verb: String,
    /// Plural resource, optionally with a subresource (`pods/log`); "*" for any.
    resource: String,
    status: u16,
    /// Remaining failures; `None` for unlimited.
    remaining: Option<u32>,
}

#[derive(Debug, Default)]
struct Inner {
    rules: Vec<Rule>,
    latency: Duration,
    /// Requests counted since start (authenticated API requests only).
    count: u64,
}

/// Handle to a server's fault rules; clones share them.
#[derive(Debug, Clone, Default)]
pub struct FaultInjector {
    inner: Arc<Mutex<Inner>>,
}

/// What to do with one request.
#[derive(Debug, Default)]
pub(crate) struct Decision {
    pub latency: Duration,
    pub fail_with: Option<u16>,
}

impl FaultInjector {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Fails the `n`th request from now (1 is the next one) with `status`:
    /// 500 InternalError, 429 TooManyRequests with `Retry-After: 1`, 403 Forbidden, or any
    /// other code as an `InternalError`-shaped Status with that code.
    pub fn fail_request(&self, n: u64, status: u16) {
        let mut inner = self.lock();
        let number = inner.count + n.max(1);
        inner.rules.push(Rule {
            request_number: Some(number),
            verb: "*".to_string(),
            resource: "*".to_string(),
            status,
            remaining: Some(1),
        });
    }

    /// Fails the next `times` requests with this verb on this resource (`"*"` matches any;
    /// `times == 0` means every matching request until [`FaultInjector::clear`]).
    pub fn fail(&self, verb: &str, resource: &str, status: u16, times: u32) {
        self.lock().rules.push(Rule {
            request_number: None,
            verb: verb.to_string(),
            resource: resource.to_string(),
            status,
            remaining: if times == 0 { None } else { Some(times) },
        });
    }

    /// Delays every request by `latency` before it is handled.
    pub fn latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Removes all rules and the latency.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.rules.clear();
        inner.latency = Duration::ZERO;
    }

    /// Returns how many API requests the server has received.
    pub fn request_count(&self) -> u64 {
        self.lock().count
    }

    /// Counts one request and decides whether it fails.
    pub(crate) fn decide(&self, verb: &str, resource: &str) -> Decision {
        let mut inner = self.lock();
        inner.count += 1;
        let count = inner.count;
        let latency = inner.latency;
        let mut fail_with = None;
        for rule in &mut inner.rules {
            if rule.remaining == Some(0) {
                continue;
            }
            let matched = match rule.request_number {
                Some(number) => number == count,
                None => {
                    (rule.verb == "*" || rule.verb == verb)
                        && (rule.resource == "*" || rule.resource == resource)
                }
            };
            if matched {
                if let Some(remaining) = &mut rule.remaining {
                    *remaining -= 1;
                }
                fail_with = Some(rule.status);
                break;
            }
        }
        inner.rules.retain(|rule| rule.remaining != Some(0));
        Decision { latency, fail_with }
    }
}
