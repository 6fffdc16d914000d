//! Locations in an S3 bucket through rust-s3, with our own retries and error wording.

use std::path::Path;
use std::time::Duration;

use s3::Region;
use s3::bucket::Bucket;
use s3::creds::Credentials as S3Credentials;
use s3::error::S3Error;
use tokio::io::AsyncWriteExt;

use super::credentials::{CredentialSource, Credentials, resolve_credentials};
use super::retry::{AttemptError, RetryError, RetryPolicy, Transient, is_transient_status, retry};
use super::{ObjectInfo, StoreError};

/// Bucket addressing style of requests.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Addressing {
    /// Path-style for an endpoint given as an IP address or `localhost`, virtual-hosted otherwise.
    #[default]
    Auto,
    /// `https://endpoint/bucket/key`, as MinIO and most self-hosted servers expect.
    Path,
    /// `https://bucket.endpoint/key`, as AWS S3 and Kingsoft Cloud KS3 expect.
    Virtual,
}

/// How to reach an S3 service.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// Endpoint URL such as `https://ks3-cn-beijing.ksyuncs.com`; `None` means AWS for `region`.
    pub endpoint: Option<String>,
    /// Region name sent in the request signature.
    pub region: String,
    /// Path-style or virtual-hosted bucket addressing.
    pub addressing: Addressing,
    /// Source of the access keys.
    pub credentials: CredentialSource,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Time limit of one request.
    pub request_timeout: Duration,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            endpoint: None,
            region: "us-east-1".to_string(),
            addressing: Addressing::Auto,
            credentials: CredentialSource::Environment,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// A bucket and key prefix.
#[derive(Debug, Clone)]
pub struct S3Store {
    bucket: Box<Bucket>,
    bucket_name: String,
    prefix: String,
    endpoint: String,
    retry: RetryPolicy,
}

/// The request that failed, named in messages.
#[derive(Debug, Clone, Copy)]
enum Operation {
    Put,
    Get,
    Head,
    List,
    Delete,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Put => "PUT",
            Operation::Get => "GET",
            Operation::Head => "HEAD",
            Operation::List => "LIST",
            Operation::Delete => "DELETE",
        }
    }
}

impl S3Store {
    /// Sets up the client for `bucket` under `prefix`; sends no request.
    pub fn new(bucket: &str, prefix: &str, options: &S3Options) -> Result<S3Store, StoreError> {
        let credentials =
            resolve_credentials(&options.credentials, &|name| std::env::var(name).ok())?;
        Self::with_credentials(bucket, prefix, options, credentials)
    }

    /// Sets up the client with credentials already resolved.
    pub fn with_credentials(
        bucket: &str,
        prefix: &str,
        options: &S3Options,
        credentials: Credentials,
    ) -> Result<S3Store, StoreError> {
        // Retries are ours (see `RetryPolicy`), so that every request, PUT included, gets the
        // same bounded backoff and the final message can count the attempts.
        s3::set_retries(0);

        let region = match &options.endpoint {
            Some(endpoint) => {
                validate_endpoint(endpoint)?;
                Region::Custom {
                    region: options.region.clone(),
                    endpoint: endpoint.trim_end_matches('/').to_string(),
                }
            }
            None => options.region.parse::<Region>().map_err(|error| {
                StoreError::Setup(format!("invalid region {:?}: {error}", options.region))
            })?,
        };
        let endpoint = options
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("{}://{}", region.scheme(), region.host()));

        let s3_credentials = S3Credentials::new(
            Some(&credentials.access_key_id),
            Some(&credentials.secret_access_key),
            None,
            credentials.session_token.as_deref(),
            None,
        )
        .map_err(|error| StoreError::Setup(format!("invalid credentials: {error}")))?;
        let mut handle = Bucket::new(bucket, region, s3_credentials)
            .map_err(|error| StoreError::Setup(error.to_string()))?;
        if use_path_style(options.addressing, &endpoint) {
            handle.set_path_style();
        } else {
            handle.set_subdomain_style();
        }
        handle.set_request_timeout(Some(options.request_timeout));

