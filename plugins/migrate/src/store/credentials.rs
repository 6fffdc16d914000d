//! S3 credentials from an AWS-style INI file or the AWS environment variables.
//!
//! The file may use the AWS keys (`aws_access_key_id`, `aws_secret_access_key`,
//! `aws_session_token`) or the Kingsoft Cloud ones (`ksyun_access_key_id`,
//! `ksyun_access_key_secret`). Secrets never appear in `Debug` output or in messages.

use std::fmt;
use std::path::{Path, PathBuf};

use super::StoreError;

/// An access key pair, with an optional session token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Access key ID; not secret, shown in messages.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Source of the credentials of an S3 location.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CredentialSource {
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, else the default
    /// shared credentials file (`AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`).
    #[default]
    Environment,
    /// A credentials file in AWS INI form and the profile (section) to read.
    File { path: PathBuf, profile: String },
}

/// Resolves credentials from `source`. `environment` reads a variable; tests pass their own.
pub fn resolve_credentials(
    source: &CredentialSource,
    environment: &dyn Fn(&str) -> Option<String>,
) -> Result<Credentials, StoreError> {
    match source {
        CredentialSource::File { path, profile } => read_credentials_file(path, profile),
        CredentialSource::Environment => {
            let variable = |name: &str| environment(name).filter(|value| !value.is_empty());
            if let Some(access_key_id) = variable("AWS_ACCESS_KEY_ID") {
                let secret_access_key = variable("AWS_SECRET_ACCESS_KEY").ok_or_else(|| {
                    StoreError::Credentials(
                        "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both"
                            .to_string(),
                    )
                })?;
                return Ok(Credentials {
                    access_key_id,
                    secret_access_key,
                    session_token: variable("AWS_SESSION_TOKEN"),
                });
            }

            let default_file = variable("AWS_SHARED_CREDENTIALS_FILE")
                .map(PathBuf::from)
                .or_else(|| variable("HOME").map(|home| Path::new(&home).join(".aws/credentials")));
            let profile = variable("AWS_PROFILE").unwrap_or_else(|| "default".to_string());
            match default_file {
                Some(path) if path.exists() => read_credentials_file(&path, &profile),
                _ => Err(StoreError::Credentials(
                    "no s3 credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or pass --credentials-file".to_string(),
                )),
            }
        }
    }
}

/// Reads `profile` from an AWS INI credentials file, warning when others may read the file.
fn read_credentials_file(path: &Path, profile: &str) -> Result<Credentials, StoreError> {
    let text = std::fs::read_to_string(path).map_err(|source| StoreError::Io {
        context: format!(
            "failed to read credentials file {}: check --credentials-file",
            path.display()
        ),
        source,
    })?;
    warn_if_world_readable(path);

    parse_credentials(&text, profile).map_err(|reason| {
        StoreError::Credentials(format!(
            "invalid credentials file {}: {reason}",
            path.display()
        ))
    })
}

#[cfg(unix)]
fn warn_if_world_readable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = std::fs::metadata(path)
        && is_world_readable(metadata.permissions().mode())
    {
        tracing::warn!(
            "credentials file {} is readable by every user: run chmod 600 {}",
            path.display(),
            path.display()
        );
    }
}

#[cfg(not(unix))]
fn warn_if_world_readable(_path: &Path) {}

/// Reports whether a Unix file mode lets every user read the file.
pub fn is_world_readable(mode: u32) -> bool {
    mode & 0o004 != 0
}

