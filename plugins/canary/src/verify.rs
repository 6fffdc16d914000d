//! HTTP probing for `verify`: requests to the URL the user gives, each response classified as
//! canary or stable, and the observed split compared with the expected weight.

use futures::StreamExt;
use serde::Serialize;

use crate::stats::{self, Interval};

/// Requests in flight at once.
const CONCURRENCY: usize = 8;

/// Rule that marks a response as coming from the canary.
#[derive(Debug, Clone)]
pub enum Classifier {
    /// The body matches this regular expression.
    Body(regex::Regex),
    /// The response has this header, with this exact value when one is given.
    Header {
        /// Header name.
        name: String,
        /// Expected value, if any.
        value: Option<String>,
    },
}

impl Classifier {
    /// Builds the classifier from `--canary-match REGEX` or `--canary-header NAME[:VALUE]`.
    pub fn from_flags(
        canary_match: Option<&str>,
        canary_header: Option<&str>,
    ) -> Result<Self, String> {
        match (canary_match, canary_header) {
            (Some(pattern), _) => regex::Regex::new(pattern)
                .map(Classifier::Body)
                .map_err(|e| {
                    format!(
                        "invalid --canary-match {pattern:?}: {}",
                        e.to_string().lines().last().unwrap_or("").trim()
                    )
                }),
            (None, Some(header)) => {
                let (name, value) = match header.split_once(':') {
                    Some((name, value)) => (name.trim(), Some(value.trim().to_string())),
                    None => (header.trim(), None),
                };
                if name.is_empty() {
                    return Err(format!(
                        "invalid --canary-header {header:?}: expected NAME or NAME:VALUE"
                    ));
                }
                Ok(Classifier::Header {
                    name: name.to_string(),
                    value,
                })
            }
            (None, None) => Err(
                "pass --canary-match REGEX or --canary-header NAME to tell canary responses apart"
                    .to_string(),
            ),
        }
    }

    /// Reports whether a response comes from the canary.
    pub fn is_canary(&self, headers: &reqwest::header::HeaderMap, body: &str) -> bool {
        match self {
            Classifier::Body(regex) => regex.is_match(body),
            Classifier::Header { name, value } => {
                headers
                    .get_all(name.as_str())
                    .iter()
                    .any(|actual| match value {
                        None => true,
                        Some(expected) => actual.to_str().is_ok_and(|a| a == expected),
                    })
            }
        }
    }
}

/// Requests to send: target, Host header, extra headers and cookies.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Target URL.
    pub url: String,
    /// Host header override.
    pub host: Option<String>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Cookies, sent in one Cookie header.
    pub cookies: Vec<(String, String)>,
    /// Timeout of each request.
    pub timeout: std::time::Duration,
    /// PEM certificates trusted for https besides the built-in web PKI roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Accept any server certificate.
    pub insecure: bool,
}

/// Counts of classified and failed requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Responses classified as canary.
    pub canary: u64,
    /// Responses classified as stable.
    pub stable: u64,
    /// Requests that failed or returned a 5xx status.
    pub failed: u64,
    /// The first failure, for the report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

/// Builds the HTTP client: no redirects, so that requests go only to the given URL.
fn client(probe: &Probe) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(probe.timeout)
        .danger_accept_invalid_certs(probe.insecure);
    if let Some(pem) = &probe.ca_pem {
        let certificates = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("invalid --certificate-authority: {e}"))?;
        if certificates.is_empty() {
            return Err(
                "invalid --certificate-authority: the file holds no PEM certificate".to_string(),
            );
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder
        .build()
        .map_err(|e| format!("failed to build the HTTP client: {e}"))
}

/// Sends `count` requests, at most 8 at a time, and classifies the responses.
pub async fn send(probe: &Probe, classifier: &Classifier, count: u64) -> Result<Tally, String> {
    let url = reqwest::Url::parse(&probe.url)
        .map_err(|e| format!("invalid --url {:?}: {e}", probe.url))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "invalid --url {:?}: only http and https are supported",
            probe.url
        ));
    }
    let client = client(probe)?;

    let results = futures::stream::iter(0..count)
        .map(|_| send_one(&client, url.clone(), probe, classifier))
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;

    let mut tally = Tally::default();
    for result in results {
        match result {
            Ok(true) => tally.canary += 1,
            Ok(false) => tally.stable += 1,
            Err(error) => {
                tally.failed += 1;
                tally.first_error.get_or_insert(error);
            }
        }
    }
    Ok(tally)
}

