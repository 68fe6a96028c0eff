//! flow-eval's one test binary: the probe scores a flow whose answer is known.

use flow_data::{Dataset, PointSource};
use flow_eval::{EvalError, FLOOR_DRAWS, QualityProbe};
use flow_model::{Backend, Integrator, ModelConfig, Runtime, VelocityNet};
use flow_ode::Solver;

/// How these tests run networks: `auto`, with the kernel `FLOWMATCH_KERNEL` forces.
fn runtime() -> Runtime {
    Runtime::requested(Backend::Auto).expect("a kernel this CPU has")
}

/// A network whose velocity is zero everywhere: its flow leaves every point where it is.
fn still() -> Integrator {
    let mut net = VelocityNet::new(ModelConfig::default(), tch::Device::Cpu).expect("default config");
    let count = net.flat_parameters().numel();
    net.set_parameters(&vec![0.0; count]).expect("same size");
    Integrator::new(&net, runtime()).expect("integrates")
}

fn builtin(dataset: Dataset) -> PointSource {
    PointSource::builtin(dataset, 2).expect("2-D")
}

#[test]
fn a_flow_that_already_has_the_target_scores_the_noise_floor() {
    // Source and target are both the spiral, and the flow does nothing: its samples are
    // independent target draws, which is exactly what the floor measures.
    let probe =
        QualityProbe::new(&builtin(Dataset::Spiral), &builtin(Dataset::Spiral), 400, 0).expect("probe");
    let quality = probe.measure(&still(), Solver::Rk4, 5).expect("measures");
    assert_eq!((quality.nfe, quality.n, quality.steps), (20, 400, 5));
    assert!((0.85..1.2).contains(&quality.w2_ratio), "ratio {}", quality.w2_ratio);
    assert_eq!(quality.w2_floor, probe.floor);
    // Paths that do not move are perfectly straight.
    assert_eq!(quality.straightness, 0.0);
    assert!(quality.mmd.abs() < 0.01, "MMD² {}", quality.mmd);
}

#[test]
fn a_flow_that_misses_the_target_scores_far_above_the_floor_and_probes_repeat() {
    let probe =
        QualityProbe::new(&builtin(Dataset::Gaussian), &builtin(Dataset::Spiral), 400, 1).expect("probe");
    let model = still();
    let measured = probe.measure_many(&model, &[(Solver::Euler, 3), (Solver::Heun, 2)]).expect("measures");
    assert_eq!(measured.iter().map(|q| q.nfe).collect::<Vec<_>>(), [3, 4]);
    for quality in &measured {
        assert!(quality.w2_ratio > 1.3, "{} × {}: ratio {}", quality.solver, quality.steps, quality.w2_ratio);
    }
    // The floor is a mean over several draws, and the same seed gives the same numbers.
    assert_eq!(FLOOR_DRAWS, probe.sources.len());
    let again =
        QualityProbe::new(&builtin(Dataset::Gaussian), &builtin(Dataset::Spiral), 400, 1).expect("probe");
    assert_eq!(again.floor, probe.floor);
    assert_eq!(again.w2(&model, Solver::Euler, 3).expect("measures").0, measured[0].w2);
    // Each set scores the mean of its draws against the matching target draws
    // (solved independently, or as one series per draw), and needs one sample per draw.
    let sets = vec![probe.sources.clone(), probe.sources.iter().map(|s| s * 0.5).collect()];
    let w2s = probe.w2_of(&sets).expect("one sample per draw");
    assert_eq!(probe.w2_of_alike(&sets).expect("one sample per draw"), w2s);
    for (set, w2) in sets.iter().zip(&w2s) {
        let each: Vec<f64> = set
            .iter()
            .zip(&probe.targets)
            .map(|(s, t)| flow_metrics::wasserstein2(s, t).expect("same shape"))
            .collect();
        assert_eq!(*w2, each.iter().sum::<f64>() / FLOOR_DRAWS as f64);
    }
    assert_ne!(w2s[0], w2s[1]);
    for short in
        [probe.w2_of(&[probe.sources[..1].to_vec()]), probe.w2_of_alike(&[probe.sources[..1].to_vec()])]
    {
        assert!(matches!(short, Err(EvalError::Draws { given: 1, draws: FLOOR_DRAWS })));
    }
}

mod likelihood {
    use super::runtime;
    use flow_data::{Dataset, PointSource};
    use flow_eval::EvalError;
    use flow_eval::likelihood::{Divergence, log_density};
    use flow_model::{Activation, Backend, Integrator, Kernel, ModelConfig, Runtime, VelocityNet};
    use flow_ode::Solver;
    use ndarray::Array2;

