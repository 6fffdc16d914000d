//! A local S3 server for tests: `s3s-fs` on a free loopback port, serving a temporary folder
//! with one access key, stopped when the handle is dropped.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Access key ID the server accepts.
pub const ACCESS_KEY: &str = "AKIATESTKIT0000000000";
/// Secret key the server accepts.
pub const SECRET_KEY: &str = "testkit-secret-key-0000000000000000000000";

/// A running `s3s-fs` process with its data folder.
pub struct S3Server {
    child: Child,
    address: SocketAddr,
    root: tempfile::TempDir,
}

impl S3Server {
    /// Starts the server and waits until it accepts connections. Panics with the reason when
    /// `s3s-fs` is missing or does not start within 10 seconds.
    pub fn start() -> S3Server {
        let root = tempfile::tempdir().expect("failed to create the S3 data folder");
        let binary = s3s_fs_binary();

        // A port picked by binding port 0 can be taken again before s3s-fs binds it, so a
        // server that exits at once is started again on a new port, three times at most.
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = free_port();
            let address = SocketAddr::from(([127, 0, 0, 1], port));
            let mut child = Command::new(&binary)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                .arg(root.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|error| panic!("failed to start {}: {error}", binary.display()));
            match wait_until_listening(&mut child, address) {
                Ok(()) => {
                    return S3Server {
                        child,
                        address,
                        root,
                    };
                }
                Err(error) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = error;
                }
            }
        }
        panic!("s3s-fs did not start: {last_error}");
    }

    /// Returns the endpoint URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Creates a bucket. s3s-fs keeps each bucket as a folder under its root.
    pub fn create_bucket(&self, name: &str) {
        std::fs::create_dir_all(self.root.path().join(name))
            .unwrap_or_else(|error| panic!("failed to create bucket {name}: {error}"));
    }

    /// Returns the folder that holds the buckets, for checking stored objects directly.
    pub fn data_dir(&self) -> &Path {
        self.root.path()
    }

    /// Writes an AWS INI credentials file with this server's keys under `[default]` and
    /// returns its path.
    pub fn write_credentials_file(&self, folder: &Path) -> PathBuf {
        let path = folder.join("s3-credentials");
        let text = format!(
            "[default]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
        );
        std::fs::write(&path, text).expect("failed to write the credentials file");
        set_owner_only(&path);
        path
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(unix)]
fn set_owner_only(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

#[cfg(not(unix))]
fn set_owner_only(_path: &Path) {}

/// Finds `s3s-fs`: `$S3S_FS`, then `~/.cargo/bin/s3s-fs`, then `PATH`.
fn s3s_fs_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("S3S_FS") {
        return PathBuf::from(path);
    }
    if let Some(home) = std::env::var_os("HOME") {
        let path = Path::new(&home).join(".cargo/bin/s3s-fs");
        if path.exists() {
            return path;
        }
    }
    PathBuf::from("s3s-fs")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("failed to find a free loopback port")
}

fn wait_until_listening(child: &mut Child, address: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("s3s-fs exited with {status}"));
        }
        if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "s3s-fs did not listen on {address} within 10 seconds"
    ))
}
