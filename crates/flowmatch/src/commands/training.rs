//! `train` and `reflow`: run directories, resume checks and run records.

use std::path::Path;

use flow_data::Dataset;
use flow_data::PointSource;
use flow_model::{ModelConfig, Precision, VelocityNet};
use flow_ode::Solver;
use flow_path::Objective;
use flow_train::{
    Pairs, PointsRef, RUN_RECORD_FILE, ReflowSettings, RunMetadata, RunOptions, RunRecord, RunSpec,
    TeacherSettings, TrainConfig, TrainReport,
};
use serde_json::json;

use super::{conditioned_target, device_label, load_model, runtime, target_ref};
use crate::cli::{ReflowArgs, TrainArgs};
use crate::error::{CliError, Result};

/// The share of rows trained on the null condition when --condition-dropout is not given.
const DEFAULT_CONDITION_DROPOUT: f64 = 0.3;

/// `--out` before anything is written: a directory (or nothing yet); one to
/// resume must hold a run, and a fresh run does not silently replace one.
fn check_run_dir(dir: &Path, resume: bool, force: bool) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        return Err(CliError::runtime(format!("{}: exists and is not a directory", dir.display())));
    }
    let marks = [RUN_RECORD_FILE, flow_train::MODEL_FILE, flow_train::STATE_FILE];
    let holds_run = marks.iter().any(|file| dir.join(file).exists())
        || dir.join("round-1").join(flow_train::STATE_FILE).exists();
    if resume && !dir.is_dir() {
        return Err(CliError::runtime(format!("{}: no run here to resume", dir.display())));
    }
    if !resume && !force && holds_run {
        return Err(CliError::usage(format!(
            "{} holds a run: --resume continues it, --force replaces it",
            dir.display()
        )));
    }
    Ok(())
}

/// A reflow run writes `model.safetensors` into its directory: a teacher
/// there would be overwritten by its own student (and a resumed run would then
/// learn from the wrong teacher).
fn check_teacher_outside(teacher: &Path, out: &Path) -> Result<()> {
    let teacher_dir = teacher.parent().map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p });
    let same = match (teacher_dir.and_then(|d| d.canonicalize().ok()), out.canonicalize().ok()) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    };
    if same {
        return Err(CliError::usage(format!(
            "--teacher {} lies in --out {}, which the reflow run writes into: choose another --out",
            teacher.display(),
            out.display()
        )));
    }
    Ok(())
}

/// Reports the run; an interrupted run is an error that says where its checkpoint is.
fn finish(dir: &Path, report: &TrainReport) -> Result<()> {
    if report.interrupted {
        return Err(CliError::runtime(format!(
            "interrupted at step {}; the checkpoint in {} continues with --resume",
            report.losses.len(),
            dir.display()
        )));
    }
    eprintln!(
        "trained {} steps in {:.1} s ({:.0} steps/s), final loss {:.4}; model in {}",
        report.losses.len() - report.started_at,
        report.seconds,
        report.steps_per_second,
        report.losses.last().copied().unwrap_or(f32::NAN),
        dir.join(flow_train::MODEL_FILE).display()
    );
    Ok(())
}

