//! The six platforms the krew manifests list, in krew's `os`/`arch` names.

use std::fmt;

/// One operating system and architecture, named as krew's selector labels name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    /// `linux`, `darwin` or `windows` (Go's GOOS names, which krew uses).
    pub os: &'static str,
    /// `amd64` or `arm64` (Go's GOARCH names).
    pub arch: &'static str,
}

/// Every platform a manifest lists, in the order it lists them.
pub const PLATFORMS: [Platform; 6] = [
    Platform {
        os: "linux",
        arch: "amd64",
    },
    Platform {
        os: "linux",
        arch: "arm64",
    },
    Platform {
        os: "darwin",
        arch: "amd64",
    },
    Platform {
        os: "darwin",
        arch: "arm64",
    },
    Platform {
        os: "windows",
        arch: "amd64",
    },
    Platform {
        os: "windows",
        arch: "arm64",
    },
];

impl Platform {
    /// Returns the platform this program runs on, `None` when krew has no name for it.
    pub fn host() -> Option<Platform> {
        Platform::from_rust(std::env::consts::OS, std::env::consts::ARCH)
    }

    /// Maps Rust's `target_os`/`target_arch` names to krew's.
    pub fn from_rust(os: &str, arch: &str) -> Option<Platform> {
        let os = match os {
            "linux" => "linux",
            "macos" => "darwin",
            "windows" => "windows",
            _ => return None,
        };
        let arch = match arch {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            _ => return None,
        };
        PLATFORMS
            .iter()
            .copied()
            .find(|platform| platform.os == os && platform.arch == arch)
    }

    /// Returns the suffix of executables on this platform.
    pub fn exe_suffix(self) -> &'static str {
        if self.os == "windows" { ".exe" } else { "" }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.os, self.arch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_names_map_to_krew_names() {
        assert_eq!(
            Platform::from_rust("macos", "aarch64"),
            Some(Platform {
                os: "darwin",
                arch: "arm64"
            })
        );
        assert_eq!(Platform::from_rust("linux", "riscv64"), None);
        assert_eq!(Platform::from_rust("freebsd", "x86_64"), None);
    }

    #[test]
    fn host_is_listed() {
        assert!(Platform::host().is_some_and(|host| PLATFORMS.contains(&host)));
    }
}
