//! Finds or installs libtorch 2.11.0 so that `tch = "=0.24.0"` can build.
//!
//! Order: a user's `LIBTORCH` or `LIBTORCH_USE_PYTORCH` wins and nothing is
//! installed; otherwise a Python virtual environment holding the PyTorch 2.11.0
//! wheel is reused or created, first in the project (`.venv-torch/`), else in a
//! per-user cache keyed by the torch version so several checkouts share one.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const TORCH_VERSION: &str = "2.11.0";
const READY_MARKER: &str = "flowmatch-torch-ready";
/// What the environment holds; changing it makes existing environments top themselves up.
const PACKAGES: [&str; 3] = ["torch==2.11.0", "numpy", "safetensors"];

/// Returns the directory to use as `LIBTORCH` (the torch Python package directory),
/// or `None` when the user manages libtorch through `LIBTORCH` / `LIBTORCH_USE_PYTORCH`.
pub fn provision() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("LIBTORCH") {
        return Ok(PathBuf::from(dir));
    }
    if std::env::var_os("LIBTORCH_USE_PYTORCH").is_some() {
        let python = std::env::var("PYTHON_SYS_EXECUTABLE").unwrap_or_else(|_| "python3".into());
        return torch_dir_of(Path::new(&python));
    }
    let venv = venv_location();
    let python = venv.join("bin").join("python");
    let ready = std::fs::read_to_string(venv.join(READY_MARKER)).unwrap_or_default();
    if ready.trim() != PACKAGES.join(" ") {
        install(&venv)?;
    }
    torch_dir_of(&python)
}

fn venv_location() -> PathBuf {
    let in_project = project_root().join(".venv-torch");
    if in_project.exists() {
        return in_project;
    }
    cache_dir().join(format!("torch-{TORCH_VERSION}")).join("venv")
}

/// Where provisioned tools live, shared by all checkouts: `$XDG_CACHE_HOME/flowmatch` or `~/.cache/flowmatch`.
pub fn cache_dir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(|| project_root().join("target"));
    cache.join("flowmatch")
}

pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn install(venv: &Path) -> Result<(), String> {
    let python = "python3";
    if Command::new(python).arg("--version").output().is_err() {
        return Err(
            "python3 not found: install Python 3 with venv and pip (Debian: apt-get install python3 python3-venv python3-pip), \
             or set LIBTORCH to a libtorch 2.11.0 directory"
                .into(),
        );
    }
    eprintln!(
        "xtask: installing PyTorch {TORCH_VERSION} (with its libtorch) into {}\n\
         xtask: this happens once; it downloads about 5 GB and takes a minute or two",
        venv.display()
    );
    let venv_python = venv.join("bin").join("python");
    if !venv_python.exists() {
        if let Some(parent) = venv.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        run_checked(
            Command::new(python).args(["-m", "venv", "--clear"]).arg(venv),
            "python3 -m venv failed: install the venv module (Debian: apt-get install python3-venv)",
        )?;
    }
    run_checked(
        Command::new(&venv_python).args(["-m", "pip", "--version"]),
        "the new virtual environment has no pip: install pip (Debian: apt-get install python3-pip)",
    )?;
    run_checked(
        Command::new(&venv_python)
            .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input"])
            .args(PACKAGES),
        &format!("pip could not install torch=={TORCH_VERSION}"),
    )?;
    std::fs::write(venv.join(READY_MARKER), PACKAGES.join(" "))
        .map_err(|e| format!("cannot write to {}: {e}", venv.display()))
}

fn run_checked(command: &mut Command, failure: &str) -> Result<(), String> {
    match command.status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("{failure} ({status})")),
        Err(e) => Err(format!("{failure} ({e})")),
    }
}

/// Asks `python` where its torch package lives, and checks its version.
fn torch_dir_of(python: &Path) -> Result<PathBuf, String> {
    let probe = "import os, torch; print(torch.__version__); print(os.path.dirname(torch.__file__))";
    let output = Command::new(python)
        .args(["-c", probe])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} cannot import torch: install torch=={TORCH_VERSION} there, or unset LIBTORCH_USE_PYTORCH to let xtask install it",
            python.display()
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let version = lines.next().unwrap_or_default().trim();
    let dir = lines.next().unwrap_or_default().trim();
    if !version.starts_with(TORCH_VERSION) {
        return Err(format!(
            "{} has torch {version}, but tch 0.24.0 needs torch {TORCH_VERSION}",
            python.display()
        ));
    }
    Ok(PathBuf::from(dir))
}

/// The Python interpreter of the provisioned environment (has torch; used by the bench).
pub fn python() -> PathBuf {
    if std::env::var_os("LIBTORCH_USE_PYTORCH").is_some() || std::env::var_os("LIBTORCH").is_some() {
        return PathBuf::from(std::env::var("PYTHON_SYS_EXECUTABLE").unwrap_or_else(|_| "python3".into()));
    }
    venv_location().join("bin").join("python")
}

/// A Python that can import torch and safetensors, for the checkpoint-loading
/// test: the provisioned one, or the user's when they manage libtorch themselves.
pub fn python_with_torch() -> Option<PathBuf> {
    let python = python();
    let probe = Command::new(&python).args(["-c", "import torch, safetensors"]).output();
    probe.ok().filter(|out| out.status.success()).map(|_| python)
}
