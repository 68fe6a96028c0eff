//! `flowmatch reproduce`: train what the post trained, then draw every figure
//! of the post, the figures it lacked, and a report with measured quality.
//!
//! Checkpoints go under `OUT/checkpoints/` and are reused unless `--retrain`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use flow_data::{Dataset, PointSource, samplers};
use flow_model::{ModelConfig, VelocityNet, integrate_points};
use flow_ode::{Record, Solver, TimeGrid, warp_time};
use flow_train::{
    PairMode, PairSource, Quality, QualityProbe, Recipe, ReflowSettings, RunOptions, TimeSampling,
    TrainConfig,
};
use flow_viz::{QualitySeries, RgbImage};
use ndarray::Array2;

use crate::cli::ReproduceArgs;
use crate::commands::{self, animation_frames, device_label};
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
}

/// The post's budget (steps, batch) with our learning rates: the post's constant 1e-3 leaves
/// the network still learning when the budget ends (see [`Recipe::Tuned`]).
pub const RECIPE: Recipe = Recipe::Tuned;

/// Step counts of the quality-against-cost figure.
pub const QUALITY_STEPS: [usize; 7] = [1, 2, 4, 8, 16, 32, 100];
/// Frames of the time-warp animation: s from 0 to 1.5.
pub const WARP_FRAMES: usize = 31;
const FRAME_DELAY_CS: u16 = 5;

/// Every file `reproduce` writes into its output directory.
pub const FIGURES: [&str; 14] = [
    "01_source_target.png",
    "02_initial_velocities.png",
    "03_loss_flow_matching.png",
    "04_untrained_euler100.png",
    "05_flow_matching_euler100.png",
    "06_flow_matching.gif",
    "07_time_warp.gif",
    "08_flow_matching_rk4_20.png",
    "09_loss_reflow.png",
    "10_reflow.gif",
    "11_combined.gif",
    "12_trajectories.png",
    "13_quality_vs_steps.png",
    "report.md",
];

struct Context {
    out: PathBuf,
    device: tch::Device,
    seed: u64,
    scale: Scale,
    retrain: bool,
    /// Also run the post's online reflow sampler, for comparison.
    online_reflow: bool,
    /// Checkpoints loaded instead of trained (their training time is not in `timings`).
    reused: Vec<PathBuf>,
    timings: Vec<(String, f64)>,
    started: Instant,
}

impl Context {
    fn path(&self, name: &str) -> PathBuf {
        self.out.join(name)
    }

    fn save_png(&self, name: &str, image: &RgbImage) -> Result<()> {
        Ok(flow_viz::save_png(&self.path(name), image)?)
    }

    fn save_gif(&self, name: &str, frames: &[RgbImage]) -> Result<()> {
        Ok(flow_viz::save_gif(&self.path(name), frames, FRAME_DELAY_CS)?)
    }

    fn time<T>(&mut self, what: &str, work: impl FnOnce(&mut Context) -> Result<T>) -> Result<T> {
        let clock = Instant::now();
        let value = work(self)?;
        let seconds = clock.elapsed().as_secs_f64();
        eprintln!("reproduce: {what} ({seconds:.1} s)");
        self.timings.push((what.to_owned(), seconds));
        Ok(value)
    }
}

/// The post's source distribution, 2-D.
pub fn gaussian() -> Result<PointSource> {
    Ok(PointSource::builtin(Dataset::Gaussian, 2)?)
}

/// The post's target distribution.
pub fn spiral() -> Result<PointSource> {
    Ok(PointSource::builtin(Dataset::Spiral, 2)?)
}

pub fn run(args: ReproduceArgs) -> Result<()> {
    let device = commands::runtime(&args.runtime)?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| CliError::runtime(format!("{}: {e}", args.out.display())))?;
    let mut context = Context {
        out: args.out.clone(),
        device,
        seed: args.runtime.seed,
        scale: if args.quick { Scale::QUICK } else { Scale::POST },
        retrain: args.retrain,
        online_reflow: args.online_reflow,
        reused: Vec::new(),
        timings: Vec::new(),
        started: Instant::now(),
    };
    reproduce(&mut context)
}

