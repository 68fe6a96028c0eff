//! `flowmatch reproduce`: train what the post trained, then draw every figure
//! of the post, the figures it lacked, and a report with measured quality.
//!
//! Checkpoints go under `OUT/checkpoints/` and are reused unless `--retrain`.

pub mod figures;
pub mod report;

use std::path::{Path, PathBuf};
use std::time::Instant;

use flow_data::{Dataset, PointSource, samplers};
use flow_eval::QualityProbe;
use flow_eval::likelihood::{self, Divergence};
use flow_model::{Integrator, ModelConfig, Runtime, VelocityNet};
use flow_ode::{Solver, SolverKind};
use flow_train::{
    PairMode, PairSource, PointsRef, Recipe, ReflowSettings, RunKind, RunMetadata, RunOptions, TrainConfig,
};
use flow_viz::QualitySeries;

use self::figures::{FIGURES, FRAME_DELAY_CS, Picture, Reproduction};
use self::report::{ReflowLine, Report};
use crate::cli::ReproduceArgs;
use crate::commands::{self, device_label};
use crate::error::{CliError, Result};

/// The sizes of a run: the post's, or a quick one for tests.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    pub points: usize,
    pub flow_steps: usize,
    pub reflow_steps: usize,
    pub batch_size: usize,
    pub pool: usize,
    pub probe: usize,
}

impl Scale {
    pub const POST: Scale = Scale {
        points: 1000,
        flow_steps: 10_000,
        reflow_steps: 1000,
        batch_size: 2048,
        pool: PairMode::DEFAULT_POOL,
        probe: 2000,
    };
    pub const QUICK: Scale =
        Scale { points: 300, flow_steps: 200, reflow_steps: 40, batch_size: 256, pool: 4096, probe: 300 };

    fn is_quick(&self) -> bool {
        self.flow_steps < 1000
    }
}

/// The post's budget (steps, batch) with our learning rates: the post's constant 1e-3 leaves
/// the network still learning when the budget ends (see [`Recipe::Tuned`]).
pub const RECIPE: Recipe = Recipe::Tuned;

/// Cells per side of the likelihood maps (over the plots' [−π, π]²).
pub const DENSITY_CELLS: usize = 100;

/// Step counts of the quality-against-cost figure.
pub const QUALITY_STEPS: [usize; 7] = [1, 2, 4, 8, 16, 32, 100];

struct Context {
    out: PathBuf,
    device: tch::Device,
    seed: u64,
    scale: Scale,
    retrain: bool,
    /// Checkpoints loaded instead of trained (their training time is not in `timings`).
    reused: Vec<PathBuf>,
    timings: Vec<(String, f64)>,
}

impl Context {
    fn time<T>(&mut self, what: &str, work: impl FnOnce(&mut Context) -> Result<T>) -> Result<T> {
        let clock = Instant::now();
        let value = work(self)?;
        let seconds = clock.elapsed().as_secs_f64();
        eprintln!("reproduce: {what} ({seconds:.1} s)");
        self.timings.push((what.to_owned(), seconds));
        Ok(value)
    }
}

