//! `cargo xtask`: release tasks of the workspace (see krew-manifests/README.md).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xtask::dist::{self, DistOptions};
use xtask::platform::Platform;
use xtask::{Error, install, manifest, workspace_root};

/// Release tasks of the kubectl plugins.
#[derive(Parser, Debug)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand, Debug)]
enum Task {
    /// Build the four plugins for this machine, pack kubectl-<name>-v<version>-<os>-<arch>.tar.gz
    /// archives with SHA256SUMS, and render krew-manifests/<name>.yaml for all six platforms.
    Dist {
        /// Cargo profile: release for publishing, dev to pack the debug binaries.
        #[arg(long, default_value = "release", value_parser = ["release", "dev"])]
        profile: String,

        /// Cargo target folder [default: the workspace's target/].
        #[arg(long, value_name = "DIR")]
        target_dir: Option<PathBuf>,

        /// Folder for the archives and SHA256SUMS [default: dist/].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,

        /// Folder for the rendered manifests [default: krew-manifests/].
        #[arg(long, value_name = "DIR")]
        manifests: Option<PathBuf>,

        /// sha256sum file with checksums of archives built on other machines (repeatable);
        /// platforms without a checksum stay pending in the manifests.
        #[arg(long, value_name = "FILE")]
        checksums: Vec<PathBuf>,

        /// Pack the binaries already in the target folder instead of building them.
        #[arg(long)]
        skip_build: bool,
    },

    /// Check krew manifests by krew's rules.
    Validate {
        /// Accept sha256 values still pending for the release pipeline.
        #[arg(long)]
        allow_pending: bool,

        /// Manifest files [default: krew-manifests/*.yaml].
        files: Vec<PathBuf>,
    },

    /// Install a plugin from its archive into a krew-like folder (store/, bin/, receipts/).
    Install {
        /// The plugin's manifest.
        #[arg(long, value_name = "FILE")]
        manifest: PathBuf,

        /// The archive the manifest's entry for this machine downloads.
        #[arg(long, value_name = "FILE")]
        archive: PathBuf,

        /// The krew-like root folder.
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(task: Task) -> Result<(), Error> {
    match task {
        Task::Dist {
            profile,
            target_dir,
            out,
            manifests,
            checksums,
            skip_build,
        } => {
            let root = workspace_root();
            let options = DistOptions {
                profile,
                target_dir,
                out: out.unwrap_or_else(|| root.join("dist")),
                manifests: manifests.unwrap_or_else(|| root.join("krew-manifests")),
                checksums,
                skip_build,
            };
            let output = dist::run(&options)?;
            println!("built for {}:", output.platform);
            for (path, hash) in &output.archives {
                println!("  {hash}  {}", path.display());
            }
            for path in &output.manifests {
                println!("rendered {}", path.display());
            }
            if !output.pending.is_empty() {
                println!(
                    "pending for the release pipeline (pass their checksums with --checksums): {}",
                    output.pending.join(", ")
                );
            }
            Ok(())
        }
        Task::Validate {
            allow_pending,
            files,
        } => {
            let files = if files.is_empty() {
                default_manifests()?
            } else {
                files
            };
            for file in files {
                let validated = manifest::validate(&manifest::read(&file)?, &file, allow_pending)?;
                if validated.pending.is_empty() {
                    println!("{}: valid", file.display());
                } else {
                    println!(
                        "{}: valid, pending for the release pipeline: {}",
                        file.display(),
                        validated.pending.join(", ")
                    );
                }
            }
            Ok(())
        }
        Task::Install {
            manifest,
            archive,
            root,
        } => {
            let platform = Platform::host().ok_or_else(|| {
                Error::Failed("krew has no platform name for this machine".to_string())
            })?;
            let installed = install::install(&manifest, &archive, &root, platform)?;
            println!(
                "installed {} -> {}",
                installed.bin_link.display(),
                installed.install_dir.display()
            );
            Ok(())
        }
    }
}

fn default_manifests() -> Result<Vec<PathBuf>, Error> {
    let folder = workspace_root().join("krew-manifests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .map_err(|source| Error::Io {
            context: format!("failed to list {}", folder.display()),
            source,
        })?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "yaml")
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::Failed(format!(
            "no manifests in {}: run cargo xtask dist first",
            folder.display()
        )));
    }
    Ok(files)
}