fn reproduce(cx: &mut Context) -> Result<()> {
    let scale = cx.scale;
    // The post's data: 1 000 Gaussian sources and spiral targets, paired by index.
    let mut rng = flow_data::seeded_rng(cx.seed);
    let source = samplers::gaussian(scale.points, 2, 1.0, &mut rng);
    let target = samplers::spiral(scale.points, 1.0, &mut rng);

    cx.time("figures 1-2: data and initial velocities", |cx| {
        let pair = [
            &flow_viz::scatter(&source, "source: Gaussian")?,
            &flow_viz::scatter(&target, "target: spiral")?,
        ];
        cx.save_png("01_source_target.png", &flow_viz::side_by_side(&pair))?;
        let velocities = &target - &source;
        cx.save_png("02_initial_velocities.png", &flow_viz::vector_field(&source, &velocities, "x1 − x0")?)
    })?;

    let (flow, flow_losses) = cx.time("flow matching", |cx| {
        let pairs = PairSource::independent(gaussian()?, spiral()?)?;
        let (lr, lr_schedule) = RECIPE.flow_matching();
        let config = TrainConfig {
            steps: scale.flow_steps,
            batch_size: scale.batch_size,
            lr,
            lr_schedule,
            seed: cx.seed,
            ..TrainConfig::default()
        };
        let (seed, device) = (cx.seed, cx.device);
        trained_or_loaded(cx, &format!("flow_matching_{}", RECIPE.name()), |dir| {
            tch::manual_seed(seed as i64);
            let mut net = VelocityNet::new(ModelConfig::default(), device)?;
            let options = run_options(dir, "flow matching", "flow-matching");
            let report = flow_train::train(&mut net, &pairs, &config, &options)?;
            Ok((net, report.losses))
        })
    })?;

    let (flow_path, flow_frames) = cx.time("figures 3-8: flow matching", |cx| {
        cx.save_png("03_loss_flow_matching.png", &flow_viz::loss_curve(&flow_losses, "flow matching loss")?)?;
        tch::manual_seed(cx.seed as i64 + 1);
        let untrained = VelocityNet::new(ModelConfig::default(), cx.device)?;
        let untrained_end = euler(&untrained, &source, 100, Record::Nothing)?.points;
        cx.save_png(
            "04_untrained_euler100.png",
            &flow_viz::scatter(&untrained_end, "untrained, Euler × 100")?,
        )?;
        let path = euler(&flow, &source, 100, Record::Every(1))?;
        cx.save_png(
            "05_flow_matching_euler100.png",
            &flow_viz::scatter(&path.points, "flow matching, Euler × 100")?,
        )?;
        let frames = animation_frames(&path.trajectory, "flow matching")?;
        cx.save_gif("06_flow_matching.gif", &frames)?;
        cx.save_gif("07_time_warp.gif", &warp_frames()?)?;
        let rk4 = integrate_points(&flow, &source, &TimeGrid::uniform(20)?, Solver::Rk4, Record::Nothing)?;
        cx.save_png(
            "08_flow_matching_rk4_20.png",
            &flow_viz::scatter(&rk4.points, "flow matching, RK4 × 20")?,
        )?;
        Ok((path, frames))
    })?;

    let (reflow_lr, reflow_schedule) = RECIPE.reflow();
    let reflow_settings = |mode| ReflowSettings {
        mode,
        train: TrainConfig {
            steps: scale.reflow_steps,
            batch_size: scale.batch_size,
            lr: reflow_lr,
            lr_schedule: reflow_schedule,
            seed: cx.seed,
            time_sampling: TimeSampling::Warp(0.5),
            ..TrainConfig::default()
        },
        ..ReflowSettings::default()
    };
    let online_settings = reflow_settings(PairMode::Online);
    let pool_settings = reflow_settings(PairMode::Pool(scale.pool));
    // The figures use the pooled reflow: the rectified-flow paper's pairs, as good as the post's
    // online ones in one step (see the report) and many times cheaper to make.
    let (pooled, reflow_losses) = cx.time("reflow, pooled pairs", |cx| {
        trained_or_loaded(cx, &format!("reflow_pool{}_{}", scale.pool, RECIPE.name()), |dir| {
            reflow_run(&flow, &pool_settings, dir)
        })
    })?;
    let online = if cx.online_reflow {
        let (net, _) = cx.time("reflow, online pairs (the post's sampler)", |cx| {
            let name = format!("reflow_online_{}", RECIPE.name());
            trained_or_loaded(cx, &name, |dir| reflow_run(&flow, &online_settings, dir))
        })?;
        Some(net)
    } else {
        None
    };

    cx.time("figures 9-12: reflow", |cx| {
        cx.save_png("09_loss_reflow.png", &flow_viz::loss_curve(&reflow_losses, "reflow loss")?)?;
        let reflow_path = euler(&pooled, &source, 100, Record::Every(1))?;
        let reflow_frames = animation_frames(&reflow_path.trajectory, "reflow")?;
        cx.save_gif("10_reflow.gif", &reflow_frames)?;
        let combined: Vec<RgbImage> =
            flow_frames.iter().zip(&reflow_frames).map(|(a, b)| flow_viz::side_by_side(&[a, b])).collect();
        cx.save_gif("11_combined.gif", &combined)?;
        let sides = [
            &flow_viz::trajectories(&flow_path.trajectory, 300, "flow matching paths")?,
            &flow_viz::trajectories(&reflow_path.trajectory, 300, "reflow paths")?,
        ];
        cx.save_png("12_trajectories.png", &flow_viz::side_by_side(&sides))
    })?;

    let mut models = vec![("flow matching", &flow), ("reflow (pool)", &pooled)];
    if let Some(online) = &online {
        models.push(("reflow (online)", online));
    }
    let (sweep, sweep_floor) = cx.time("quality against steps", |cx| {
        let probe = QualityProbe::new(&gaussian()?, &spiral()?, scale.probe / 2, cx.seed + 2)?;
        let series = quality_sweep(&probe, &models)?;
        let chart = flow_viz::quality_chart(&series, probe.floor, "sample quality against cost")?;
        cx.save_png("13_quality_vs_steps.png", &chart)?;
        Ok((series, probe.floor))
    })?;
    let (table, floor) = cx.time("metrics table", |cx| {
        let probe = QualityProbe::new(&gaussian()?, &spiral()?, scale.probe, cx.seed + 1)?;
        let mut rows = Vec::new();
        for &(name, net) in &models {
            // Many-step Euler is in the sweep below; the table keeps the post's two samplers.
            let settings = [(Solver::Rk4, 20), (Solver::Euler, 1)];
            rows.extend(probe.measure_many(net, &settings)?.into_iter().map(|q| (name, q)));
        }
        Ok((rows, probe.floor))
    })?;
    let floors = Floors { table: floor, sweep: sweep_floor };
    let reflows = Reflows { pool: &pool_settings, online: online.as_ref().map(|_| &online_settings) };
    let report = report_text(cx, &table, &sweep, &floors, &reflows);
    flow_data::files::write_atomically(&cx.path("report.md"), |out| out.write_all(report.as_bytes()))?;
    eprintln!(
        "reproduce: done in {:.1} s; figures and report in {}",
        cx.started.elapsed().as_secs_f64(),
        cx.out.display()
    );
    Ok(())
}

