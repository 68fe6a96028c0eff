//! `flowmatch bench`: ours against the PyTorch way of doing the post, on the
//! same machine, in one run, with the same thread count.
//!
//! The PyTorch side is `tests/python/post_pytorch.py` (eager mode, as a
//! notebook would write it). Both sides train the post's models to the end so
//! that the table shows the quality each reaches next to the speed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use flow_data::{Dataset, PointSource};
use flow_eval::QualityProbe;
use flow_model::{Integrator, ModelConfig, Runtime, VelocityNet};
use flow_ode::{Record, Solver, TimeGrid};
use flow_train::Kernel;
use flow_train::{
    Backend, Coupling, PairMode, PairSource, Recipe, ReflowSettings, RunOptions, TeacherSettings, TrainConfig,
};
use serde_json::Value;

pub mod likelihood;
pub mod table;

use self::table::{BenchTable, CouplingRow, QualityRow, Row};
use crate::cli::BenchArgs;
use crate::commands::{device_label, runtime};
use crate::error::{CliError, Result};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/python/post_pytorch.py");
const BATCH: usize = 2048;
const POOL: usize = PairMode::DEFAULT_POOL;
const SAMPLED: usize = 100_000;

struct Sizes {
    timed_steps: usize,
    flow_steps: usize,
    reflow_steps: usize,
}

fn runtime_error(e: impl std::fmt::Display) -> CliError {
    CliError::runtime(e.to_string())
}

pub fn run(args: BenchArgs) -> Result<()> {
    let (device, runtime) = runtime(&args.runtime)?;
    let threads = tch::get_num_threads();
    let sizes = if args.quick {
        Sizes { timed_steps: 40, flow_steps: 400, reflow_steps: 40 }
    } else {
        Sizes { timed_steps: 1000, flow_steps: 10_000, reflow_steps: 1000 }
    };
    flow_data::files::check_writable(&args.out)?;
    let samples_dir = std::env::temp_dir().join(format!("flowmatch-bench-{}", std::process::id()));
    std::fs::create_dir_all(&samples_dir).map_err(runtime_error)?;
    eprintln!("bench: PyTorch eager ({threads} threads) …");
    let theirs = pytorch(&args.python, threads, &sizes, &samples_dir)?;
    eprintln!("bench: ours …");
    // On an AVX-512 CPU, PyTorch is also timed with its libraries held to AVX2:
    // what the AVX2 kernel's users run PyTorch with.
    let avx2_only =
        device == tch::Device::Cpu && Kernel::Avx512.is_supported() && Kernel::Avx2.is_supported();
    let rate_avx2 =
        || avx2_only.then(|| pytorch_flow_rate(&args.python, threads, &sizes, &AVX2_ONLY)).transpose();
    let before = pytorch_flow_rate(&args.python, threads, &sizes, &[])?;
    let before_avx2 = rate_avx2()?;
    let ours = ours(device, runtime, &sizes)?;
    let after = pytorch_flow_rate(&args.python, threads, &sizes, &[])?;
    let after_avx2 = rate_avx2()?;
    let pytorch_avx2 = before_avx2.zip(after_avx2).map(|(a, b)| a.max(b));
    eprintln!("bench: log-densities of {} points …", likelihood::POINTS);
    let likelihood = likelihood::compare(&args.python, threads, (&ours.post.0, runtime), &samples_dir)?;
    eprintln!("bench: coupling cost …");
    let couplings = coupling_cost(device, runtime, args.quick)?;
    // The fastest PyTorch window of the three runs: the comparison errs on its side.
    let mut theirs = theirs;
    let best = number(&theirs, "flow_steps_per_s")?.max(before).max(after);
    theirs["flow_steps_per_s"] = serde_json::json!(best);
    let probe = QualityProbe::new(&PointSource::post_source(), &PointSource::post_target(), 2000, 7)?;
    let their_fm = flow_data::files::read_points(&samples_dir.join("fm_rk4_20.npy"))?;
    let their_reflow = flow_data::files::read_points(&samples_dir.join("reflow_euler_1.npy"))?;
    let quality = Quality {
        floor: probe.floor,
        ours_post: measure(&probe, &ours.post, runtime)?,
        ours_tuned: measure(&probe, &ours.tuned, runtime)?,
        theirs: (probe.w2_of_sample(&their_fm)?, probe.w2_of_sample(&their_reflow)?),
    };
    let _ = std::fs::remove_dir_all(&samples_dir);
    let mut table = table(&ours, (&theirs, pytorch_avx2), (&quality, &likelihood), threads, device, &sizes)?;
    table.couplings = couplings;
    let table = table::render(&table);
    flow_data::files::write_atomically(&args.out, |out| out.write_all(table.as_bytes()))?;
    eprintln!("bench: table written to {}", args.out.display());
    crate::commands::print_out(&table)?;
    Ok(())
}

