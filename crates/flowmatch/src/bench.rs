//! `flowmatch bench`: ours against the PyTorch way of doing the post, on the
//! same machine, in one run, with the same thread count.
//!
//! The PyTorch side is `tests/python/post_pytorch.py` (eager mode, as a
//! notebook would write it). Both sides train the post's models to the end so
//! that the table shows the quality each reaches next to the speed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use flow_model::{ModelConfig, VelocityNet, integrate_points};
use flow_ode::{Record, Solver, TimeGrid};
use flow_train::{
    PairMode, PairSource, QualityProbe, ReflowSettings, RunOptions, TeacherSettings, TimeSampling,
    TrainConfig,
};
use serde_json::Value;

use crate::cli::BenchArgs;
use crate::commands::{device_label, runtime};
use crate::error::{CliError, Result};
use crate::reproduce::{gaussian, spiral};

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
    let device = runtime(&args.runtime)?;
    let threads = tch::get_num_threads();
    let sizes = if args.quick {
        Sizes { timed_steps: 40, flow_steps: 400, reflow_steps: 40 }
    } else {
        Sizes { timed_steps: 200, flow_steps: 10_000, reflow_steps: 1000 }
    };
    flow_data::files::check_writable(&args.out)?;
    let samples_dir = std::env::temp_dir().join(format!("flowmatch-bench-{}", std::process::id()));
    std::fs::create_dir_all(&samples_dir).map_err(runtime_error)?;
    eprintln!("bench: PyTorch eager ({threads} threads) …");
    let theirs = pytorch(&args.python, threads, &sizes, &samples_dir)?;
    eprintln!("bench: ours …");
    let ours = ours(device, &sizes)?;
    let probe = QualityProbe::new(&gaussian()?, &spiral()?, 2000, 7)?;
    let their_fm = flow_data::files::read_points(&samples_dir.join("fm_rk4_20.npy"))?;
    let their_reflow = flow_data::files::read_points(&samples_dir.join("reflow_euler_1.npy"))?;
    let quality = Quality {
        floor: probe.floor,
        ours_fm: probe.w2(&ours.flow, Solver::Rk4, 20)?.0,
        ours_reflow: probe.w2(&ours.reflow, Solver::Euler, 1)?.0,
        theirs_fm: probe.w2_of_sample(&their_fm)?,
        theirs_reflow: probe.w2_of_sample(&their_reflow)?,
    };
    let _ = std::fs::remove_dir_all(&samples_dir);
    let table = table(&ours, &theirs, &quality, threads, device, &sizes)?;
    print!("{table}");
    flow_data::files::write_atomically(&args.out, |out| out.write_all(table.as_bytes()))?;
    eprintln!("bench: table written to {}", args.out.display());
    Ok(())
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
    serde_json::from_slice(&output.stdout).map_err(runtime_error)
}

struct Ours {
    flow_steps_per_s: f64,
    flow_seconds: f64,
    online_steps_per_s: f64,
    pool_seconds: f64,
    pool_steps_per_s: f64,
    reflow_pool_seconds: f64,
    rk4_seconds: f64,
    flow: VelocityNet,
    reflow: VelocityNet,
}

fn quiet() -> RunOptions {
    RunOptions::default()
}

fn ours(device: tch::Device, sizes: &Sizes) -> Result<Ours> {
    let fm_pairs = PairSource::independent(gaussian()?, spiral()?)?;
    let config =
        |steps| TrainConfig { steps, batch_size: BATCH, checkpoint_every: 0, ..TrainConfig::default() };
    tch::manual_seed(0);
    let mut scratch = VelocityNet::new(ModelConfig::default(), device)?;
    flow_train::train(&mut scratch, &fm_pairs, &config(20), &quiet())?;
    let flow_steps_per_s =
        flow_train::train(&mut scratch, &fm_pairs, &config(sizes.timed_steps), &quiet())?.steps_per_second;

    tch::manual_seed(1);
    let mut flow = VelocityNet::new(ModelConfig::default(), device)?;
    let flow_seconds = flow_train::train(&mut flow, &fm_pairs, &config(sizes.flow_steps), &quiet())?.seconds;

    let reflow_config = |steps| TrainConfig { time_sampling: TimeSampling::Warp(0.5), ..config(steps) };
    let online = PairSource::Online {
        teacher: Box::new(flow.try_clone()?),
        source: gaussian()?,
        settings: TeacherSettings::default(),
    };
    let mut student = flow.try_clone()?;
    let online_steps = (sizes.timed_steps / 10).max(5);
    let online_steps_per_s =
        flow_train::train(&mut student, &online, &reflow_config(online_steps), &quiet())?.steps_per_second;

    let clock = Instant::now();
    let pool = PairSource::pool(
        &flow,
        &gaussian()?,
        TeacherSettings::default(),
        POOL,
        &mut flow_data::seeded_rng(5),
    )?;
    let pool_seconds = clock.elapsed().as_secs_f64();
    let mut student = flow.try_clone()?;
    let pool_steps_per_s =
        flow_train::train(&mut student, &pool, &reflow_config(sizes.timed_steps), &quiet())?.steps_per_second;

    // The reflow stage end to end, our way: pool generation included.
    let settings = ReflowSettings {
        mode: PairMode::Pool(POOL),
        train: reflow_config(sizes.reflow_steps),
        ..ReflowSettings::default()
    };
    let clock = Instant::now();
    let (reflow, _) = flow_train::reflow(&flow, &gaussian()?, &settings, &quiet())?;
    let reflow_pool_seconds = clock.elapsed().as_secs_f64();

    let start = gaussian()?.draw(SAMPLED, &mut flow_data::seeded_rng(6));
    let grid = TimeGrid::uniform(20)?;
    integrate_points(
        &flow,
        &start.slice(ndarray::s![..1000, ..]).to_owned(),
        &grid,
        Solver::Rk4,
        Record::Nothing,
    )?;
    let clock = Instant::now();
    integrate_points(&flow, &start, &grid, Solver::Rk4, Record::Nothing)?;
    let rk4_seconds = clock.elapsed().as_secs_f64();
    Ok(Ours {
        flow_steps_per_s,
        flow_seconds,
        online_steps_per_s,
        pool_seconds,
        pool_steps_per_s,
        reflow_pool_seconds,
        rk4_seconds,
        flow,
        reflow,
    })
}