        Ok(S3Store {
            bucket: handle,
            bucket_name: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            endpoint,
            retry: options.retry,
        })
    }

    fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    pub(super) async fn check(&self) -> Result<(), StoreError> {
        self.run(Operation::List, "", || self.probe()).await
    }

    /// Proves the endpoint, the credentials and the bucket with two small requests.
    ///
    /// A GET of a key that normally does not exist returns the S3 error code in its body
    /// (InvalidAccessKeyId, SignatureDoesNotMatch, NoSuchBucket, or NoSuchKey when all is well).
    /// Some servers (s3s-fs 0.14) answer NoSuchKey for a missing bucket, so a one-key LIST
    /// follows.
    async fn probe(&self) -> Result<(), AttemptError<StoreError>> {
        let key = self.full_key(".kubectl-migrate-probe");
        match self.bucket.get_object(&key).await {
            Ok(response) if is_success(response.status_code()) => {}
            Ok(response) => {
                let body = String::from_utf8_lossy(response.as_slice());
                let missing_key = s3_error_code(&body).as_deref() == Some("NoSuchKey");
                if !(response.status_code() == 404 && missing_key) {
                    return Err(self.classify_status(
                        Operation::List,
                        "",
                        response.status_code(),
                        &body,
                    ));
                }
            }
            Err(error) => return Err(self.classify_error(Operation::List, "", error)),
        }

        // rust-s3 parses the body of a LIST before its status, so an error answer surfaces as
        // an XML error and its code is lost.
        let prefix = self.full_key("");
        match self
            .bucket
            .list_page(prefix, None, None, None, Some(1))
            .await
        {
            Ok((_, status)) if is_success(status) => Ok(()),
            Ok((_, status)) => Err(self.classify_status(Operation::List, "", status, "")),
            Err(S3Error::SerdeXml(_)) => Err(AttemptError::Fatal(StoreError::CannotList {
                bucket: self.bucket_name.clone(),
                endpoint: self.endpoint.clone(),
            })),
            Err(error) => Err(self.classify_error(Operation::List, "", error)),
        }
    }

    pub(super) async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.full_key(key);
        self.run(Operation::Put, key, || async {
            match self.bucket.put_object(&path, bytes).await {
                Ok(response) if is_success(response.status_code()) => Ok(()),
                Ok(response) => Err(self.classify_status(
                    Operation::Put,
                    key,
                    response.status_code(),
                    &String::from_utf8_lossy(response.as_slice()),
                )),
                Err(error) => Err(self.classify_error(Operation::Put, key, error)),
            }
        })
        .await
    }

    pub(super) async fn put_file(&self, key: &str, source: &Path) -> Result<(), StoreError> {
        let path = self.full_key(key);
        self.run(Operation::Put, key, || async {
            let mut file = tokio::fs::File::open(source).await.map_err(|error| {
                AttemptError::Fatal(StoreError::Io {
                    context: format!("failed to open {}", source.display()),
                    source: error,
                })
            })?;
            match self.bucket.put_object_stream(&mut file, &path).await {
                Ok(response) if is_success(response.status_code()) => Ok(()),
                Ok(response) => {
                    Err(self.classify_status(Operation::Put, key, response.status_code(), ""))
                }
                Err(error) => Err(self.classify_error(Operation::Put, key, error)),
            }
        })
        .await
    }

    pub(super) async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.full_key(key);
        self.run(Operation::Get, key, || async {
            match self.bucket.get_object(&path).await {
                Ok(response) if is_success(response.status_code()) => Ok(response.to_vec()),
                Ok(response) => Err(self.classify_status(
                    Operation::Get,
                    key,
                    response.status_code(),
                    &String::from_utf8_lossy(response.as_slice()),
                )),
                Err(error) => Err(self.classify_error(Operation::Get, key, error)),
            }
        })
        .await
    }

    pub(super) async fn get_to_file(&self, key: &str, target: &Path) -> Result<(), StoreError> {
        // A GET that fails writes the error body, so check the key first and remove the
        // partial file when the download itself fails.
        if !self.exists(key).await? {
            return Err(self.not_found(key));
        }
        let path = self.full_key(key);
        let result = self
            .run(Operation::Get, key, || async {
                let mut file = tokio::fs::File::create(target).await.map_err(|error| {
                    AttemptError::Fatal(StoreError::Io {
                        context: format!("failed to create {}", target.display()),
                        source: error,
                    })
                })?;
                match self.bucket.get_object_to_writer(&path, &mut file).await {
                    Ok(status) if is_success(status) => {
                        // tokio's File finishes writes in the background: flush before closing.
                        file.flush().await.map_err(|error| {
                            AttemptError::Fatal(StoreError::Io {
                                context: format!("failed to write {}", target.display()),
                                source: error,
                            })
                        })
                    }
                    Ok(status) => Err(self.classify_status(Operation::Get, key, status, "")),
                    Err(error) => Err(self.classify_error(Operation::Get, key, error)),
                }
            })
            .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(target).await;
        }
        result
    }

    pub(super) async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let full_prefix = self.full_key(prefix);
        let root = self.full_key("");
        let mut objects = Vec::new();
        let mut continuation: Option<String> = None;

        // Bounded by the listing itself: every page either carries a new token or ends it.
        loop {
            let token = continuation.clone();
            let page = self
                .run(Operation::List, prefix, || async {
                    match self
                        .bucket
                        .list_page(full_prefix.clone(), None, token.clone(), None, None)
                        .await
                    {
                        Ok((page, status)) if is_success(status) => Ok(page),
                        Ok((_, status)) => {
                            Err(self.classify_status(Operation::List, prefix, status, ""))
                        }
                        // An error answer fails to parse as a listing: the probe finds its cause.
                        Err(S3Error::SerdeXml(_)) => Err(match self.probe().await {
                            Err(cause) => cause,
                            Ok(()) => AttemptError::Fatal(StoreError::CannotList {
                                bucket: self.bucket_name.clone(),
                                endpoint: self.endpoint.clone(),
                            }),
                        }),
                        Err(error) => Err(self.classify_error(Operation::List, prefix, error)),
                    }
                })
                .await?;
            for object in page.contents {
                if let Some(key) = object.key.strip_prefix(&root) {
                    objects.push(ObjectInfo {
                        key: key.to_string(),
                        size: object.size,
                    });
                }
            }
            match page.next_continuation_token {
                Some(next) if page.is_truncated && Some(&next) != continuation.as_ref() => {
                    continuation = Some(next)
                }
                _ => break,
            }
        }
        Ok(objects)
    }

    pub(super) async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.full_key(key);
        self.run(Operation::Delete, key, || async {
            match self.bucket.delete_object(&path).await {
                Ok(response) if is_success(response.status_code()) => Ok(()),
                Ok(response) if response.status_code() == 404 => Ok(()),
                Ok(response) => Err(self.classify_status(
                    Operation::Delete,
                    key,
                    response.status_code(),
                    &String::from_utf8_lossy(response.as_slice()),
                )),
                Err(error) => Err(self.classify_error(Operation::Delete, key, error)),
            }
        })
        .await
    }

    pub(super) async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        let path = self.full_key(key);
        self.run(Operation::Head, key, || async {
            match self.bucket.head_object(&path).await {
                Ok((_, status)) if is_success(status) => Ok(true),
                Ok((_, 404)) => Ok(false),
                Ok((_, status)) => Err(self.classify_status(Operation::Head, key, status, "")),
                Err(error) => Err(self.classify_error(Operation::Head, key, error)),
            }
        })
        .await
    }

    /// Runs one request with retries and turns exhausted retries into one clear error.
    async fn run<T, F, Fut>(
        &self,
        operation: Operation,
        key: &str,
        attempt: F,
    ) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, AttemptError<StoreError>>>,
    {
        match retry(self.retry, attempt).await {
            Ok(value) => Ok(value),
            Err(RetryError::Fatal(error)) => Err(error),
            Err(RetryError::Exhausted { cause, attempts }) => {
                tracing::debug!(
                    operation = operation.name(),
                    key,
                    ?cause,
                    "s3 request gave up"
                );
                Err(match cause {
                    Transient::Transport(cause) => StoreError::Unreachable {
                        endpoint: self.endpoint.clone(),
                        cause,
                        attempts,
                    },
                    Transient::Status { status, code } => StoreError::Unavailable {
                        endpoint: self.endpoint.clone(),
                        status,
                        code: code_suffix(&code),
                        attempts,
                    },
                })
            }
        }
    }

    fn classify_status(
        &self,
        operation: Operation,
        key: &str,
        status: u16,
        body: &str,
    ) -> AttemptError<StoreError> {
        let code = s3_error_code(body).unwrap_or_default();
        if is_transient_status(status) {
            return AttemptError::Transient(Transient::Status { status, code });
        }
        AttemptError::Fatal(classify_fatal(FatalResponse {
            operation: operation.name(),
            key,
            status,
            code: &code,
            bucket: &self.bucket_name,
            endpoint: &self.endpoint,
            location: &self.location(),
        }))
    }

    fn classify_error(
        &self,
        operation: Operation,
        key: &str,
        error: S3Error,
    ) -> AttemptError<StoreError> {
        match &error {
            S3Error::Reqwest(_) | S3Error::Io(_) => {
                AttemptError::Transient(Transient::Transport(describe_transport_error(&error)))
            }
            _ => AttemptError::Fatal(StoreError::Setup(format!(
                "s3 {} of {key:?} at {} failed: {error}",
                operation.name(),
                self.endpoint
            ))),
        }
    }

    fn location(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket_name)
        } else {
            format!("s3://{}/{}", self.bucket_name, self.prefix)
        }
    }

    fn not_found(&self, key: &str) -> StoreError {
        StoreError::NotFound {
            location: self.location(),
            key: key.to_string(),
        }
    }
}

