//! The subcommands: each parses nothing (clap did) and computes nothing of its
//! own; it wires library calls together and reports.

mod sampling;
mod training;

use std::path::Path;

use flow_data::{ConditionSpec, ConditionedTarget, PointSource, files};
use flow_model::{Guide, Integrator, Runtime};
use flow_ode::Solver;
use flow_train::{PointsRef, TrainedModel};
use tch::Device;

use crate::cli::{DataArgs, GuidanceArgs, RuntimeArgs, SolverArgs, TargetArgs};
use crate::error::{CliError, Result};

pub use sampling::{animation_frames, eval, logprob, plot, sample};

/// Writes `text` to standard output: a closed pipe (`| head`) or a full disk (`> /dev/full`) is
/// a one-line run-time error, not a panic. (A descriptor closed with `>&-` cannot be told from
/// `> /dev/null`: Rust's runtime reopens closed standard descriptors on /dev/null before `main`.)
pub fn print_out(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(|e| match e.kind() {
        std::io::ErrorKind::BrokenPipe => {
            CliError::runtime("standard output was closed before everything was written (broken pipe)")
        }
        _ => CliError::runtime(format!("cannot write to standard output: {e}")),
    })
}
pub use training::{reflow, train};

/// Applies the thread count, resolves the device (a missing GPU is an error) and
/// the backend with the native kernel: the one place `FLOWMATCH_KERNEL` is read.
pub fn runtime(args: &RuntimeArgs) -> Result<(Device, Runtime)> {
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
    Ok((args.device.resolve()?, Runtime::requested(args.backend)?))
}

pub fn solver(args: &SolverArgs) -> Result<Solver> {
    let solver = Solver::new(args.solver, args.rtol, args.atol)?;
    Ok(match args.noise {
        Some(noise) => solver.with_noise(noise)?,
        None => solver,
    })
}

/// `solver`, unless it is stochastic: `why` the command needs an ODE solver.
pub fn deterministic(solver: Solver, why: &str) -> Result<Solver> {
    if solver.is_stochastic() {
        return Err(CliError::usage(format!(
            "{why}: --solver {} draws noise; choose an ODE solver",
            solver.name()
        )));
    }
    Ok(solver)
}

/// `model` ready for `solver`: a stochastic one gets the path the run trained on (refused,
/// in one line, for a model whose velocity does not give the score) and the noise of `seed`.
pub fn ready_for(
    model: Integrator,
    solver: Solver,
    checkpoint: &TrainedModel,
    seed: u64,
) -> Result<Integrator> {
    if !solver.is_stochastic() {
        return Ok(model);
    }
    Ok(model.with_noise(checkpoint.metadata.score_path()?, seed))
}

/// The target named by `--target` or `--data`, if any.
pub fn target(args: &TargetArgs) -> Result<Option<PointSource>> {
    match (&args.target, &args.data) {
        (Some(dataset), _) => Ok(Some(PointSource::builtin(*dataset, 2)?)),
        (None, Some(path)) => Ok(Some(PointSource::Data(std::sync::Arc::new(files::read_points(path)?)))),
        (None, None) => Ok(None),
    }
}

/// The target with the conditions `specs` of each point (none: unconditional).
pub fn conditioned_target(args: &TargetArgs, specs: &[ConditionSpec]) -> Result<Option<ConditionedTarget>> {
    match (&args.target, &args.data) {
        (Some(dataset), _) => Ok(Some(ConditionedTarget::builtin(*dataset, 2, specs)?)),
        (None, Some(path)) => Ok(Some(ConditionedTarget::from_file(path, specs)?)),
        (None, None) if !specs.is_empty() => {
            Err(CliError::usage("--condition needs a target (--target or --data)"))
        }
        (None, None) => Ok(None),
    }
}

/// The guide `--condition` and `--guidance` ask for, for `rows` points of `net`
/// (`None`: no condition given, the model's unconditional velocity).
pub fn guide(model: &TrainedModel, args: &GuidanceArgs, rows: usize) -> Result<Option<Guide>> {
    let net = &model.net;
    // A model trained without condition dropout has an untrained null condition, which an
    // unconditional sample and any guidance weight but 1 rely on.
    let untrained_null = !net.config().condition.is_none() && model.metadata.condition_dropout == Some(0.0);
    if untrained_null && (args.condition.is_none() || args.guidance != 1.0) {
        let asked =
            if args.condition.is_none() { "an unconditional sample" } else { "--guidance other than 1" };
        return Err(CliError::usage(format!(
            "{asked} needs the null condition, which this model never trained (--condition-dropout 0); \
             give --condition with --guidance 1, or retrain with --condition-dropout above 0"
        )));
    }
    let Some(text) = &args.condition else { return Ok(None) };
    let shape = net.config().condition;
    if shape.is_none() {
        return Err(CliError::usage("--condition: this model is unconditional (train with --condition)"));
    }
    let row = shape.parse(text).map_err(|e| CliError::usage(format!("--condition {text}: {e}")))?;
    Ok(Some(Guide::repeated(shape, &row, rows, args.guidance)?))
}

/// How a target is recorded in checkpoints, so `eval` can find it again.
pub fn target_ref(args: &TargetArgs) -> Option<PointsRef> {
    match (&args.target, &args.data) {
        (Some(dataset), _) => Some(PointsRef::Builtin(*dataset)),
        (None, Some(path)) => Some(PointsRef::file(path)),
        (None, None) => None,
    }
}

pub fn load_model(path: &Path, device: Device) -> Result<TrainedModel> {
    let checkpoint = load_checkpoint(path, device)?;
    if checkpoint.metadata.objective == flow_path::Objective::Score {
        return Err(CliError::usage(format!(
            "{} is a score network (train --score), not a flow: give it as sample --score beside its flow model",
            path.display()
        )));
    }
    Ok(checkpoint)
}

/// A network trained with `--score`, for `sample --score`.
pub fn load_score_model(path: &Path, device: Device) -> Result<TrainedModel> {
    let checkpoint = load_checkpoint(path, device)?;
    if checkpoint.metadata.objective != flow_path::Objective::Score {
        return Err(CliError::usage(format!(
            "{} is a flow, not a score network: train one with --score on the flow's path, settings and seed",
            path.display()
        )));
    }
    Ok(checkpoint)
}

fn load_checkpoint(path: &Path, device: Device) -> Result<TrainedModel> {
    // A FIFO or a device would block the read or never end it.
    if let Ok(metadata) = std::fs::metadata(path)
        && !metadata.is_file()
    {
        return Err(flow_data::DataError::Io {
            path: path.to_owned(),
            source: std::io::Error::other("not a regular file (a checkpoint is a .safetensors file)"),
        }
        .into());
    }
    Ok(TrainedModel::load(path, device)?)
}

/// Refuses, before anything is drawn, `n` points of dimension `dim` when the `states` copies
/// of them a command keeps (a solver's stages, recorded states, a probe's draws) would not fit.
pub fn check_points_budget(what: &str, n: usize, dim: usize, states: usize) -> Result<()> {
    let what = format!("{what} {n} points of dimension {dim}");
    Ok(flow_data::budget::check_allocation(&what, n as u128 * dim as u128 * states as u128, 4)?)
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
