//! The hot pieces of training: steps at the post's batch size and teacher-pair generation.

use criterion::{Criterion, criterion_group, criterion_main};
use flow_data::{Dataset, PointSource};
use flow_model::{ModelConfig, VelocityNet};
use flow_train::{
    Backend, PairSource, RunOptions, Runtime, TeacherSettings, TimeSampling, TrainConfig, train,
};
use tch::Device;

fn net() -> VelocityNet {
    tch::manual_seed(0);
    VelocityNet::new(ModelConfig::default(), Device::Cpu).expect("default config")
}

fn gaussian() -> PointSource {
    PointSource::builtin(Dataset::Gaussian, 2).expect("2-D")
}

fn steps(c: &mut Criterion) {
    let pairs = PairSource::independent(gaussian(), PointSource::builtin(Dataset::Spiral, 2).expect("2-D"))
        .expect("same dimension");
    let config = TrainConfig { steps: 10, checkpoint_every: 0, ..TrainConfig::default() };
    let runtime = Runtime::requested(Backend::Auto).expect("a kernel this CPU has");
    let options = RunOptions { runtime, ..RunOptions::default() };
    let mut model = net();
    let mut group = c.benchmark_group("training");
    group.sample_size(20);
    group.bench_function("10 flow-matching steps, batch 2048", |b| {
        b.iter(|| train(&mut model, &pairs, &config, &options))
    });
    let teacher = net();
    let mut rng = flow_data::seeded_rng(0);
    let pool =
        PairSource::pool((&teacher, runtime), &gaussian(), TeacherSettings::default(), 16_384, &mut rng)
            .expect("pool");
    let reflow = TrainConfig { time_sampling: TimeSampling::Warp(0.5), ..config.clone() };
    group.bench_function("10 pooled reflow steps, batch 2048", |b| {
        b.iter(|| train(&mut model, &pool, &reflow, &options))
    });
    group.bench_function("teacher pairs: 2048 through rk4 × 20", |b| {
        b.iter(|| {
            PairSource::pool((&teacher, runtime), &gaussian(), TeacherSettings::default(), 2048, &mut rng)
        })
    });
    group.finish();
}

/// A training step on each path against the line's, at the post's settings (the paths issue:
/// at most 5 % over the line on the native kernels).
fn paths(c: &mut Criterion) {
    use flow_path::{AffinePath, Scheduler};
    let pairs = PairSource::independent(gaussian(), PointSource::builtin(Dataset::Spiral, 2).expect("2-D"))
        .expect("same dimension");
    let runtime = Runtime::requested(Backend::Auto).expect("a kernel this CPU has");
    let options = RunOptions { runtime, ..RunOptions::default() };
    let mut paths: Vec<AffinePath> =
        Scheduler::ALL.iter().map(|&s| AffinePath::new(s, 0.0).expect("σ = 0")).collect();
    paths.push(AffinePath::new(Scheduler::Linear, 0.1).expect("σ"));
    paths.push(AffinePath::bridge(1.0).expect("σ"));
    let mut model = net();
    let mut group = c.benchmark_group("paths");
    group.sample_size(20);
    for path in paths {
        let config = TrainConfig { steps: 10, checkpoint_every: 0, path, ..TrainConfig::default() };
        group.bench_function(format!("10 steps, batch 2048, {}", path.describe()), |b| {
            b.iter(|| train(&mut model, &pairs, &config, &options))
        });
    }
    group.finish();
}

criterion_group!(benches, steps, paths);
criterion_main!(benches);
