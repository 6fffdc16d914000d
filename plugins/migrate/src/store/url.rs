//! Location URLs: `file:///absolute/folder` and `s3://BUCKET/PREFIX`.

use std::fmt;
use std::path::PathBuf;

use super::StoreError;

/// Storage kind and place of a location's objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// A local folder, absolute.
    File(PathBuf),
    /// A bucket and a key prefix without leading or trailing `/` (empty for the bucket root).
    S3 { bucket: String, prefix: String },
}

impl StoreUrl {
    /// Parses `file:///folder` or `s3://bucket/prefix`.
    pub fn parse(url: &str) -> Result<StoreUrl, StoreError> {
        let invalid = |reason: &str| StoreError::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };

        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(invalid(
                    "a file:// URL needs an absolute path, such as file:///var/backups",
                ));
            }
            let path = path.trim_end_matches('/');
            let path = if path.is_empty() { "/" } else { path };
            return Ok(StoreUrl::File(PathBuf::from(path)));
        }

        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            validate_bucket(bucket).map_err(|reason| invalid(&reason))?;
            let prefix = prefix.trim_matches('/');
            if prefix.split('/').any(|s| s == "." || s == "..") || prefix.contains("//") {
                return Err(invalid(
                    "the prefix must not contain empty, . or .. segments",
                ));
            }
            return Ok(StoreUrl::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            });
        }

        Err(invalid(
            "use file:///absolute/folder or s3://bucket/prefix, or the name of a configured location",
        ))
    }

    /// Reports whether the value looks like a URL rather than a location name.
    pub fn is_url(value: &str) -> bool {
        value.contains("://")
    }
}

/// Checks S3's bucket naming rules: 3 to 63 characters of lowercase letters, digits, `.` and
/// `-`, starting and ending with a letter or digit.
fn validate_bucket(bucket: &str) -> Result<(), String> {
    if bucket.is_empty() {
        return Err("the bucket name is missing: use s3://bucket/prefix".to_string());
    }
    if !(3..=63).contains(&bucket.len()) {
        return Err(format!(
            "bucket name {bucket:?} must be 3 to 63 characters long"
        ));
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-';
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !bucket.chars().all(allowed) || !edge(bucket.chars().next()) || !edge(bucket.chars().last())
    {
        return Err(format!(
            "bucket name {bucket:?} may contain only lowercase letters, digits, . and -, and must start and end with a letter or digit"
        ));
    }
    Ok(())
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::File(path) => write!(f, "file://{}", path.display()),
            StoreUrl::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            StoreUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_file_urls() {
        assert_eq!(
            StoreUrl::parse("file:///var/backups/").unwrap(),
            StoreUrl::File(PathBuf::from("/var/backups"))
        );
    }

    #[test]
    fn rejects_relative_file_urls() {
        let error = StoreUrl::parse("file://backups").unwrap_err();
        assert!(error.to_string().contains("absolute path"), "{error}");
    }

    #[test]
    fn parses_s3_urls() {
        assert_eq!(
            StoreUrl::parse("s3://my-bucket/team/prod/").unwrap(),
            StoreUrl::S3 {
                bucket: "my-bucket".into(),
                prefix: "team/prod".into()
            }
        );
        assert_eq!(
            StoreUrl::parse("s3://my-bucket").unwrap(),
            StoreUrl::S3 {
                bucket: "my-bucket".into(),
                prefix: String::new()
            }
        );
    }

    #[test]
    fn rejects_bad_bucket_names() {
        for url in [
            "s3://",
            "s3://AB",
            "s3://Upper-case",
            "s3://-dash",
            "s3://a_b_c",
        ] {
            assert!(StoreUrl::parse(url).is_err(), "{url} should be rejected");
        }
    }

    #[test]
    fn rejects_other_schemes() {
        let error = StoreUrl::parse("gs://bucket").unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid location \"gs://bucket\": use file:///absolute/folder or s3://bucket/prefix, or the name of a configured location"
        );
    }

    #[test]
    fn displays_round_trip() {
        for url in ["file:///tmp/x", "s3://bucket-1/a/b", "s3://bucket-1"] {
            assert_eq!(StoreUrl::parse(url).unwrap().to_string(), url);
        }
    }
}
