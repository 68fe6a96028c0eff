//! The native network against a plain f64 reference: outputs, the gradient
//! (checked by central differences of the reference), kernels and thread counts.

use flow_native::{Activation, Adam, Kernel, Mlp, NativeError, Workspace, parameter_count};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Small enough for a quick check, with every tile shape the kernels have:
/// 3- and 2-wide ends, a 20-wide layer (a masked 16-lane tail), 70 rows (not a
/// multiple of the 6-row tiles), 300 rows across two 256-row blocks.
const SHAPES: [(usize, usize); 4] = [(3, 20), (20, 70), (70, 20), (20, 2)];

fn random(rng: &mut ChaCha8Rng, n: usize, bound: f64) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-bound..bound) as f32).collect()
}

fn network(activation: Activation, seed: u64) -> Mlp {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let parameters = random(&mut rng, parameter_count(&SHAPES), 0.3);
    Mlp::new(SHAPES.to_vec(), activation, parameters).expect("valid shapes")
}

fn batch(rows: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (random(&mut rng, rows * 3, 2.0), random(&mut rng, rows * 2, 1.0))
}

/// erf by its Taylor series: exact to ~1e-13 for |x| ≤ 3, where the tests' inputs stay.
fn erf(x: f64) -> f64 {
    let (mut term, mut sum) = (x, x);
    for n in 1..200 {
        term *= -x * x / n as f64;
        sum += term / (2 * n + 1) as f64;
        // Past the largest term the series alternates and shrinks: stop once it cannot move the sum.
        if term.abs() < 1e-17 * sum.abs().max(1e-300) && n as f64 > x * x {
            break;
        }
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

fn reference_activation(activation: Activation, z: f64) -> f64 {
    match activation {
        Activation::Gelu => 0.5 * z * (1.0 + erf(z / std::f64::consts::SQRT_2)),
        Activation::Silu => z / (1.0 + (-z).exp()),
        Activation::Relu => z.max(0.0),
        Activation::Tanh => z.tanh(),
        // PyTorch's constants (torch.nn.functional.selu).
        Activation::Selu => {
            1.050_700_987_355_480_5 * if z > 0.0 { z } else { 1.673_263_242_354_377_3 * z.exp_m1() }
        }
    }
}

/// The network in f64, written as plainly as possible.
fn reference_forward(shapes: &[(usize, usize)], activation: Activation, p: &[f64], x: &[f64]) -> Vec<f64> {
    let mut h = x.to_vec();
    let mut offset = 0;
    for (l, &(ins, outs)) in shapes.iter().enumerate() {
        let rows = h.len() / ins;
        let mut next = vec![0.0; rows * outs];
        for r in 0..rows {
            for o in 0..outs {
                let mut z = p[offset + ins * outs + o];
                for i in 0..ins {
                    z += p[offset + o * ins + i] * h[r * ins + i];
                }
                next[r * outs + o] =
                    if l + 1 < shapes.len() { reference_activation(activation, z) } else { z };
            }
        }
        offset += (ins + 1) * outs;
        h = next;
    }
    h
}

fn reference_loss(mlp: &Mlp, p: &[f64], x: &[f64], y: &[f32]) -> f64 {
    let out = reference_forward(mlp.shapes(), mlp.activation(), p, x);
    out.iter().zip(y).map(|(o, &t)| (o - t as f64).powi(2)).sum::<f64>() / out.len() as f64
}

fn to_f64(values: &[f32]) -> Vec<f64> {
    values.iter().map(|&v| v as f64).collect()
}

const ACTIVATIONS: [Activation; 5] = Activation::ALL;

#[test]
fn outputs_match_the_f64_reference_for_every_activation() {
    let (inputs, _) = batch(300, 1);
    for activation in ACTIVATIONS {
        let mlp = network(activation, 2);
        let ours =
            Workspace::with_kernel(2, Kernel::requested().unwrap()).unwrap().forward(&mlp, &inputs).unwrap();
        let reference =
            reference_forward(mlp.shapes(), activation, &to_f64(mlp.parameters()), &to_f64(&inputs));
        let worst = ours.iter().zip(&reference).map(|(&a, b)| (a as f64 - b).abs()).fold(0.0, f64::max);
        assert!(worst < 2e-5, "{activation:?}: largest output difference {worst}");
    }
}

#[test]
fn gradient_matches_central_differences_of_the_reference() {
    let (inputs, targets) = batch(300, 3);
    let x = to_f64(&inputs);
    // ReLU's kinks make finite differences unreliable; the smooth activations cover the backward pass.
    for activation in [Activation::Gelu, Activation::Silu, Activation::Tanh, Activation::Selu] {
        let mlp = network(activation, 4);
        let mut workspace = Workspace::with_kernel(2, Kernel::requested().unwrap()).unwrap();
        let (loss, gradient) = workspace.loss_and_gradient(&mlp, &inputs, &targets).unwrap();
        let p = to_f64(mlp.parameters());
        let reference = reference_loss(&mlp, &p, &x, &targets);
        assert!(
            (loss as f64 - reference).abs() < 1e-5 * reference,
            "{activation:?} loss {loss} vs {reference}"
        );
        let scale = gradient.iter().map(|g| g.abs()).fold(0.0f32, f32::max) as f64;
        // Every parameter of the first and last map, and a stride through the rest.
        let first = (3 + 1) * 20;
        let last_start = p.len() - (20 + 1) * 2;
        let checked = (0..first).chain((first..last_start).step_by(37)).chain(last_start..p.len());
        for index in checked {
            let h = 1e-5;
            let (mut up, mut down) = (p.clone(), p.clone());
            up[index] += h;
            down[index] -= h;
            let numeric = (reference_loss(&mlp, &up, &x, &targets)
                - reference_loss(&mlp, &down, &x, &targets))
                / (2.0 * h);
            let difference = (gradient[index] as f64 - numeric).abs();
            assert!(
                difference < 1e-4 * scale,
                "{activation:?} parameter {index}: {} vs central difference {numeric}",
                gradient[index]
            );
        }
    }
}

/// Every kernel this CPU can run, announcing the ones it cannot (they are not tested here).
fn runnable_kernels() -> Vec<Kernel> {
    let (runnable, skipped): (Vec<Kernel>, Vec<Kernel>) =
        Kernel::ALL.into_iter().partition(|k| k.is_supported());
    if !skipped.is_empty() {
        eprintln!("kernels skipped on this CPU: {skipped:?}");
    }
    runnable
}

#[test]
fn every_supported_kernel_matches_the_f64_reference() {
    // 300 rows: a 6-row tile remainder, two blocks; SHAPES has 2-, 3-, 20- and 70-wide layers,
    // so every kernel's whole tiles and its right-edge columns are exercised.
    let (inputs, targets) = batch(300, 13);
    let x = to_f64(&inputs);
    for kernel in runnable_kernels() {
        for activation in ACTIVATIONS {
            let mlp = network(activation, 14);
            let mut workspace = Workspace::with_kernel(2, kernel).unwrap();
            assert_eq!(workspace.kernel(), kernel);
            let ours = workspace.forward(&mlp, &inputs).unwrap();
            let p = to_f64(mlp.parameters());
            let reference = reference_forward(mlp.shapes(), activation, &p, &x);
            let worst = ours.iter().zip(&reference).map(|(&a, b)| (a as f64 - b).abs()).fold(0.0, f64::max);
            assert!(worst < 2e-5, "{kernel} {activation:?}: largest output difference {worst}");
            let (loss, _) = workspace.loss_and_gradient(&mlp, &inputs, &targets).unwrap();
            let expected = reference_loss(&mlp, &p, &x, &targets);
            assert!(
                (loss as f64 - expected).abs() < 1e-5 * expected,
                "{kernel} {activation:?}: loss {loss} vs {expected}"
            );
        }
    }
}

#[test]
fn kernels_and_thread_counts_agree() {
    // 2 600 rows: eleven blocks, so an order-dependent sum of block gradients
    // (reversed, or a tree reduction) changes the last bits.
    let (inputs, targets) = batch(2600, 5);
    let mlp = network(Activation::Gelu, 6);
    let run = |threads, kernel| {
        let mut workspace = Workspace::with_kernel(threads, kernel).unwrap();
        let (loss, gradient) = workspace.loss_and_gradient(&mlp, &inputs, &targets).unwrap();
        (loss, gradient.to_vec())
    };
    let (portable_loss, portable_gradient) = run(2, Kernel::Portable);
    let scale = portable_gradient.iter().map(|g| g.abs()).fold(0.0f32, f32::max);
    for kernel in runnable_kernels() {
        // Blocks are fixed and summed in order: the thread count changes nothing, bit for bit.
        assert_eq!(run(1, kernel), run(3, kernel), "{kernel}");
        let (loss, gradient) = run(2, kernel);
        assert!((loss - portable_loss).abs() < 1e-6 * loss, "{kernel}");
        for (a, b) in gradient.iter().zip(&portable_gradient) {
            assert!((a - b).abs() < 1e-5 * scale, "{kernel}: {a} vs {b}");
        }
    }
}

#[test]
fn a_kernel_the_cpu_lacks_is_refused_and_names_parse() {
    for kernel in Kernel::ALL {
        assert_eq!(kernel.name().parse::<Kernel>().unwrap(), kernel);
        assert_eq!(kernel.to_string(), kernel.name());
        match Workspace::with_kernel(1, kernel) {
            Ok(workspace) => assert!(kernel.is_supported() && workspace.kernel() == kernel),
            Err(error) => {
                assert!(!kernel.is_supported());
                assert_eq!(error, NativeError::UnsupportedKernel(kernel));
                let supported: Vec<&str> = Kernel::supported().into_iter().map(Kernel::name).collect();
                let expected = format!(
                    "this CPU cannot run the {kernel} kernel (it supports: {})",
                    supported.join(", ")
                );
                assert_eq!(error.to_string(), expected);
            }
        }
    }
    assert!(Kernel::Portable.is_supported());
    assert_eq!(Kernel::detect(), Kernel::supported()[0]);
    let unknown = "sse9".parse::<Kernel>().unwrap_err();
    assert_eq!(
        unknown.to_string(),
        "unknown kernel `sse9` in FLOWMATCH_KERNEL (valid: auto, avx512, avx2, neon, portable)"
    );
}

#[test]
fn adam_fits_a_regression() {
    // Targets from a fixed random network of the same shape: reachable, so the loss must fall far.
    let (inputs, _) = batch(512, 7);
    let teacher = network(Activation::Gelu, 8);
    let mut workspace = Workspace::with_kernel(2, Kernel::requested().unwrap()).unwrap();
    let targets = workspace.forward(&teacher, &inputs).unwrap();
    let mut student = network(Activation::Gelu, 9);
    let mut adam = Adam::new(student.parameters().len(), 3e-3);
    let mut losses = Vec::new();
    for _ in 0..300 {
        let (loss, gradient) = workspace.loss_and_gradient(&student, &inputs, &targets).unwrap();
        losses.push(loss);
        adam.update(student.parameters_mut(), gradient);
    }
    assert!(losses[299] < losses[0] / 20.0, "loss {} → {}", losses[0], losses[299]);
}

#[test]
fn adam_first_step_moves_each_parameter_by_the_rate() {
    // With zero moments, bias correction makes the first update lr · g / (|g| + ε): ±lr.
    let mut parameters = vec![1.0f32, -2.0, 0.5];
    let mut adam = Adam::new(3, 0.01);
    adam.update(&mut parameters, &[0.3, -4.0, 1e-3]);
    for (after, expected) in parameters.iter().zip([0.99f32, -1.99, 0.49]) {
        assert!((after - expected).abs() < 1e-6, "{after} vs {expected}");
    }
    assert!(adam.restore(vec![0.0; 2], vec![0.0; 3], 1).is_err());
    assert!(adam.restore(vec![0.0; 3], vec![0.0; 2], 1).is_err());
    assert_eq!(adam.restore(vec![0.5; 3], vec![0.25; 3], 7), Ok(()));
    assert_eq!((adam.moments(), adam.step), ((&[0.5f32; 3][..], &[0.25f32; 3][..]), 7));

    // A gradient as small as ε: the step is lr · g / (|g| + ε) = lr / 2.
    let mut parameter = [0.0f32];
    Adam::new(1, 0.01).update(&mut parameter, &[1e-8]);
    assert!((parameter[0] + 0.005).abs() < 1e-7, "{}", parameter[0]);
}

#[test]
fn adam_follows_pytorchs_update_over_several_steps() {
    // torch.optim.Adam's arithmetic in f64: m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g²,
    // p ← p − lr/(1−β₁ᵗ) · m / (√v / √(1−β₂ᵗ) + ε). Gradients that change sign and size make
    // every term matter from the second step on (β₂ = 0.99 instead of 0.999 moves p by ~10⁻⁴·lr).
    let (beta1, beta2, eps, lr) = (0.9f64, 0.999f64, 1e-8f64, 0.01f64);
    let gradients: [[f32; 3]; 6] = [
        [0.3, -4.0, 1e-3],
        [-0.2, -3.0, 2e-3],
        [0.5, 1.0, -1e-3],
        [0.1, -0.5, 5e-3],
        [-0.4, 2.0, 0.0],
        [0.05, -1.0, 1e-4],
    ];
    let mut parameters = vec![1.0f32, -2.0, 0.5];
    let mut adam = Adam::new(3, lr);
    let (mut p, mut m, mut v) = ([1.0f64, -2.0, 0.5], [0.0f64; 3], [0.0f64; 3]);
    for (t, g) in gradients.iter().enumerate() {
        adam.update(&mut parameters, g);
        let t = t as i32 + 1;
        for i in 0..3 {
            let g = g[i] as f64;
            m[i] = beta1 * m[i] + (1.0 - beta1) * g;
            v[i] = beta2 * v[i] + (1.0 - beta2) * g * g;
            let denominator = v[i].sqrt() / (1.0 - beta2.powi(t)).sqrt() + eps;
            p[i] -= lr / (1.0 - beta1.powi(t)) * m[i] / denominator;
        }
        for i in 0..3 {
            assert!(
                (parameters[i] as f64 - p[i]).abs() < 1e-6,
                "step {t}, parameter {i}: {} vs {}",
                parameters[i],
                p[i]
            );
        }
    }
    let (first, second) = adam.moments();
    for i in 0..3 {
        assert!(
            (first[i] as f64 - m[i]).abs() < 1e-6 * m[i].abs().max(1e-3),
            "m[{i}]: {} vs {}",
            first[i],
            m[i]
        );
        assert!(
            (second[i] as f64 - v[i]).abs() < 1e-6 * v[i].abs().max(1e-9),
            "v[{i}]: {} vs {}",
            second[i],
            v[i]
        );
    }
    assert_eq!(adam.step, 6);
}

#[test]
fn adamw_decays_the_weights_before_each_adam_step_as_pytorch_does() {
    // torch.optim.AdamW: p ← p·(1 − lr·λ), then Adam's step, whose moments see the gradient
    // alone. λ is large enough that the decay moves p far beyond the tolerance, so a missing,
    // coupled (λp added to the gradient) or misplaced decay fails.
    let (lr, decay) = (0.01f64, 5.0f64);
    let gradients: [[f32; 2]; 4] = [[0.3, -4.0], [-0.2, -3.0], [0.5, 1.0], [0.1, -0.5]];
    let mut parameters = vec![1.0f32, -2.0];
    let mut adamw = Adam::new(2, lr).with_weight_decay(decay);
    // Plain Adam on the same gradients gives each step's Adam move (from a zero parameter).
    let mut plain = Adam::new(2, lr);
    let mut expected = [1.0f64, -2.0];
    for g in &gradients {
        let mut adam_move = vec![0.0f32; 2];
        plain.update(&mut adam_move, g);
        adamw.update(&mut parameters, g);
        for i in 0..2 {
            expected[i] = expected[i] * (1.0 - lr * decay) + f64::from(adam_move[i]);
        }
    }
    for i in 0..2 {
        assert!(
            (f64::from(parameters[i]) - expected[i]).abs() < 1e-5,
            "{i}: {} vs {}",
            parameters[i],
            expected[i]
        );
    }
    assert_eq!(adamw.moments(), plain.moments());
}

#[test]
fn a_batch_of_two_waves_sums_its_blocks_gradients_in_row_order() {
    // 16 384 rows with 2 outputs: the loss's scale 2/(rows·outputs) is 2⁻¹⁴, and 2⁻⁸ for one
    // block of 256 rows alone. Scaling by a power of two is exact, so each block's gradient in
    // the whole batch is its gradient alone times 2⁻⁶ to the bit, and the whole gradient is
    // their sum in row order, block by block across both waves.
    const BLOCK: usize = 256;
    let rows = 64 * BLOCK;
    let mlp = network(Activation::Gelu, 13);
    let (inputs, targets) = batch(rows, 14);
    let mut workspace = Workspace::with_kernel(2, Kernel::requested().unwrap()).unwrap();
    let whole = workspace.loss_and_gradient(&mlp, &inputs, &targets).unwrap().1.to_vec();
    let mut expected = vec![0.0f32; whole.len()];
    for block in 0..rows / BLOCK {
        let rows = block * BLOCK..(block + 1) * BLOCK;
        let (_, alone) = workspace
            .loss_and_gradient(
                &mlp,
                &inputs[rows.start * 3..rows.end * 3],
                &targets[rows.start * 2..rows.end * 2],
            )
            .unwrap();
        for (total, &part) in expected.iter_mut().zip(alone) {
            *total += part * 2f32.powi(-6);
        }
    }
    assert!(whole == expected, "the gradient is not the in-order sum of its 256-row blocks");
}

#[test]
fn shapes_are_checked() {
    let too_few = Mlp::new(SHAPES.to_vec(), Activation::Gelu, vec![0.0; 5]);
    assert!(matches!(too_few, Err(NativeError::Shape(_))));
    let broken_chain = Mlp::new(vec![(3, 4), (5, 2)], Activation::Gelu, vec![0.0; 16 + 12]);
    assert!(matches!(broken_chain, Err(NativeError::Shape(_))));
    let mlp = network(Activation::Gelu, 10);
    let mut workspace = Workspace::with_kernel(1, Kernel::requested().unwrap()).unwrap();
    assert!(workspace.forward(&mlp, &[0.0; 7]).is_err());
    assert!(workspace.loss_and_gradient(&mlp, &[0.0; 6], &[0.0; 6]).is_err());
}

#[test]
fn batches_larger_than_a_wave_give_the_same_numbers() {
    // 20 000 rows span several waves of blocks; every row is computed the same
    // way wherever it falls, and the gradient is the row-weighted mean of its parts.
    let mlp = network(Activation::Gelu, 11);
    let (inputs, targets) = batch(20_000, 12);
    let mut workspace = Workspace::with_kernel(2, Kernel::requested().unwrap()).unwrap();
    let whole = workspace.forward(&mlp, &inputs).unwrap();
    let split = 9_000;
    let mut parts = workspace.forward(&mlp, &inputs[..split * 3]).unwrap();
    parts.extend(workspace.forward(&mlp, &inputs[split * 3..]).unwrap());
    assert_eq!(whole, parts);

    let (loss, gradient) = workspace.loss_and_gradient(&mlp, &inputs, &targets).unwrap();
    let gradient = gradient.to_vec();
    let (head_loss, head) =
        workspace.loss_and_gradient(&mlp, &inputs[..split * 3], &targets[..split * 2]).unwrap();
    let head = head.to_vec();
    let (tail_loss, tail) =
        workspace.loss_and_gradient(&mlp, &inputs[split * 3..], &targets[split * 2..]).unwrap();
    let (a, b) = (split as f32 / 20_000.0, (20_000 - split) as f32 / 20_000.0);
    assert!((loss - (a * head_loss + b * tail_loss)).abs() < 1e-5 * loss);
    let scale = gradient.iter().map(|g| g.abs()).fold(0.0f32, f32::max);
    for ((g, h), t) in gradient.iter().zip(&head).zip(tail) {
        assert!((g - (a * h + b * t)).abs() < 1e-5 * scale, "{g} vs {}", a * h + b * t);
    }
}

#[test]
fn jacobian_vector_products_match_central_differences_of_the_reference() {
    // 300 rows (two blocks), three directions over the first two inputs (the third, like time,
    // held fixed), every kernel and activation: J·u against (f(x + hu) − f(x − hu)) / 2h in f64.
    let (inputs, _) = batch(300, 21);
    let (directions, width) = (3, 2);
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    let tangents = random(&mut rng, 300 * directions * width, 1.0);
    let x = to_f64(&inputs);
    let h = 1e-5;
    for kernel in runnable_kernels() {
        for activation in ACTIVATIONS {
            let mlp = network(activation, 23);
            let p = to_f64(mlp.parameters());
            let mut workspace = Workspace::with_kernel(2, kernel).unwrap();
            let (values, products) =
                workspace.forward_with_jvps(&mlp, &inputs, (&tangents, directions, width)).unwrap();
            assert_eq!(values, workspace.forward(&mlp, &inputs).unwrap(), "{kernel}: outputs differ");
            let mut worst: f64 = 0.0;
            for d in 0..directions {
                let shifted = |sign: f64| {
                    let mut moved = x.clone();
                    for r in 0..300 {
                        for i in 0..width {
                            moved[r * 3 + i] += sign * h * tangents[(r * directions + d) * width + i] as f64;
                        }
                    }
                    reference_forward(mlp.shapes(), activation, &p, &moved)
                };
                let (plus, minus) = (shifted(1.0), shifted(-1.0));
                for r in 0..300 {
                    for o in 0..2 {
                        let expected = (plus[r * 2 + o] - minus[r * 2 + o]) / (2.0 * h);
                        let ours = products[(r * directions + d) * 2 + o] as f64;
                        worst = worst.max((ours - expected).abs());
                    }
                }
            }
            // ReLU's and SELU's kinks (a slope that jumps at 0) sit inside a difference step for
            // a few points: allow them more.
            let bound = if matches!(activation, Activation::Relu | Activation::Selu) { 5e-2 } else { 1e-4 };
            assert!(worst < bound, "{kernel} {activation:?}: largest product difference {worst}");
        }
    }
    let mlp = network(Activation::Gelu, 23);
    let mut workspace = Workspace::with_kernel(1, Kernel::requested().unwrap()).unwrap();
    assert!(matches!(
        workspace.forward_with_jvps(&mlp, &inputs, (&tangents[1..], directions, width)),
        Err(NativeError::Shape(_))
    ));
    // Directions over no inputs, or over more inputs than the network has, are refused; over
    // all of them they are not.
    for (width, accepted) in [(0, false), (3, true), (4, false)] {
        let tangents = vec![0.5; 300 * width];
        let result = workspace.forward_with_jvps(&mlp, &inputs, (&tangents, 1, width));
        assert_eq!(result.is_ok(), accepted, "width {width}");
    }
}

#[test]
fn jacobian_vector_products_of_a_batch_spanning_waves_are_those_of_its_parts() {
    // 9 000 rows: a full wave of 8 192 and the rest; each row's products are computed alone.
    let rows = 9_000;
    let mlp = network(Activation::Silu, 24);
    let (inputs, _) = batch(rows, 25);
    let mut rng = ChaCha8Rng::seed_from_u64(26);
    let (directions, width) = (2, 2);
    let tangents = random(&mut rng, rows * directions * width, 1.0);
    let mut workspace = Workspace::with_kernel(2, Kernel::requested().unwrap()).unwrap();
    let whole = workspace.forward_with_jvps(&mlp, &inputs, (&tangents, directions, width)).unwrap();
    let split = 8_500;
    let (head, tail) = (split * directions * width, split * 3);
    let first =
        workspace.forward_with_jvps(&mlp, &inputs[..tail], (&tangents[..head], directions, width)).unwrap();
    let second =
        workspace.forward_with_jvps(&mlp, &inputs[tail..], (&tangents[head..], directions, width)).unwrap();
    assert!(whole.0 == [first.0, second.0].concat(), "outputs differ");
    assert!(whole.1 == [first.1, second.1].concat(), "products differ");
}

/// A row-weighted loss: weights of 1 are the plain loss bit for bit; weights that keep the
/// first rows and drop the rest give the first rows' own loss and gradient, scaled by their share.
#[test]
fn row_weights_scale_each_rows_error_and_gradient() {
    let mlp = network(Activation::Gelu, 13);
    let (inputs, targets) = batch(600, 14);
    let mut workspace = Workspace::with_kernel(2, Kernel::requested().unwrap()).unwrap();
    let (loss, gradient) = workspace.loss_and_gradient(&mlp, &inputs, &targets).unwrap();
    let gradient = gradient.to_vec();
    let ones = vec![1.0f32; 600];
    let ((weighted, same), ()) =
        workspace.weighted_loss_and_gradient_while(&mlp, (&inputs, &targets, Some(&ones)), || ()).unwrap();
    assert_eq!((weighted, same.to_vec()), (loss, gradient));

    let kept = 200;
    let weights: Vec<f32> = (0..600).map(|i| if i < kept { 1.0 } else { 0.0 }).collect();
    let ((masked, masked_gradient), ()) =
        workspace.weighted_loss_and_gradient_while(&mlp, (&inputs, &targets, Some(&weights)), || ()).unwrap();
    let masked_gradient = masked_gradient.to_vec();
    let (head_loss, head) =
        workspace.loss_and_gradient(&mlp, &inputs[..kept * 3], &targets[..kept * 2]).unwrap();
    let share = kept as f32 / 600.0;
    assert!((masked - share * head_loss).abs() < 1e-5 * masked, "{masked} vs {}", share * head_loss);
    let scale = head.iter().map(|g| g.abs()).fold(0.0f32, f32::max);
    for (g, h) in masked_gradient.iter().zip(head) {
        assert!((g - share * h).abs() < 1e-5 * scale, "{g} vs {}", share * h);
    }
    let short =
        workspace.weighted_loss_and_gradient_while(&mlp, (&inputs, &targets, Some(&weights[..5])), || ());
    assert!(matches!(short, Err(NativeError::Shape(_))));
}
