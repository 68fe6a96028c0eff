//! flow-ode's one test binary: the solvers against an exact solution.

use flow_ode::{OdeError, Record, Solver, SolverKind, TimeGrid, integrate, warp_time};
use ndarray::{Array2, array};

/// dx/dt = cos(t)·A·x with A = [[a, w], [−w, a]] has the exact solution
/// x(t) = exp(A·sin t)·x(0): a decaying rotation whose speed depends on t, so a
/// solver that evaluates stages at the wrong times loses its order.
const DECAY: f64 = -0.5;
const SPIN: f64 = 3.0;

fn field(x: &Array2<f64>, t: f64) -> Array2<f64> {
    let a = array![[DECAY, -SPIN], [SPIN, DECAY]];
    x.dot(&a) * t.cos()
}

fn exact(x0: &Array2<f64>, t: f64) -> Array2<f64> {
    let s = t.sin();
    let (sin, cos) = (SPIN * s).sin_cos();
    let rotation = array![[cos, -sin], [sin, cos]] * (DECAY * s).exp();
    x0.dot(&rotation)
}

fn start() -> Array2<f64> {
    array![[1.0, 0.0], [0.3, -0.7], [-2.0, 1.5]]
}

fn max_error(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    (a - b).iter().fold(0.0, |m, x| m.max(x.abs()))
}

fn error_with(solver: Solver, steps: usize) -> (f64, usize) {
    let grid = TimeGrid::uniform(steps).expect("grid");
    let solution = integrate(&field, start(), &grid, solver, Record::Nothing).expect("integrates");
    (max_error(&solution.state, &exact(&start(), 1.0)), solution.nfe)
}

/// Least-squares slope of log(error) against log(dt).
fn measured_order(solver: Solver, steps: &[usize]) -> f64 {
    let points: Vec<(f64, f64)> =
        steps.iter().map(|&n| ((1.0 / n as f64).ln(), error_with(solver, n).0.ln())).collect();
    let count = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / count;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / count;
    let covariance: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let variance: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    covariance / variance
}

#[test]
fn fixed_step_solvers_converge_at_their_order() {
    let cases = [(Solver::Euler, 1.0), (Solver::Midpoint, 2.0), (Solver::Heun, 2.0), (Solver::Rk4, 4.0)];
    for (solver, expected) in cases {
        let order = measured_order(solver, &[16, 32, 64, 128]);
        assert!((order - expected).abs() < 0.3, "{} measured order {order}", solver.name());
    }
}

#[test]
fn nfe_counts_every_velocity_evaluation() {
    use std::cell::Cell;
    for solver in [Solver::Euler, Solver::Midpoint, Solver::Heun, Solver::Rk4] {
        let calls = Cell::new(0);
        let counting = |x: &Array2<f64>, t: f64| {
            calls.set(calls.get() + 1);
            field(x, t)
        };
        let grid = TimeGrid::uniform(7).expect("grid");
        let solution = integrate(&counting, start(), &grid, solver, Record::Nothing).expect("integrates");
        assert_eq!(solution.nfe, calls.get());
        assert_eq!(solution.nfe, 7 * solver.stages());
    }
    let calls = Cell::new(0);
    let counting = |x: &Array2<f64>, t: f64| {
        calls.set(calls.get() + 1);
        field(x, t)
    };
    let dopri = Solver::Dopri5 { rtol: 1e-6, atol: 1e-8 };
    let solution =
        integrate(&counting, start(), &TimeGrid::uniform(1).expect("grid"), dopri, Record::Nothing)
            .expect("integrates");
    assert_eq!(solution.nfe, calls.get());
}

#[test]
fn dopri5_meets_its_tolerance_with_fewer_evaluations_than_rk4() {
    for rtol in [1e-4, 1e-6, 1e-8] {
        let dopri = Solver::Dopri5 { rtol, atol: rtol * 1e-2 };
        let (error, nfe) = error_with(dopri, 1);
        // Local control keeps the global error within a small multiple of rtol·|x|.
        assert!(error < 10.0 * rtol, "rtol {rtol}: error {error}");
        let rk4_nfe = (1..400)
            .map(|n| error_with(Solver::Rk4, n))
            .find(|(e, _)| *e <= error)
            .map(|(_, nfe)| nfe)
            .expect("rk4 reaches the error eventually");
        assert!(nfe < rk4_nfe, "rtol {rtol}: dopri5 {nfe} evaluations, rk4 {rk4_nfe}");
    }
}

