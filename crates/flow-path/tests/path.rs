//! flow-path's one test binary: interpolants, targets and conversions against closed forms.

use flow_path::{AffinePath, PathError, PathName, Prediction, Scheduler};
use ndarray::Array2;

/// Deterministic, irregular values: enough to catch a swapped or dropped term.
fn rows(n: usize, dim: usize, salt: f32) -> Array2<f32> {
    Array2::from_shape_fn((n, dim), |(i, j)| ((i * 7 + j * 3) as f32 * 0.37 + salt).sin() * 2.0)
}

fn times(n: usize) -> Vec<f32> {
    (0..n).map(|i| (i as f32 + 0.5) / n as f32).collect()
}

#[test]
fn every_scheduler_starts_at_the_source_and_ends_at_the_data_with_its_own_derivatives() {
    for scheduler in Scheduler::ALL {
        let start = scheduler.at(0.0);
        let end = scheduler.at(1.0);
        match scheduler {
            // VP only comes close to the source: α₀ = e^{−T(0)/2}, T(0) = ½(β_max − β_min) + β_min.
            Scheduler::Vp { beta_min, beta_max } => {
                let t0: f64 = 0.5 * (beta_max - beta_min) + beta_min;
                assert!((start.alpha - (-0.5 * t0).exp()).abs() < 1e-15, "{scheduler}: {start:?}");
                assert!((start.sigma - (1.0 - (-t0).exp()).sqrt()).abs() < 1e-15, "{scheduler}: {start:?}");
            }
            _ => assert!((start.alpha, start.sigma) == (0.0, 1.0), "{scheduler}: {start:?}"),
        }
        // Lipman's target path leaves the data blurred by σ_min.
        let blur = if let Scheduler::Target { sigma_min } = scheduler { sigma_min } else { 0.0 };
        assert!(end.alpha == 1.0 && (end.sigma - blur).abs() < 1e-15, "{scheduler}: {end:?}");
        for t in [0.1, 0.37, 0.5, 0.9] {
            let h = 1e-6;
            let (before, here, after) = (scheduler.at(t - h), scheduler.at(t), scheduler.at(t + h));
            let d_alpha = (after.alpha - before.alpha) / (2.0 * h);
            let d_sigma = (after.sigma - before.sigma) / (2.0 * h);
            assert!(
                (d_alpha - here.d_alpha).abs() < 1e-8,
                "{scheduler} t = {t}: dα {d_alpha} vs {}",
                here.d_alpha
            );
            assert!(
                (d_sigma - here.d_sigma).abs() < 1e-8,
                "{scheduler} t = {t}: dσ {d_sigma} vs {}",
                here.d_sigma
            );
        }
    }
    // The cosine schedule of torchcfm's variance-preserving matcher, at a point.
    let quarter = Scheduler::Cosine.at(0.5);
    let half = std::f64::consts::FRAC_1_SQRT_2;
    assert!((quarter.alpha - half).abs() < 1e-15 && (quarter.sigma - half).abs() < 1e-15);
}

#[test]
fn the_line_is_bit_for_bit_the_interpolant_training_always_used() {
    let (x0, x1, t) = (rows(64, 3, 0.1), rows(64, 3, 2.3), times(64));
    let sample = AffinePath::LINE.sample(&x0, &x1, &t, None).expect("a batch");
    for i in 0..64 {
        for j in 0..3 {
            let velocity = x1[[i, j]] - x0[[i, j]];
            assert_eq!(sample.target[[i, j]].to_bits(), velocity.to_bits(), "target ({i}, {j})");
            let position = x0[[i, j]] + t[i] * velocity;
            assert_eq!(sample.x_t[[i, j]].to_bits(), position.to_bits(), "x_t ({i}, {j})");
        }
    }
}