/// Parses the section `profile` of an INI credentials file. Sections are `[name]` or
/// `[profile name]`; `#` and `;` start comments; keys are case-insensitive.
pub fn parse_credentials(text: &str, profile: &str) -> Result<Credentials, String> {
    let mut in_profile = false;
    let mut found_profile = false;
    let mut access_key_id = None;
    let mut secret_access_key = None;
    let mut session_token = None;

    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            let section = section.trim();
            let name = section.strip_prefix("profile ").unwrap_or(section).trim();
            in_profile = name == profile;
            found_profile |= in_profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim().to_string();
        match key.trim().to_ascii_lowercase().as_str() {
            "aws_access_key_id" | "ksyun_access_key_id" => access_key_id = Some(value),
            "aws_secret_access_key" | "ksyun_access_key_secret" => secret_access_key = Some(value),
            "aws_session_token" => session_token = Some(value),
            _ => {}
        }
    }

    if !found_profile {
        return Err(format!(
            "profile [{profile}] not found: pass --profile with an existing section"
        ));
    }
    let access_key_id = access_key_id.filter(|v| !v.is_empty()).ok_or_else(|| {
        format!("profile [{profile}] has no aws_access_key_id or ksyun_access_key_id")
    })?;
    let secret_access_key = secret_access_key.filter(|v| !v.is_empty()).ok_or_else(|| {
        format!("profile [{profile}] has no aws_secret_access_key or ksyun_access_key_secret")
    })?;
    Ok(Credentials {
        access_key_id,
        secret_access_key,
        session_token: session_token.filter(|v| !v.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const FILE: &str = "\
# shared credentials
[default]
aws_access_key_id = AKIADEFAULT
aws_secret_access_key = default-secret

[profile ksyun]
ksyun_access_key_id=AKLTKS
ksyun_access_key_secret = ks-secret ; not a comment inside a value

[temporary]
AWS_ACCESS_KEY_ID = ASIATEMP
aws_secret_access_key = temp-secret
aws_session_token = token-1
";

    #[test]
    fn parses_the_default_profile() {
        let credentials = parse_credentials(FILE, "default").unwrap();
        assert_eq!(credentials.access_key_id, "AKIADEFAULT");
        assert_eq!(credentials.secret_access_key, "default-secret");
        assert_eq!(credentials.session_token, None);
    }

    #[test]
    fn parses_ksyun_keys() {
        let credentials = parse_credentials(FILE, "ksyun").unwrap();
        assert_eq!(credentials.access_key_id, "AKLTKS");
        assert_eq!(
            credentials.secret_access_key,
            "ks-secret ; not a comment inside a value"
        );
    }

    #[test]
    fn parses_session_tokens_and_uppercase_keys() {
        let credentials = parse_credentials(FILE, "temporary").unwrap();
        assert_eq!(credentials.access_key_id, "ASIATEMP");
        assert_eq!(credentials.session_token.as_deref(), Some("token-1"));
    }

    #[test]
    fn missing_profile_is_named() {
        let error = parse_credentials(FILE, "prod").unwrap_err();
        assert_eq!(
            error,
            "profile [prod] not found: pass --profile with an existing section"
        );
    }

    #[test]
    fn missing_secret_is_named() {
        let error = parse_credentials("[default]\naws_access_key_id = A\n", "default").unwrap_err();
        assert!(error.contains("aws_secret_access_key"), "{error}");
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let credentials = parse_credentials(FILE, "temporary").unwrap();
        let text = format!("{credentials:?}");
        assert!(!text.contains("temp-secret"), "{text}");
        assert!(!text.contains("token-1"), "{text}");
        assert!(text.contains("ASIATEMP"), "{text}");
    }

    #[test]
    fn environment_variables_are_used_first() {
        let env: HashMap<&str, &str> = [
            ("AWS_ACCESS_KEY_ID", "AKIAENV"),
            ("AWS_SECRET_ACCESS_KEY", "env-secret"),
            ("AWS_SESSION_TOKEN", "env-token"),
        ]
        .into();
        let lookup = |name: &str| env.get(name).map(|v| v.to_string());
        let credentials = resolve_credentials(&CredentialSource::Environment, &lookup).unwrap();
        assert_eq!(credentials.access_key_id, "AKIAENV");
        assert_eq!(credentials.session_token.as_deref(), Some("env-token"));
    }

    #[test]
    fn missing_environment_is_a_clear_error() {
        let lookup = |_: &str| None;
        let error = resolve_credentials(&CredentialSource::Environment, &lookup).unwrap_err();
        assert!(error.to_string().contains("--credentials-file"), "{error}");
    }

    #[test]
    fn credentials_file_is_read_by_profile() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("credentials");
        std::fs::write(&path, FILE).unwrap();
        let source = CredentialSource::File {
            path,
            profile: "ksyun".into(),
        };
        let credentials = resolve_credentials(&source, &|_| None).unwrap();
        assert_eq!(credentials.access_key_id, "AKLTKS");
    }

    #[test]
    fn world_readable_modes() {
        assert!(is_world_readable(0o644));
        assert!(!is_world_readable(0o600));
        assert!(!is_world_readable(0o640));
    }
}