pub fn train(args: TrainArgs) -> Result<()> {
    let (device, runtime) = runtime(&args.runtime)?;
    check_run_dir(&args.out, args.resume, args.force)?;
    let target = conditioned_target(&args.target, &args.conditions)?
        .ok_or_else(|| CliError::usage("say what to learn: --target NAME or --data FILE"))?;
    let (source, source_ref) = match &args.source_data {
        Some(path) => {
            let points = flow_data::files::read_points(path)?;
            (PointSource::Data(std::sync::Arc::new(points)), PointsRef::file(path))
        }
        None => {
            let dataset = args.source.unwrap_or(Dataset::Gaussian);
            (PointSource::builtin(dataset, target.points.dim())?, PointsRef::Builtin(dataset))
        }
    };
    if args.ot_batch.is_some() && args.coupling == flow_train::Coupling::Independent {
        return Err(CliError::usage(
            "--ot-batch sets the rows of a transport plan, and --coupling independent plans nothing",
        ));
    }
    if args.condition_dropout.is_some() && args.conditions.is_empty() {
        return Err(CliError::usage(
            "--condition-dropout trains the null condition of a conditional model: give --condition",
        ));
    }
    let ot_batch = args.ot_batch.unwrap_or(args.batch_size);
    let pairs = flow_train::PairSource::conditioned(source, target, args.coupling, ot_batch)?;
    let conditional = !pairs.condition().is_none();
    let model = ModelConfig {
        dim: pairs.dim(),
        architecture: flow_model::Architecture::Mlp(flow_model::Mlp {
            hidden: args.hidden,
            layers: args.layers,
            activation: args.activation,
        }),
        time_embedding: args.time_embedding,
        precision: Precision::F32,
        condition: pairs.condition(),
    };
    let optimiser = &args.optimiser;
    let (lr, lr_schedule) = optimiser.rate(optimiser.recipe.flow_matching());
    let path = flow_path::AffinePath::named(args.path, args.sigma)?;
    if path.scheduler.needs_gaussian_source()
        && (args.source_data.is_some() || args.source.is_some_and(|s| s != Dataset::Gaussian))
    {
        return Err(CliError::usage(format!(
            "--path {}: Lipman et al.'s path starts from the Gaussian's own samples; drop --source/--source-data",
            args.path
        )));
    }
    let objective = if args.score { Objective::Score } else { Objective::Velocity };
    if args.score && !path.needs_noise() {
        return Err(flow_path::PathError::ScoreWithoutNoise.into());
    }
    if args.score && conditional {
        return Err(CliError::usage("--score learns unconditional scores only; drop --condition"));
    }
    let config = TrainConfig {
        steps: args.steps,
        batch_size: args.batch_size,
        lr,
        lr_schedule,
        weight_decay: optimiser.weight_decay,
        ema: optimiser.ema,
        time_sampling: args.time_sampling,
        path,
        objective,
        seed: args.runtime.seed,
        checkpoint_every: args.checkpoint_every,
        condition_dropout: if conditional {
            args.condition_dropout.unwrap_or(DEFAULT_CONDITION_DROPOUT)
        } else {
            0.0
        },
    };
    let metadata = RunMetadata {
        conditions: args.conditions.clone(),
        condition_dropout: conditional.then_some(config.condition_dropout),
        path,
        coupling: args.coupling,
        objective,
        ..RunMetadata::flow_matching(source_ref, target_ref(&args.target))
    };
    let target_label = metadata.target.as_ref().map(flow_train::PointsRef::label).unwrap_or_default();
    let source_label = metadata.source.label();
    tch::manual_seed(args.runtime.seed as i64);
    let mut net = VelocityNet::new(model, device)?;
    let options = RunOptions {
        out_dir: Some(args.out.clone()),
        resume: args.resume,
        stop: Some(crate::signals::interrupt_flag()),
        show_progress: true,
        label: "flow matching".into(),
        metadata,
        runtime,
    };
    let spec = RunSpec {
        pairs: Pairs::FlowMatching {
            source: source_label,
            target: target_label,
            coupling: args.coupling,
            ot_batch,
            conditions: if conditional {
                args.conditions.iter().map(ToString::to_string).collect()
            } else {
                Vec::new()
            },
            data_files: [args.source_data.as_deref(), args.target.data.as_deref()]
                .into_iter()
                .flatten()
                .map(flow_data::files::fingerprint)
                .collect::<std::result::Result<_, _>>()?,
        },
        model: Some(model),
        recipe: optimiser.recipe,
        training: config.clone(),
        backend: runtime.backend,
    };
    if args.resume {
        RunRecord::check_resume_spec(&args.out, &spec)?;
    }
    let report = flow_train::train(&mut net, &pairs, &config, &options)?;
    RunRecord::new(spec.command(), &device_label(device), spec.to_settings(), &report).write(&args.out)?;
    finish(&args.out, &report)
}

pub fn reflow(args: ReflowArgs) -> Result<()> {
    let teacher_solver = super::deterministic(
        Solver::new(args.teacher_solver, Solver::DEFAULT_RTOL, Solver::DEFAULT_ATOL)?,
        "reflow's pairs follow the teacher's ODE",
    )?;
    let (device, runtime) = runtime(&args.runtime)?;
    check_teacher_outside(&args.teacher, &args.out)?;
    check_run_dir(&args.out, args.resume, args.force)?;
    let teacher = load_model(&args.teacher, device)?;
    let source = teacher.source()?;
    let optimiser = &args.optimiser;
    let (lr, lr_schedule) = optimiser.rate(optimiser.recipe.reflow());
    let settings = ReflowSettings {
        teacher: TeacherSettings { solver: teacher_solver, steps: args.teacher_steps },
        mode: args.pairs,
        rounds: args.rounds,
        from_teacher: !args.fresh,
        train: TrainConfig {
            steps: args.steps,
            batch_size: args.batch_size,
            lr,
            lr_schedule,
            weight_decay: optimiser.weight_decay,
            ema: optimiser.ema,
            time_sampling: args.time_sampling,
            path: flow_path::AffinePath::LINE,
            objective: Objective::Velocity,
            seed: args.runtime.seed,
            checkpoint_every: args.checkpoint_every,
            condition_dropout: 0.0,
        },
    };
    let metadata = RunMetadata::reflow(&teacher.metadata, &args.teacher);
    let options = RunOptions {
        out_dir: Some(args.out.clone()),
        resume: args.resume,
        stop: Some(crate::signals::interrupt_flag()),
        show_progress: true,
        label: "reflow".into(),
        metadata,
        runtime,
    };
    let spec = RunSpec {
        pairs: Pairs::Reflow {
            teacher: args.teacher.clone(),
            mode: settings.mode,
            solver: args.teacher_solver,
            steps: args.teacher_steps,
            rounds: settings.rounds,
            from_teacher: settings.from_teacher,
        },
        model: None,
        recipe: optimiser.recipe,
        training: settings.train.clone(),
        backend: runtime.backend,
    };
    if args.resume {
        RunRecord::check_resume_spec(&args.out, &spec)?;
    }
    let mut settings_json = spec.to_settings();
    let (_, rounds) = flow_train::reflow(&teacher.net, &source, &settings, &options)?;
    let last = rounds.last().ok_or_else(|| CliError::runtime("reflow ran no round"))?;
    settings_json["pool_seconds"] = json!(rounds.iter().map(|r| r.pool_seconds).collect::<Vec<_>>());
    RunRecord::new(spec.command(), &device_label(device), settings_json, &last.train).write(&args.out)?;
    finish(&args.out, &last.train)
}