#[test]
fn the_cosine_path_is_torchcfms_variance_preserving_interpolant() {
    let (x0, x1, t) = (rows(32, 2, 0.7), rows(32, 2, 1.9), times(32));
    let path = AffinePath::new(Scheduler::Cosine, 0.0).expect("σ = 0");
    let sample = path.sample(&x0, &x1, &t, None).expect("a batch");
    for i in 0..32 {
        let angle = std::f32::consts::FRAC_PI_2 * t[i];
        for j in 0..2 {
            let (a, b) = (x0[[i, j]], x1[[i, j]]);
            let x_t = angle.cos() * a + angle.sin() * b;
            let target = std::f32::consts::FRAC_PI_2 * (angle.cos() * b - angle.sin() * a);
            assert!((sample.x_t[[i, j]] - x_t).abs() < 1e-5, "x_t ({i}, {j})");
            assert!((sample.target[[i, j]] - target).abs() < 1e-5, "target ({i}, {j})");
        }
    }
}

#[test]
fn polynomial_target_and_vp_paths_are_their_sources_interpolants() {
    let (x0, x1, t) = (rows(32, 2, 0.3), rows(32, 2, 2.9), times(32));
    let sampled = |scheduler| {
        AffinePath::new(scheduler, 0.0).expect("σ = 0").sample(&x0, &x1, &t, None).expect("a batch")
    };
    // flow_matching's PolynomialConvexScheduler: x₀ + tⁿ(x₁ − x₀), target n·tⁿ⁻¹(x₁ − x₀).
    let cubic = sampled(Scheduler::Polynomial { exponent: 3.0 });
    // torchcfm's TargetConditionalFlowMatcher: t·x₁ + (1 − (1 − σ)t)·x₀, target x₁ − (1 − σ)x₀.
    let blurred = sampled(Scheduler::Target { sigma_min: 0.1 });
    // flow_matching's VPScheduler at its defaults, from T(t) as its docstring writes it.
    let vp = sampled(Scheduler::VP);
    for i in 0..32 {
        let ti = f64::from(t[i]);
        let s = 1.0 - ti;
        let big_t = 0.5 * s * s * 19.9 + s * 0.1;
        let d_big_t = -s * 19.9 - 0.1;
        let (alpha, sigma) = ((-0.5 * big_t).exp(), (1.0 - (-big_t).exp()).sqrt());
        let (d_alpha, d_sigma) = (-0.5 * d_big_t * alpha, 0.5 * d_big_t * (-big_t).exp() / sigma);
        for j in 0..2 {
            let (a, b) = (f64::from(x0[[i, j]]), f64::from(x1[[i, j]]));
            let close = |found: f32, expected: f64, what: &str| {
                assert!(
                    (f64::from(found) - expected).abs() < 1e-4 * (1.0 + expected.abs()),
                    "{what} ({i}, {j}): {found} vs {expected}"
                );
            };
            close(cubic.x_t[[i, j]], a + ti.powi(3) * (b - a), "polynomial x_t");
            close(cubic.target[[i, j]], 3.0 * ti * ti * (b - a), "polynomial target");
            close(blurred.x_t[[i, j]], ti * b + (1.0 - 0.9 * ti) * a, "target x_t");
            close(blurred.target[[i, j]], b - 0.9 * a, "target target");
            close(vp.x_t[[i, j]], sigma * a + alpha * b, "vp x_t");
            close(vp.target[[i, j]], d_sigma * a + d_alpha * b, "vp target");
        }
    }
    // The exponent 1 is the line, to the bit (the convex form with a unit derivative column).
    let line = AffinePath::LINE.sample(&x0, &x1, &t, None).expect("a batch");
    let first = sampled(Scheduler::Polynomial { exponent: 1.0 });
    assert_eq!((first.x_t, first.target), (line.x_t, line.target));
}