fn run_options(dir: &Path, label: &str, kind: &str) -> RunOptions {
    RunOptions {
        out_dir: Some(dir.to_owned()),
        show_progress: true,
        label: label.into(),
        metadata: BTreeMap::from([
            ("kind".to_owned(), kind.to_owned()),
            ("source".to_owned(), "gaussian".to_owned()),
            ("target".to_owned(), "spiral".to_owned()),
        ]),
        ..RunOptions::default()
    }
}

fn reflow_run(
    teacher: &VelocityNet,
    settings: &ReflowSettings,
    dir: &Path,
) -> Result<(VelocityNet, Vec<f32>)> {
    let options = run_options(dir, &format!("reflow {}", settings.mode.describe()), "reflow");
    let (net, rounds) = flow_train::reflow(teacher, &gaussian()?, settings, &options)?;
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
    let quick = if cx.scale.flow_steps < 1000 { "-quick" } else { "" };
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

fn euler(
    net: &VelocityNet,
    start: &Array2<f32>,
    steps: usize,
    record: Record,
) -> Result<flow_model::PointsSolution> {
    Ok(integrate_points(net, start, &TimeGrid::uniform(steps)?, Solver::Euler, record)?)
}

/// warp(t, s) on 101 points of [0, 1].
pub fn warp_curve(s: f64) -> Vec<(f64, f64)> {
    (0..=100).map(|i| i as f64 / 100.0).map(|t| (t, warp_time(t, s))).collect()
}

fn warp_frames() -> Result<Vec<RgbImage>> {
    (0..WARP_FRAMES)
        .map(|i| 1.5 * i as f64 / (WARP_FRAMES - 1) as f64)
        .map(|s| Ok(flow_viz::warp_frame(&warp_curve(s), s)?))
        .collect()
}

/// W₂ at every step count of [`QUALITY_STEPS`], Euler and RK4, for each model.
fn quality_sweep(probe: &QualityProbe, models: &[(&str, &VelocityNet)]) -> Result<Vec<QualitySeries>> {
    let colours = [(200, 30, 30), (30, 90, 200), (30, 150, 70)];
    let mut series = Vec::new();
    for ((name, net), colour) in models.iter().zip(colours) {
        for (solver, dashed) in [(Solver::Euler, false), (Solver::Rk4, true)] {
            let samples = QUALITY_STEPS
                .iter()
                .map(|&steps| Ok(probe.samples(net, solver, steps)?.0))
                .collect::<Result<Vec<_>>>()?;
            let w2s = probe.w2_of(&samples)?;
            let points = QUALITY_STEPS.iter().copied().zip(w2s).collect();
            series.push(QualitySeries {
                label: format!("{name}, {}", solver.name()),
                points,
                colour,
                dashed,
            });
        }
    }
    Ok(series)
}

/// The reflow runs of this reproduction: always pooled, the post's online sampler on request.
struct Reflows<'a> {
    pool: &'a ReflowSettings,
    online: Option<&'a ReflowSettings>,
}

