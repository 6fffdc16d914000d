//! Release archives and krew manifests: `xtask dist` on the debug binaries, krew's validation
//! rules on what it renders, and installation from the real archives into a krew-like root
//! that the real kubectl then finds.

use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::plugins::{PLUGINS, ensure_built, run, stderr, stdout};
use xtask::archive::{archive_name, sha256_file};
use xtask::dist::{DistOptions, DistOutput};
use xtask::manifest;
use xtask::platform::{PLATFORMS, Platform};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs `xtask dist` on the already built debug binaries into a temporary folder.
fn dist(folder: &Path, checksums: Vec<PathBuf>) -> DistOutput {
    ensure_built(&PLUGINS);
    let options = DistOptions {
        profile: "dev".to_string(),
        target_dir: None,
        out: folder.join("dist"),
        manifests: folder.join("krew-manifests"),
        checksums,
        skip_build: true,
    };
    xtask::dist::run(&options).unwrap_or_else(|error| panic!("xtask dist failed: {error}"))
}

fn host() -> Platform {
    Platform::host().expect("the test machine is one of krew's platforms")
}

#[test]
fn dist_packs_one_archive_per_plugin() {
    let folder = tempfile::tempdir().unwrap();
    let output = dist(folder.path(), Vec::new());
    assert_eq!(output.archives.len(), 4);
    for (plugin, (path, hash)) in PLUGINS.iter().zip(&output.archives) {
        assert_eq!(
            path.file_name().unwrap().to_str().unwrap(),
            format!(
                "kubectl-{plugin}-v{VERSION}-{}-{}.tar.gz",
                host().os,
                host().arch
            )
        );
        assert_eq!(&sha256_file(path).unwrap(), hash);
    }

    let sums = std::fs::read_to_string(folder.path().join("dist/SHA256SUMS")).unwrap();
    assert_eq!(sums.lines().count(), 4, "SHA256SUMS:\n{sums}");
    for (path, hash) in &output.archives {
        let line = format!("{hash}  {}", path.file_name().unwrap().to_str().unwrap());
        assert!(sums.contains(&line), "SHA256SUMS lacks {line}:\n{sums}");
    }
}

#[test]
fn rendered_manifests_follow_krew_rules() {
    let folder = tempfile::tempdir().unwrap();
    let output = dist(folder.path(), Vec::new());
    assert_eq!(output.manifests.len(), 4);

    for (plugin, path) in PLUGINS.iter().zip(&output.manifests) {
        assert_eq!(
            path.file_name().unwrap().to_str().unwrap(),
            format!("{plugin}.yaml")
        );
        let parsed = manifest::read(path).unwrap();
        let validated =
            manifest::validate(&parsed, path, true).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(validated.name, *plugin);
        assert_eq!(
            parsed.spec.version.as_deref(),
            Some(format!("v{VERSION}").as_str())
        );
        assert_eq!(
            parsed.spec.homepage.as_deref(),
            Some("https://github.com/kubectl-plugins/kubectl-plugins")
        );
        assert!(
            parsed
                .spec
                .description
                .as_deref()
                .is_some_and(|text| !text.is_empty())
        );
        assert_eq!(
            parsed.spec.caveats.is_some(),
            *plugin != "crimap",
            "caveats of {plugin}"
        );

        // All six platforms; the host's with the real checksum, the rest pending.
        let listed: Vec<(String, String)> = parsed
            .spec
            .platforms
            .iter()
            .map(|entry| {
                let (os, arch) = entry.os_arch().unwrap();
                (os.to_string(), arch.to_string())
            })
            .collect();
        let expected: Vec<(String, String)> = PLATFORMS
            .iter()
            .map(|platform| (platform.os.to_string(), platform.arch.to_string()))
            .collect();
        assert_eq!(listed, expected, "platforms of {plugin}");
        let pending: Vec<String> = PLATFORMS
            .iter()
            .filter(|platform| **platform != host())
            .map(|platform| platform.to_string())
            .collect();
        assert_eq!(validated.pending, pending, "pending platforms of {plugin}");

        for (entry, platform) in parsed.spec.platforms.iter().zip(PLATFORMS) {
            let archive = archive_name(plugin, VERSION, platform);
            assert_eq!(
                entry.uri.as_deref(),
                Some(
                    format!(
                        "https://github.com/kubectl-plugins/kubectl-plugins/releases/download/v{VERSION}/{archive}"
                    )
                    .as_str()
                )
            );
            if platform == host() {
                let built = sha256_file(&folder.path().join("dist").join(&archive)).unwrap();
                assert_eq!(
                    entry.sha256.as_deref(),
                    Some(built.as_str()),
                    "sha256 of {archive}"
                );
            }
        }
    }
}

#[test]
fn strict_validation_rejects_pending_entries() {
    let folder = tempfile::tempdir().unwrap();
    let output = dist(folder.path(), Vec::new());
    let path = &output.manifests[3];
    let error = manifest::validate(&manifest::read(path).unwrap(), path, false)
        .unwrap_err()
        .to_string();
    assert_eq!(
        error
            .matches("sha256 \"pending-release-pipeline\" is not 64 lowercase hex digits")
            .count(),
        5,
        "{error}"
    );
}

