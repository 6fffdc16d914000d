//! krew plugin manifests: rendering from the plugin catalog, and validation by krew's rules
//! (apiVersion, kind, name, semantic version, platforms, checksums, files and a license).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use crate::archive::is_sha256;
use crate::platform::{PLATFORMS, Platform};
use crate::plugins::PluginInfo;
use crate::{Error, IoContext, Result};

/// `apiVersion` of krew plugin manifests.
pub const API_VERSION: &str = "krew.googlecontainertools.github.com/v1alpha2";

/// Value of `sha256` for a platform whose archive the release pipeline builds elsewhere and
/// whose checksum was not passed with `--checksums`. krew rejects it, so a manifest with it
/// cannot be installed from or published until the release pipeline fills it in.
pub const PENDING_SHA256: &str = "pending-release-pipeline";

/// One platform entry to render.
#[derive(Debug, Clone)]
pub struct PlatformEntry {
    /// The platform.
    pub platform: Platform,
    /// Download URI of the archive.
    pub uri: String,
    /// SHA-256 of the archive; `None` renders [`PENDING_SHA256`].
    pub sha256: Option<String>,
}

/// Renders the manifest of `plugin` at `version` (without `v`) with `entries`.
pub fn render(
    plugin: &PluginInfo,
    version: &str,
    homepage: &str,
    entries: &[PlatformEntry],
) -> String {
    let name = plugin.name;
    let mut text = String::new();
    text.push_str("# Rendered by `cargo xtask dist`; see krew-manifests/README.md.\n");
    text.push_str(&format!("apiVersion: {API_VERSION}\n"));
    text.push_str("kind: Plugin\n");
    text.push_str("metadata:\n");
    text.push_str(&format!("  name: {name}\n"));

    text.push_str("spec:\n");
    text.push_str(&format!("  version: v{version}\n"));
    text.push_str(&format!("  homepage: {}\n", scalar(homepage)));
    text.push_str(&format!(
        "  shortDescription: {}\n",
        scalar(plugin.short_description)
    ));
    text.push_str(&block("description", plugin.description));
    if let Some(caveats) = plugin.caveats {
        text.push_str(&block("caveats", caveats));
    }

    text.push_str("  platforms:\n");
    for entry in entries {
        let platform = entry.platform;
        let suffix = platform.exe_suffix();
        let sha256 = match &entry.sha256 {
            Some(hash) => hash.clone(),
            None => {
                text.push_str(&format!(
                    "  # {platform}: built by the release pipeline, which replaces the sha256 below.\n"
                ));
                PENDING_SHA256.to_string()
            }
        };

        text.push_str("  - selector:\n      matchLabels:\n");
        text.push_str(&format!(
            "        os: {}\n        arch: {}\n",
            platform.os, platform.arch
        ));
        text.push_str(&format!("    uri: {}\n", scalar(&entry.uri)));
        text.push_str(&format!("    sha256: {sha256}\n"));
        text.push_str(&format!("    bin: kubectl-{name}{suffix}\n"));
        text.push_str("    files:\n");
        for file in [
            format!("kubectl-{name}{suffix}"),
            format!("kubectl_complete-{name}{suffix}"),
            "LICENSE".to_string(),
        ] {
            text.push_str(&format!("    - from: {file}\n      to: .\n"));
        }
    }
    text
}

/// Quotes a YAML scalar when a plain one would be read differently.
fn scalar(value: &str) -> String {
    let plain = !value.is_empty()
        && value.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, ' ' | '-' | '_' | '.' | '/' | ':' | ',' | '(' | ')')
        })
        && !value.contains(": ")
        && !value.starts_with(['-', ' '])
        && !value.ends_with(' ');
    if plain {
        value.to_string()
    } else {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

fn block(key: &str, value: &str) -> String {
    let mut text = format!("  {key}: |\n");
    for line in value.lines() {
        text.push_str("    ");
        text.push_str(line.trim_start());
        text.push('\n');
    }
    text
}

/// A parsed manifest; every field optional so that validation can name each missing one.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// `apiVersion`.
    pub api_version: Option<String>,
    /// `kind`.
    pub kind: Option<String>,
    /// `metadata`.
    #[serde(default)]
    pub metadata: ManifestMetadata,
    /// `spec`.
    #[serde(default)]
    pub spec: Spec,
}

/// `metadata` of a manifest.
#[derive(Debug, Deserialize, Default)]
pub struct ManifestMetadata {
    /// Plugin name.
    pub name: Option<String>,
}