/// The parts of a final (non-retried) S3 error response.
struct FatalResponse<'a> {
    operation: &'static str,
    key: &'a str,
    status: u16,
    code: &'a str,
    bucket: &'a str,
    endpoint: &'a str,
    location: &'a str,
}

/// Maps a non-retried S3 error response to the error reported to the user.
fn classify_fatal(response: FatalResponse<'_>) -> StoreError {
    let FatalResponse {
        operation,
        key,
        status,
        code,
        bucket,
        endpoint,
        location,
    } = response;
    match (status, code) {
        (_, "NoSuchBucket") => StoreError::NoSuchBucket {
            bucket: bucket.to_string(),
            endpoint: endpoint.to_string(),
        },
        (403, _) | (401, _) | (_, "InvalidAccessKeyId") | (_, "SignatureDoesNotMatch") => {
            StoreError::AccessDenied {
                bucket: bucket.to_string(),
                endpoint: endpoint.to_string(),
                code: if code.is_empty() {
                    format!("HTTP {status}")
                } else {
                    code.to_string()
                },
            }
        }
        (404, _) if operation == "GET" || operation == "HEAD" => StoreError::NotFound {
            location: location.to_string(),
            key: key.to_string(),
        },
        (404, _) if operation == "LIST" => StoreError::NoSuchBucket {
            bucket: bucket.to_string(),
            endpoint: endpoint.to_string(),
        },
        _ => StoreError::Http {
            operation,
            key: key.to_string(),
            endpoint: endpoint.to_string(),
            status,
            code: code_suffix(code),
        },
    }
}