/// Environment that holds PyTorch's CPU libraries (MKL, ATen's kernels, oneDNN) to AVX2.
const AVX2_ONLY: [(&str, &str); 3] =
    [("MKL_ENABLE_INSTRUCTIONS", "AVX2"), ("ATEN_CPU_CAPABILITY", "avx2"), ("ONEDNN_MAX_CPU_ISA", "AVX2")];

/// PyTorch's flow-matching rate alone (best of three windows), taken again
/// just before and after ours so that a drift of this machine's speed
/// during the long bench cannot favour either side.
fn pytorch_flow_rate(
    python: &Path,
    threads: i32,
    sizes: &Sizes,
    environment: &[(&str, &str)],
) -> Result<f64> {
    let output = Command::new(python)
        .envs(environment.iter().copied())
        .arg(SCRIPT)
        .args(["--threads", &threads.to_string(), "--timed-steps", &sizes.timed_steps.to_string()])
        .arg("--flow-rate-only")
        .output()
        .map_err(|e| CliError::runtime(format!("cannot run {}: {e}", python.display())))?;
    let value: Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| CliError::runtime(format!("the PyTorch script printed no JSON result ({e})")))?;
    number(&value, "flow_steps_per_s")
}

fn pytorch(python: &Path, threads: i32, sizes: &Sizes, samples: &PathBuf) -> Result<Value> {
    let output = Command::new(python)
        .arg(SCRIPT)
        .args(["--threads", &threads.to_string(), "--timed-steps", &sizes.timed_steps.to_string()])
        .args([
            "--flow-steps",
            &sizes.flow_steps.to_string(),
            "--reflow-steps",
            &sizes.reflow_steps.to_string(),
        ])
        .arg("--samples")
        .arg(samples)
        .output()
        .map_err(|e| CliError::runtime(format!("cannot run {}: {e}", python.display())))?;
    if !output.status.success() {
        let message = String::from_utf8_lossy(&output.stderr);
        let last = message.lines().last().unwrap_or("no output");
        return Err(CliError::runtime(format!("the PyTorch script failed: {last}")));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| CliError::runtime(format!("the PyTorch script printed no JSON result ({e})")))
}

struct Ours {
    /// What `--backend auto` trains with on this machine, and its rate.
    auto_backend: String,
    flow_steps_per_s: f64,
    /// Every native kernel this CPU supports, fastest first.
    kernel_flow_steps_per_s: Vec<(Kernel, f64)>,
    libtorch_flow_steps_per_s: f64,
    flow_seconds: f64,
    online_steps_per_s: f64,
    pool_seconds: f64,
    pool_steps_per_s: f64,
    reflow_pool_seconds: f64,
    rk4_seconds: f64,
    /// The post's recipe (what the PyTorch script runs) and ours, each flow matching and pooled reflow.
    post: (VelocityNet, VelocityNet),
    tuned: (VelocityNet, VelocityNet),
}

/// A run in memory, without a progress bar, on `runtime`.
fn quiet(runtime: Runtime) -> RunOptions {
    RunOptions { runtime, ..RunOptions::default() }
}

fn config(steps: usize, recipe: Recipe) -> TrainConfig {
    TrainConfig { checkpoint_every: 0, ..recipe.flow_matching_config(steps, BATCH) }
}