#[test]
fn backward_integration_inverts_forward_and_improves_with_smaller_steps() {
    let mut previous = f64::INFINITY;
    for steps in [4, 8, 16, 32] {
        let grid = TimeGrid::uniform(steps).expect("grid");
        let forward = integrate(&field, start(), &grid, Solver::Rk4, Record::Nothing).expect("forward");
        let back =
            integrate(&field, forward.state, &grid.reversed(), Solver::Rk4, Record::Nothing).expect("back");
        let error = max_error(&back.state, &start());
        assert!(error < previous / 8.0, "{steps} steps: round-trip error {error}, before {previous}");
        previous = error;
    }
    assert!(previous < 1e-5);
    let dopri = Solver::Dopri5 { rtol: 1e-9, atol: 1e-11 };
    let grid = TimeGrid::uniform(1).expect("grid");
    let forward = integrate(&field, start(), &grid, dopri, Record::Nothing).expect("forward");
    let back = integrate(&field, forward.state, &grid.reversed(), dopri, Record::Nothing).expect("back");
    assert!(max_error(&back.state, &start()) < 1e-7);
}

#[test]
fn trajectories_record_the_start_every_kth_step_and_the_end() {
    let grid = TimeGrid::uniform(10).expect("grid");
    let every = |k| integrate(&field, start(), &grid, Solver::Euler, Record::Every(k)).expect("integrates");
    let times = |k| every(k).trajectory.iter().map(|(t, _)| *t).collect::<Vec<_>>();
    assert_eq!(times(1).len(), 11);
    let by_four = times(4);
    assert_eq!(by_four.len(), 4);
    for (got, want) in by_four.iter().zip([0.0, 0.4, 0.8, 1.0]) {
        assert!((got - want).abs() < 1e-12, "{by_four:?}");
    }
    let solution = every(1);
    assert_eq!(solution.trajectory[0].1, start());
    assert_eq!(solution.trajectory[10].1, solution.state);
    assert!(
        integrate(&field, start(), &grid, Solver::Euler, Record::Nothing)
            .expect("integrates")
            .trajectory
            .is_empty()
    );
}

#[test]
fn warp_matches_the_formula_and_maps_the_unit_interval_onto_itself() {
    // warp(t, s) = 4(1 − s)t³ + 6(s − 1)t² + (3 − 2s)t at hand-computed points.
    assert!((warp_time(0.25, 0.5) - (2.0 * 0.015625 - 3.0 * 0.0625 + 2.0 * 0.25)).abs() < 1e-15);
    assert!((warp_time(0.25, 0.5) - 0.34375).abs() < 1e-15);
    assert!((warp_time(0.75, 1.5) - (-2.0 * 0.421875 + 3.0 * 0.5625)).abs() < 1e-15);
    for s in [0.0, 0.25, 0.5, 1.0, 1.25, 1.5] {
        assert!(warp_time(0.0, s).abs() < 1e-15 && (warp_time(1.0, s) - 1.0).abs() < 1e-15);
        assert!((warp_time(0.5, s) - 0.5).abs() < 1e-15);
        let mut last = 0.0;
        for i in 1..=1000 {
            let w = warp_time(i as f64 / 1000.0, s);
            assert!(w >= last - 1e-12, "s = {s}: not monotone at {i}");
            last = w;
        }
        // Slope s at the midpoint.
        let slope = (warp_time(0.5 + 1e-6, s) - warp_time(0.5 - 1e-6, s)) / 2e-6;
        assert!((slope - s).abs() < 1e-6);
    }
    assert_eq!(TimeGrid::warped(4, 1.6), Err(OdeError::WarpOutOfRange(1.6)));
    assert_eq!(TimeGrid::uniform(0), Err(OdeError::NoSteps));
    let warped = TimeGrid::warped(4, 0.5).expect("grid");
    assert_eq!(warped.times().len(), 5);
    assert!((warped.times()[1] - 0.34375).abs() < 1e-15);
}