fn code_suffix(code: &str) -> String {
    if code.is_empty() {
        String::new()
    } else {
        format!(" ({code})")
    }
}

fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

/// Reports whether path-style addressing applies.
pub fn use_path_style(addressing: Addressing, endpoint: &str) -> bool {
    match addressing {
        Addressing::Path => true,
        Addressing::Virtual => false,
        Addressing::Auto => {
            let host = endpoint
                .split_once("://")
                .map_or(endpoint, |(_, rest)| rest)
                .split('/')
                .next()
                .unwrap_or_default();
            let host = match host.rsplit_once(':') {
                Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
                _ => host,
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            host == "localhost" || host.parse::<std::net::IpAddr>().is_ok()
        }
    }
}

fn validate_endpoint(endpoint: &str) -> Result<(), StoreError> {
    let ok = (endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        && endpoint
            .split_once("://")
            .is_some_and(|(_, host)| !host.is_empty());
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidUrl {
            url: endpoint.to_string(),
            reason: "the endpoint must be an http:// or https:// URL, such as https://ks3-cn-beijing.ksyuncs.com".to_string(),
        })
    }
}

/// Returns the `<Code>` of an S3 XML error body.
pub fn s3_error_code(body: &str) -> Option<String> {
    let start = body.find("<Code>")? + "<Code>".len();
    let end = body[start..].find("</Code>")? + start;
    Some(body[start..end].trim().to_string())
}

