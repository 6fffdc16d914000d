//! Errors of the backup locations, worded for the user with the fix when one is known.

/// A failed storage operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The location URL cannot be parsed.
    #[error("invalid location {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },

    /// A key leaves the location root or is malformed.
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },

    /// A write to a location marked read-only.
    #[error(
        "location {location} is read-only: rejected the write of {key}; use a writable location"
    )]
    ReadOnly { location: String, key: String },

    /// The key does not exist.
    #[error("{key} not found in {location}")]
    NotFound { location: String, key: String },

    /// No usable credentials, or an unreadable credentials file.
    #[error("{0}")]
    Credentials(String),

    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// The endpoint could not be reached after every attempt.
    #[error(
        "failed to reach s3 endpoint {endpoint}: {cause} after {attempts} attempts: check --endpoint"
    )]
    Unreachable {
        endpoint: String,
        cause: String,
        attempts: u32,
    },

    /// The endpoint returned a server-side error (5xx, 429) on every attempt.
    #[error(
        "s3 endpoint {endpoint} kept failing with HTTP {status}{code} after {attempts} attempts: retry later"
    )]
    Unavailable {
        endpoint: String,
        status: u16,
        code: String,
        attempts: u32,
    },

    /// The credentials were rejected (403: InvalidAccessKeyId, SignatureDoesNotMatch, AccessDenied).
    #[error(
        "access to s3://{bucket} at {endpoint} denied ({code}): check the credentials file, profile or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
    )]
    AccessDenied {
        bucket: String,
        endpoint: String,
        code: String,
    },

    /// The bucket does not exist.
    #[error(
        "bucket {bucket} does not exist at s3 endpoint {endpoint}: create it or fix the location URL"
    )]
    NoSuchBucket { bucket: String, endpoint: String },

    /// A LIST failed while a GET in the same bucket worked: the bucket is missing on a server
    /// that does not say so on GET, or the credentials lack the list permission.
    #[error(
        "failed to list bucket {bucket} at s3 endpoint {endpoint}: it does not exist or the credentials lack s3:ListBucket; create the bucket or fix the location URL"
    )]
    CannotList { bucket: String, endpoint: String },

    /// Any other unexpected S3 response.
    #[error("s3 {operation} of {key:?} at {endpoint} failed with HTTP {status}{code}")]
    Http {
        operation: &'static str,
        key: String,
        endpoint: String,
        status: u16,
        code: String,
    },

    /// The S3 client could not be set up (bad region or endpoint).
    #[error("invalid s3 settings: {0}")]
    Setup(String),
}

impl StoreError {
    /// Reports whether the error is a missing key.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }
}

impl From<StoreError> for shared::Error {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::InvalidUrl { .. } => shared::Error::usage(error),
            other => shared::Error::failed(other),
        }
    }
}
