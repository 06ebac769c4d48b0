//! A virtualenv under `target/` with MKA1's official Python SDK, pinned: shared by
//! `tests/it/sdk_interop.rs` and the command-line guide's test (`cli/tests/readme.rs`), which
//! include this file. A missing Python, a failed `venv` or a failed `pip install` fails the
//! test that asked: it is never skipped. `MKA1_SDK_PYTHON` picks the interpreter (default
//! `python3`).

use std::path::{Path, PathBuf};
use std::process::Output;

use tokio::process::Command;

/// The SDK's package on PyPI.
pub const SDK_PACKAGE: &str = "meetkai-mka1";
/// The version every test (and the README) uses.
pub const SDK_VERSION: &str = "0.12.128";

/// Run a command to completion; panic with its output if it fails.
async fn run(what: &str, command: &mut Command) -> Output {
    let output = command
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{what}: could not run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    output
}

fn venv_python(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

/// Whether `python` has exactly the pinned SDK version installed.
async fn has_sdk(python: &Path) -> bool {
    let probe = format!("import importlib.metadata as m; print(m.version('{SDK_PACKAGE}'))");
    match Command::new(python).args(["-c", &probe]).output().await {
        Ok(out) => {
            out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == SDK_VERSION
        }
        Err(_) => false,
    }
}

/// The virtualenv, once made in this process: the tests of one binary run side by side, and two
/// of them making the same virtualenv at once break each other's `pip install`.
static SDK_VENV: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();

/// A virtualenv under `target/` with the pinned SDK, created (or repaired) when needed; callers
/// in one process share one creation.
pub async fn sdk_python() -> PathBuf {
    SDK_VENV.get_or_init(make_sdk_venv).await.clone()
}

async fn make_sdk_venv() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("mka1-sdk-venv-{SDK_VERSION}"));
    let python = venv_python(&venv);
    if has_sdk(&python).await {
        return python;
    }
    let base = std::env::var("MKA1_SDK_PYTHON").unwrap_or_else(|_| "python3".into());
    run(
        "creating the sdk virtualenv",
        Command::new(&base)
            .args(["-m", "venv", "--clear"])
            .arg(&venv),
    )
    .await;
    run(
        "pip install of the mka1 python sdk",
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--quiet",
            ])
            .arg(format!("{SDK_PACKAGE}=={SDK_VERSION}")),
    )
    .await;
    assert!(
        has_sdk(&python).await,
        "{SDK_PACKAGE} {SDK_VERSION} is not importable after installing it"
    );
    python
}

/// The official MCP Python SDK's package on PyPI, and the version the MCP tests pin.
#[allow(dead_code)] // only the MCP tests (tests/it/mcp_python.rs) use it
pub const MCP_PACKAGE: &str = "mcp";
#[allow(dead_code)]
pub const MCP_VERSION: &str = "2.3.0";

/// The MCP SDK's install, once per process (see [`SDK_VENV`]).
#[allow(dead_code)]
static MCP_VENV: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();

/// The same virtualenv, with the pinned MCP SDK installed beside the MKA1 SDK.
#[allow(dead_code)]
pub async fn mcp_python() -> PathBuf {
    MCP_VENV.get_or_init(install_mcp).await.clone()
}

#[allow(dead_code)]
async fn install_mcp() -> PathBuf {
    let python = sdk_python().await;
    let probe = format!("import importlib.metadata as m; print(m.version('{MCP_PACKAGE}'))");
    let installed = match Command::new(&python).args(["-c", &probe]).output().await {
        Ok(out) => {
            out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == MCP_VERSION
        }
        Err(_) => false,
    };
    if !installed {
        run(
            "pip install of the mcp python sdk",
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--quiet",
                ])
                .arg(format!("{MCP_PACKAGE}=={MCP_VERSION}")),
        )
        .await;
    }
    python
}