    const SCALE: f64 = -0.3;
    const SPIN: f64 = 0.8;
    const SHIFT: [f64; 2] = [0.5, -1.0];
    /// Keeps every ReLU's input positive where the test looks, so the network is affine there.
    const OFFSET: f32 = 30.0;

    /// A ReLU network equal to v(x) = A x + b with A = [[a, w], [−w, a]] wherever |x| < 30:
    /// its flow carries N(0, I) to a Gaussian known in closed form.
    fn affine() -> VelocityNet {
        let config =
            ModelConfig::with_mlp(flow_model::Mlp { hidden: 2, layers: 1, activation: Activation::Relu });
        let mut net = VelocityNet::new(config, tch::Device::Cpu).expect("config");
        let (a, w) = (SCALE as f32, SPIN as f32);
        let matrix = [[a, w], [-w, a]];
        let mut flat = vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, OFFSET, OFFSET];
        flat.extend([matrix[0][0], matrix[0][1], matrix[1][0], matrix[1][1]]);
        for i in 0..2 {
            flat.push(SHIFT[i] as f32 - OFFSET * (matrix[i][0] + matrix[i][1]));
        }
        net.set_parameters(&flat).expect("eight and six values");
        net
    }

    /// log p₁(x) for that flow: x₀ = e^{−A}(x − μ) with μ = A⁻¹(e^A − I)b, and log p₀(x₀) − tr A.
    fn analytic(x: [f64; 2]) -> f64 {
        let (a, w) = (SCALE, SPIN);
        let grow = a.exp();
        let exp_a = [[grow * w.cos(), grow * w.sin()], [-grow * w.sin(), grow * w.cos()]];
        let m = [[exp_a[0][0] - 1.0, exp_a[0][1]], [exp_a[1][0], exp_a[1][1] - 1.0]];
        let mb = [m[0][0] * SHIFT[0] + m[0][1] * SHIFT[1], m[1][0] * SHIFT[0] + m[1][1] * SHIFT[1]];
        let det = a * a + w * w;
        let mu = [(a * mb[0] - w * mb[1]) / det, (w * mb[0] + a * mb[1]) / det];
        let d = [x[0] - mu[0], x[1] - mu[1]];
        let shrink = (-a).exp();
        // e^{−A} = e^{−a} R(−w), R(θ) = [[cos θ, sin θ], [−sin θ, cos θ]].
        let x0 = [shrink * (w.cos() * d[0] - w.sin() * d[1]), shrink * (w.sin() * d[0] + w.cos() * d[1])];
        -0.5 * (x0[0] * x0[0] + x0[1] * x0[1]) - (2.0 * std::f64::consts::PI).ln() - 2.0 * a
    }

    fn points(n: usize, seed: u64) -> Array2<f32> {
        PointSource::builtin(Dataset::Gaussian, 2)
            .expect("2-D")
            .draw(n, &mut flow_data::seeded_rng(seed))
            .expect("draws")
            * 1.5
    }

    fn check_affine(integrator: &Integrator, what: &str) {
        let x = points(200, 3);
        let dopri5 = (Solver::from_name("dopri5", 1e-7, 1e-7).expect("tolerances"), 1);
        let found = log_density(integrator, Dataset::Gaussian, &x, dopri5, Divergence::Exact).expect("log p");
        let worst = x
            .rows()
            .into_iter()
            .zip(&found.log_prob)
            .map(|(row, ours)| (ours - analytic([f64::from(row[0]), f64::from(row[1])])).abs())
            .fold(0.0, f64::max);
        eprintln!("{what}: largest error against the closed form {worst:.2e} nats, NFE {}", found.nfe);
        assert!(worst < 1e-4, "{what}: largest error {worst} nats");
        assert!(found.nfe > 6 && found.standard_error.is_none(), "{what}: nfe {}", found.nfe);
    }

    #[test]
    fn an_affine_flow_gives_the_gaussian_log_density_in_closed_form_on_both_backends() {
        let net = affine();
        let native = Integrator::new(&net, runtime().with_backend(Backend::Native)).expect("native");
        assert_eq!(native.backend(), Backend::Native);
        check_affine(&native, "native");
        let libtorch =
            Integrator::new(&net, Runtime { backend: Backend::Libtorch, kernel: Kernel::Portable })
                .expect("libtorch");
        assert_eq!(libtorch.backend(), Backend::Libtorch);
        check_affine(&libtorch, "libtorch");
    }

    fn trained() -> VelocityNet {
        use flow_train::{PairSource, RunOptions, TrainConfig};
        tch::manual_seed(7);
        let mut net = VelocityNet::new(ModelConfig::default(), tch::Device::Cpu).expect("config");
        let pairs = PairSource::independent(
            PointSource::builtin(Dataset::Gaussian, 2).expect("2-D"),
            PointSource::builtin(Dataset::Spiral, 2).expect("2-D"),
        )
        .expect("pairs");
        let config = TrainConfig {
            steps: 300,
            batch_size: 256,
            lr: 3e-3,
            checkpoint_every: 0,
            ..TrainConfig::default()
        };
        let options = RunOptions { runtime: runtime(), ..RunOptions::default() };
        flow_train::train(&mut net, &pairs, &config, &options).expect("trains");
        net
    }

    #[test]
    fn a_trained_density_integrates_to_one_and_estimates_agree_with_the_exact_trace() {
        let net = trained();
        let model = Integrator::new(&net, runtime()).expect("integrates");
        // A 120 × 120 grid over [−6, 6]² (the spiral reaches radius 3): the cells' mass adds up to one.
        let cells = 120;
        let side = 12.0 / cells as f64;
        let grid = Array2::from_shape_fn((cells * cells, 2), |(i, j)| {
            let index = if j == 0 { i % cells } else { i / cells };
            (-6.0 + (index as f64 + 0.5) * side) as f32
        });
        let rk4 = (Solver::Rk4, 40);
        let density = log_density(&model, Dataset::Gaussian, &grid, rk4, Divergence::Exact).expect("log p");
        let mass: f64 = density.log_prob.iter().map(|l| l.exp() * side * side).sum();
        eprintln!("the learned density integrates to {mass:.4} over the grid");
        assert!((mass - 1.0).abs() < 0.02, "the density integrates to {mass}");

        // Hutchinson: within three standard errors of the exact value, and tighter with more probes.
        let x = points(300, 11);
        let exact = log_density(&model, Dataset::Gaussian, &x, rk4, Divergence::Exact).expect("exact");
        let mut spread = Vec::new();
        // (In 2-D a Rademacher probe's error is ±(J₁₂ + J₂₁) integrated: with few probes all
        // can share a sign and the sample spread is zero, so the check starts at 16.)
        for probes in [16, 144] {
            let estimate =
                log_density(&model, Dataset::Gaussian, &x, rk4, Divergence::Hutchinson { probes, seed: 5 })
                    .expect("estimate");
            let errors = estimate.standard_error.expect("several probes");
            let outside = exact
                .log_prob
                .iter()
                .zip(&estimate.log_prob)
                .zip(&errors)
                .filter(|((e, h), se)| (*e - *h).abs() > 3.0 * **se + 1e-6)
                .count();
            // Three standard errors leave about 1 % outside at 16 probes (Student's t, 15 degrees).
            assert!(outside <= 9, "{probes} probes: {outside} of 300 outside three standard errors");
            spread.push(errors.iter().sum::<f64>() / errors.len() as f64);
        }
        eprintln!("mean standard errors at 16 and 144 probes: {spread:?}");
        assert!(spread[1] < 0.45 * spread[0], "standard errors {spread:?} do not shrink with probes");
    }

    #[test]
    fn log_densities_do_not_depend_on_the_thread_count_and_bad_points_are_named() {
        let net = affine();
        let x = points(700, 4);
        let rk4 = (Solver::Rk4, 10);
        let at = |threads| {
            tch::set_num_threads(threads);
            let model = Integrator::new(&net, runtime()).expect("integrates");
            log_density(&model, Dataset::Gaussian, &x, rk4, Divergence::Exact).expect("log p").log_prob
        };
        let (one, two) = (at(1), at(2));
        assert_eq!(one, two);
        let model = Integrator::new(&net, runtime()).expect("integrates");
        let wrong = Array2::<f32>::zeros((3, 3));
        assert!(matches!(
            log_density(&model, Dataset::Gaussian, &wrong, rk4, Divergence::Exact),
            Err(EvalError::Dimension { points: 3, model: 2 })
        ));
        let mut bad = points(5, 1);
        bad[[3, 1]] = f32::NAN;
        assert!(matches!(
            log_density(&model, Dataset::Gaussian, &bad, rk4, Divergence::Exact),
            Err(EvalError::NonFinite { row: 4 })
        ));
        assert!(matches!(
            log_density(&model, Dataset::Spiral, &x, rk4, Divergence::Exact),
            Err(EvalError::NoDensity("spiral"))
        ));
        // Weights of 1e30: finite input points overflow on the way back, and are said to.
        let huge = net.with_parameters(&(net.flat_parameters() * 1e30)).expect("same shape");
        let model = Integrator::new(&huge, runtime()).expect("integrates");
        let outcome = log_density(&model, Dataset::Gaussian, &points(5, 1), rk4, Divergence::Exact);
        let message = outcome.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("is finite, but its integration back to the source overflowed"),
            "{message}"
        );
    }
}