pub fn run(args: ReproduceArgs) -> Result<()> {
    let started = Instant::now();
    let (device, runtime) = commands::runtime(&args.runtime)?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| CliError::runtime(format!("{}: {e}", args.out.display())))?;
    let mut cx = Context {
        out: args.out.clone(),
        device,
        seed: args.runtime.seed,
        scale: if args.quick { Scale::QUICK } else { Scale::POST },
        retrain: args.retrain,
        reused: Vec::new(),
        timings: Vec::new(),
    };
    let scale = cx.scale;
    // The post's data: Gaussian sources and spiral targets, paired by index.
    let mut rng = flow_data::seeded_rng(cx.seed);
    let source = samplers::gaussian(scale.points, 2, 1.0, &mut rng);
    let target = samplers::spiral(scale.points, 1.0, &mut rng);

    let (flow, flow_losses) = cx.time("flow matching", |cx| {
        let pairs = PairSource::independent(PointSource::post_source(), PointSource::post_target())?;
        let lr = RECIPE.flow_matching().0;
        let config =
            TrainConfig { seed: cx.seed, ..RECIPE.flow_matching_config(scale.flow_steps, scale.batch_size) };
        let (seed, device) = (cx.seed, cx.device);
        // The rate is in the name: a checkpoint of another recipe version is not reused.
        trained_or_loaded(cx, &format!("flow_matching_{}-lr{lr:e}", RECIPE.name()), |dir| {
            tch::manual_seed(seed as i64);
            let mut net = VelocityNet::new(ModelConfig::default(), device)?;
            let options = run_options(dir, "flow matching", RunKind::FlowMatching, runtime);
            let report = flow_train::train(&mut net, &pairs, &config, &options)?;
            Ok((net, report.losses))
        })
    })?;

    let reflow_settings = |mode| ReflowSettings {
        mode,
        train: TrainConfig { seed: cx.seed, ..RECIPE.reflow_config(scale.reflow_steps, scale.batch_size) },
        ..ReflowSettings::default()
    };
    let online_settings = reflow_settings(PairMode::Online);
    let pool_settings = reflow_settings(PairMode::Pool(scale.pool));
    // The figures use the pooled reflow: the rectified-flow paper's pairs, as good as the post's
    // online ones in one step (see the report) and many times cheaper to make.
    let (pooled, reflow_losses) = cx.time("reflow, pooled pairs", |cx| {
        trained_or_loaded(
            cx,
            &format!("reflow_pool{}_{}-teacher-lr{:e}", scale.pool, RECIPE.name(), RECIPE.flow_matching().0),
            |dir| reflow_run(&flow, &pool_settings, dir, runtime),
        )
    })?;
    let online = if args.online_reflow {
        let (net, _) = cx.time("reflow, online pairs (the post's sampler)", |cx| {
            let name = format!("reflow_online_{}-teacher-lr{:e}", RECIPE.name(), RECIPE.flow_matching().0);
            trained_or_loaded(cx, &name, |dir| reflow_run(&flow, &online_settings, dir, runtime))
        })?;
        Some(net)
    } else {
        None
    };

    let mut models: Vec<(&str, Integrator)> = vec![
        ("flow matching", Integrator::new(&flow, runtime)?),
        ("reflow (pool)", Integrator::new(&pooled, runtime)?),
    ];
    if let Some(online) = &online {
        models.push(("reflow (online)", Integrator::new(online, runtime)?));
    }
    // The flow-matching model again, sampled by its SDE (the post's line from the Gaussian,
    // independent pairs: its velocity gives the score).
    let stochastic = Integrator::new(&flow, runtime)?.with_noise(flow_path::AffinePath::LINE, cx.seed + 3);
    let (sweep, sweep_floor) = cx.time("quality against cost", |cx| {
        let probe = QualityProbe::new(
            &PointSource::post_source(),
            &PointSource::post_target(),
            scale.probe / 2,
            cx.seed + 2,
        )?;
        Ok((quality_sweep(&probe, &models, &stochastic)?, probe.floor))
    })?;
    let (table, floor, nll) = cx.time("metrics table", |cx| {
        let probe = QualityProbe::new(
            &PointSource::post_source(),
            &PointSource::post_target(),
            scale.probe,
            cx.seed + 1,
        )?;
        let mut rows = Vec::new();
        let mut nll = Vec::new();
        for (name, model) in &models {
            // Many-step Euler is in the sweep; the table keeps the post's two samplers.
            let settings = [(Solver::Rk4, 20), (Solver::Euler, 1)];
            rows.extend(probe.measure_many(model, &settings)?.into_iter().map(|q| (*name, q)));
            if let Some(value) = likelihood::nll(model, Dataset::Gaussian, &probe.targets[0])? {
                nll.push((*name, value));
            }
        }
        Ok((rows, probe.floor, nll))
    })?;
    let densities = cx.time("likelihood maps", |_| {
        let cells = flow_viz::density_cells(DENSITY_CELLS);
        let dopri5 = (Solver::new(SolverKind::Dopri5, Solver::DEFAULT_RTOL, Solver::DEFAULT_ATOL)?, 1);
        let map = |model: &Integrator| -> Result<Vec<f64>> {
            Ok(likelihood::log_density(model, Dataset::Gaussian, &cells, dopri5, Divergence::Exact)?.log_prob)
        };
        Ok((map(&models[0].1)?, map(&models[1].1)?))
    })?;

    tch::manual_seed(cx.seed as i64 + 1);
    let untrained = Integrator::new(&VelocityNet::new(ModelConfig::default(), cx.device)?, runtime)?;
    let mut models = models.into_iter().map(|(_, model)| model);
    let (Some(flow), Some(reflow)) = (models.next(), models.next()) else {
        return Err(CliError::runtime("internal error: reproduce lost a model"));
    };
    let sweep_rows =
        sweep.iter().map(|s| (s.label.clone(), s.points.iter().map(|p| p.1).collect())).collect();
    let reproduction = Reproduction::new(
        (source, target),
        untrained,
        (flow, flow_losses),
        stochastic,
        (reflow, reflow_losses),
        (sweep, sweep_floor),
        densities,
    );
    cx.time("figures", |cx| {
        for figure in &FIGURES {
            let path = cx.out.join(figure.file);
            match (figure.draw)(&reproduction)? {
                Picture::Png(image) => flow_viz::save_png(&path, &image)?,
                Picture::Gif(frames) => flow_viz::save_gif(&path, &frames, FRAME_DELAY_CS)?,
            }
        }
        Ok(())
    })?;

    let line = |settings: &ReflowSettings| ReflowLine {
        pairs: settings.mode.to_string(),
        teacher_steps: settings.teacher.steps,
        steps: settings.train.steps,
        batch_size: settings.train.batch_size,
        lr: settings.train.lr,
        schedule: settings.train.lr_schedule.name(),
    };
    let (lr, schedule) = RECIPE.flow_matching();
    let report = Report {
        quick: scale.is_quick(),
        device: device_label(cx.device),
        threads: tch::get_num_threads(),
        seed: cx.seed,
        points: scale.points,
        flow_steps: scale.flow_steps,
        batch_size: scale.batch_size,
        flow_rate: (lr, schedule.name(), RECIPE.name()),
        pool: line(&pool_settings),
        online: online.as_ref().map(|_| line(&online_settings)),
        probe_points: scale.probe,
        floors: (floor, sweep_floor),
        timings: cx.timings.clone(),
        total_seconds: started.elapsed().as_secs_f64(),
        reused: cx.reused.iter().map(|p| p.display().to_string()).collect(),
        table,
        nll,
        sweep: sweep_rows,
        floor_draws: flow_eval::FLOOR_DRAWS,
    };
    let text = report::render(&report);
    flow_data::files::write_atomically(&cx.out.join("report.md"), |out| out.write_all(text.as_bytes()))?;
    eprintln!(
        "reproduce: done in {:.1} s; figures and report in {}",
        started.elapsed().as_secs_f64(),
        cx.out.display()
    );
    Ok(())
}

