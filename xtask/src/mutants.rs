//! `cargo xtask mutants`: cargo-mutants over the crates that do not link libtorch and the pure parts of those that do, its counts and missed mutants written to `assets/mutants.md`.
//!
//! Not part of `cargo xtask test`: the four pure crates hold about 1 700
//! mutants, about 1.5 hours on two cores; flow-train and flow-model are
//! mutated only in their pure parts, and only when named. `--crate NAME` (repeatable) narrows the run;
//! `--shard k/n`, `--in-diff FILE` and other cargo-mutants flags pass through.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::libtorch;

const VERSION: &str = "27.1.0";
/// The crates that do not link libtorch, whose tests run in seconds.
const PURE_CRATES: [&str; 4] = ["flow-ode", "flow-data", "flow-metrics", "flow-native"];
/// The pure parts of the crates that link libtorch, as cargo-mutants name
/// regexes: each mutant there relinks a test binary against libtorch and runs
/// the crate's whole suite (20–30 s), so only what computes without a network
/// is mutated: time sampling, recipes and schedules, settings, pair pools and
/// coupled blocks, run metadata and records, checkpoint metadata and model
/// configurations.
const PURE_PARTS: [(&str, &str); 2] = [
    (
        "flow-train",
        "time_sampling\\.rs|run/(metadata|record)\\.rs|trainer\\.rs:.* in (LrSchedule|Recipe|TrainConfig)|\
         pairs\\.rs:.* in (PairMode|PairSource::pool_until|CoupledBlock)|coupling\\.rs:.* in (Coupling::parse|c2ot_pairing)",
    ),
    ("flow-model", "checkpoint\\.rs|mlp\\.rs:.* in ModelConfig"),
];
/// Every crate the report covers, in its order: the pure crates, then the pure parts.
fn reported_crates() -> impl Iterator<Item = &'static str> {
    PURE_CRATES.into_iter().chain(PURE_PARTS.iter().map(|(name, _)| *name))
}
const REPORT: &str = "assets/mutants.md";

/// One crate's outcome counts and the mutants its tests missed.
struct Outcome {
    krate: String,
    caught: usize,
    missed: Vec<String>,
    unviable: usize,
    timeout: usize,
    seconds: f64,
    /// The cargo-mutants flags of the run (`--shard`, `--file`, …); empty for the whole crate.
    scope: String,
}

pub fn run(extra: &[String]) -> Result<(), String> {
    let (crates, passed_on) = split_arguments(extra)?;
    let tool = provision()?;
    let root = libtorch::project_root();
    for krate in &crates {
        let out = root.join("target").join("mutants").join(krate);
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        let parts = PURE_PARTS.iter().find(|(name, _)| name == krate).map(|(_, parts)| *parts);
        let mut flags = passed_on.clone();
        if let Some(parts) = parts {
            flags.extend(["--re".to_owned(), parts.to_owned()]);
        }
        eprintln!("xtask: cargo mutants --package {krate} {}", flags.join(" "));
        let clock = Instant::now();
        // Exit status 2 means "some mutants were missed": that is what the report is for.
        let status = Command::new(&tool)
            .current_dir(&root)
            .args(["mutants", "--package", krate, "--no-shuffle", "--output"])
            .arg(&out)
            .args(&flags)
            .status()
            .map_err(|e| format!("cannot start {}: {e}", tool.display()))?;
        if !out.join("mutants.out").join("caught.txt").is_file() {
            return Err(format!("cargo mutants on {krate} wrote no results ({status})"));
        }
        let seconds = clock.elapsed().as_secs_f64().to_string();
        std::fs::write(out.join("seconds"), seconds).map_err(|e| format!("{}: {e}", out.display()))?;
        let scope = match parts {
            Some(_) => format!("pure parts {}", passed_on.join(" ")),
            None => passed_on.join(" "),
        };
        std::fs::write(out.join("scope"), scope.trim()).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    // Every crate with results, run now or earlier, so runs of single crates add up to one report.
    let outcomes: Vec<Outcome> = reported_crates().filter_map(|krate| outcome(&root, krate)).collect();
    let report = render(&outcomes);
    std::fs::write(root.join(REPORT), report).map_err(|e| format!("{REPORT}: {e}"))?;
    eprintln!("xtask: mutation report written to {REPORT}");
    Ok(())
}

/// `--crate NAME` flags (default: every pure crate) and everything else, for cargo-mutants.
fn split_arguments(extra: &[String]) -> Result<(Vec<String>, Vec<String>), String> {
    let mut crates = Vec::new();
    let mut rest = Vec::new();
    let mut arguments = extra.iter();
    while let Some(argument) = arguments.next() {
        if argument == "--crate" {
            let name = arguments.next().ok_or("--crate needs a crate name")?;
            if !reported_crates().any(|known| known == name) {
                return Err(format!(
                    "--crate {name}: not one of {}",
                    reported_crates().collect::<Vec<_>>().join(", ")
                ));
            }
            crates.push(name.clone());
        } else {
            rest.push(argument.clone());
        }
    }
    if crates.is_empty() {
        crates = PURE_CRATES.iter().map(|c| c.to_string()).collect();
    }
    Ok((crates, rest))
}

/// cargo-mutants at [`VERSION`], installed once by cargo into the tool cache.
fn provision() -> Result<PathBuf, String> {
    let root = libtorch::cache_dir().join("tools").join(format!("cargo-mutants-{VERSION}"));
    let binary = root.join("bin").join("cargo-mutants");
    if binary.is_file() {
        return Ok(binary);
    }
    eprintln!("xtask: installing cargo-mutants {VERSION} into {} (a few minutes, once)", root.display());
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["install", "cargo-mutants", "--locked", "--version", VERSION, "--root"])
        .arg(&root)
        .status()
        .map_err(|e| format!("cannot run cargo install: {e}"))?;
    if !status.success() || !binary.is_file() {
        return Err(format!("cargo install cargo-mutants {VERSION} failed ({status})"));
    }
    Ok(binary)
}

