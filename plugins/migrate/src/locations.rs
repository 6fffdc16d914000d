//! Configured backup locations: `$XDG_CONFIG_HOME/kubectl-migrate/locations.yaml`, the default
//! folder `$XDG_DATA_HOME/kubectl-migrate/backups`, and turning `--location` into a store.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use shared::{Error, Result, ResultExt};

use crate::cli::{LocationArgs, S3Args};
use crate::store::{Addressing, CredentialSource, S3Options, StoreConfig, StoreUrl};

/// Name of the location used when none is configured as default.
pub const BUILT_IN_DEFAULT: &str = "default";

/// One configured location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    /// Name used with `--location`.
    pub name: String,
    /// `file://` or `s3://` URL.
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addressing: Option<Addressing>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Whether writes are rejected.
    #[serde(default)]
    pub read_only: bool,
}

/// The content of `locations.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocationsConfig {
    /// Name of the default location; the built-in folder when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Configured locations.
    #[serde(default)]
    pub locations: Vec<Location>,
}

/// Folders that the XDG base directory variables select.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `locations.yaml`.
    pub config_file: PathBuf,
    /// Folder of the built-in default location.
    pub default_folder: PathBuf,
}

impl Paths {
    /// Finds the paths from `XDG_CONFIG_HOME`, `XDG_DATA_HOME` and `HOME`, read through `env`.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Paths> {
        let home = env("HOME").filter(|h| !h.is_empty());
        let base = |variable: &str, fallback: &str| -> Result<PathBuf> {
            match env(variable).filter(|v| v.starts_with('/')) {
                Some(value) => Ok(PathBuf::from(value)),
                None => home.as_ref().map(|h| Path::new(h).join(fallback)).ok_or_else(|| {
                    Error::Config(format!(
                        "neither {variable} nor HOME is set: set one of them, or pass --location"
                    ))
                }),
            }
        };
        Ok(Paths {
            config_file: base("XDG_CONFIG_HOME", ".config")?.join("kubectl-migrate/locations.yaml"),
            default_folder: base("XDG_DATA_HOME", ".local/share")?.join("kubectl-migrate/backups"),
        })
    }

    /// Finds the paths from the process environment.
    pub fn from_process() -> Result<Paths> {
        Paths::from_env(&|name| std::env::var(name).ok())
    }
}

impl LocationsConfig {
    /// Reads the configuration; a missing file is an empty configuration.
    pub fn load(path: &Path) -> Result<LocationsConfig> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_yaml::from_str(&text).map_err(|error| {
                Error::Config(format!(
                    "invalid locations file {}: {error}: fix or remove it",
                    path.display()
                ))
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(error) => Err(error).context(|| format!("failed to read {}", path.display())),
        }
    }

    /// Writes the configuration through a temporary file and a rename.
    pub fn save(&self, path: &Path) -> Result<()> {
        let folder = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(folder)
            .context(|| format!("failed to create folder {}", folder.display()))?;
        let text = serde_yaml::to_string(self)
            .map_err(|error| Error::failed(format!("failed to encode locations: {error}")))?;
        let temp = tempfile::NamedTempFile::new_in(folder)
            .context(|| format!("failed to create a temporary file in {}", folder.display()))?;
        std::fs::write(temp.path(), text)
            .context(|| format!("failed to write {}", temp.path().display()))?;
        temp.persist(path)
            .map_err(|error| error.error)
            .context(|| format!("failed to write {}", path.display()))?;
        Ok(())
    }

    /// Finds a location by name.
    pub fn find(&self, name: &str) -> Option<&Location> {
        self.locations.iter().find(|l| l.name == name)
    }

    /// Returns the built-in default location for `paths`.
    pub fn built_in(paths: &Paths) -> Location {
        Location {
            name: BUILT_IN_DEFAULT.to_string(),
            url: format!("file://{}", paths.default_folder.display()),
            endpoint: None,
            region: None,
            addressing: None,
            credentials_file: None,
            profile: None,
            read_only: false,
        }
    }

    /// Resolves `--location`: a URL, a configured name, or the default.
    pub fn resolve(&self, paths: &Paths, args: &LocationArgs) -> Result<StoreConfig> {
        let location = match args.location.as_deref() {
            Some(value) if StoreUrl::is_url(value) => Location {
                url: value.to_string(),
                ..Self::built_in(paths)
            },
            Some(name) => match self.find(name) {
                Some(location) => location.clone(),
                None if name == BUILT_IN_DEFAULT => Self::built_in(paths),
                None => {
                    return Err(Error::usage(format!(
                        "unknown location {name:?}: pass a file:// or s3:// URL, or add it with `kubectl migrate location add {name} URL`"
                    )));
                }
            },
            None => match self.default.as_deref().and_then(|name| self.find(name)) {
                Some(location) => location.clone(),
                None => Self::built_in(paths),
            },
        };
        store_config(&location, &args.s3)
    }
}

