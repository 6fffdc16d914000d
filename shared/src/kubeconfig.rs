//! kubectl's global flags and the cluster configuration they select: kubeconfig files merged
//! the way kubectl merges them, the chosen context, cluster and user, and the namespace.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::{Error, Result};

/// kubectl's global flags, flattened into every plugin command.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct KubeArgs {
    /// Path to the kubeconfig file to use instead of $KUBECONFIG and ~/.kube/config.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        help_heading = "Cluster flags"
    )]
    pub kubeconfig: Option<PathBuf>,

    /// Name of the kubeconfig context to use.
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        help_heading = "Cluster flags"
    )]
    pub context: Option<String>,

    /// Name of the kubeconfig cluster to use.
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        help_heading = "Cluster flags"
    )]
    pub cluster: Option<String>,

    /// Name of the kubeconfig user to use.
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        help_heading = "Cluster flags"
    )]
    pub user: Option<String>,

    /// Namespace for this request; defaults to the context's namespace, then "default".
    #[arg(
        short = 'n',
        long,
        global = true,
        value_name = "NAME",
        help_heading = "Cluster flags"
    )]
    pub namespace: Option<String>,

    /// Time to wait for one API request before giving up ("0" waits forever), e.g. 30s, 1m, 2m30s.
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_request_timeout,
          default_value = "0", help_heading = "Cluster flags")]
    pub request_timeout: RequestTimeout,

    /// Log level: 0 shows warnings, 2 info, 4 debug, 6 and above trace.
    #[arg(
        short = 'v',
        long = "v",
        global = true,
        value_name = "LEVEL",
        default_value_t = 0,
        help_heading = "Cluster flags"
    )]
    pub verbosity: u8,
}

/// Per-request timeout from `--request-timeout`; `None` waits forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestTimeout(pub Option<Duration>);

/// Parses kubectl's `--request-timeout`: a bare number of seconds or a duration such as `1m30s`.
pub fn parse_request_timeout(value: &str) -> Result<RequestTimeout, String> {
    let duration = parse_duration(value).map_err(|_| {
        format!("invalid timeout {value:?}: use a number of seconds or a duration such as 30s, 1m, 2m30s")
    })?;
    Ok(RequestTimeout((!duration.is_zero()).then_some(duration)))
}

/// Parses a Go-style duration (`1h2m3s`, `500ms`, `90s`) or a bare number of seconds.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("empty duration".to_string());
    }
    if let Ok(seconds) = value.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }

    let mut total = Duration::ZERO;
    let mut rest = value;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("invalid duration {value:?}"));
        }
        let number: f64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration {value:?}"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => {
                return Err(format!(
                    "invalid duration {value:?}: units are ms, s, m and h"
                ));
            }
        };
        total += Duration::from_secs_f64(number * seconds_per_unit);
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// A cluster selected by the global flags: the client configuration and the namespace.
#[derive(Debug, Clone)]
pub struct ClusterTarget {
    /// Client configuration for the selected context.
    pub config: kube::Config,
    /// Namespace from `-n`, else the context's namespace, else "default".
    pub namespace: String,
    /// Whether the namespace came from `-n/--namespace`.
    pub namespace_explicit: bool,
    /// Name of the selected context, `None` for in-cluster configuration.
    pub context: Option<String>,
}

impl ClusterTarget {
    /// Builds a client for this cluster.
    pub fn client(&self) -> Result<kube::Client> {
        kube::Client::try_from(self.config.clone()).map_err(|source| {
            Error::Config(format!(
                "failed to build a client for the cluster: {source}"
            ))
        })
    }
}

/// Source of the kubeconfig, used to name the paths tried in errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeconfigSource {
    /// `--kubeconfig FILE`.
    Flag(PathBuf),
    /// The files listed in `$KUBECONFIG`.
    Env(Vec<PathBuf>),
    /// `~/.kube/config`.
    Home(PathBuf),
}