fn reflow_config(steps: usize, recipe: Recipe) -> TrainConfig {
    TrainConfig { checkpoint_every: 0, ..recipe.reflow_config(steps, BATCH) }
}

/// Steps per second of flow matching on `runtime`: the best of three windows
/// after a warm-up; and what trained.
fn flow_rate(device: tch::Device, steps: usize, runtime: Runtime) -> Result<(f64, String)> {
    let pairs = PairSource::independent(PointSource::post_source(), PointSource::post_target())?;
    tch::manual_seed(0);
    let mut net = VelocityNet::new(ModelConfig::default(), device)?;
    let options = quiet(runtime);
    flow_train::train(&mut net, &pairs, &config(50, Recipe::Post), &options)?;
    // Best of three timed windows, as for PyTorch: this machine's timings vary from window to window.
    let mut best: Option<flow_train::TrainReport> = None;
    for _ in 0..3 {
        let report = flow_train::train(&mut net, &pairs, &config(steps, Recipe::Post), &options)?;
        if best.as_ref().is_none_or(|b| report.steps_per_second > b.steps_per_second) {
            best = Some(report);
        }
    }
    let report = best.expect("three windows were timed");
    let label = match report.kernel {
        Some(kernel) => format!("{} {kernel}", report.backend),
        None => report.backend.to_owned(),
    };
    Ok((report.steps_per_second, label))
}

/// Flow matching then pooled reflow with `recipe`; the seconds each took.
fn train_both(
    (device, runtime): (tch::Device, Runtime),
    sizes: &Sizes,
    recipe: Recipe,
) -> Result<((VelocityNet, VelocityNet), f64, f64)> {
    let pairs = PairSource::independent(PointSource::post_source(), PointSource::post_target())?;
    tch::manual_seed(1);
    let mut flow = VelocityNet::new(ModelConfig::default(), device)?;
    let flow_seconds =
        flow_train::train(&mut flow, &pairs, &config(sizes.flow_steps, recipe), &quiet(runtime))?.seconds;
    // The reflow stage end to end, our way: pool generation included.
    let settings = ReflowSettings {
        mode: PairMode::Pool(POOL),
        train: reflow_config(sizes.reflow_steps, recipe),
        ..ReflowSettings::default()
    };
    let clock = Instant::now();
    let (reflow, _) = flow_train::reflow(&flow, &PointSource::post_source(), &settings, &quiet(runtime))?;
    Ok(((flow, reflow), flow_seconds, clock.elapsed().as_secs_f64()))
}

