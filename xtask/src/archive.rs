//! Release archives: `kubectl-<name>-v<version>-<os>-<arch>.tar.gz` with the plugin binary,
//! its `kubectl_complete-<name>` companion and the LICENSE, packed the same way on every
//! machine so that the SHA-256 depends only on the files.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use crate::platform::Platform;
use crate::{Error, IoContext, Result};

/// Modification time written into every archive entry, in seconds since the Unix epoch, when
/// `SOURCE_DATE_EPOCH` is unset: a fixed time keeps archives of the same files identical.
const DEFAULT_MTIME: u64 = 0;

/// Returns the archive file name, e.g. `kubectl-crimap-v0.1.0-linux-amd64.tar.gz`.
pub fn archive_name(plugin: &str, version: &str, platform: Platform) -> String {
    format!(
        "kubectl-{plugin}-v{version}-{}-{}.tar.gz",
        platform.os, platform.arch
    )
}

/// One file to put into an archive.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Path of the file to read.
    pub source: PathBuf,
    /// Path inside the archive.
    pub name: String,
    /// Unix permission bits.
    pub mode: u32,
}

/// Lists the files of a plugin's archive: the two binaries from `bin_dir` and the LICENSE.
pub fn plugin_entries(
    plugin: &str,
    platform: Platform,
    bin_dir: &Path,
    license: &Path,
) -> Vec<Entry> {
    let suffix = platform.exe_suffix();
    let binaries = [
        format!("kubectl-{plugin}{suffix}"),
        format!("kubectl_complete-{plugin}{suffix}"),
    ];
    let mut entries: Vec<Entry> = binaries
        .into_iter()
        .map(|name| Entry {
            source: bin_dir.join(&name),
            name,
            mode: 0o755,
        })
        .collect();
    entries.push(Entry {
        source: license.to_path_buf(),
        name: "LICENSE".to_string(),
        mode: 0o644,
    });
    entries
}

/// Writes a gzip-compressed tar of `entries` to `path`, with fixed owner, group and time.
pub fn write_tar_gz(path: &Path, entries: &[Entry]) -> Result<()> {
    let mtime = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) => value.parse().map_err(|_| {
            Error::Failed(format!(
                "invalid SOURCE_DATE_EPOCH {value:?}: use seconds since the Unix epoch"
            ))
        })?,
        Err(_) => DEFAULT_MTIME,
    };

    let file = File::create(path).context(|| format!("failed to create {}", path.display()))?;
    let encoder = GzEncoder::new(file, Compression::default());
    let mut builder = tar::Builder::new(encoder);
    for entry in entries {
        let data = std::fs::read(&entry.source).context(|| {
            format!(
                "failed to read {} for {}",
                entry.source.display(),
                path.display()
            )
        })?;
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(entry.mode);
        header.set_mtime(mtime);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, &entry.name, data.as_slice())
            .context(|| format!("failed to add {} to {}", entry.name, path.display()))?;
    }
    let encoder = builder
        .into_inner()
        .context(|| format!("failed to finish {}", path.display()))?;
    let mut file = encoder
        .finish()
        .context(|| format!("failed to compress {}", path.display()))?;
    file.flush()
        .context(|| format!("failed to write {}", path.display()))
}

/// Returns the lowercase hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    let file = File::open(path).context(|| format!("failed to open {}", path.display()))?;
    let mut reader = BufReader::new(file);
    let mut hasher = Sha256::new();
    let mut buffer = [0u8; 64 * 1024];
    loop {
        let read = reader
            .read(&mut buffer)
            .context(|| format!("failed to read {}", path.display()))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Unpacks a `.tar.gz` into `destination`, rejecting entries that would land outside it.
pub fn unpack_tar_gz(archive: &Path, destination: &Path) -> Result<()> {
    std::fs::create_dir_all(destination)
        .context(|| format!("failed to create {}", destination.display()))?;
    let file = File::open(archive).context(|| format!("failed to open {}", archive.display()))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    tar.set_preserve_permissions(true);
    let entries = tar
        .entries()
        .context(|| format!("failed to read {}", archive.display()))?;
    for entry in entries {
        let mut entry = entry.context(|| format!("failed to read {}", archive.display()))?;
        // `unpack_in` returns false for paths with `..` or an absolute root.
        let inside = entry
            .unpack_in(destination)
            .context(|| format!("failed to unpack {}", archive.display()))?;
        if !inside {
            let name = entry
                .path()
                .map(|path| path.display().to_string())
                .unwrap_or_default();
            return Err(Error::Failed(format!(
                "archive {} has an entry outside its root: {name}",
                archive.display()
            )));
        }
    }
    Ok(())
}

/// Parses a `sha256sum` checksums file (`<hex>  <file name>` per line) into (name, hex) pairs.
pub fn parse_checksums(text: &str, source: &str) -> Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((hash, name)) = line.split_once(char::is_whitespace) else {
            return Err(Error::Failed(format!(
                "invalid line {} in {source}: expected <sha256>  <file name>",
                number + 1
            )));
        };
        let name = name.trim().trim_start_matches('*');
        if !is_sha256(hash) {
            return Err(Error::Failed(format!(
                "invalid SHA-256 {hash:?} for {name} on line {} of {source}: expected 64 lowercase hex digits",
                number + 1
            )));
        }
        pairs.push((name.to_string(), hash.to_string()));
    }
    Ok(pairs)
}

/// Reports whether `value` is 64 lowercase hex digits, as krew requires.
pub fn is_sha256(value: &str) -> bool {
    value.len() == 64
        && value
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_names_carry_v_version_os_arch() {
        let platform = Platform {
            os: "darwin",
            arch: "arm64",
        };
        assert_eq!(
            archive_name("crimap", "0.1.0", platform),
            "kubectl-crimap-v0.1.0-darwin-arm64.tar.gz"
        );
    }

    #[test]
    fn archives_repeat_byte_for_byte() {
        let folder = tempfile::tempdir().unwrap();
        let source = folder.path().join("kubectl-demo");
        std::fs::write(&source, b"#!/bin/sh\necho demo\n").unwrap();
        let entries = vec![Entry {
            source,
            name: "kubectl-demo".into(),
            mode: 0o755,
        }];
        let first = folder.path().join("a.tar.gz");
        let second = folder.path().join("b.tar.gz");
        write_tar_gz(&first, &entries).unwrap();
        write_tar_gz(&second, &entries).unwrap();
        assert_eq!(sha256_file(&first).unwrap(), sha256_file(&second).unwrap());

        let unpacked = folder.path().join("out");
        unpack_tar_gz(&first, &unpacked).unwrap();
        assert_eq!(
            std::fs::read(unpacked.join("kubectl-demo")).unwrap(),
            b"#!/bin/sh\necho demo\n"
        );
    }

    #[test]
    fn checksums_file_parsed() {
        let text = format!(
            "{}  a.tar.gz\n\n{} *b.tar.gz\n",
            "a".repeat(64),
            "b".repeat(64)
        );
        let pairs = parse_checksums(&text, "SUMS").unwrap();
        assert_eq!(pairs[1], ("b.tar.gz".to_string(), "b".repeat(64)));
        let error = parse_checksums("ABC  x.tar.gz\n", "SUMS").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("invalid SHA-256 \"ABC\" for x.tar.gz")
        );
    }

    #[test]
    fn sha256_form_checked() {
        assert!(is_sha256(&"0f".repeat(32)));
        assert!(!is_sha256(&"0F".repeat(32)));
        assert!(!is_sha256("abc"));
    }
}
