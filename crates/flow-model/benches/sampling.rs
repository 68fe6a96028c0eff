//! The post's network as a velocity field: one evaluation at batch 2048, and
//! RK4 × 20 on 100 000 points (CPU), to compare with PyTorch.

use criterion::{Criterion, criterion_group, criterion_main};
use flow_model::{ModelConfig, TensorState, VelocityNet};
use flow_ode::{Record, Solver, TimeGrid, VelocityField, integrate};
use tch::{Device, Kind, Tensor};

fn post_network() -> VelocityNet {
    tch::manual_seed(0);
    VelocityNet::new(ModelConfig::default(), Device::Cpu).expect("default config")
}

fn velocity(c: &mut Criterion) {
    let net = post_network();
    let x = TensorState(Tensor::randn([2048, 2], (Kind::Float, Device::Cpu)));
    c.bench_function("velocity evaluation, batch 2048", |b| b.iter(|| net.velocity(&x, 0.5)));
}

fn rk4_sampling(c: &mut Criterion) {
    let net = post_network();
    let grid = TimeGrid::uniform(20).expect("grid");
    let x = Tensor::randn([100_000, 2], (Kind::Float, Device::Cpu));
    let mut group = c.benchmark_group("sampling");
    group.sample_size(10);
    group.bench_function("rk4 × 20 on 100 000 points", |b| {
        b.iter(|| integrate(&net, TensorState(x.shallow_clone()), &grid, Solver::Rk4, Record::Nothing))
    });
    let small = Tensor::randn([2048, 2], (Kind::Float, Device::Cpu));
    let one_step = TimeGrid::uniform(1).expect("grid");
    group.bench_function("one rk4 step, batch 2048", |b| {
        b.iter(|| {
            integrate(&net, TensorState(small.shallow_clone()), &one_step, Solver::Rk4, Record::Nothing)
        })
    });
    group.finish();
}

criterion_group!(benches, velocity, rk4_sampling);
criterion_main!(benches);