impl KubeArgs {
    /// Loads the cluster configuration the flags select, as kubectl does: `--kubeconfig`, else
    /// the merged `$KUBECONFIG` files, else `~/.kube/config`, else the in-cluster service account.
    pub async fn load(&self) -> Result<ClusterTarget> {
        let env_value = std::env::var_os("KUBECONFIG");
        let home = home_dir();
        let kubeconfig = match kubeconfig_candidates(
            self.kubeconfig.as_deref(),
            env_value.as_deref(),
            home.as_deref(),
        ) {
            Some(source) => read_kubeconfig(&source)?,
            None => None,
        };

        let Some(kubeconfig) = kubeconfig else {
            if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
                return self.load_in_cluster();
            }
            return Err(Error::Config(no_kubeconfig_message(
                env_value.as_deref(),
                home.as_deref(),
            )));
        };
        self.load_from(kubeconfig).await
    }

    /// Loads the configuration from an already merged kubeconfig.
    pub async fn load_from(&self, kubeconfig: Kubeconfig) -> Result<ClusterTarget> {
        let context = select_context(&kubeconfig, self.context.as_deref())?;
        let context_namespace = context_namespace(&kubeconfig, &context);
        let options = KubeConfigOptions {
            context: Some(context.clone()),
            cluster: self.cluster.clone(),
            user: self.user.clone(),
        };
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|source| {
                Error::Config(format!(
                    "invalid kubeconfig for context {context:?}: {source}"
                ))
            })?;
        self.apply_timeout(&mut config);

        let (namespace, namespace_explicit) =
            choose_namespace(self.namespace.as_deref(), context_namespace.as_deref());
        Ok(ClusterTarget {
            config,
            namespace,
            namespace_explicit,
            context: Some(context),
        })
    }

    fn load_in_cluster(&self) -> Result<ClusterTarget> {
        let mut config = kube::Config::incluster().map_err(|source| {
            Error::Config(format!(
                "failed to load the in-cluster configuration: {source}"
            ))
        })?;
        self.apply_timeout(&mut config);
        let (namespace, namespace_explicit) = choose_namespace(
            self.namespace.as_deref(),
            Some(config.default_namespace.as_str()),
        );
        Ok(ClusterTarget {
            config,
            namespace,
            namespace_explicit,
            context: None,
        })
    }

    fn apply_timeout(&self, config: &mut kube::Config) {
        if let Some(timeout) = self.request_timeout.0 {
            config.connect_timeout = Some(timeout);
            config.read_timeout = Some(timeout);
            config.write_timeout = Some(timeout);
        }
    }
}

/// Chooses the kubeconfig files to read, in kubectl's order of precedence.
pub fn kubeconfig_candidates(
    flag: Option<&Path>,
    env_value: Option<&std::ffi::OsStr>,
    home: Option<&Path>,
) -> Option<KubeconfigSource> {
    if let Some(path) = flag {
        return Some(KubeconfigSource::Flag(path.to_path_buf()));
    }
    if let Some(value) = env_value.filter(|value| !value.is_empty()) {
        let paths: Vec<PathBuf> = std::env::split_paths(value)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        if !paths.is_empty() {
            return Some(KubeconfigSource::Env(paths));
        }
    }
    let default = home?.join(".kube").join("config");
    default.exists().then_some(KubeconfigSource::Home(default))
}

/// Reads the kubeconfig files of `source`. Missing files in `$KUBECONFIG` are skipped as kubectl
/// skips them; a missing `--kubeconfig` file or an unreadable file is an error.
pub fn read_kubeconfig(source: &KubeconfigSource) -> Result<Option<Kubeconfig>> {
    match source {
        KubeconfigSource::Flag(path) => {
            if !path.exists() {
                return Err(Error::Config(format!(
                    "kubeconfig {} (from --kubeconfig) does not exist: pass an existing file",
                    path.display()
                )));
            }
            Ok(Some(read_one(path)?))
        }
        KubeconfigSource::Home(path) => Ok(Some(read_one(path)?)),
        KubeconfigSource::Env(paths) => {
            let mut files = Vec::new();
            for path in paths.iter().filter(|path| path.exists()) {
                files.push(read_one(path)?);
            }
            Ok(merge_kubeconfigs(files))
        }
    }
}

fn read_one(path: &Path) -> Result<Kubeconfig> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        Error::Config(format!(
            "failed to read kubeconfig {}: {source}: check its permissions or pass another file with --kubeconfig",
            path.display()
        ))
    })?;
    let mut config = Kubeconfig::from_yaml(&text).map_err(|source| {
        Error::Config(format!("invalid kubeconfig {}: {source}", path.display()))
    })?;
    resolve_relative_paths(&mut config, path.parent().unwrap_or(Path::new(".")));
    Ok(config)
}

