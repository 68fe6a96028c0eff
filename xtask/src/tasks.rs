//! The tasks themselves: each one is a short list of cargo invocations.

use std::process::Command;

use crate::libtorch;

/// A `cargo` command that builds against the provisioned libtorch.
fn cargo() -> Result<Command, String> {
    let torch = libtorch::provision()?;
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(libtorch::project_root());
    if std::env::var_os("LIBTORCH_USE_PYTORCH").is_none() {
        command.env("LIBTORCH", &torch);
    }
    // Cargo's progress line also in a pipe or a CI log, where it would otherwise stay silent
    // for the minutes a first build takes (unless the user chose otherwise).
    if std::env::var_os("CARGO_TERM_PROGRESS_WHEN").is_none() {
        command.env("CARGO_TERM_PROGRESS_WHEN", "always").env("CARGO_TERM_PROGRESS_WIDTH", "100");
    }
    Ok(command)
}

/// Said before a command that builds the release binary: the first build is long.
const FIRST_BUILD: &str = "building flowmatch first (a first build compiles libtorch's C++ wrapper and \
    every dependency: several minutes on 2 cores; later runs start in seconds)";

fn run(mut command: Command, what: &str) -> Result<(), String> {
    eprintln!("xtask: {what}");
    let status = command.status().map_err(|e| format!("{what}: cannot start: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{what} failed ({status})")) }
}

pub fn test(extra: &[String]) -> Result<(), String> {
    let started = std::time::Instant::now();
    let mut fmt = cargo()?;
    fmt.args(["fmt", "--all", "--", "--check"]);
    run(fmt, "cargo fmt --check")?;

    let mut clippy = cargo()?;
    clippy.args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]);
    run(clippy, "cargo clippy -D warnings")?;
    crate::tidy::opening_lines()?;
    crate::tidy::unused_dependencies()?;

    // The crates are a library too: their documentation builds without a broken link.
    let mut doc = cargo()?;
    doc.env("RUSTDOCFLAGS", "-D warnings").args(["doc", "--no-deps", "--workspace", "--quiet"]);
    run(doc, "cargo doc --no-deps (warnings are errors)")?;

    let mut tests = test_command()?;
    // CUDA runs skipped for want of a GPU pass in libtest's count; they write their names here.
    let skipped = libtorch::project_root().join("target").join("skipped-cuda-tests.txt");
    let _ = std::fs::remove_file(&skipped);
    tests.env("FLOWMATCH_SKIPPED_LOG", &skipped).args(["test", "--workspace"]).args(extra);
    run(tests, "cargo test --workspace")?;
    let names = std::fs::read_to_string(&skipped).unwrap_or_default();
    let count = names.lines().count();
    if count > 0 {
        eprintln!(
            "xtask: {count} CUDA runs were skipped, not passed (no CUDA device here); libtest counts them as passed: {}",
            names.lines().collect::<Vec<_>>().join(", ")
        );
    }
    eprintln!("xtask: all checks passed in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// `cargo test --workspace`, with the Python that lets the checkpoint test
/// load our file in real PyTorch.
fn test_command() -> Result<Command, String> {
    let mut tests = cargo()?;
    if std::env::var_os("FLOWMATCH_TORCH_PYTHON").is_none() {
        match libtorch::python_with_torch() {
            Some(python) => {
                tests.env("FLOWMATCH_TORCH_PYTHON", python);
            }
            None => {
                eprintln!("xtask: no Python with torch and safetensors: the PyTorch loading check is skipped")
            }
        }
    }
    Ok(tests)
}

pub fn gpu_check(extra: &[String]) -> Result<(), String> {
    let mut build = cargo()?;
    build.args(["build", "--release", "--quiet", "--package", "flowmatch"]);
    run(build, "cargo build --release -p flowmatch")?;
    let binary = libtorch::project_root().join("target/release/flowmatch");
    let listing = Command::new(&binary)
        .arg("devices")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let devices = String::from_utf8_lossy(&listing.stdout).into_owned();
    eprint!("{devices}");
    if !devices.lines().any(|line| line.starts_with("cuda:")) {
        println!("xtask: libtorch sees no CUDA device here; gpu-check has nothing to run");
        return Ok(());
    }
    let mut tests = test_command()?;
    tests.env("FLOWMATCH_REQUIRE_CUDA", "1").args(["test", "--workspace"]);
    run(tests, "cargo test --workspace (CUDA runs required)")?;
    let mut bench = cargo()?;
    bench.args(["run", "--release", "--quiet", "--package", "flowmatch", "--", "gpu-bench"]).args(extra);
    run(bench, "flowmatch gpu-bench")
}

/// flow-native's tests (the NEON tiles among them) for aarch64, under qemu.
/// flow-native links no libtorch, so no provisioning is needed.
pub fn test_aarch64(extra: &[String]) -> Result<(), String> {
    const TARGET: &str = "aarch64-unknown-linux-gnu";
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output();
    let has_target =
        installed.is_ok_and(|out| String::from_utf8_lossy(&out.stdout).lines().any(|l| l == TARGET));
    let missing: Vec<&str> = [
        (!has_target)
            .then_some("the aarch64-unknown-linux-gnu target (rustup target add aarch64-unknown-linux-gnu)"),
        (!on_path("aarch64-linux-gnu-gcc")).then_some("a linker (apt-get install gcc-aarch64-linux-gnu)"),
        (!on_path("qemu-aarch64")).then_some("an emulator (apt-get install qemu-user)"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !missing.is_empty() {
        return Err(format!("cannot test for aarch64 without {}", missing.join(", ")));
    }
    let mut tests = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    tests
        .current_dir(libtorch::project_root())
        .env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER", "aarch64-linux-gnu-gcc")
        .env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER", "qemu-aarch64 -L /usr/aarch64-linux-gnu")
        .args(["test", "--package", "flow-native", "--target", TARGET])
        .args(extra);
    run(tests, "cargo test -p flow-native --target aarch64-unknown-linux-gnu (under qemu)")
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

pub fn reproduce(extra: &[String]) -> Result<(), String> {
    eprintln!("xtask: {FIRST_BUILD}");
    let mut command = cargo()?;
    command.args(["run", "--release", "--package", "flowmatch", "--", "reproduce"]).args(extra);
    run(command, "flowmatch reproduce")
}

pub fn bench(extra: &[String]) -> Result<(), String> {
    let mut comparison = cargo()?;
    comparison
        .args(["run", "--release", "--package", "flowmatch", "--", "bench", "--python"])
        .arg(libtorch::python())
        .args(extra);
    run(comparison, "flowmatch bench (against PyTorch)")?;
    let mut criterion = cargo()?;
    criterion.args(["bench", "--workspace"]);
    run(criterion, "cargo bench")
}