/// Our side of the table; `runtime` is what `--backend auto` (and the user's
/// `FLOWMATCH_KERNEL`) choose, the other rows force a backend or a kernel.
fn ours(device: tch::Device, runtime: Runtime, sizes: &Sizes) -> Result<Ours> {
    let (flow_steps_per_s, auto_backend) =
        flow_rate(device, sizes.timed_steps, runtime.with_backend(Backend::Auto))?;
    let mut kernel_flow_steps_per_s = Vec::new();
    if device == tch::Device::Cpu {
        for kernel in Kernel::supported() {
            let native = Runtime { backend: Backend::Native, kernel };
            let (rate, _) = flow_rate(device, sizes.timed_steps, native)?;
            kernel_flow_steps_per_s.push((kernel, rate));
        }
    }
    let (libtorch_flow_steps_per_s, _) =
        flow_rate(device, sizes.timed_steps, runtime.with_backend(Backend::Libtorch))?;
    let (post, flow_seconds, reflow_pool_seconds) = train_both((device, runtime), sizes, Recipe::Post)?;
    let (tuned, _, _) = train_both((device, runtime), sizes, Recipe::Tuned)?;
    let flow = &post.0;

    let online = PairSource::online(flow, runtime, PointSource::post_source(), TeacherSettings::default())?;
    let mut student = flow.try_clone()?;
    let online_steps = (sizes.timed_steps / 10).max(5);
    let online_config = reflow_config(online_steps, Recipe::Post);
    let online_steps_per_s =
        flow_train::train(&mut student, &online, &online_config, &quiet(runtime))?.steps_per_second;

    let clock = Instant::now();
    let pool = PairSource::pool(
        (flow, runtime),
        &PointSource::post_source(),
        TeacherSettings::default(),
        POOL,
        &mut flow_data::seeded_rng(5),
    )?;
    let pool_seconds = clock.elapsed().as_secs_f64();
    let mut student = flow.try_clone()?;
    let pool_config = reflow_config(sizes.timed_steps, Recipe::Post);
    let pool_steps_per_s =
        flow_train::train(&mut student, &pool, &pool_config, &quiet(runtime))?.steps_per_second;

    let start = PointSource::post_source().draw(SAMPLED, &mut flow_data::seeded_rng(6))?;
    let grid = TimeGrid::uniform(20)?;
    let model = Integrator::new(flow, runtime)?;
    model.integrate(&start.slice(ndarray::s![..1000, ..]).to_owned(), &grid, Solver::Rk4, Record::Nothing)?;
    let clock = Instant::now();
    model.integrate(&start, &grid, Solver::Rk4, Record::Nothing)?;
    let rk4_seconds = clock.elapsed().as_secs_f64();
    Ok(Ours {
        auto_backend,
        flow_steps_per_s,
        kernel_flow_steps_per_s,
        libtorch_flow_steps_per_s,
        flow_seconds,
        online_steps_per_s,
        pool_seconds,
        pool_steps_per_s,
        reflow_pool_seconds,
        rk4_seconds,
        post,
        tuned,
    })
}

struct Quality {
    floor: f64,
    /// (flow matching RK4 × 20, reflow Euler × 1) W2 for each side.
    ours_post: (f64, f64),
    ours_tuned: (f64, f64),
    theirs: (f64, f64),
}

fn measure(
    probe: &QualityProbe,
    (flow, reflow): &(VelocityNet, VelocityNet),
    runtime: Runtime,
) -> Result<(f64, f64)> {
    Ok((
        probe.w2(&Integrator::new(flow, runtime)?, Solver::Rk4, 20)?.0,
        probe.w2(&Integrator::new(reflow, runtime)?, Solver::Euler, 1)?.0,
    ))
}

fn number(value: &Value, key: &str) -> Result<f64> {
    value[key].as_f64().ok_or_else(|| CliError::runtime(format!("the PyTorch script did not report `{key}`")))
}