#[test]
fn solver_names_parse_and_bad_ones_are_named() {
    for name in SolverKind::ALL.map(SolverKind::name) {
        assert_eq!(Solver::from_name(name, 1e-5, 1e-5).expect("valid").name(), name);
    }
    // Display prints what FromStr reads, for every kind.
    for kind in SolverKind::ALL {
        assert_eq!(kind.to_string().parse::<SolverKind>(), Ok(kind));
    }
    assert_eq!(SolverKind::Rk4.to_string(), "rk4");
    assert_eq!(
        Solver::from_name("rk5", 1e-5, 1e-5).unwrap_err().to_string(),
        "unknown solver `rk5` (valid: euler, midpoint, heun, rk4, dopri5, euler-maruyama, overshoot)"
    );
    // Noise belongs to the stochastic solvers only, and is finite and at least 0.
    let rk4 = Solver::from_name("rk4", 1e-5, 1e-5).expect("valid");
    assert_eq!(rk4.with_noise(1.0), Err(OdeError::NoiseForDeterministic { solver: "rk4" }));
    let sde = Solver::from_name("euler-maruyama", 1e-5, 1e-5).expect("valid");
    assert_eq!(sde.noise(), SolverKind::EulerMaruyama.default_noise());
    assert_eq!(sde.with_noise(0.5), Ok(Solver::EulerMaruyama { noise: 0.5 }));
    for bad in [-0.1, f64::NAN, f64::INFINITY] {
        assert!(matches!(sde.with_noise(bad), Err(OdeError::Noise(_))), "{bad}");
    }
    assert!(Solver::from_name("dopri5", 0.0, 1e-5).is_err());
    assert!(Solver::from_name("dopri5", 1e-5, f64::NAN).is_err());
    // Tolerances no floating-point state can meet are refused up front.
    assert!(Solver::from_name("dopri5", 1e-300, 1e-9).is_err());
    assert!(Solver::from_name("dopri5", 1e-6, 1e-13).is_err());
    assert!(Solver::from_name("dopri5", Solver::MIN_TOLERANCE, Solver::MIN_TOLERANCE).is_ok());
}

#[test]
fn float32_states_integrate_too() {
    let x0 = start().mapv(|x| x as f32);
    let f = |x: &Array2<f32>, t: f64| field(&x.mapv(f64::from), t).mapv(|v| v as f32);
    let solution = integrate(&f, x0, &TimeGrid::uniform(32).expect("grid"), Solver::Rk4, Record::Nothing)
        .expect("integrates");
    assert!(max_error(&solution.state.mapv(f64::from), &exact(&start(), 1.0)) < 1e-5);
}

#[test]
fn dopri5_takes_a_pinned_number_of_steps_and_gives_up_on_a_stiff_field() {
    // The controller's choices, pinned: a changed first step, growth rule or acceptance count
    // changes these numbers even when the end point stays within tolerance.
    let dopri = Solver::Dopri5 { rtol: 1e-6, atol: 1e-8 };
    let grid = TimeGrid::uniform(1).expect("grid");
    let solution = integrate(&field, start(), &grid, dopri, Record::Every(1)).expect("integrates");
    assert_eq!((solution.steps, solution.nfe), (PINNED_STEPS, PINNED_NFE));
    let times: Vec<f64> = solution.trajectory.iter().map(|(t, _)| *t).collect();
    assert_eq!(times.len(), solution.steps + 1);
    assert!(times.windows(2).all(|w| w[1] > w[0]) && times[times.len() - 1] == 1.0, "{times:?}");
    // The same start integrated over [1, 0] (another path): its own pinned count.
    let back =
        integrate(&field, start(), &grid.clone().reversed(), dopri, Record::Nothing).expect("integrates");
    assert_eq!(back.steps, PINNED_BACK_STEPS);

    // dx/dt = −10⁷x: an explicit method must take steps of ≈3·10⁻⁷, so it gives up after its limit.
    let stiff = |x: &Array2<f64>, _t: f64| x * -1e7;
    let error =
        integrate(&stiff, array![[1.0]], &grid, Solver::Dopri5 { rtol: 1e-6, atol: 1e-9 }, Record::Nothing)
            .expect_err("too stiff");
    assert!(matches!(error, OdeError::TooManySteps { steps: 100_001, .. }), "{error:?}");
}