#[test]
fn the_bridge_is_schrodinger_bridge_cfms_path_and_target() {
    let (x0, x1, t, noise) = (rows(24, 2, 0.4), rows(24, 2, 1.7), times(24), rows(24, 2, 3.3));
    let bridge = AffinePath::bridge(0.5).expect("σ > 0");
    let sample = bridge.sample(&x0, &x1, &t, Some(&noise)).expect("a batch");
    for i in 0..24 {
        let ti = f64::from(t[i]);
        let scale = 0.5 * (ti * (1.0 - ti)).sqrt();
        // torchcfm: u_t = (1 − 2t)/(2t(1 − t) + 1e-8)·(x_t − μ_t) + x₁ − x₀, x_t − μ_t = σ_t·ε.
        let rate = (1.0 - 2.0 * ti) / (2.0 * ti * (1.0 - ti) + 1e-8);
        for j in 0..2 {
            let (a, b, e) = (f64::from(x0[[i, j]]), f64::from(x1[[i, j]]), f64::from(noise[[i, j]]));
            let x_t = a + ti * (b - a) + scale * e;
            let target = rate * (x_t - (a + ti * (b - a))) + b - a;
            assert!((f64::from(sample.x_t[[i, j]]) - x_t).abs() < 1e-5, "x_t ({i}, {j})");
            assert!((f64::from(sample.target[[i, j]]) - target).abs() < 1e-4, "target ({i}, {j})");
        }
    }
    assert_eq!(bridge.name(), PathName::Bridge);
    assert_eq!("bridge".parse::<PathName>(), Ok(PathName::Bridge));
    assert_eq!(AffinePath::named(PathName::Bridge, 0.5), Ok(bridge));
    assert_eq!("cosine".parse::<PathName>(), Ok(PathName::Scheduled(Scheduler::Cosine)));
    assert_eq!(AffinePath::bridge(0.0), Err(PathError::BridgeSigma(0.0)));
    assert!(bridge.sample(&x0, &x1, &t, None).is_err(), "a bridge needs its noise");
    assert_eq!(bridge.describe(), "bridge, σ = 0.5");
}

#[test]
fn noise_blurs_the_position_and_leaves_the_target() {
    let (x0, x1, t, noise) = (rows(16, 2, 0.2), rows(16, 2, 1.1), times(16), rows(16, 2, 4.0));
    let clean = AffinePath::LINE.sample(&x0, &x1, &t, None).expect("a batch");
    let path = AffinePath::new(Scheduler::Linear, 0.25).expect("σ = 0.25");
    let noisy = path.sample(&x0, &x1, &t, Some(&noise)).expect("a batch");
    assert_eq!(noisy.target, clean.target);
    let moved = &noisy.x_t - &clean.x_t - &noise * 0.25;
    assert!(moved.iter().all(|v| v.abs() < 1e-6), "{moved}");
    assert_eq!(path.sample(&x0, &x1, &t, None).err(), Some(PathError::MissingNoise(0.25)));
    assert!(matches!(AffinePath::new(Scheduler::Linear, -1.0), Err(PathError::Sigma(_))));
    assert!(matches!(AffinePath::new(Scheduler::Linear, f64::NAN), Err(PathError::Sigma(_))));
    let short = &t[..15];
    assert!(matches!(
        AffinePath::LINE.sample(&x0, &x1, short, None),
        Err(PathError::Rows { rows: 16, times: 15, .. })
    ));
}

/// N(0, I) → N(μ, s²I) with independent pairs: every marginal is Gaussian,
/// x_t ~ N(α_t μ, (σ_t² + α_t² s²) I), so the marginal velocity and score are known.
struct GaussianToGaussian {
    mean: [f64; 2],
    scale: f64,
}

impl GaussianToGaussian {
    fn variance(&self, scheduler: Scheduler, t: f64) -> f64 {
        let c = scheduler.at(t);
        c.sigma * c.sigma + c.alpha * c.alpha * self.scale * self.scale
    }

