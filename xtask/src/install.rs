//! Installing a plugin from its archive the way krew lays it out: files copied into
//! `store/<name>/<version>/` as the manifest's `files` list them, and `bin/kubectl-<name>` linking to
//! the manifest's `bin`.

use std::path::{Path, PathBuf};

use globset::Glob;

use crate::archive::{sha256_file, unpack_tar_gz};
use crate::manifest::{self, ManifestPlatform, destination};
use crate::platform::Platform;
use crate::{Error, IoContext, Result};

/// Locations of an installed plugin.
#[derive(Debug, Clone)]
pub struct Installed {
    /// `store/<name>/<version>/`.
    pub install_dir: PathBuf,
    /// `bin/kubectl-<name>`, the link kubectl finds on `PATH`.
    pub bin_link: PathBuf,
}

/// Installs the plugin of `manifest_path` from the local `archive` into the krew-like `root`,
/// choosing the manifest entry of `platform`.
///
/// The manifest is validated first, and entries of other platforms may still be pending. The
/// chosen entry needs a real sha256 equal to the archive's, and its uri must end in the
/// archive's file name.
pub fn install(
    manifest_path: &Path,
    archive: &Path,
    root: &Path,
    platform: Platform,
) -> Result<Installed> {
    let manifest = manifest::read(manifest_path)?;
    let validated = manifest::validate(&manifest, manifest_path, true)?;
    let name = validated.name;
    let version = manifest.spec.version.clone().unwrap_or_default();

    let entry = choose_entry(&manifest.spec.platforms, platform).ok_or_else(|| {
        Error::Failed(format!(
            "{} has no entry for {platform}: krew cannot install it here",
            manifest_path.display()
        ))
    })?;
    check_archive(entry, archive)?;

    // Unpack into a scratch folder, then copy what `files` names into the install folder.
    let scratch = root.join("tmp").join(format!("{name}-{version}"));
    recreate_dir(&scratch)?;
    unpack_tar_gz(archive, &scratch)?;
    let install_dir = root.join("store").join(&name).join(&version);
    recreate_dir(&install_dir)?;
    for file in &entry.files {
        let from = file.from.as_deref().unwrap_or_default();
        let to = file.to.as_deref().unwrap_or_default();
        copy_matches(&scratch, from, to, &install_dir)?;
    }
    std::fs::remove_dir_all(&scratch)
        .context(|| format!("failed to remove {}", scratch.display()))?;

    // Link bin/kubectl-<name> to the manifest's bin.
    let bin = entry.bin.as_deref().unwrap_or_default();
    let target = install_dir.join(bin);
    if !is_executable(&target) {
        return Err(Error::Failed(format!(
            "bin {bin} of {} is not an executable file after installation",
            manifest_path.display()
        )));
    }
    let bin_dir = root.join("bin");
    std::fs::create_dir_all(&bin_dir)
        .context(|| format!("failed to create {}", bin_dir.display()))?;
    let bin_link = bin_dir.join(format!("kubectl-{name}{}", platform.exe_suffix()));
    link_or_copy(&target, &bin_link)?;

    // krew keeps the installed manifest as the receipt.
    let receipts = root.join("receipts");
    std::fs::create_dir_all(&receipts)
        .context(|| format!("failed to create {}", receipts.display()))?;
    std::fs::copy(manifest_path, receipts.join(format!("{name}.yaml")))
        .context(|| format!("failed to write the receipt of {name}"))?;

    Ok(Installed {
        install_dir,
        bin_link,
    })
}

fn choose_entry(entries: &[ManifestPlatform], platform: Platform) -> Option<&ManifestPlatform> {
    entries
        .iter()
        .find(|entry| entry.os_arch() == Some((platform.os, platform.arch)))
}

fn check_archive(entry: &ManifestPlatform, archive: &Path) -> Result<()> {
    let file_name = archive
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default();
    let uri = entry.uri.as_deref().unwrap_or_default();
    if uri.rsplit('/').next() != Some(file_name) {
        return Err(Error::Failed(format!(
            "archive {file_name} is not the file the manifest downloads ({uri})"
        )));
    }
    let expected = entry.sha256.as_deref().unwrap_or_default();
    let actual = sha256_file(archive)?;
    if actual != expected {
        return Err(Error::Failed(format!(
            "sha256 of {} is {actual}, but the manifest expects {expected}",
            archive.display()
        )));
    }
    Ok(())
}

fn recreate_dir(path: &Path) -> Result<()> {
    if path.exists() {
        std::fs::remove_dir_all(path).context(|| format!("failed to remove {}", path.display()))?;
    }
    std::fs::create_dir_all(path).context(|| format!("failed to create {}", path.display()))
}

/// Copies the files under `scratch` that match the glob `from` to their destination under
/// `install_dir`.
fn copy_matches(scratch: &Path, from: &str, to: &str, install_dir: &Path) -> Result<()> {
    let matcher = Glob::new(from)
        .map_err(|error| Error::Failed(format!("invalid files.from glob {from:?}: {error}")))?
        .compile_matcher();
    let mut matched = 0;
    let mut pending = vec![scratch.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries = std::fs::read_dir(&folder)
            .context(|| format!("failed to list {}", folder.display()))?;
        for entry in entries {
            let path = entry
                .context(|| format!("failed to list {}", folder.display()))?
                .path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let relative = path
                .strip_prefix(scratch)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            if !matcher.is_match(&relative) {
                continue;
            }
            let target = install_dir.join(destination(&relative, to));
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .context(|| format!("failed to create {}", parent.display()))?;
            }
            std::fs::copy(&path, &target)
                .context(|| format!("failed to copy {relative} to {}", target.display()))?;
            matched += 1;
        }
    }
    if matched == 0 {
        return Err(Error::Failed(format!(
            "files.from {from:?} matches nothing in the archive"
        )));
    }
    Ok(())
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

#[cfg(unix)]
fn link_or_copy(target: &Path, link: &Path) -> Result<()> {
    if link.symlink_metadata().is_ok() {
        std::fs::remove_file(link).context(|| format!("failed to replace {}", link.display()))?;
    }
    std::os::unix::fs::symlink(target, link)
        .context(|| format!("failed to link {}", link.display()))
}

/// krew copies the executable on Windows, where symbolic links need extra privileges.
#[cfg(not(unix))]
fn link_or_copy(target: &Path, link: &Path) -> Result<()> {
    std::fs::copy(target, link)
        .map(|_| ())
        .context(|| format!("failed to copy {}", link.display()))
}