const PINNED_STEPS: usize = 13;
const PINNED_NFE: usize = 91;
const PINNED_BACK_STEPS: usize = 12;

/// The stochastic samplers on N(0, 1) → N(μ, v) per coordinate, whose marginal velocity
/// (`AffinePath::gaussian_marginal`) and score are exact: any error is the sampler's.
mod stochastic {
    use flow_data::samplers::{gaussian, seeded_rng};
    use flow_ode::{Diffusion, Noise, Record, Solver, TimeGrid, integrate, integrate_with_noise};
    use flow_path::{AffinePath, Scheduler};
    use ndarray::Array2;

    const MEANS: [f64; 2] = [1.5, -0.5];
    const VARIANCES: [f64; 2] = [0.25, 2.0];

    /// The exact marginal velocity of `path` between the Gaussians, coordinate by coordinate.
    fn exact_velocity(path: AffinePath) -> impl Fn(&Array2<f64>, f64) -> Array2<f64> {
        move |x: &Array2<f64>, t: f64| {
            let mut v = x.clone();
            for (j, mut column) in v.columns_mut().into_iter().enumerate() {
                let marginal = path.gaussian_marginal(t, MEANS[j], VARIANCES[j]);
                column.mapv_inplace(|x| marginal.velocity(x));
            }
            v
        }
    }

    fn normal_rows(n: usize, dim: usize, seed: u64) -> Array2<f64> {
        gaussian(n, dim, 1.0, &mut seeded_rng(seed)).mapv(f64::from)
    }

    /// Samples of `solver` from `n` source points in `steps` steps, noise from `seed`.
    fn sample(path: AffinePath, solver: Solver, n: usize, steps: usize, seed: u64) -> Array2<f64> {
        let mut rng = seeded_rng(seed);
        let mut draw = |x: &Array2<f64>| gaussian(x.nrows(), x.ncols(), 1.0, &mut rng).mapv(f64::from);
        let grid = TimeGrid::uniform(steps).expect("grid");
        let noise = Noise { diffusion: Diffusion::FromPath(path), draw: &mut draw };
        let x0 = normal_rows(n, 2, seed + 1);
        integrate_with_noise(&exact_velocity(path), x0, &grid, solver, Record::Nothing, noise)
            .expect("integrates")
            .state
    }

    fn moments(x: &Array2<f64>, j: usize) -> (f64, f64) {
        let column = x.column(j);
        let mean = column.sum() / column.len() as f64;
        (mean, column.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / column.len() as f64)
    }

    #[test]
    fn the_samplers_at_noise_0_are_euler_bit_for_bit_and_draw_nothing() {
        let path = AffinePath::new(Scheduler::Cosine, 0.0).expect("path");
        let x0 = gaussian(500, 2, 1.0, &mut seeded_rng(3));
        let field = |x: &Array2<f32>, t: f64| x.mapv(|v| (v * t as f32).sin() + 0.3);
        let grid = TimeGrid::uniform(7).expect("grid");
        let euler = integrate(&field, x0.clone(), &grid, Solver::Euler, Record::Every(2)).expect("euler");
        for solver in [Solver::EulerMaruyama { noise: 0.0 }, Solver::Overshoot { noise: 0.0 }] {
            let mut draws = 0;
            let mut draw = |x: &Array2<f32>| {
                draws += 1;
                x.clone()
            };
            let noise = Noise { diffusion: Diffusion::FromPath(path), draw: &mut draw };
            let solved = integrate_with_noise(&field, x0.clone(), &grid, solver, Record::Every(2), noise)
                .expect("integrates");
            assert_eq!(solved.state, euler.state, "{solver:?}");
            assert_eq!(solved.trajectory, euler.trajectory, "{solver:?}");
            assert_eq!((solved.nfe, draws), (7, 0), "{solver:?}");
        }
        // And a stochastic solver is refused where no noise can come from, and backwards.
        assert!(
            integrate(&field, x0.clone(), &grid, Solver::EulerMaruyama { noise: 1.0 }, Record::Nothing)
                .is_err()
        );
        let mut draw = |x: &Array2<f32>| x.clone();
        let backwards = integrate_with_noise(
            &field,
            x0,
            &grid.reversed(),
            Solver::Overshoot { noise: 1.0 },
            Record::Nothing,
            Noise { diffusion: Diffusion::FromPath(path), draw: &mut draw },
        );
        assert_eq!(
            backwards.unwrap_err().to_string(),
            "overshoot samples from the source (t = 0) to the data (t = 1) only, not backwards"
        );
    }

