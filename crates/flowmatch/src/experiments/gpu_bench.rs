//! `flowmatch devices` and `flowmatch gpu-bench`: what this machine can run
//! on, and CUDA against its CPU on the work a GPU is for (large batches, a
//! large teacher pool, a million samples), written to `assets/figures/gpu.md`.

use std::fmt::Write as _;
use std::time::Instant;

use flow_data::PointSource;
use flow_model::{Integrator, ModelConfig, Runtime, VelocityNet, device_name};
use flow_ode::{Record, Solver, TimeGrid};
use flow_train::{Kernel, PairMode, PairSource, RunOptions, TeacherSettings, TrainConfig};
use tch::Device;

use crate::cli::{DevicesArgs, GpuBenchArgs};
use crate::commands::{print_out, runtime};
use crate::error::{CliError, Result};

/// One line per device: the CPU with its native kernels, then each GPU.
pub fn devices(_args: DevicesArgs) -> Result<()> {
    let supported: Vec<&str> = Kernel::supported().iter().map(|k| k.name()).collect();
    let chosen = Kernel::requested().map_err(|e| CliError::runtime(e.to_string()))?;
    let mut text = format!("cpu: native kernels {} (using {chosen})\n", supported.join(", "));
    let gpus = tch::Cuda::device_count().max(0) as usize;
    for index in 0..gpus {
        text.push_str(&format!("cuda:{index}: {}\n", gpu_name(index)));
    }
    if gpus == 0 {
        text.push_str("cuda: none (libtorch sees no CUDA device; --device cuda would fail)\n");
    }
    print_out(&text)
}

/// The GPU's name as the driver reports it (libtorch's C API does not).
fn gpu_name(index: usize) -> String {
    std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name", "--format=csv,noheader", &format!("--id={index}")])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| format!("CUDA device {index}"))
}

struct Sizes {
    steps_small: usize,
    steps_large: usize,
    samples: usize,
}

pub fn run(args: GpuBenchArgs) -> Result<()> {
    let (_, runtime) = runtime(&args.runtime)?;
    if !tch::Cuda::is_available() {
        print_out("gpu-bench: libtorch sees no CUDA device; nothing to measure\n")?;
        return Ok(());
    }
    flow_data::files::check_writable(&args.out)?;
    let gpu = Device::Cuda(0);
    let sizes = if args.quick {
        Sizes { steps_small: 20, steps_large: 4, samples: 20_000 }
    } else {
        Sizes { steps_small: 300, steps_large: 20, samples: 1_000_000 }
    };
    let mut rows = Vec::new();
    for (batch, steps) in [(2048, sizes.steps_small), (65_536, sizes.steps_large)] {
        let cpu = flow_rate((Device::Cpu, runtime), batch, steps)?;
        let cuda = flow_rate((gpu, runtime), batch, steps * 10)?;
        rows.push((format!("flow-matching training, steps/s (batch {batch})"), cpu, cuda, true));
    }
    let teacher_cpu = trained_teacher(runtime)?;
    let mut teacher_gpu = VelocityNet::new(ModelConfig::default(), gpu)?;
    teacher_gpu.copy_weights_from(&teacher_cpu)?;
    let pool = PairMode::DEFAULT_POOL;
    rows.push((
        format!("reflow pool of {pool} teacher pairs, RK4 × 20 (s)"),
        pool_seconds((&teacher_cpu, runtime), pool)?,
        pool_seconds((&teacher_gpu, runtime), pool)?,
        false,
    ));
    rows.push((
        format!("RK4 × 20 sampling of {} points (s)", sizes.samples),
        sampling_seconds((&teacher_cpu, runtime), sizes.samples)?,
        sampling_seconds((&teacher_gpu, runtime), sizes.samples)?,
        false,
    ));
    let table = table(&rows, &gpu_name(0), (tch::get_num_threads(), runtime.kernel));
    print_out(&table)?;
    flow_data::files::write_atomically(&args.out, |out| out.write_all(table.as_bytes()))?;
    eprintln!("gpu-bench: table written to {}", args.out.display());
    Ok(())
}