fn run_options(dir: &Path, label: &str, kind: RunKind, runtime: Runtime) -> RunOptions {
    RunOptions {
        out_dir: Some(dir.to_owned()),
        runtime,
        show_progress: true,
        label: label.into(),
        metadata: RunMetadata {
            kind: Some(kind),
            ..RunMetadata::flow_matching(
                PointsRef::Builtin(Dataset::Gaussian),
                Some(PointsRef::Builtin(Dataset::Spiral)),
            )
        },
        ..RunOptions::default()
    }
}

fn reflow_run(
    teacher: &VelocityNet,
    settings: &ReflowSettings,
    dir: &Path,
    runtime: Runtime,
) -> Result<(VelocityNet, Vec<f32>)> {
    let options = run_options(dir, &format!("reflow {}", settings.mode), RunKind::Reflow, runtime);
    let (net, rounds) = flow_train::reflow(teacher, &PointSource::post_source(), settings, &options)?;
    let losses = rounds.into_iter().flat_map(|r| r.train.losses).collect();
    Ok((net, losses))
}

/// Loads `checkpoints/NAME` when it holds a finished run (and `--retrain` is
/// off), else trains into it.
fn trained_or_loaded(
    cx: &mut Context,
    name: &str,
    train: impl FnOnce(&Path) -> Result<(VelocityNet, Vec<f32>)>,
) -> Result<(VelocityNet, Vec<f32>)> {
    // The name carries what changes the result, so a checkpoint is only reused for the same run.
    let quick = if cx.scale.is_quick() { "-quick" } else { "" };
    let dir = cx.out.join("checkpoints").join(format!("{name}-seed{}{quick}", cx.seed));
    let model = dir.join(flow_train::MODEL_FILE);
    let losses = dir.join(flow_train::LOSSES_FILE);
    if !cx.retrain && model.is_file() && losses.is_file() {
        let checkpoint = flow_model::checkpoint::load(&model, cx.device)?;
        eprintln!("reproduce: reusing {} (--retrain to train again)", model.display());
        cx.reused.push(model.clone());
        return Ok((checkpoint.net, flow_train::read_losses(&losses)?));
    }
    train(&dir)
}

/// One curve of the sweep: a model, its solver, and how the curve is drawn.
struct SweepRun<'a> {
    name: &'a str,
    model: &'a Integrator,
    solver: Solver,
    colour: (u8, u8, u8),
    dashed: bool,
}

/// W₂ at every step count of [`QUALITY_STEPS`], Euler and RK4, for each model, and
/// Euler–Maruyama (at its default noise) for the flow-matching one, `stochastic`; each point
/// is placed at its cost in network evaluations.
fn quality_sweep(
    probe: &QualityProbe,
    models: &[(&str, Integrator)],
    stochastic: &Integrator,
) -> Result<Vec<QualitySeries>> {
    let colours = [(200, 30, 30), (30, 90, 200), (30, 150, 70)];
    let euler_maruyama = Solver::new(SolverKind::EulerMaruyama, Solver::DEFAULT_RTOL, Solver::DEFAULT_ATOL)?;
    let mut runs = Vec::new();
    for ((name, model), colour) in models.iter().zip(colours) {
        for (solver, dashed) in [(Solver::Euler, false), (Solver::Rk4, true)] {
            runs.push(SweepRun { name, model, solver, colour, dashed });
        }
    }
    let sde = SweepRun {
        name: "flow matching",
        model: stochastic,
        solver: euler_maruyama,
        colour: (230, 140, 20),
        dashed: false,
    };
    runs.insert(2, sde);
    let mut series = Vec::new();
    for SweepRun { name, model, solver, colour, dashed } in runs {
        let (samples, nfes): (Vec<_>, Vec<_>) = QUALITY_STEPS
            .iter()
            .map(|&steps| probe.samples(model, solver, steps))
            .collect::<flow_eval::Result<Vec<_>>>()?
            .into_iter()
            .unzip();
        // One model and solver at growing step counts: each assignment starts from the last's duals.
        let w2s = probe.w2_of_alike(&samples)?;
        series.push(QualitySeries {
            label: format!("{name}, {}", solver.name()),
            points: nfes.into_iter().zip(w2s).collect(),
            colour,
            dashed,
        });
    }
    Ok(series)
}