    /// Every path's SDE keeps the Gaussian marginals: the samples' mean and variance are the
    /// target's at several noise scales, within sampling error (and Euler's O(dt)); dropping
    /// the score's drift would widen the variance by ∫g² ≈ noise², a sampler without the
    /// drift's x term would shift the mean.
    #[test]
    fn stochastic_samples_of_a_gaussian_flow_have_the_targets_mean_and_variance() {
        let paths = [
            AffinePath::LINE,
            AffinePath::new(Scheduler::Cosine, 0.0).expect("path"),
            AffinePath::new(Scheduler::VP, 0.0).expect("path"),
            AffinePath::new(Scheduler::Linear, 0.1).expect("path"),
            AffinePath::bridge(0.5).expect("path"),
        ];
        let n = 20_000;
        for path in paths {
            for solver in [
                Solver::EulerMaruyama { noise: 0.5 },
                Solver::EulerMaruyama { noise: 1.5 },
                Solver::Overshoot { noise: 1.0 },
                Solver::Overshoot { noise: 3.0 },
            ] {
                let samples = sample(path, solver, n, 200, 11);
                for j in 0..2 {
                    let (mean, variance) = moments(&samples, j);
                    let what = format!("{} with {solver:?}, coordinate {j}", path.describe());
                    // A noisy path ends blurred by σ: its data end is N(μ, v + σ²).
                    let blur = path.marginal_coefficients(1.0).sigma.powi(2);
                    let expected = VARIANCES[j] + blur;
                    let tolerance = 5.0 * (expected / n as f64).sqrt() + 0.01;
                    assert!((mean - MEANS[j]).abs() < tolerance, "{what}: mean {mean}");
                    assert!(
                        (variance - expected).abs() < 0.05 * expected,
                        "{what}: variance {variance} vs {expected}"
                    );
                }
            }
        }
    }

    /// Weak order 1: on the line from N(0, 1) to N(μ, v) with noise 1, the SDE is an
    /// Ornstein–Uhlenbeck process (linear drift, additive noise) whose law at t = 1 is the
    /// target; the variance's error halves as the steps double (least-squares slope of
    /// log error against log dt: 1 ± 0.25).
    #[test]
    fn euler_maruyama_converges_weakly_at_order_one() {
        let n = 400_000;
        let points: Vec<(f64, f64)> = [8, 16, 32, 64]
            .iter()
            .map(|&steps| {
                let samples = sample(AffinePath::LINE, Solver::EulerMaruyama { noise: 1.0 }, n, steps, 5);
                let (_, variance) = moments(&samples, 0);
                ((1.0 / steps as f64).ln(), (variance - VARIANCES[0]).abs().ln())
            })
            .collect();
        let count = points.len() as f64;
        let (mean_x, mean_y) = (
            points.iter().map(|p| p.0).sum::<f64>() / count,
            points.iter().map(|p| p.1).sum::<f64>() / count,
        );
        let slope = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum::<f64>()
            / points.iter().map(|p| (p.0 - mean_x).powi(2)).sum::<f64>();
        assert!((slope - 1.0).abs() < 0.25, "weak order {slope}: {points:?}");
    }
}