/// Steps per second of flow matching at `batch` on `device` (native kernels
/// on the CPU where they apply, libtorch on the GPU), after a warm-up.
fn flow_rate((device, runtime): (Device, Runtime), batch: usize, steps: usize) -> Result<f64> {
    let pairs = PairSource::independent(PointSource::post_source(), PointSource::post_target())?;
    tch::manual_seed(0);
    let mut net = VelocityNet::new(ModelConfig::default(), device)?;
    let config =
        |steps| TrainConfig { steps, batch_size: batch, checkpoint_every: 0, ..TrainConfig::default() };
    let options = RunOptions { runtime, ..RunOptions::default() };
    flow_train::train(&mut net, &pairs, &config(3), &options)?;
    Ok(flow_train::train(&mut net, &pairs, &config(steps), &options)?.steps_per_second)
}

/// A briefly trained flow-matching network: the teacher for the pool and sampling rows
/// (their cost does not depend on how well it was trained).
fn trained_teacher(runtime: Runtime) -> Result<VelocityNet> {
    let pairs = PairSource::independent(PointSource::post_source(), PointSource::post_target())?;
    tch::manual_seed(0);
    let mut net = VelocityNet::new(ModelConfig::default(), Device::Cpu)?;
    let config = TrainConfig { steps: 200, checkpoint_every: 0, ..TrainConfig::default() };
    flow_train::train(&mut net, &pairs, &config, &RunOptions { runtime, ..RunOptions::default() })?;
    Ok(net)
}

fn pool_seconds(teacher: (&VelocityNet, Runtime), size: usize) -> Result<f64> {
    let source = PointSource::post_source();
    let make = |size| {
        PairSource::pool(teacher, &source, TeacherSettings::default(), size, &mut flow_data::seeded_rng(5))
    };
    make(1024)?;
    let clock = Instant::now();
    let pool = make(size)?;
    if let PairSource::Pool { x1, .. } = &pool {
        // Wait for the device before stopping the clock.
        let _ = x1.sum(tch::Kind::Float).double_value(&[]);
    }
    Ok(clock.elapsed().as_secs_f64())
}

fn sampling_seconds((net, runtime): (&VelocityNet, Runtime), n: usize) -> Result<f64> {
    let start = PointSource::post_source().draw(n, &mut flow_data::seeded_rng(6))?;
    let grid = TimeGrid::uniform(20).map_err(|e| CliError::runtime(e.to_string()))?;
    let warm = start.slice(ndarray::s![..1000, ..]).to_owned();
    let model = Integrator::new(net, runtime)?;
    model.integrate(&warm, &grid, Solver::Rk4, Record::Nothing)?;
    let clock = Instant::now();
    model.integrate(&start, &grid, Solver::Rk4, Record::Nothing)?;
    Ok(clock.elapsed().as_secs_f64())
}

/// The report: each row's CPU and CUDA figures and how many times faster CUDA is.
fn table(rows: &[(String, f64, f64, bool)], gpu: &str, (threads, kernel): (i32, Kernel)) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "# GPU benchmark: CUDA against this machine's CPU\n");
    let _ = writeln!(
        text,
        "CUDA: {gpu} (libtorch backend). CPU: {threads} threads, `--backend auto` (native kernel `{kernel}` where it applies). `speed-up` is how many times faster CUDA is; {}.\n",
        device_name(Device::Cuda(0))
    );
    let _ = writeln!(text, "| measure | CPU | CUDA | speed-up |\n|---|---:|---:|---:|");
    for (name, cpu, cuda, higher_is_better) in rows {
        let speedup = if *higher_is_better { cuda / cpu } else { cpu / cuda };
        let _ = writeln!(text, "| {name} | {cpu:.2} | {cuda:.2} | {speedup:.1}× |");
    }
    text
}