    /// E[σ̇ x₀ + α̇ x₁ | x_t = x] = α̇ μ + Cov(ẋ_t, x_t) / Var(x_t) · (x − α μ).
    fn velocity(&self, scheduler: Scheduler, x: [f64; 2], t: f64) -> [f64; 2] {
        let c = scheduler.at(t);
        let gain = (c.sigma * c.d_sigma + c.alpha * c.d_alpha * self.scale * self.scale)
            / self.variance(scheduler, t);
        [0, 1].map(|j| c.d_alpha * self.mean[j] + gain * (x[j] - c.alpha * self.mean[j]))
    }

    fn score(&self, scheduler: Scheduler, x: [f64; 2], t: f64) -> [f64; 2] {
        let c = scheduler.at(t);
        [0, 1].map(|j| -(x[j] - c.alpha * self.mean[j]) / self.variance(scheduler, t))
    }

    /// E[x₁ | x_t = x] = μ + Cov(x₁, x_t) / Var(x_t) · (x − α μ).
    fn data(&self, scheduler: Scheduler, x: [f64; 2], t: f64) -> [f64; 2] {
        let c = scheduler.at(t);
        let gain = c.alpha * self.scale * self.scale / self.variance(scheduler, t);
        [0, 1].map(|j| self.mean[j] + gain * (x[j] - c.alpha * self.mean[j]))
    }
}

#[test]
fn the_score_data_and_noise_follow_from_the_velocity_of_a_gaussian_flow() {
    let flow = GaussianToGaussian { mean: [1.5, -0.5], scale: 0.3 };
    for scheduler in Scheduler::ALL {
        for t in [0.05, 0.3, 0.5, 0.8, 0.95] {
            for x in [[0.2, -1.0], [2.0, 0.7], [-1.3, 0.4]] {
                let v = flow.velocity(scheduler, x, t);
                let apply = |to: Prediction| {
                    let c = scheduler.conversion(Prediction::Velocity, to, t).expect("regular inside (0, 1)");
                    [0, 1].map(|j| c.x * x[j] + c.given * v[j])
                };
                let close =
                    |a: [f64; 2], b: [f64; 2]| (a[0] - b[0]).abs() < 1e-9 && (a[1] - b[1]).abs() < 1e-9;
                let score = apply(Prediction::Score);
                assert!(close(score, flow.score(scheduler, x, t)), "{scheduler} t = {t}: score {score:?}");
                let data = apply(Prediction::Data);
                assert!(close(data, flow.data(scheduler, x, t)), "{scheduler} t = {t}: data {data:?}");
                // The noise is what the data leaves of x_t: x = α x̂₁ + σ x̂₀.
                let noise = apply(Prediction::Noise);
                let c = scheduler.at(t);
                let rebuilt = [0, 1].map(|j| c.alpha * data[j] + c.sigma * noise[j]);
                assert!(close(rebuilt, x), "{scheduler} t = {t}: x̂₀, x̂₁ rebuild {rebuilt:?}, not {x:?}");
            }
        }
    }
    // The line's score in the closed form: −(x − t·v)/(1 − t).
    let c = Scheduler::Linear.conversion(Prediction::Velocity, Prediction::Score, 0.25).expect("regular");
    assert!((c.x + 1.0 / 0.75).abs() < 1e-12 && (c.given - 0.25 / 0.75).abs() < 1e-12, "{c:?}");
}

