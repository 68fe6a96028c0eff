//! The subcommands: each parses nothing (clap did) and computes nothing of its
//! own; it wires library calls together and reports.

mod sampling;
mod training;

use std::path::Path;

use flow_data::{Dataset, PointSource, files};
use flow_model::checkpoint::{self, Checkpoint};
use flow_ode::Solver;
use serde::Serialize;
use tch::Device;

use crate::cli::{DataArgs, RuntimeArgs, SolverArgs, TargetArgs};
use crate::error::{CliError, Result};

pub use sampling::{animation_frames, eval, plot, sample};
pub use training::{reflow, train};

/// Applies the thread count and resolves the device (a missing GPU is an error).
pub fn runtime(args: &RuntimeArgs) -> Result<Device> {
    if let Some(threads) = args.threads {
        // Far more threads than cores only slows the run; 100 000 hung creating them.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let most = (16 * cores).max(64);
        if threads > most {
            return Err(CliError::usage(format!(
                "--threads {threads} is more than {most} (16 per core on this {cores}-core machine)"
            )));
        }
        tch::set_num_threads(threads as i32);
    }
    Ok(args.device.resolve()?)
}

pub fn solver(args: &SolverArgs) -> Result<Solver> {
    Ok(Solver::new(args.solver, args.rtol, args.atol)?)
}

/// The target named by `--target` or `--data`, if any.
pub fn target(args: &TargetArgs) -> Result<Option<PointSource>> {
    match (&args.target, &args.data) {
        (Some(dataset), _) => Ok(Some(PointSource::builtin(*dataset, 2)?)),
        (None, Some(path)) => Ok(Some(PointSource::Data(std::sync::Arc::new(files::read_points(path)?)))),
        (None, None) => Ok(None),
    }
}

/// How a target is recorded in checkpoints, so `eval` can find it again.
pub fn target_label(args: &TargetArgs) -> String {
    match (&args.target, &args.data) {
        (Some(dataset), _) => dataset.name().to_owned(),
        // Absolute, so `eval` finds the file from any directory.
        (None, Some(path)) => {
            format!("data:{}", path.canonicalize().unwrap_or_else(|_| path.clone()).display())
        }
        (None, None) => String::new(),
    }
}

/// The target a checkpoint was trained on, when it was a built-in one.
pub fn target_of(checkpoint: &Checkpoint) -> Result<Option<PointSource>> {
    let dim = checkpoint.net.config().dim;
    match checkpoint.metadata.get("target").map(String::as_str) {
        Some(name) if !name.starts_with("data:") && !name.is_empty() => {
            Ok(Some(PointSource::builtin(Dataset::from_name(name)?, dim)?))
        }
        Some(name) if name.starts_with("data:") => {
            let path = Path::new(&name[5..]);
            Ok(path
                .is_file()
                .then(|| files::read_points(path))
                .transpose()?
                .map(|p| PointSource::Data(p.into())))
        }
        _ => Ok(None),
    }
}

/// The source a checkpoint's flow starts from (its header's `source`, else the Gaussian).
pub fn source_of(checkpoint: &Checkpoint) -> Result<PointSource> {
    let name = checkpoint.metadata.get("source").map(String::as_str).unwrap_or("gaussian");
    // A bad name here comes from a file, not from the command line: a run-time error.
    let source = Dataset::from_name(name)
        .and_then(|dataset| PointSource::builtin(dataset, checkpoint.net.config().dim))
        .map_err(|e| CliError::runtime(format!("the checkpoint's source: {e}")))?;
    Ok(source)
}

pub fn load_model(path: &Path, device: Device) -> Result<Checkpoint> {
    Ok(checkpoint::load(path, device)?)
}

/// Data must match the model's dimension.
pub fn check_dimension(points: usize, model: usize, what: &str) -> Result<()> {
    if points != model {
        return Err(CliError::runtime(format!(
            "{what} is {points}-dimensional but the model is {model}-dimensional"
        )));
    }
    Ok(())
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::runtime(e.to_string()))?;
    files::write_atomically(path, |out| writeln!(out, "{text}"))?;
    Ok(())
}

pub fn device_label(device: Device) -> String {
    flow_model::device_name(device)
}

pub fn data(args: DataArgs) -> Result<()> {
    files::check_output_path(&args.out)?;
    let points = args.name.sample(args.n, args.dim, &mut flow_data::seeded_rng(args.seed))?;
    files::write_points(&args.out, &points)?;
    eprintln!("wrote {} {} points to {}", args.n, args.name, args.out.display());
    Ok(())
}