/// `spec` of a manifest. Unknown fields are rejected, as krew decodes manifests strictly.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spec {
    /// `vX.Y.Z`.
    pub version: Option<String>,
    /// Project page.
    pub homepage: Option<String>,
    /// One-line summary.
    pub short_description: Option<String>,
    /// Long description.
    pub description: Option<String>,
    /// Text printed after installation.
    pub caveats: Option<String>,
    /// Download entries.
    #[serde(default)]
    pub platforms: Vec<ManifestPlatform>,
}

/// One `spec.platforms` entry.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct ManifestPlatform {
    /// Label selector over `os` and `arch`.
    pub selector: Option<Selector>,
    /// Archive URI.
    pub uri: Option<String>,
    /// Archive SHA-256.
    pub sha256: Option<String>,
    /// Path of the executable after installation, relative to the install folder.
    pub bin: Option<String>,
    /// Files copied out of the archive.
    #[serde(default)]
    pub files: Vec<FileOperation>,
}

/// A label selector.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    /// Labels that must match exactly.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

/// A `files` entry: a glob in the archive and its destination folder or path.
#[derive(Debug, Deserialize, Default, Clone)]
pub struct FileOperation {
    /// Glob relative to the archive root.
    pub from: Option<String>,
    /// Destination relative to the install folder.
    pub to: Option<String>,
}

impl ManifestPlatform {
    /// Returns the `os` and `arch` labels of the selector.
    pub fn os_arch(&self) -> Option<(&str, &str)> {
        let labels = &self.selector.as_ref()?.match_labels;
        Some((labels.get("os")?.as_str(), labels.get("arch")?.as_str()))
    }
}

/// Reads and parses a manifest file.
pub fn read(path: &Path) -> Result<Manifest> {
    let text =
        std::fs::read_to_string(path).context(|| format!("failed to read {}", path.display()))?;
    parse(&text, path)
}

/// Parses manifest text; `path` names it in errors.
pub fn parse(text: &str, path: &Path) -> Result<Manifest> {
    serde_yaml::from_str(text).map_err(|error| Error::Invalid {
        path: path.to_path_buf(),
        problems: vec![format!("not a manifest krew can decode: {error}")],
    })
}

/// Result of a successful validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    /// Plugin name.
    pub name: String,
    /// Platforms whose sha256 is [`PENDING_SHA256`] (only when pending entries are allowed).
    pub pending: Vec<String>,
}

/// Checks `manifest`, read from `path`, by krew's rules. With `allow_pending`, a sha256 of
/// [`PENDING_SHA256`] passes and is listed in the result; without it, it is a problem.
pub fn validate(manifest: &Manifest, path: &Path, allow_pending: bool) -> Result<Validated> {
    let mut problems = Vec::new();
    let mut pending = Vec::new();

    if manifest.api_version.as_deref() != Some(API_VERSION) {
        problems.push(format!(
            "apiVersion is {:?}: it must be {API_VERSION}",
            manifest.api_version.as_deref().unwrap_or_default()
        ));
    }
    if manifest.kind.as_deref() != Some("Plugin") {
        problems.push(format!(
            "kind is {:?}: it must be Plugin",
            manifest.kind.as_deref().unwrap_or_default()
        ));
    }

    let name = manifest.metadata.name.clone().unwrap_or_default();
    let file_stem = path
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or_default();
    if !valid_plugin_name(&name) {
        problems.push(format!(
            "metadata.name {name:?} is invalid: use lowercase letters, digits and inner hyphens"
        ));
    }
    if name != file_stem {
        problems.push(format!(
            "metadata.name {name:?} differs from the file name {file_stem:?}: name the file {name}.yaml"
        ));
    }

    let spec = &manifest.spec;
    let version = spec.version.as_deref().unwrap_or_default();
    if !valid_version(version) {
        problems.push(format!(
            "spec.version {version:?} is invalid: use v followed by a semantic version, e.g. v1.2.3"
        ));
    }
    if spec
        .short_description
        .as_deref()
        .is_none_or(|text| text.trim().is_empty())
    {
        problems.push("spec.shortDescription is missing".to_string());
    }
    if let Some(homepage) = &spec.homepage
        && !homepage.starts_with("https://")
        && !homepage.starts_with("http://")
    {
        problems.push(format!("spec.homepage {homepage:?} is not an http(s) URL"));
    }
    if spec.platforms.is_empty() {
        problems.push("spec.platforms is empty: list at least one platform".to_string());
    }

    let mut seen = HashSet::new();
    for (index, platform) in spec.platforms.iter().enumerate() {
        let label = format!("spec.platforms[{index}]");
        check_platform(platform, &label, allow_pending, &mut problems, &mut pending);
        if let Some((os, arch)) = platform.os_arch()
            && !seen.insert((os.to_string(), arch.to_string()))
        {
            problems.push(format!("{label}: os {os} and arch {arch} are listed twice"));
        }
    }

    if problems.is_empty() {
        Ok(Validated { name, pending })
    } else {
        Err(Error::Invalid {
            path: path.to_path_buf(),
            problems,
        })
    }
}