#[test]
fn conversions_compose_and_invert_and_refuse_where_singular() {
    let all = [Prediction::Velocity, Prediction::Noise, Prediction::Data, Prediction::Score];
    for scheduler in Scheduler::ALL {
        for t in [0.2, 0.6] {
            for from in all {
                for to in all {
                    let there = scheduler.conversion(from, to, t).expect("regular");
                    let back = scheduler.conversion(to, from, t).expect("regular");
                    // back ∘ there = identity: x·(1 − 1) and given·1.
                    let x = back.x + back.given * there.x;
                    let given = back.given * there.given;
                    assert!(
                        x.abs() < 1e-9 && (given - 1.0).abs() < 1e-9,
                        "{scheduler} {from:?} → {to:?} at {t}"
                    );
                }
            }
        }
        // Singular where σ_t = 0 (the score) and where α_t = 0 (the noise says nothing of v):
        // the target path keeps σ₁ = σ_min and VP never reaches α = 0, so they are regular there.
        let at_end = scheduler.conversion(Prediction::Velocity, Prediction::Score, 1.0);
        let ends_sharp = !matches!(scheduler, Scheduler::Target { .. });
        assert_eq!(matches!(at_end, Err(PathError::Singular { .. })), ends_sharp, "{scheduler}: {at_end:?}");
        let noise_at_start = scheduler.conversion(Prediction::Noise, Prediction::Velocity, 0.0);
        let starts_at_source = !matches!(scheduler, Scheduler::Vp { .. });
        assert_eq!(
            matches!(noise_at_start, Err(PathError::Singular { .. })),
            starts_at_source,
            "{scheduler}: {noise_at_start:?}"
        );
    }
}

#[test]
fn schedulers_are_named_once() {
    for scheduler in Scheduler::ALL {
        assert_eq!(scheduler.to_string().parse::<Scheduler>(), Ok(scheduler));
    }
    let unknown = "spline".parse::<Scheduler>().expect_err("unknown").to_string();
    assert_eq!(
        unknown,
        "unknown probability path `spline` (valid: linear, cosine, vp, vp:BMIN,BMAX, polynomial:N, target:SMIN)"
    );
    assert_eq!("vp".parse::<Scheduler>(), Ok(Scheduler::Vp { beta_min: 0.1, beta_max: 20.0 }));
    assert_eq!("vp:0.5,10".parse::<Scheduler>(), Ok(Scheduler::Vp { beta_min: 0.5, beta_max: 10.0 }));
    assert_eq!("polynomial:3".parse::<Scheduler>(), Ok(Scheduler::Polynomial { exponent: 3.0 }));
    assert_eq!("target:0.0001".parse::<Scheduler>(), Ok(Scheduler::Target { sigma_min: 1e-4 }));
    for refused in [
        "vp:20,0.1",
        "vp:0,1",
        "vp:1",
        "polynomial:0",
        "polynomial:-1",
        "polynomial",
        "target:1",
        "target:-0.1",
    ] {
        assert!(refused.parse::<Scheduler>().is_err(), "{refused}");
    }
    assert_eq!(AffinePath::default(), AffinePath::LINE);
    assert_eq!(AffinePath::new(Scheduler::Cosine, 0.1).expect("σ").describe(), "cosine, σ = 0.1");
    assert_eq!(AffinePath::LINE.describe(), "linear");
}

/// Every affine path between N(0, 1) and N(μ, v), coordinate by coordinate.
fn every_path() -> Vec<AffinePath> {
    let mut paths: Vec<AffinePath> =
        Scheduler::ALL.iter().map(|&s| AffinePath::new(s, 0.0).expect("σ = 0")).collect();
    paths.push(AffinePath::new(Scheduler::Linear, 0.1).expect("σ"));
    paths.push(AffinePath::new(Scheduler::Cosine, 0.3).expect("σ"));
    paths.push(AffinePath::bridge(0.5).expect("σ"));
    paths
}