/// The noise floors of the two probes (the sweep uses half as many points, to stay quick).
struct Floors {
    table: f64,
    sweep: f64,
}

fn report_text(
    cx: &Context,
    table: &[(&str, Quality)],
    sweep: &[QualitySeries],
    floors: &Floors,
    reflows: &Reflows,
) -> String {
    let scale = cx.scale;
    let mut text = String::new();
    let _ = writeln!(text, "# Reproduction report\n");
    let _ = writeln!(
        text,
        "Generated by `cargo xtask reproduce`{}{} on {} with {} threads, seed {}.\n",
        if scale.flow_steps < 1000 { " --quick" } else { "" },
        if reflows.online.is_some() { " --online-reflow" } else { "" },
        device_label(cx.device),
        tch::get_num_threads(),
        cx.seed
    );
    let _ = writeln!(text, "## Settings\n");
    let _ = writeln!(
        text,
        "- Data: Gaussian source, spiral target (the post's definitions), {} points per figure.",
        scale.points
    );
    let _ = writeln!(text, "- Network: the post's MLP (position ⊕ time → 3 × 64 GELU → position), Adam.");
    let (lr, schedule) = RECIPE.flow_matching();
    let _ = writeln!(
        text,
        "- Flow matching: {} steps, batch {}, uniform times; learning rate {lr:e}, {} (recipe `{}`; the post's constant 1e-3 is `--recipe post`).",
        scale.flow_steps,
        scale.batch_size,
        schedule.name(),
        RECIPE.name()
    );
    let pool = reflows.pool;
    let pairs = match reflows.online {
        Some(online) => format!(
            "pairs `{}` (the rectified-flow paper's, used for the figures) and `{}` (the post's)",
            pool.mode.describe(),
            online.mode.describe()
        ),
        None => format!(
            "pairs `{}` (the rectified-flow paper's; `--online-reflow` adds the post's `online` sampler for comparison)",
            pool.mode.describe()
        ),
    };
    let _ = writeln!(
        text,
        "- Reflow: teacher RK4 × {}, {} steps, batch {}, warped times (s = 0.5), learning rate {:e}, {}, student from the teacher's weights; {pairs}.",
        pool.teacher.steps,
        pool.train.steps,
        pool.train.batch_size,
        pool.train.lr,
        pool.train.lr_schedule.name(),
    );
    let _ = writeln!(
        text,
        "- Quality: {} samples against {} target points, W2 noise floor {:.4}; the sweep over steps uses {} points (floor {:.4}).\n",
        scale.probe,
        scale.probe,
        floors.table,
        scale.probe / 2,
        floors.sweep
    );
    let _ = writeln!(text, "## Timings\n\n| stage | seconds |\n|---|---:|");
    for (stage, seconds) in &cx.timings {
        let _ = writeln!(text, "| {stage} | {seconds:.1} |");
    }
    let _ = writeln!(text, "| total | {:.1} |\n", cx.started.elapsed().as_secs_f64());
    if !cx.reused.is_empty() {
        let names: Vec<String> = cx.reused.iter().map(|p| format!("`{}`", p.display())).collect();
        let _ = writeln!(
            text,
            "Reused from an earlier run (training time not included): {}.\n",
            names.join(", ")
        );
    }
    let _ = writeln!(text, "## Quality\n");
    let _ = writeln!(
        text,
        "W2 is exact (optimal assignment); each W2 and the floor (the W2 between two independent target samples of the same size) is the mean of {} independent draws. MMD² and energy distance are unbiased estimates on the first draw, so they can dip just below zero when model and target samples are indistinguishable. Straightness is E∫‖(X1 − X0) − v(Xt, t)‖² dt on Euler × 100 paths (0 = perfectly straight).\n",
        flow_train::FLOOR_DRAWS
    );
    let _ = writeln!(
        text,
        "| model | solver | NFE | W2 | W2 / floor | MMD² | energy | straightness |\n|---|---|---:|---:|---:|---:|---:|---:|"
    );
    for (name, q) in table {
        let _ = writeln!(
            text,
            "| {name} | {} × {} | {} | {:.4} | {:.3} | {:.5} | {:.5} | {:.4} |",
            q.solver, q.steps, q.nfe, q.w2, q.w2_ratio, q.mmd, q.energy, q.straightness
        );
    }
    let _ = writeln!(text, "\n### W2 against steps\n");
    let header: Vec<String> = QUALITY_STEPS.iter().map(|s| s.to_string()).collect();
    let _ = writeln!(
        text,
        "| model, solver | {} |\n|---|{}",
        header.join(" | "),
        "---:|".repeat(QUALITY_STEPS.len())
    );
    for line in sweep {
        let cells: Vec<String> = line.points.iter().map(|(_, w)| format!("{w:.3}")).collect();
        let _ = writeln!(text, "| {} | {} |", line.label, cells.join(" | "));
    }
    let _ = writeln!(text, "\n## Figures\n");
    for name in FIGURES.iter().filter(|n| **n != "report.md") {
        let _ = writeln!(text, "- [{name}]({name})");
    }
    text
}
