//! One flow-matching step of the post's network at batch 2048 without libtorch
//! (loss and gradient, then Adam) and one velocity evaluation, on every kernel
//! this CPU supports.

use criterion::{Criterion, criterion_group, criterion_main};
use flow_native::{Activation, Adam, Kernel, Mlp, Workspace, parameter_count};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SHAPES: [(usize, usize); 4] = [(3, 64), (64, 64), (64, 64), (64, 2)];
const BATCH: usize = 2048;

fn uniform(rng: &mut ChaCha8Rng, n: usize, bound: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-bound..bound)).collect()
}

fn step(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let parameters = uniform(&mut rng, parameter_count(&SHAPES), 0.125);
    let mut mlp = Mlp::new(SHAPES.to_vec(), Activation::Gelu, parameters).expect("valid shapes");
    let inputs = uniform(&mut rng, BATCH * 3, 2.0);
    let targets = uniform(&mut rng, BATCH * 2, 2.0);
    let threads = std::env::var("FLOWMATCH_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(2);
    let mut group = c.benchmark_group("native");
    for kernel in Kernel::supported() {
        let mut workspace = Workspace::with_kernel(threads, kernel).expect("a supported kernel");
        let mut adam = Adam::new(mlp.parameters().len(), 1e-3);
        group.bench_function(format!("training step, batch 2048, {kernel}"), |b| {
            b.iter(|| {
                let (_, gradient) = workspace.loss_and_gradient(&mlp, &inputs, &targets).expect("shapes");
                adam.update(mlp.parameters_mut(), gradient);
            })
        });
        group.bench_function(format!("velocity evaluation, batch 2048, {kernel}"), |b| {
            b.iter(|| workspace.forward(&mlp, &inputs).expect("shapes"))
        });
    }
    group.finish();
}

criterion_group!(benches, step);
criterion_main!(benches);