/// x_t's mean and variance and the regression of the target on x_t, from `n` pairs drawn at
/// time `t`, against [`AffinePath::gaussian_marginal`]'s closed form (derived in its doc
/// comment): a path whose interpolant or target were off by a term would miss one of the four.
#[test]
fn every_path_from_a_gaussian_to_a_gaussian_has_the_closed_form_marginal_and_velocity() {
    use flow_data::samplers::{gaussian, seeded_rng};

    let (n, means, variances) = (200_000, [1.5f64, -0.5], [0.25f64, 2.0]);
    let mut rng = seeded_rng(17);
    let mut x1 = gaussian(n, 2, 1.0, &mut rng);
    for (j, mut column) in x1.columns_mut().into_iter().enumerate() {
        column.mapv_inplace(|z| (f64::from(z) * variances[j].sqrt() + means[j]) as f32);
    }
    let x0 = gaussian(n, 2, 1.0, &mut rng);
    let noise = gaussian(n, 2, 1.0, &mut rng);
    for path in every_path() {
        // VP's σ̇ is infinite at t = 1 (σ_t ~ √(1 − t)): its target is not defined there.
        let ends = if matches!(path.scheduler, Scheduler::Vp { .. }) { 0.99 } else { 1.0 };
        for t in [0.0f32, 0.25, 0.5, 0.9, ends] {
            let sample = path.sample(&x0, &x1, &vec![t; n], Some(&noise)).expect("a batch");
            for j in 0..2 {
                let expected = path.gaussian_marginal(f64::from(t), means[j], variances[j]);
                let (x, u) = (sample.x_t.column(j), sample.target.column(j));
                let mean =
                    |v: &ndarray::ArrayView1<f32>| v.iter().map(|&a| f64::from(a)).sum::<f64>() / n as f64;
                let (mx, mu) = (mean(&x), mean(&u));
                let covariance =
                    |a: &ndarray::ArrayView1<f32>, ma: f64, b: &ndarray::ArrayView1<f32>, mb: f64| {
                        a.iter().zip(b).map(|(&a, &b)| (f64::from(a) - ma) * (f64::from(b) - mb)).sum::<f64>()
                            / n as f64
                    };
                let (var_x, cov_ux) = (covariance(&x, mx, &x, mx), covariance(&u, mu, &x, mx));
                let what = format!("{} at t = {t}, coordinate {j}", path.describe());
                // Sampling errors: the mean's √(V/n), the variance's √(2/n)·V (both < 0.01 here).
                let tolerance = 6.0 * (expected.variance / n as f64).sqrt();
                assert!((mx - expected.mean).abs() < tolerance, "{what}: mean {mx} vs {}", expected.mean);
                assert!(
                    (var_x - expected.variance).abs() < 0.02 * expected.variance,
                    "{what}: variance {var_x} vs {}",
                    expected.variance
                );
                if expected.variance > 1e-3 {
                    // The bridge's target at t = 0 and 1 has the 10⁻⁸ of torchcfm in its rate:
                    // E[u | x] and the regression agree up to that.
                    let slope = cov_ux / var_x;
                    let intercept = mu - slope * mx;
                    let scale = 1.0 + expected.slope.abs();
                    assert!(
                        (slope - expected.slope).abs() < 0.03 * scale,
                        "{what}: slope {slope} vs {}",
                        expected.slope
                    );
                    let at_mean = intercept + slope * expected.mean;
                    let expected_at_mean = expected.velocity(expected.mean);
                    assert!(
                        (at_mean - expected_at_mean).abs() < 0.03 * (1.0 + expected_at_mean.abs()),
                        "{what}: v(mean) {at_mean} vs {expected_at_mean}"
                    );
                }
            }
        }
    }
}

/// The score from the velocity, on every path (noisy ones included), against the closed form
/// of N(0, 1) → N(μ, v): x_t is Gaussian, so ∇log p_t(x) = −(x − mean_t)/variance_t.
#[test]
fn every_paths_score_follows_from_its_gaussian_velocity() {
    for path in every_path() {
        for t in [0.0, 0.1, 0.5, 0.9, 0.99] {
            for (mean, variance) in [(1.5, 0.25), (-0.5, 2.0)] {
                let marginal = path.gaussian_marginal(t, mean, variance);
                let Ok(score) = path.conversion(Prediction::Velocity, Prediction::Score, t) else {
                    // Only where the velocity says nothing of x₀: polynomial:2's α̇₀ = α₀ = 0.
                    assert!(
                        t == 0.0 && matches!(path.scheduler, Scheduler::Polynomial { .. }),
                        "{} at {t}",
                        path.describe()
                    );
                    continue;
                };
                for x in [-1.0, 0.3, 2.5] {
                    let found = score.x * x + score.given * marginal.velocity(x);
                    let expected = -(x - marginal.mean) / marginal.variance;
                    assert!(
                        (found - expected).abs() < 1e-6 * (1.0 + expected.abs()),
                        "{} at t = {t}, x = {x}: {found} vs {expected}",
                        path.describe()
                    );
                }
            }
        }
    }
    // With noise left at t = 1 (I-CFM's σ), the score is regular there; the bridge's is not.
    let blurred = AffinePath::new(Scheduler::Linear, 0.1).expect("σ");
    assert!(blurred.conversion(Prediction::Velocity, Prediction::Score, 1.0).is_ok());
    let bridge = AffinePath::bridge(1.0).expect("σ");
    assert!(matches!(
        bridge.conversion(Prediction::Velocity, Prediction::Score, 1.0),
        Err(PathError::Singular { path: "bridge", .. })
    ));
}