fn table(
    ours: &Ours,
    (theirs, theirs_avx2): (&Value, Option<f64>),
    (quality, likelihood): (&Quality, &likelihood::Timing),
    threads: i32,
    device: tch::Device,
    sizes: &Sizes,
) -> Result<BenchTable> {
    let row = |measure: String, ours: f64, theirs: f64, higher_is_better: bool| Row {
        measure,
        ours,
        theirs,
        higher_is_better,
    };
    let theirs_flow = number(theirs, "flow_steps_per_s")?;
    let mut rows = vec![row(
        format!("flow-matching training, steps/s (batch {BATCH}), `--backend auto` ({})", ours.auto_backend),
        ours.flow_steps_per_s,
        theirs_flow,
        true,
    )];
    for &(kernel, rate) in &ours.kernel_flow_steps_per_s {
        rows.push(row(
            format!("… native kernel `{kernel}` (`FLOWMATCH_KERNEL={kernel}`)"),
            rate,
            theirs_flow,
            true,
        ));
        if let (Kernel::Avx2, Some(theirs_avx2)) = (kernel, theirs_avx2) {
            rows.push(row(
                format!(
                    "… native kernel `avx2` against PyTorch held to AVX2 too ({}; its best of two runs, before and after ours): a CPU without AVX-512",
                    AVX2_ONLY.map(|(name, value)| format!("`{name}={value}`")).join(" ")
                ),
                rate,
                theirs_avx2,
                true,
            ));
        }
    }
    rows.extend([
        row(
            "… libtorch backend (`--backend libtorch`)".into(),
            ours.libtorch_flow_steps_per_s,
            theirs_flow,
            true,
        ),
        row(
            format!("flow matching, {} steps end to end (s)", sizes.flow_steps),
            ours.flow_seconds,
            number(theirs, "flow_seconds")?,
            false,
        ),
        row(
            "reflow training, online pairs, steps/s".into(),
            ours.online_steps_per_s,
            number(theirs, "reflow_online_steps_per_s")?,
            true,
        ),
        row(
            format!("pool of {POOL} teacher pairs (s)"),
            ours.pool_seconds,
            number(theirs, "pool_seconds")?,
            false,
        ),
        row(
            "reflow training, pooled pairs, steps/s".into(),
            ours.pool_steps_per_s,
            number(theirs, "reflow_pool_steps_per_s")?,
            true,
        ),
        row(
            format!(
                "reflow stage, {} steps end to end (s): ours pooled vs the post's online",
                sizes.reflow_steps
            ),
            ours.reflow_pool_seconds,
            number(theirs, "reflow_online_seconds")?,
            false,
        ),
        row(
            format!("RK4 × 20 sampling of {SAMPLED} points (s)"),
            ours.rk4_seconds,
            number(theirs, "rk4_100k_seconds")?,
            false,
        ),
        row(
            format!(
                "log-density of {} points, exact divergence, dopri5 at 1e-5, NFE {} / {} (s)",
                likelihood::POINTS,
                likelihood.nfe.0,
                likelihood.nfe.1
            ),
            likelihood.ours_seconds,
            likelihood.theirs_seconds,
            false,
        ),
    ]);
    Ok(BenchTable {
        threads,
        device: device_label(device),
        torch: theirs["torch"].as_str().unwrap_or("?").to_owned(),
        timed_steps: sizes.timed_steps,
        rows,
        floor: quality.floor,
        quality: vec![
            QualityRow {
                model: "flow matching, RK4 × 20",
                ours_post: quality.ours_post.0,
                ours_tuned: quality.ours_tuned.0,
                pytorch: quality.theirs.0,
            },
            QualityRow {
                model: "reflow, Euler × 1 (ours pooled, PyTorch online)",
                ours_post: quality.ours_post.1,
                ours_tuned: quality.ours_tuned.1,
                pytorch: quality.theirs.1,
            },
        ],
        couplings: Vec::new(),
    })
}

/// Milliseconds per flow-matching step on 8gaussians → moons, with each
/// coupling planned on the whole batch, at batch 256 and 1 024 (the couplings
/// issue's sizes). Fewer steps where a plan takes long.
fn coupling_cost(device: tch::Device, runtime: Runtime, quick: bool) -> Result<Vec<CouplingRow>> {
    let ms_per_step = |batch: usize, coupling: Coupling, steps: usize| -> Result<f64> {
        let source = PointSource::builtin(Dataset::EightGaussians, 2)?;
        let target = PointSource::builtin(Dataset::Moons, 2)?;
        let pairs = PairSource::coupled(source, target, coupling, batch)?;
        tch::manual_seed(0);
        let mut net = VelocityNet::new(ModelConfig::default(), device)?;
        let config = TrainConfig { batch_size: batch, ..config(steps, Recipe::Post) };
        flow_train::train(&mut net, &pairs, &TrainConfig { steps: 5, ..config.clone() }, &quiet(runtime))?;
        Ok(1000.0 / flow_train::train(&mut net, &pairs, &config, &quiet(runtime))?.steps_per_second)
    };
    let scale = if quick { 10 } else { 1 };
    [(256, 400), (1024, 40)]
        .into_iter()
        .map(|(batch, steps)| {
            let steps = (steps / scale).max(3);
            Ok(CouplingRow {
                batch,
                independent_ms: ms_per_step(batch, Coupling::Independent, 10 * steps)?,
                ot_ms: ms_per_step(batch, Coupling::Ot, steps)?,
                sinkhorn_ms: ms_per_step(batch, Coupling::Sinkhorn(Coupling::DEFAULT_EPSILON), steps)?,
            })
        })
        .collect()
}
