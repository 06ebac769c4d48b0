//! What the command-line tests share: the built binary, a finished run, files under the
//! test target directory, and `mka1-auth dev-issuer` running in the background.
#![allow(dead_code)] // Each test binary uses its own part.

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// The binary, with no proxy from the environment (everything here is on loopback) and no
/// MKA1 settings but those a test gives.
pub fn mka1_auth() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mka1-auth"));
    without_proxies(&mut command);
    for var in ["MKA1_API_KEY", "MKA1_BEARER_AUTH", "MKA1_SERVER_URL"] {
        command.env_remove(var);
    }
    command.kill_on_drop(true);
    command
}

/// `command` without the proxy variables HTTP clients honour: everything here is on
/// loopback.
pub fn without_proxies(command: &mut Command) -> &mut Command {
    for var in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
        command.env_remove(var).env_remove(var.to_ascii_lowercase());
    }
    command
}

/// A finished run: exit code and both outputs.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn of(output: Output) -> Run {
        let run = Run {
            code: output.status.code(),
            stdout: String::from_utf8(output.stdout).expect("utf-8 output"),
            stderr: String::from_utf8(output.stderr).expect("utf-8 errors"),
        };
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        run
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not json ({e}): {}", self.stdout))
    }

    /// Neither output holds the token's signature.
    pub fn hides_signature_of(&self, token: &str) {
        let signature = token.rsplit('.').next().unwrap();
        assert!(signature.len() > 20, "a real signature: {token}");
        assert!(!self.stdout.contains(signature), "{}", self.stdout);
        assert!(!self.stderr.contains(signature), "{}", self.stderr);
    }
}

pub async fn run(command: &mut Command) -> Run {
    Run::of(command.output().await.expect("the binary runs"))
}

pub async fn run_args(args: &[&str]) -> Run {
    run(mka1_auth().args(args)).await
}

/// Run with `input` on standard input.
pub async fn run_with_stdin(args: &[&str], input: &str) -> Run {
    let mut child = mka1_auth()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    Run::of(child.wait_with_output().await.unwrap())
}

/// A file under the test target directory holding `text`.
pub fn file(name: &str, text: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}"));
    std::fs::write(&path, text).unwrap();
    path
}

/// `mka1-auth dev-issuer` running in the background, and the lines it printed.
pub struct DevIssuerProcess {
    child: Child,
    pub server_url: String,
    pub api_key: String,
    pub jwks_url: String,
}

impl DevIssuerProcess {
    pub async fn start(args: &[&str]) -> DevIssuerProcess {
        let mut child = mka1_auth()
            .arg("dev-issuer")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut values = Vec::new();
        for name in ["MKA1_SERVER_URL", "MKA1_API_KEY", "MKA1_JWKS_URL"] {
            let line = lines.next_line().await.unwrap().expect("a start-up line");
            let value = line
                .strip_prefix(&format!("{name}="))
                .unwrap_or_else(|| panic!("{name}= expected: {line}"));
            values.push(value.to_owned());
        }
        let [server_url, api_key, jwks_url] = values.try_into().unwrap();
        DevIssuerProcess {
            child,
            server_url,
            api_key,
            jwks_url,
        }
    }

    /// Ctrl-C, as a terminal sends it; the exit code.
    pub async fn interrupt(mut self) -> Option<i32> {
        let pid = self.child.id().expect("still running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the dev issuer stops on SIGINT")
            .unwrap();
        status.code()
    }

    /// `mka1-auth token` against this issuer, with the key in `var`.
    pub async fn token(&self, var: &str, key: &str, args: &[&str]) -> Run {
        run(mka1_auth()
            .env("MKA1_SERVER_URL", &self.server_url)
            .env(var, key)
            .arg("token")
            .args(args))
        .await
    }
}