fn check_platform(
    platform: &ManifestPlatform,
    label: &str,
    allow_pending: bool,
    problems: &mut Vec<String>,
    pending: &mut Vec<String>,
) {
    let os_arch = platform.os_arch();
    match os_arch {
        None => problems.push(format!("{label}: selector.matchLabels needs os and arch")),
        Some((os, arch)) => {
            let known = PLATFORMS
                .iter()
                .any(|known| known.os == os && known.arch == arch);
            if !known {
                problems.push(format!("{label}: unknown platform {os}/{arch}"));
            }
        }
    }

    let uri = platform.uri.as_deref().unwrap_or_default();
    if !uri.starts_with("https://") {
        problems.push(format!("{label}: uri {uri:?} must be an https URL"));
    }

    let sha256 = platform.sha256.as_deref().unwrap_or_default();
    if sha256 == PENDING_SHA256 && allow_pending {
        let (os, arch) = os_arch.unwrap_or_default();
        pending.push(format!("{os}-{arch}"));
    } else if !is_sha256(sha256) {
        problems.push(format!(
            "{label}: sha256 {sha256:?} is not 64 lowercase hex digits"
        ));
    }

    let bin = platform.bin.as_deref().unwrap_or_default();
    if bin.is_empty() {
        problems.push(format!("{label}: bin is missing"));
    } else if os_arch.is_some_and(|(os, _)| os == "windows") && !bin.ends_with(".exe") {
        problems.push(format!("{label}: bin {bin:?} must end in .exe on windows"));
    }

    if platform.files.is_empty() {
        problems.push(format!(
            "{label}: files is empty: list what to copy out of the archive"
        ));
    }
    let mut has_license = false;
    let mut installs_bin = false;
    for (index, file) in platform.files.iter().enumerate() {
        let from = file.from.as_deref().unwrap_or_default();
        let to = file.to.as_deref().unwrap_or_default();
        if from.is_empty() || to.is_empty() {
            problems.push(format!(
                "{label}.files[{index}]: from and to must both be set"
            ));
            continue;
        }
        let base = from.rsplit('/').next().unwrap_or(from).to_ascii_uppercase();
        if base.starts_with("LICENSE") || base.starts_with("LICENCE") || base.starts_with("COPYING")
        {
            has_license = true;
        }
        if destination(from, to) == bin {
            installs_bin = true;
        }
    }
    if !platform.files.is_empty() && !has_license {
        problems.push(format!("{label}: files installs no LICENSE file"));
    }
    if !bin.is_empty() && !platform.files.is_empty() && !installs_bin {
        problems.push(format!(
            "{label}: bin {bin:?} is not among the installed files"
        ));
    }
}

/// Returns where a file lands relative to the install folder: into `to` when it names a folder
/// (`.` or a trailing `/`), else at `to`.
pub fn destination(from: &str, to: &str) -> String {
    let base = from.rsplit('/').next().unwrap_or(from);
    if to == "." || to == "./" {
        base.to_string()
    } else if let Some(folder) = to.strip_suffix('/') {
        format!("{}/{base}", folder.trim_start_matches("./"))
    } else {
        to.trim_start_matches("./").to_string()
    }
}