/// The results cargo-mutants left in `target/mutants/KRATE`, if any.
fn outcome(root: &Path, krate: &str) -> Option<Outcome> {
    let out = root.join("target").join("mutants").join(krate);
    let results = out.join("mutants.out");
    if !results.join("caught.txt").is_file() {
        return None;
    }
    Some(Outcome {
        krate: krate.to_owned(),
        caught: lines(&results.join("caught.txt")).len(),
        missed: lines(&results.join("missed.txt")),
        unviable: lines(&results.join("unviable.txt")).len(),
        timeout: lines(&results.join("timeout.txt")).len(),
        seconds: std::fs::read_to_string(out.join("seconds")).ok()?.trim().parse().ok()?,
        scope: std::fs::read_to_string(out.join("scope")).unwrap_or_default().trim().to_owned(),
    })
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect()
}

fn render(outcomes: &[Outcome]) -> String {
    let mut text = String::from("# Mutation testing\n\n");
    text.push_str(&format!(
        "Written by `cargo xtask mutants` (cargo-mutants {VERSION}): every mutant of a crate's code is built and its \
         tests run; a mutant the tests fail on is caught, one that makes them hang (timeout) counts as caught. \
         Equivalent mutants (no observable change) are excluded in `.cargo/mutants.toml`, each with its reason. \
         The goal is at least 90 % of viable mutants caught per crate. `scope` shows the flags of a partial run.\n\n"
    ));
    text.push_str(
        "| crate | scope | mutants | caught | missed | unviable | timeout | caught / viable | minutes |\n",
    );
    text.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for outcome in outcomes {
        let viable = outcome.caught + outcome.missed.len() + outcome.timeout;
        // A timeout (the mutant made the tests hang) counts as caught: the suite noticed it.
        let share = if viable == 0 {
            100.0
        } else {
            100.0 * (outcome.caught + outcome.timeout) as f64 / viable as f64
        };
        text.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {share:.1} % | {:.1} |\n",
            outcome.krate,
            if outcome.scope.is_empty() { "whole crate".to_owned() } else { format!("`{}`", outcome.scope) },
            viable + outcome.unviable,
            outcome.caught,
            outcome.missed.len(),
            outcome.unviable,
            outcome.timeout,
            outcome.seconds / 60.0
        ));
    }
    let parts: Vec<String> = PURE_PARTS
        .iter()
        .filter(|(name, _)| outcomes.iter().any(|o| o.krate == *name))
        .map(|(name, parts)| format!("{name}: `{parts}`"))
        .collect();
    if !parts.is_empty() {
        text.push_str(&format!(
            "\nThe pure parts of the crates that link libtorch (mutant names matching): {}.\n",
            parts.join("; ")
        ));
    }
    for outcome in outcomes.iter().filter(|o| !o.missed.is_empty()) {
        text.push_str(&format!("\n## Missed in {}\n\n", outcome.krate));
        for mutant in &outcome.missed {
            text.push_str(&format!("- `{mutant}`\n"));
        }
    }
    text
}