/// Builds the store settings of a location; flags given on the command line override it.
pub fn store_config(location: &Location, flags: &S3Args) -> Result<StoreConfig> {
    let url = StoreUrl::parse(&location.url).map_err(Error::from)?;
    let credentials_file = flags
        .credentials_file
        .clone()
        .or_else(|| location.credentials_file.clone());
    let profile = flags
        .profile
        .clone()
        .or_else(|| location.profile.clone())
        .or_else(|| std::env::var("AWS_PROFILE").ok())
        .unwrap_or_else(|| "default".to_string());

    let mut s3 = S3Options {
        endpoint: flags.endpoint.clone().or_else(|| location.endpoint.clone()),
        addressing: flags.addressing.or(location.addressing).unwrap_or_default(),
        credentials: match credentials_file {
            Some(path) => CredentialSource::File { path, profile },
            None => CredentialSource::Environment,
        },
        ..S3Options::default()
    };
    if let Some(region) = flags.region.clone().or_else(|| location.region.clone()) {
        s3.region = region;
    }
    Ok(StoreConfig {
        url,
        s3,
        read_only: location.read_only,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn paths() -> Paths {
        let env: HashMap<&str, &str> = [("HOME", "/home/u")].into();
        Paths::from_env(&|name| env.get(name).map(|v| v.to_string())).unwrap()
    }

    #[test]
    fn paths_follow_xdg_defaults() {
        let paths = paths();
        assert_eq!(
            paths.config_file,
            Path::new("/home/u/.config/kubectl-migrate/locations.yaml")
        );
        assert_eq!(
            paths.default_folder,
            Path::new("/home/u/.local/share/kubectl-migrate/backups")
        );
    }

    #[test]
    fn paths_use_xdg_variables() {
        let env: HashMap<&str, &str> = [("XDG_CONFIG_HOME", "/c"), ("XDG_DATA_HOME", "/d")].into();
        let paths = Paths::from_env(&|name| env.get(name).map(|v| v.to_string())).unwrap();
        assert_eq!(
            paths.config_file,
            Path::new("/c/kubectl-migrate/locations.yaml")
        );
        assert_eq!(
            paths.default_folder,
            Path::new("/d/kubectl-migrate/backups")
        );
    }

    #[test]
    fn no_location_uses_the_data_folder() {
        let config = LocationsConfig::default()
            .resolve(&paths(), &LocationArgs::default())
            .unwrap();
        assert_eq!(
            config.url,
            StoreUrl::File("/home/u/.local/share/kubectl-migrate/backups".into())
        );
        assert!(!config.read_only);
    }

    #[test]
    fn configured_default_and_names_resolve() {
        let config = LocationsConfig {
            default: Some("bucket".into()),
            locations: vec![Location {
                name: "bucket".into(),
                url: "s3://team/prod".into(),
                endpoint: Some("http://127.0.0.1:9000".into()),
                region: Some("cn-beijing".into()),
                addressing: Some(Addressing::Path),
                credentials_file: Some("/etc/creds".into()),
                profile: Some("ks3".into()),
                read_only: true,
            }],
        };
        let resolved = config.resolve(&paths(), &LocationArgs::default()).unwrap();
        assert_eq!(
            resolved.url,
            StoreUrl::S3 {
                bucket: "team".into(),
                prefix: "prod".into()
            }
        );
        assert!(resolved.read_only);
        assert_eq!(resolved.s3.region, "cn-beijing");
        assert_eq!(
            resolved.s3.credentials,
            CredentialSource::File {
                path: "/etc/creds".into(),
                profile: "ks3".into()
            }
        );
    }

    #[test]
    fn unknown_names_are_usage_errors() {
        let args = LocationArgs {
            location: Some("nope".into()),
            ..LocationArgs::default()
        };
        let error = LocationsConfig::default()
            .resolve(&paths(), &args)
            .unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert!(error.to_string().contains("location add nope"), "{error}");
    }

    #[test]
    fn config_round_trips_through_yaml() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("sub/locations.yaml");
        let config = LocationsConfig {
            default: Some("a".into()),
            locations: vec![Location {
                name: "a".into(),
                ..LocationsConfig::built_in(&paths())
            }],
        };
        config.save(&path).unwrap();
        assert_eq!(LocationsConfig::load(&path).unwrap(), config);
    }
}