#[test]
fn checksums_file_completes_manifests() {
    // The other platforms' archives come from other builders; their SHA256SUMS lines are
    // stood in for by checksums of this test's own bytes.
    let folder = tempfile::tempdir().unwrap();
    let mut sums = String::new();
    for plugin in PLUGINS {
        for platform in PLATFORMS.iter().filter(|platform| **platform != host()) {
            let name = archive_name(plugin, VERSION, *platform);
            let stand_in = folder.path().join(&name);
            std::fs::write(&stand_in, name.as_bytes()).unwrap();
            sums.push_str(&format!("{}  {name}\n", sha256_file(&stand_in).unwrap()));
        }
    }
    let sums_file = folder.path().join("OTHER-SHA256SUMS");
    std::fs::write(&sums_file, sums).unwrap();

    let output = dist(folder.path(), vec![sums_file]);
    assert!(output.pending.is_empty(), "pending: {:?}", output.pending);
    for path in &output.manifests {
        let validated = manifest::validate(&manifest::read(path).unwrap(), path, false)
            .unwrap_or_else(|error| panic!("{error}"));
        assert!(validated.pending.is_empty());
    }
}

/// `PATH` with `bin` first and the system folders, minus any folder that contains a plugin
/// binary already (such as cargo's target folder), so that kubectl finds only the install.
fn path_with(bin: &Path) -> std::ffi::OsString {
    let system = std::env::var_os("PATH").unwrap_or_default();
    let mut folders = vec![bin.to_path_buf()];
    folders.extend(std::env::split_paths(&system).filter(|folder| {
        !PLUGINS
            .iter()
            .any(|plugin| folder.join(format!("kubectl-{plugin}")).exists())
    }));
    std::env::join_paths(folders).unwrap()
}

fn kubectl_with(bin: &Path) -> Command {
    let mut command = Command::new("kubectl");
    command
        .env("PATH", path_with(bin))
        .env("KUBECONFIG", "/nonexistent/kubeconfig-for-tests")
        .env("NO_COLOR", "1");
    command
}

#[test]
fn install_from_archives_then_kubectl_finds_plugins() {
    let folder = tempfile::tempdir().unwrap();
    let output = dist(folder.path(), Vec::new());
    let root = folder.path().join("krew");

    for (plugin, (archive, _)) in PLUGINS.iter().zip(&output.archives) {
        let manifest_path = folder.path().join(format!("krew-manifests/{plugin}.yaml"));
        let installed = xtask::install::install(&manifest_path, archive, &root, host())
            .unwrap_or_else(|error| panic!("install of {plugin} failed: {error}"));

        let store = root.join(format!("store/{plugin}/v{VERSION}"));
        assert_eq!(installed.install_dir, store);
        for file in [
            format!("kubectl-{plugin}"),
            format!("kubectl_complete-{plugin}"),
            "LICENSE".to_string(),
        ] {
            assert!(
                store.join(&file).is_file(),
                "{file} missing from {}",
                store.display()
            );
        }
        assert_eq!(
            std::fs::read(store.join("LICENSE")).unwrap(),
            std::fs::read(testkit::plugins::workspace_root().join("LICENSE")).unwrap()
        );
        let link = root.join(format!("bin/kubectl-{plugin}"));
        assert_eq!(installed.bin_link, link);
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            store.join(format!("kubectl-{plugin}"))
        );
        assert!(root.join(format!("receipts/{plugin}.yaml")).is_file());
    }

    // The real kubectl lists exactly the installed links.
    let bin = root.join("bin");
    let listed = run(kubectl_with(&bin).args(["plugin", "list"]));
    let text = stdout(&listed);
    assert!(
        listed.status.success(),
        "kubectl plugin list: {}",
        stderr(&listed)
    );
    for plugin in PLUGINS {
        let line = bin.join(format!("kubectl-{plugin}"));
        assert!(
            text.lines().any(|entry| Path::new(entry) == line),
            "kubectl plugin list lacks {}:\n{text}",
            line.display()
        );
    }
    // Other plugins on the system PATH may draw warnings; ours must draw none.
    let warnings = stderr(&listed);
    assert!(
        !warnings
            .lines()
            .any(|line| line.contains(bin.to_str().unwrap())),
        "{warnings}"
    );

    for plugin in PLUGINS {
        let help = run(kubectl_with(&bin).args([plugin, "--help"]));
        assert!(
            help.status.success(),
            "kubectl {plugin} --help: {}",
            stderr(&help)
        );
        assert!(
            stdout(&help).contains(&format!("Usage: kubectl {plugin}")),
            "help of {plugin}:\n{}",
            stdout(&help)
        );
    }
}

#[test]
fn install_rejects_tampered_archive() {
    let folder = tempfile::tempdir().unwrap();
    let output = dist(folder.path(), Vec::new());
    let (archive, _) = &output.archives[3];
    let mut bytes = std::fs::read(archive).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(archive, bytes).unwrap();

    let manifest_path = folder.path().join("krew-manifests/crimap.yaml");
    let error =
        xtask::install::install(&manifest_path, archive, &folder.path().join("krew"), host())
            .unwrap_err()
            .to_string();
    assert!(
        error.starts_with(&format!("sha256 of {} is ", archive.display())),
        "{error}"
    );
    assert!(!folder.path().join("krew/bin/kubectl-crimap").exists());
}