async fn send_one(
    client: &reqwest::Client,
    url: reqwest::Url,
    probe: &Probe,
    classifier: &Classifier,
) -> Result<bool, String> {
    let mut request = client.get(url);
    if let Some(host) = &probe.host {
        request = request.header(reqwest::header::HOST, host);
    }
    for (name, value) in &probe.headers {
        request = request.header(name, value);
    }
    if !probe.cookies.is_empty() {
        let cookie = probe
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        request = request.header(reqwest::header::COOKIE, cookie);
    }

    let response = request.send().await.map_err(|e| describe_error(&e))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.text().await.map_err(|e| describe_error(&e))?;
    if status.is_server_error() {
        return Err(format!("HTTP {status}"));
    }
    Ok(classifier.is_canary(&headers, &body))
}

fn describe_error(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// The outcome of a verify run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Requests sent.
    pub requests: u64,
    /// Classified and failed counts.
    #[serde(flatten)]
    pub tally: Tally,
    /// Observed canary share with its 95% interval, over the classified responses.
    pub interval: Option<Interval>,
    /// Expected canary share (0.0 to 1.0), if given.
    pub expected: Option<f64>,
    /// Whether the expected share lies within the interval.
    pub agrees: Option<bool>,
}

/// Builds the report from a tally and the expected share.
pub fn report(requests: u64, tally: Tally, expected: Option<f64>) -> Report {
    let interval = stats::wilson_interval(tally.canary, tally.canary + tally.stable);
    let agrees = match (&interval, expected) {
        (Some(interval), Some(expected)) => Some(stats::agrees(interval, expected)),
        _ => None,
    };
    Report {
        requests,
        tally,
        interval,
        expected,
        agrees,
    }
}

/// Renders the report as text.
pub fn render(report: &Report) -> String {
    let classified = report.tally.canary + report.tally.stable;
    let percent = |count: u64| {
        if classified == 0 {
            0.0
        } else {
            count as f64 * 100.0 / classified as f64
        }
    };
    let mut text = format!(
        "Requests: {} ({} failed)\n",
        report.requests, report.tally.failed
    );
    match &report.interval {
        Some(interval) => text.push_str(&format!(
            "Canary:   {} ({:.1}%, 95% interval {:.1}% to {:.1}%)\n",
            report.tally.canary,
            percent(report.tally.canary),
            interval.low * 100.0,
            interval.high * 100.0
        )),
        None => text.push_str(&format!("Canary:   {}\n", report.tally.canary)),
    }
    text.push_str(&format!(
        "Stable:   {} ({:.1}%)\n",
        report.tally.stable,
        percent(report.tally.stable)
    ));
    if let (Some(expected), Some(agrees)) = (report.expected, report.agrees) {
        let verdict = if agrees {
            "within the 95% interval"
        } else {
            "outside the 95% interval"
        };
        text.push_str(&format!("Expected: {:.1}% ({verdict})\n", expected * 100.0));
    }
    if let Some(error) = &report.tally.first_error {
        text.push_str(&format!("First failure: {error}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_classifier_checks_value() {
        let classifier = Classifier::from_flags(None, Some("X-Version: v2")).unwrap();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-version", "v1".parse().unwrap());
        assert!(!classifier.is_canary(&headers, ""));
        headers.insert("x-version", "v2".parse().unwrap());
        assert!(classifier.is_canary(&headers, ""));
    }

    #[test]
    fn body_classifier_uses_regex() {
        let classifier = Classifier::from_flags(Some("version: v2"), None).unwrap();
        let headers = reqwest::header::HeaderMap::new();
        assert!(classifier.is_canary(&headers, "Hello version: v2, instance: x"));
        assert!(!classifier.is_canary(&headers, "Hello version: v1"));
        assert!(Classifier::from_flags(Some("("), None).is_err());
    }

    #[test]
    fn report_flags_disagreement() {
        let tally = Tally {
            canary: 20,
            stable: 180,
            ..Tally::default()
        };
        let report = report(200, tally, Some(0.5));
        assert_eq!(report.agrees, Some(false));
        assert!(
            render(&report).contains("Expected: 50.0% (outside the 95% interval)"),
            "{}",
            render(&report)
        );
    }
}