#[test]
fn the_bridge_target_is_finite_at_both_ends_and_its_definition_inside() {
    // u = x₁ − x₀ + (1 − 2t)/(2t(1 − t))·(x_t − μ_t): at the ends the noise is 0 and torchcfm's
    // 10⁻⁸ keeps the rate finite; inside, the rate is the definition's.
    let bridge = AffinePath::bridge(0.5).expect("σ > 0");
    for t in [0.0, 1.0] {
        assert_eq!(bridge.noise_at(t), (0.0, 0.0), "t = {t}");
    }
    for t in [1e-12, 1e-9, 1.0 - 1e-9, 1.0 - 1e-12] {
        let (scale, rate) = bridge.noise_at(t);
        assert!(scale.is_finite() && rate.is_finite(), "t = {t}: ({scale}, {rate})");
    }
    for t in [1e-4, 0.1, 0.5, 0.8, 1.0 - 1e-4] {
        let (scale, rate) = bridge.noise_at(t);
        let h = 1e-7 * t.min(1.0 - t);
        let numeric = (bridge.noise_at(t + h).0 - bridge.noise_at(t - h).0) / (2.0 * h);
        assert!((rate - numeric).abs() < 1e-4 * (1.0 + numeric.abs()), "t = {t}: {rate} vs {numeric}");
        let definition = (1.0 - 2.0 * t) / (2.0 * t * (1.0 - t)) * scale;
        // Up to torchcfm's 10⁻⁸ beside 2t(1 − t) (5·10⁻⁵ of it at t = 10⁻⁴).
        assert!(
            (rate - definition).abs() < 1e-4 * (1.0 + definition.abs()),
            "t = {t}: {rate} vs {definition}"
        );
    }
}