/// Describes a failure without an HTTP answer in plain words ("connection refused",
/// "timed out"), taken from the innermost I/O error of the chain.
fn describe_transport_error(error: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost_io: Option<&std::io::Error> = None;
    let mut text = error.to_string();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(inner) = current {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            innermost_io = Some(io);
        }
        text = inner.to_string();
        current = inner.source();
    }
    match innermost_io.map(std::io::Error::kind) {
        Some(std::io::ErrorKind::ConnectionRefused) => "connection refused".to_string(),
        Some(std::io::ErrorKind::ConnectionReset) => "connection reset".to_string(),
        Some(std::io::ErrorKind::TimedOut) => "timed out".to_string(),
        _ if text.to_lowercase().contains("timed out") => "timed out".to_string(),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials() -> Credentials {
        Credentials {
            access_key_id: "AKIATEST".into(),
            secret_access_key: "secret".into(),
            session_token: None,
        }
    }

    #[test]
    fn auto_addressing_uses_path_style_for_addresses() {
        assert!(use_path_style(Addressing::Auto, "http://127.0.0.1:9000"));
        assert!(use_path_style(Addressing::Auto, "http://localhost:9000/"));
        assert!(use_path_style(Addressing::Auto, "http://[::1]:9000"));
        assert!(!use_path_style(
            Addressing::Auto,
            "https://ks3-cn-beijing.ksyuncs.com"
        ));
        assert!(use_path_style(Addressing::Path, "https://s3.example.com"));
        assert!(!use_path_style(
            Addressing::Virtual,
            "http://127.0.0.1:9000"
        ));
    }

    #[test]
    fn error_code_is_read_from_the_body() {
        let body =
            "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>x</Message></Error>";
        assert_eq!(s3_error_code(body).as_deref(), Some("NoSuchBucket"));
        assert_eq!(s3_error_code(""), None);
    }

    #[test]
    fn fatal_responses_are_worded_for_the_user() {
        let response = |status, code| FatalResponse {
            operation: "GET",
            key: "backups/b/manifest.json",
            status,
            code,
            bucket: "backups",
            endpoint: "http://127.0.0.1:9000",
            location: "s3://backups",
        };
        assert_eq!(
            classify_fatal(response(404, "NoSuchBucket")).to_string(),
            "bucket backups does not exist at s3 endpoint http://127.0.0.1:9000: create it or fix the location URL"
        );
        assert!(classify_fatal(response(404, "NoSuchKey")).is_not_found());
        assert_eq!(
            classify_fatal(response(403, "InvalidAccessKeyId")).to_string(),
            "access to s3://backups at http://127.0.0.1:9000 denied (InvalidAccessKeyId): check the credentials file, profile or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        );
    }

    #[test]
    fn keys_are_joined_under_the_prefix() {
        let options = S3Options {
            endpoint: Some("http://127.0.0.1:9".into()),
            ..S3Options::default()
        };
        let store =
            S3Store::with_credentials("bucket", "/team/a/", &options, credentials()).unwrap();
        assert_eq!(store.full_key("backups/x"), "team/a/backups/x");
        let store = S3Store::with_credentials("bucket", "", &options, credentials()).unwrap();
        assert_eq!(store.full_key("backups/x"), "backups/x");
    }

    #[test]
    fn endpoint_must_be_http() {
        let options = S3Options {
            endpoint: Some("127.0.0.1:9000".into()),
            ..S3Options::default()
        };
        let error = S3Store::with_credentials("bucket", "", &options, credentials()).unwrap_err();
        assert!(error.to_string().contains("http:// or https://"), "{error}");
    }

    #[tokio::test]
    async fn closed_port_gives_one_clear_line() {
        // A port just released by a listener has nothing listening on it.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let endpoint = format!("http://127.0.0.1:{port}");
        let options = S3Options {
            endpoint: Some(endpoint.clone()),
            retry: RetryPolicy {
                attempts: 4,
                initial_delay: Duration::from_millis(5),
                max_delay: Duration::from_millis(5),
            },
            ..S3Options::default()
        };
        let store = S3Store::with_credentials("bucket", "", &options, credentials()).unwrap();
        let error = store.get("a").await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "failed to reach s3 endpoint {endpoint}: connection refused after 4 attempts: check --endpoint"
            )
        );
    }
}