/// Makes file references relative to the kubeconfig's own folder, as kubectl resolves them.
fn resolve_relative_paths(config: &mut Kubeconfig, folder: &Path) {
    let absolute = |value: &mut Option<String>| {
        if let Some(path) = value
            .as_mut()
            .filter(|p| !p.is_empty() && Path::new(p.as_str()).is_relative())
        {
            *path = folder.join(path.as_str()).to_string_lossy().into_owned();
        }
    };
    for cluster in config
        .clusters
        .iter_mut()
        .filter_map(|named| named.cluster.as_mut())
    {
        absolute(&mut cluster.certificate_authority);
    }
    for user in config
        .auth_infos
        .iter_mut()
        .filter_map(|named| named.auth_info.as_mut())
    {
        absolute(&mut user.client_certificate);
        absolute(&mut user.client_key);
        absolute(&mut user.token_file);
    }
}

/// Merges kubeconfig files the way kubectl merges `$KUBECONFIG`: for each named cluster, user
/// and context the first file that defines it wins, and so does the first `current-context`.
pub fn merge_kubeconfigs(files: Vec<Kubeconfig>) -> Option<Kubeconfig> {
    let mut files = files.into_iter();
    let mut merged = files.next()?;
    for file in files {
        if merged.current_context.as_deref().is_none_or(str::is_empty) {
            merged.current_context = file.current_context;
        }
        if merged.preferences.is_none() {
            merged.preferences = file.preferences;
        }
        for cluster in file.clusters {
            if !merged
                .clusters
                .iter()
                .any(|known| known.name == cluster.name)
            {
                merged.clusters.push(cluster);
            }
        }
        for user in file.auth_infos {
            if !merged
                .auth_infos
                .iter()
                .any(|known| known.name == user.name)
            {
                merged.auth_infos.push(user);
            }
        }
        for context in file.contexts {
            if !merged
                .contexts
                .iter()
                .any(|known| known.name == context.name)
            {
                merged.contexts.push(context);
            }
        }
    }
    Some(merged)
}

/// Picks the context named by `--context`, else the current context, and checks that it exists.
pub fn select_context(kubeconfig: &Kubeconfig, flag: Option<&str>) -> Result<String> {
    let known: Vec<&str> = kubeconfig
        .contexts
        .iter()
        .map(|named| named.name.as_str())
        .collect();
    let name = match flag
        .or(kubeconfig.current_context.as_deref())
        .filter(|name| !name.is_empty())
    {
        Some(name) => name,
        None if known.len() == 1 => known[0],
        None => {
            return Err(Error::Config(format!(
                "the kubeconfig has no current context: pass --context with one of: {}",
                list_or_none(&known)
            )));
        }
    };
    if !known.contains(&name) {
        return Err(Error::Config(format!(
            "context {name:?} not found in the kubeconfig: use one of: {}",
            list_or_none(&known)
        )));
    }
    Ok(name.to_string())
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "<none>".to_string()
    } else {
        names.join(", ")
    }
}

/// Returns the namespace set on the named context, if any.
pub fn context_namespace(kubeconfig: &Kubeconfig, context: &str) -> Option<String> {
    kubeconfig
        .contexts
        .iter()
        .find(|named| named.name == context)
        .and_then(|named| named.context.as_ref())
        .and_then(|context| context.namespace.clone())
        .filter(|namespace| !namespace.is_empty())
}

/// Chooses the request namespace: `-n`, else the context's, else "default".
/// The flag returns whether `-n` chose it.
pub fn choose_namespace(flag: Option<&str>, context: Option<&str>) -> (String, bool) {
    match flag.filter(|namespace| !namespace.is_empty()) {
        Some(namespace) => (namespace.to_string(), true),
        None => (
            context
                .filter(|n| !n.is_empty())
                .unwrap_or("default")
                .to_string(),
            false,
        ),
    }
}

