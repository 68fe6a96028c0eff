//! Exact W2 must take seconds, not minutes, at a few thousand points.

use criterion::{Criterion, criterion_group, criterion_main};
use flow_data::samplers::{eight_gaussians, gaussian, seeded_rng, spiral, torchdyn_moons};

fn w2(c: &mut Criterion) {
    let mut group = c.benchmark_group("metrics");
    group.sample_size(10);
    for n in [500, 2000] {
        let a = spiral(n, 1.0, &mut seeded_rng(1));
        let b = gaussian(n, 2, 1.0, &mut seeded_rng(2));
        group.bench_function(format!("exact W2, {n} points"), |bench| {
            bench.iter(|| flow_metrics::wasserstein2(&a, &b))
        });
    }
    // C2OT's protocol: 10 000 points, far transport (the couplings issue's target: under 10 s).
    let a = eight_gaussians(10_000, &mut seeded_rng(5));
    let b = torchdyn_moons(10_000, &mut seeded_rng(6));
    group.bench_function("exact W2, 10000 points, 8gaussians to moons", |bench| {
        bench.iter(|| flow_metrics::wasserstein2(&a, &b))
    });
    let a = spiral(2000, 1.0, &mut seeded_rng(3));
    let b = spiral(2000, 1.0, &mut seeded_rng(4));
    group.bench_function("rbf MMD, 2000 points", |bench| bench.iter(|| flow_metrics::mmd_rbf(&a, &b)));
    group.finish();
}

criterion_group!(benches, w2);
criterion_main!(benches);