/// krew's plugin names: lowercase letters and digits, with hyphens inside.
pub fn valid_plugin_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Checks `v` followed by a semantic version (`v1.2.3`, `v1.2.3-rc.1`, `v1.2.3+build.5`).
pub fn valid_version(version: &str) -> bool {
    let Some(rest) = version.strip_prefix('v') else {
        return false;
    };
    let (rest, build) = match rest.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (rest, None),
    };
    let (core, prerelease) = match rest.split_once('-') {
        Some((core, prerelease)) => (core, Some(prerelease)),
        None => (rest, None),
    };
    let numbers: Vec<&str> = core.split('.').collect();
    let numeric = |part: &&str| {
        !part.is_empty()
            && part.bytes().all(|byte| byte.is_ascii_digit())
            && (part.len() == 1 || !part.starts_with('0'))
    };
    let identifiers = |text: &str| {
        text.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
        })
    };
    numbers.len() == 3
        && numbers.iter().all(numeric)
        && prerelease.is_none_or(identifiers)
        && build.is_none_or(identifiers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins;

    fn rendered(pending: bool) -> String {
        let entries: Vec<PlatformEntry> = PLATFORMS
            .iter()
            .map(|platform| PlatformEntry {
                platform: *platform,
                uri: format!("https://example.test/{platform}.tar.gz"),
                sha256: (!pending || platform.os == "linux").then(|| "ab".repeat(32)),
            })
            .collect();
        render(
            &plugins::find("crimap").unwrap(),
            "0.1.0",
            "https://example.test",
            &entries,
        )
    }

    #[test]
    fn rendered_manifest_validates() {
        let path = Path::new("krew-manifests/crimap.yaml");
        let manifest = parse(&rendered(false), path).unwrap();
        let validated = validate(&manifest, path, false).unwrap();
        assert_eq!(validated.name, "crimap");
        assert!(validated.pending.is_empty());
        assert_eq!(manifest.spec.platforms.len(), 6);
    }

    #[test]
    fn pending_entries_need_allowance() {
        let path = Path::new("crimap.yaml");
        let manifest = parse(&rendered(true), path).unwrap();
        let validated = validate(&manifest, path, true).unwrap();
        assert_eq!(
            validated.pending,
            [
                "darwin-amd64",
                "darwin-arm64",
                "windows-amd64",
                "windows-arm64"
            ]
        );
        let error = validate(&manifest, path, false).unwrap_err().to_string();
        assert!(
            error.contains("spec.platforms[2]: sha256 \"pending-release-pipeline\" is not 64 lowercase hex digits"),
            "{error}"
        );
    }

    #[test]
    fn broken_manifest_lists_every_problem() {
        let text = "\
apiVersion: krew.googlecontainertools.github.com/v1alpha1
kind: Plugin
metadata: {name: Crimap}
spec:
  version: 0.1
  platforms:
  - selector: {matchLabels: {os: linux, arch: amd64}}
    uri: http://example.test/a.tar.gz
    sha256: ABC
    bin: kubectl-crimap
    files: [{from: kubectl-crimap, to: ''}]
  - selector: {matchLabels: {os: linux, arch: amd64}}
    uri: https://example.test/a.tar.gz
    sha256: abababababababababababababababababababababababababababababababab
    bin: kubectl-crimap
    files: [{from: kubectl-crimap, to: .}]
";
        let path = Path::new("crimap.yaml");
        let error = validate(&parse(text, path).unwrap(), path, false).unwrap_err();
        let Error::Invalid { problems, .. } = error else {
            panic!("not a validation error");
        };
        assert_eq!(
            problems,
            [
                "apiVersion is \"krew.googlecontainertools.github.com/v1alpha1\": it must be krew.googlecontainertools.github.com/v1alpha2",
                "metadata.name \"Crimap\" is invalid: use lowercase letters, digits and inner hyphens",
                "metadata.name \"Crimap\" differs from the file name \"crimap\": name the file Crimap.yaml",
                "spec.version \"0.1\" is invalid: use v followed by a semantic version, e.g. v1.2.3",
                "spec.shortDescription is missing",
                "spec.platforms[0]: uri \"http://example.test/a.tar.gz\" must be an https URL",
                "spec.platforms[0]: sha256 \"ABC\" is not 64 lowercase hex digits",
                "spec.platforms[0].files[0]: from and to must both be set",
                "spec.platforms[0]: files installs no LICENSE file",
                "spec.platforms[0]: bin \"kubectl-crimap\" is not among the installed files",
                "spec.platforms[1]: files installs no LICENSE file",
                "spec.platforms[1]: os linux and arch amd64 are listed twice",
            ]
        );
    }

    #[test]
    fn unknown_spec_field_rejected() {
        let text = "apiVersion: x\nkind: Plugin\nmetadata: {name: a}\nspec: {versoin: v1.0.0}\n";
        let error = parse(text, Path::new("a.yaml")).unwrap_err().to_string();
        assert!(error.contains("unknown field `versoin`"), "{error}");
    }

    #[test]
    fn versions_follow_semver() {
        for good in ["v0.1.0", "v1.22.333", "v1.0.0-rc.1", "v1.0.0+build.7"] {
            assert!(valid_version(good), "{good}");
        }
        for bad in [
            "0.1.0",
            "v1.0",
            "v01.0.0",
            "v1.0.0-",
            "v1.0.0-rc..1",
            "vx.y.z",
        ] {
            assert!(!valid_version(bad), "{bad}");
        }
    }

    #[test]
    fn destinations_follow_to() {
        assert_eq!(destination("bin/kubectl-a", "."), "kubectl-a");
        assert_eq!(destination("LICENSE", "docs/"), "docs/LICENSE");
        assert_eq!(destination("kubectl-a", "kubectl-b"), "kubectl-b");
    }
}