fn no_kubeconfig_message(env_value: Option<&std::ffi::OsStr>, home: Option<&Path>) -> String {
    let mut tried = Vec::new();
    match env_value.filter(|value| !value.is_empty()) {
        Some(value) => tried.push(format!("$KUBECONFIG={}", value.to_string_lossy())),
        None => tried.push("$KUBECONFIG (unset)".to_string()),
    }
    if let Some(home) = home {
        tried.push(home.join(".kube").join("config").display().to_string());
    }
    tried.push("in-cluster service account (not running in a pod)".to_string());
    format!(
        "no kubeconfig found (tried {}): pass --kubeconfig FILE, set KUBECONFIG, or create ~/.kube/config",
        tried.join(", ")
    )
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser, Debug)]
    struct TestCli {
        #[command(flatten)]
        kube: KubeArgs,
    }

    fn kubeconfig_yaml(
        current: &str,
        contexts: &[(&str, &str, Option<&str>)],
        server: &str,
    ) -> String {
        let mut text =
            format!("apiVersion: v1\nkind: Config\ncurrent-context: {current:?}\nclusters:\n");
        let mut clusters: Vec<&str> = contexts.iter().map(|(_, cluster, _)| *cluster).collect();
        clusters.dedup();
        for cluster in clusters {
            text += &format!("- name: {cluster}\n  cluster:\n    server: {server}\n");
        }
        text += "users:\n- name: admin\n  user:\n    token: secret-token\ncontexts:\n";
        for (name, cluster, namespace) in contexts {
            text +=
                &format!("- name: {name}\n  context:\n    cluster: {cluster}\n    user: admin\n");
            if let Some(namespace) = namespace {
                text += &format!("    namespace: {namespace}\n");
            }
        }
        text
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn flags_parse_like_kubectl() {
        let cli = TestCli::try_parse_from([
            "kubectl-test",
            "--kubeconfig",
            "/tmp/k",
            "--context",
            "prod",
            "-n",
            "shop",
            "--request-timeout",
            "1m30s",
            "--v=4",
            "--cluster",
            "c1",
            "--user",
            "u1",
        ])
        .unwrap();
        assert_eq!(cli.kube.kubeconfig.as_deref(), Some(Path::new("/tmp/k")));
        assert_eq!(cli.kube.context.as_deref(), Some("prod"));
        assert_eq!(cli.kube.namespace.as_deref(), Some("shop"));
        assert_eq!(cli.kube.cluster.as_deref(), Some("c1"));
        assert_eq!(cli.kube.user.as_deref(), Some("u1"));
        assert_eq!(
            cli.kube.request_timeout,
            RequestTimeout(Some(Duration::from_secs(90)))
        );
        assert_eq!(cli.kube.verbosity, 4);
    }

    #[test]
    fn short_verbosity_flag() {
        let cli = TestCli::try_parse_from(["kubectl-test", "-v", "6"]).unwrap();
        assert_eq!(cli.kube.verbosity, 6);
    }

    #[test]
    fn request_timeout_zero_means_none() {
        assert_eq!(parse_request_timeout("0").unwrap(), RequestTimeout(None));
        assert_eq!(
            parse_request_timeout("5").unwrap(),
            RequestTimeout(Some(Duration::from_secs(5)))
        );
        assert_eq!(
            parse_request_timeout("500ms").unwrap(),
            RequestTimeout(Some(Duration::from_millis(500)))
        );
    }

    #[test]
    fn request_timeout_rejects_garbage() {
        let error = parse_request_timeout("soon").unwrap_err();
        assert!(error.contains("\"soon\""), "{error}");
        assert!(TestCli::try_parse_from(["kubectl-test", "--request-timeout", "3x"]).is_err());
    }

    #[test]
    fn flag_beats_env_and_home() {
        let source = kubeconfig_candidates(
            Some(Path::new("/a")),
            Some(std::ffi::OsStr::new("/b:/c")),
            Some(Path::new("/home/u")),
        );
        assert_eq!(source, Some(KubeconfigSource::Flag("/a".into())));
    }

    #[test]
    fn env_paths_split_in_order() {
        let source = kubeconfig_candidates(None, Some(std::ffi::OsStr::new("/b::/c")), None);
        assert_eq!(
            source,
            Some(KubeconfigSource::Env(vec!["/b".into(), "/c".into()]))
        );
    }

    #[test]
    fn home_config_used_when_present() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(kubeconfig_candidates(None, None, Some(dir.path())), None);
        std::fs::create_dir(dir.path().join(".kube")).unwrap();
        write(
            &dir.path().join(".kube"),
            "config",
            "apiVersion: v1\nkind: Config\n",
        );
        assert_eq!(
            kubeconfig_candidates(None, Some(std::ffi::OsStr::new("")), Some(dir.path())),
            Some(KubeconfigSource::Home(dir.path().join(".kube/config")))
        );
    }

    #[test]
    fn merge_first_file_wins() {
        let dir = tempfile::tempdir().unwrap();
        let first = write(
            dir.path(),
            "a",
            &kubeconfig_yaml(
                "one",
                &[
                    ("one", "c1", Some("ns-a")),
                    ("shared", "c1", Some("from-a")),
                ],
                "https://127.0.0.1:1",
            ),
        );
        let second = write(
            dir.path(),
            "b",
            &kubeconfig_yaml(
                "two",
                &[("two", "c2", None), ("shared", "c2", Some("from-b"))],
                "https://127.0.0.1:2",
            ),
        );
        let missing = dir.path().join("missing");

        let merged = read_kubeconfig(&KubeconfigSource::Env(vec![first, missing, second]))
            .unwrap()
            .unwrap();

        assert_eq!(merged.current_context.as_deref(), Some("one"));
        let names: Vec<&str> = merged.contexts.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["one", "shared", "two"]);
        assert_eq!(
            context_namespace(&merged, "shared").as_deref(),
            Some("from-a")
        );
        let clusters: Vec<&str> = merged.clusters.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(clusters, ["c1", "c2"]);
    }

    #[test]
    fn merge_takes_later_current_context_when_first_empty() {
        let dir = tempfile::tempdir().unwrap();
        let first = write(
            dir.path(),
            "a",
            &kubeconfig_yaml("", &[("one", "c1", None)], "https://127.0.0.1:1"),
        );
        let second = write(
            dir.path(),
            "b",
            &kubeconfig_yaml("two", &[("two", "c2", None)], "https://127.0.0.1:2"),
        );
        let merged = read_kubeconfig(&KubeconfigSource::Env(vec![first, second]))
            .unwrap()
            .unwrap();
        assert_eq!(merged.current_context.as_deref(), Some("two"));
    }

    #[test]
    fn env_with_only_missing_files_yields_none() {
        let source = KubeconfigSource::Env(vec!["/nonexistent/kubeconfig".into()]);
        assert!(read_kubeconfig(&source).unwrap().is_none());
    }

    #[test]
    fn missing_flag_file_is_an_error() {
        let error = read_kubeconfig(&KubeconfigSource::Flag("/nonexistent/kc".into())).unwrap_err();
        assert_eq!(error.exit_code(), 1);
        assert!(error.to_string().contains("/nonexistent/kc"), "{error}");
    }

    #[test]
    fn context_flag_overrides_current() {
        let config = Kubeconfig::from_yaml(&kubeconfig_yaml(
            "one",
            &[("one", "c1", None), ("two", "c2", None)],
            "https://x",
        ))
        .unwrap();
        assert_eq!(select_context(&config, None).unwrap(), "one");
        assert_eq!(select_context(&config, Some("two")).unwrap(), "two");
    }

    #[test]
    fn unknown_context_lists_known_ones() {
        let config = Kubeconfig::from_yaml(&kubeconfig_yaml(
            "one",
            &[("one", "c1", None), ("two", "c2", None)],
            "https://x",
        ))
        .unwrap();
        let error = select_context(&config, Some("three"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "context \"three\" not found in the kubeconfig: use one of: one, two"
        );
    }

    #[test]
    fn namespace_precedence() {
        assert_eq!(
            choose_namespace(Some("flag"), Some("ctx")),
            ("flag".to_string(), true)
        );
        assert_eq!(
            choose_namespace(None, Some("ctx")),
            ("ctx".to_string(), false)
        );
        assert_eq!(choose_namespace(None, None), ("default".to_string(), false));
    }

    #[tokio::test]
    async fn load_selects_context_namespace_and_server() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "kc",
            &kubeconfig_yaml(
                "one",
                &[("one", "c1", Some("shop")), ("two", "c2", None)],
                "https://127.0.0.1:6443",
            ),
        );
        let args = KubeArgs {
            kubeconfig: Some(path.clone()),
            ..Default::default()
        };
        let target = args.load().await.unwrap();
        assert_eq!(target.namespace, "shop");
        assert!(!target.namespace_explicit);
        assert_eq!(target.context.as_deref(), Some("one"));
        assert_eq!(
            target.config.cluster_url.to_string(),
            "https://127.0.0.1:6443/"
        );

        let args = KubeArgs {
            kubeconfig: Some(path),
            context: Some("two".into()),
            namespace: Some("ops".into()),
            ..Default::default()
        };
        let target = args.load().await.unwrap();
        assert_eq!(target.namespace, "ops");
        assert!(target.namespace_explicit);
        assert_eq!(target.context.as_deref(), Some("two"));
    }

    #[test]
    fn relative_certificate_paths_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let text = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://x\n    certificate-authority: ca.crt\n";
        let path = write(dir.path(), "kc", text);
        let config = read_one(&path).unwrap();
        let ca = config.clusters[0]
            .cluster
            .as_ref()
            .unwrap()
            .certificate_authority
            .clone()
            .unwrap();
        assert_eq!(Path::new(&ca), dir.path().join("ca.crt"));
    }
}
