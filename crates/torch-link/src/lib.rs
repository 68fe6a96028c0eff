//! Build-script helper for every package whose binaries or tests link `tch`.
//!
//! tch's own build script sets an RPATH only for its own targets (tch-rs issue
//! #787), so a downstream binary fails with "libtorch_cpu.so: cannot open"
//! unless LD_LIBRARY_PATH is set. Calling [`emit`] from a package's `build.rs`
//! adds an RPATH to the libtorch lib directory and links `libtorch` with
//! `--no-as-needed`, so that `libtorch_cuda` is loaded when present (without it
//! the linker drops the library and CUDA is silently unavailable).
//!
//! Must not: fail the build when libtorch is missing — tch's build reports that.

use std::path::PathBuf;
use std::process::Command;

pub fn emit() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_USE_PYTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_LIB");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    if let Some(lib) = libtorch_lib_dir() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        println!("cargo:rustc-link-search=native={}", lib.display());
    }
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-ltorch");
}

fn libtorch_lib_dir() -> Option<PathBuf> {
    if let Some(lib) = std::env::var_os("LIBTORCH_LIB") {
        return Some(PathBuf::from(lib).join("lib"));
    }
    if let Some(root) = std::env::var_os("LIBTORCH") {
        return Some(PathBuf::from(root).join("lib"));
    }
    if std::env::var_os("LIBTORCH_USE_PYTORCH").is_some() {
        let python = std::env::var("PYTHON_SYS_EXECUTABLE").unwrap_or_else(|_| "python3".into());
        let probe = "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))";
        let output = Command::new(python).args(["-c", probe]).output().ok()?;
        let text = String::from_utf8(output.stdout).ok()?;
        return Some(PathBuf::from(text.trim()));
    }
    None
}