struct Quality {
    floor: f64,
    ours_fm: f64,
    ours_reflow: f64,
    theirs_fm: f64,
    theirs_reflow: f64,
}

fn number(value: &Value, key: &str) -> Result<f64> {
    value[key].as_f64().ok_or_else(|| CliError::runtime(format!("the PyTorch script did not report `{key}`")))
}

fn table(
    ours: &Ours,
    theirs: &Value,
    quality: &Quality,
    threads: i32,
    device: tch::Device,
    sizes: &Sizes,
) -> Result<String> {
    let post_reflow_seconds = number(theirs, "reflow_online_seconds")?;
    let rows: Vec<(String, f64, f64, bool)> = vec![
        (
            format!("flow-matching training, steps/s (batch {BATCH})"),
            ours.flow_steps_per_s,
            number(theirs, "flow_steps_per_s")?,
            true,
        ),
        (
            format!("flow matching, {} steps end to end (s)", sizes.flow_steps),
            ours.flow_seconds,
            number(theirs, "flow_seconds")?,
            false,
        ),
        (
            "reflow training, online pairs, steps/s".into(),
            ours.online_steps_per_s,
            number(theirs, "reflow_online_steps_per_s")?,
            true,
        ),
        (
            format!("pool of {POOL} teacher pairs (s)"),
            ours.pool_seconds,
            number(theirs, "pool_seconds")?,
            false,
        ),
        (
            "reflow training, pooled pairs, steps/s".into(),
            ours.pool_steps_per_s,
            number(theirs, "reflow_pool_steps_per_s")?,
            true,
        ),
        (
            format!(
                "reflow stage, {} steps end to end (s): ours pooled vs the post's online",
                sizes.reflow_steps
            ),
            ours.reflow_pool_seconds,
            post_reflow_seconds,
            false,
        ),
        (
            format!("RK4 × 20 sampling of {SAMPLED} points (s)"),
            ours.rk4_seconds,
            number(theirs, "rk4_100k_seconds")?,
            false,
        ),
    ];
    let mut text = String::new();
    let _ = writeln!(text, "# Benchmark: flowmatch against PyTorch eager\n");
    let _ = writeln!(
        text,
        "Same machine, one run, {threads} threads each; ours on {}; PyTorch {}. `speed-up` is how many times faster ours is.\n",
        device_label(device),
        theirs["torch"].as_str().unwrap_or("?")
    );
    let _ = writeln!(text, "| measure | ours | PyTorch | speed-up |\n|---|---:|---:|---:|");
    for (name, mine, theirs, higher_is_better) in rows {
        let speedup = if higher_is_better { mine / theirs } else { theirs / mine };
        let _ = writeln!(text, "| {name} | {mine:.2} | {theirs:.2} | {speedup:.2}× |");
    }
    let _ =
        writeln!(text, "\nQuality reached (2 000 samples, exact W2; noise floor {:.4}):\n", quality.floor);
    let _ = writeln!(text, "| model | ours W2 (÷ floor) | PyTorch W2 (÷ floor) |\n|---|---:|---:|");
    let ratio = |w: f64| format!("{w:.4} ({:.3})", w / quality.floor);
    let _ = writeln!(
        text,
        "| flow matching, RK4 × 20 | {} | {} |",
        ratio(quality.ours_fm),
        ratio(quality.theirs_fm)
    );
    let _ = writeln!(
        text,
        "| reflow, Euler × 1 (ours pooled, PyTorch online) | {} | {} |",
        ratio(quality.ours_reflow),
        ratio(quality.theirs_reflow)
    );
    Ok(text)
}