/// flow_matching's `ScheduleTransformedModel`: the closed-form velocity of one path, rescheduled
/// onto another, is the other's closed-form velocity; the trained times run from 0 to 1.
#[test]
fn a_changed_schedule_turns_one_paths_gaussian_velocity_into_the_others() {
    use flow_path::ScheduleChange;

    let schedulers =
        [Scheduler::Linear, Scheduler::Cosine, Scheduler::Polynomial { exponent: 2.0 }, Scheduler::VP];
    let (mean, variance) = (1.5, 0.25);
    for trained in schedulers {
        for sampled in schedulers {
            let change = ScheduleChange::new(trained, sampled).expect("affine schedulers");
            let (old, new) =
                (AffinePath::new(trained, 0.0).expect("σ"), AffinePath::new(sampled, 0.0).expect("σ"));
            let ratio = |scheduler: Scheduler, t: f64| scheduler.at(t).alpha / scheduler.at(t).sigma;
            for r in [0.05, 0.3, 0.5, 0.7, 0.95] {
                if ratio(sampled, r) < ratio(trained, 0.0) {
                    // Earlier than vp's own start (its α₀ > 0): clamped to its t = 0.
                    continue;
                }
                let at = change.at(r);
                let truth = new.gaussian_marginal(r, mean, variance);
                let inner = old.gaussian_marginal(at.t, mean, variance);
                // The marginals agree after the rescaling: x̄_r = s_r x_t.
                assert!(
                    (at.scale * inner.mean - truth.mean).abs() < 1e-6,
                    "{trained} → {sampled} at {r}: mean"
                );
                assert!(
                    (at.scale.powi(2) * inner.variance - truth.variance).abs() < 1e-6,
                    "{trained} → {sampled}: var"
                );
                for x in [-2.0, 0.0, 0.7, 3.0] {
                    let ours = at.x_rate * x + at.velocity_rate * inner.velocity(x / at.scale);
                    let expected = truth.velocity(x);
                    assert!(
                        (ours - expected).abs() < 1e-5 * (1.0 + expected.abs()),
                        "{trained} → {sampled} at r = {r}, x = {x}: {ours} vs {expected}"
                    );
                }
            }
            if trained == sampled {
                let at = change.at(0.4);
                assert!((at.t - 0.4).abs() < 1e-12 && (at.scale - 1.0).abs() < 1e-12, "{trained}: {at:?}");
            }
            // From the source (t = 0; vp's own α₀ > 0 starts the others a little later) to the data.
            let start = if sampled == Scheduler::VP { 0.1 } else { 1e-9 };
            assert!(change.at(0.0).t < start && change.at(1.0).t > 0.999, "{trained} → {sampled}");
        }
    }
    let blurred = Scheduler::Target { sigma_min: 0.01 };
    let message = ScheduleChange::new(Scheduler::Linear, blurred).expect_err("blurred end").to_string();
    assert!(message.contains("target:0.01") && message.contains("σ_min"), "{message}");
    assert!(ScheduleChange::new(blurred, Scheduler::Cosine).is_err());
}

/// The score objective's batch: x_t as the velocity's, and a target and row weight that make the
/// weighted error [SF]2M's ‖λ_t·s + ε‖² (so λ_t·target = −ε, weight λ_t², λ_t = 2s_t/σ²);
/// refused without noise.
#[test]
fn the_score_objective_targets_minus_the_noise_over_lambda() {
    use flow_path::Objective;

    let (x0, x1, noise) = (rows(6, 2, 0.3), rows(6, 2, 1.7), rows(6, 2, -0.9));
    let times = [0.0f32, 0.1, 0.35, 0.5, 0.8, 0.97];
    for path in [AffinePath::bridge(0.7).expect("σ"), AffinePath::new(Scheduler::Cosine, 0.2).expect("σ")] {
        let velocity = path.sample(&x0, &x1, &times, Some(&noise)).expect("batch");
        let score = path.sample_for(Objective::Score, &x0, &x1, &times, Some(&noise)).expect("batch");
        assert_eq!(score.x_t, velocity.x_t);
        let weights = score.weights.expect("weighted");
        for (i, &t) in times.iter().enumerate() {
            let lambda = 2.0 * path.noise_at(f64::from(t)).0 / (path.sigma * path.sigma + 1e-8);
            assert!((f64::from(weights[i]) - lambda * lambda).abs() < 1e-5 * (1.0 + lambda * lambda));
            for j in 0..2 {
                let residual = lambda * f64::from(score.target[[i, j]]) + f64::from(noise[[i, j]]);
                // Where λ = 0 (the bridge at t = 0) the row is left out: target and weight 0.
                let expected = if lambda > 0.0 { 0.0 } else { f64::from(noise[[i, j]]) };
                assert!((residual - expected).abs() < 1e-5, "{} at t = {t}: {residual}", path.describe());
            }
        }
        assert!(
            path.sample_for(Objective::Velocity, &x0, &x1, &times, Some(&noise))
                .expect("batch")
                .weights
                .is_none()
        );
    }
    let line = AffinePath::LINE.sample_for(Objective::Score, &x0, &x1, &times, None);
    assert!(matches!(line, Err(PathError::ScoreWithoutNoise)));
    assert_eq!("score".parse::<Objective>(), Ok(Objective::Score));
}
