//! flow-metrics' one test binary.

use flow_data::Dataset;
use flow_data::samplers::{self, seeded_rng};
use flow_metrics::{
    MetricsError, SparseSettings, assign_min_cost, assign_points_from, assign_points_with, energy_distance,
    mmd_rbf, straightness, wasserstein2,
};
use ndarray::{Array2, array};

fn points(rows: &serde_json::Value) -> Array2<f32> {
    let rows = rows.as_array().expect("rows");
    let dim = rows[0].as_array().expect("row").len();
    let flat: Vec<f32> = rows
        .iter()
        .flat_map(|r| r.as_array().expect("row").iter().map(|v| v.as_f64().expect("number") as f32))
        .collect();
    Array2::from_shape_vec((rows.len(), dim), flat).expect("rectangular")
}

#[test]
fn wasserstein2_matches_pots_emd2() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/w2_pot.json");
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    for case in fixture["cases"].as_array().expect("cases") {
        let (a, b) = (points(&case["a"]), points(&case["b"]));
        let expected = case["emd2"].as_f64().expect("emd2").sqrt();
        let ours = wasserstein2(&a, &b).expect("same shape");
        assert!(
            (ours - expected).abs() < 1e-9 * expected.max(1.0),
            "n = {}: ours {ours}, POT {expected}",
            a.nrows()
        );
    }
}

fn permutations(items: &mut Vec<usize>, k: usize, visit: &mut impl FnMut(&[usize])) {
    if k == items.len() {
        visit(items);
        return;
    }
    for i in k..items.len() {
        items.swap(k, i);
        permutations(items, k + 1, visit);
        items.swap(k, i);
    }
}

#[test]
fn assignment_is_optimal_against_brute_force() {
    let mut rng = seeded_rng(11);
    for n in 1..=7 {
        let cost: Vec<f64> = samplers::uniform_square(n * n, 1.0, &mut rng)
            .column(0)
            .iter()
            .map(|&c| f64::from(c.round()))
            .collect();
        let matching = assign_min_cost(&cost, n);
        let total = |m: &[usize]| m.iter().enumerate().map(|(i, &j)| cost[i * n + j]).sum::<f64>();
        let mut best = f64::INFINITY;
        permutations(&mut (0..n).collect(), 0, &mut |p| best = best.min(total(p)));
        let mut seen = matching.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..n).collect::<Vec<_>>(), "not a permutation");
        assert_eq!(total(&matching), best, "n = {n}");
    }
}

#[test]
fn many_w2_in_parallel_equal_one_at_a_time() {
    let sets: Vec<Array2<f32>> = (0..5).map(|s| samplers::spiral(60, 1.0, &mut seeded_rng(s))).collect();
    let pairs: Vec<(&Array2<f32>, &Array2<f32>)> = sets.iter().zip(sets.iter().skip(1)).collect();
    let parallel = flow_metrics::wasserstein2_many(&pairs).expect("same shapes");
    let serial: Vec<f64> = pairs.iter().map(|(a, b)| wasserstein2(a, b).expect("same shape")).collect();
    assert_eq!(parallel, serial);
    assert!(flow_metrics::wasserstein2_many(&[]).expect("nothing to do").is_empty());
}

#[test]
fn any_starting_duals_give_the_optimal_matching() {
    let flat = |a: &Array2<f32>| a.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>();
    let n = 900;
    let a = Dataset::EightGaussians.sample(n, 2, &mut seeded_rng(11)).expect("2-D");
    let b = Dataset::TorchdynMoons.sample(n, 2, &mut seeded_rng(12)).expect("2-D");
    let dense = matched_cost(&a, &b, &assign_min_cost(&flow_metrics::couplings::squared_costs(&a, &b), n));
    // The duals of a nearby sample's solution: what a series of step counts hands on.
    let nearby = &a + &Array2::from_shape_fn((n, 2), |(i, d)| 0.01 * ((i * 2 + d) % 7) as f32 - 0.03);
    let tiny = SparseSettings { dense_up_to: 30, candidates: 2, nearest: 1 };
    for settings in [SparseSettings::default(), tiny] {
        let (_, earlier) = assign_points_from(&flat(&nearby), &flat(&b), 2, None, settings);
        assert_eq!(earlier.len(), n, "one dual per column");
        let starts: [(&str, Vec<f64>); 6] = [
            ("a nearby sample's", earlier.clone()),
            ("zero", vec![0.0; n]),
            ("wild", (0..n).map(|j| ((j * 7919) % 1000) as f64 - 500.0).collect()),
            ("far-offset", earlier.iter().map(|v| v + 1e15).collect()),
            ("not finite", vec![f64::NAN; n]),
            ("too short", earlier[..n - 1].to_vec()),
        ];
        for (name, start) in &starts {
            let (matching, duals) = assign_points_from(&flat(&a), &flat(&b), 2, Some(start), settings);
            let cost = matched_cost(&a, &b, &matching);
            assert!(
                (cost - dense).abs() <= 1e-9 * dense,
                "{name} duals, {settings:?}: {cost} against {dense}"
            );
            assert_eq!(duals.len(), n);
        }
    }
}

#[test]
fn w2_series_equal_their_pairs_one_at_a_time() {
    let target = samplers::spiral(500, 1.0, &mut seeded_rng(20));
    let first = samplers::spiral(500, 1.0, &mut seeded_rng(21));
    // A sample shrinking onto the target's distribution, as a solver's step counts approach it.
    let drifting: Vec<Array2<f32>> = [2.0f32, 1.6, 1.3, 1.0].iter().map(|&k| &first * k).collect();
    let samples: Vec<&Array2<f32>> = drifting.iter().collect();
    let series = flow_metrics::wasserstein2_series(&samples, &target).expect("same shapes");
    let one_by_one: Vec<f64> =
        samples.iter().map(|s| wasserstein2(s, &target).expect("same shape")).collect();
    assert_eq!(series, one_by_one);
    assert!(series.windows(2).all(|w| w[1] < w[0]), "the drift shrinks W2: {series:?}");
    let reversed: Vec<&Array2<f32>> = samples.iter().rev().copied().collect();
    let both = flow_metrics::wasserstein2_many_series(&[(samples.clone(), &target), (reversed, &target)])
        .expect("same shapes");
    assert_eq!(both[0], one_by_one);
    assert_eq!(both[1], one_by_one.iter().rev().copied().collect::<Vec<f64>>());
    let wrong = samplers::spiral(499, 1.0, &mut seeded_rng(22));
    assert!(flow_metrics::wasserstein2_series(&[&first, &wrong], &target).is_err());
}

#[test]
fn wasserstein2_of_a_translation_is_its_length() {
    let a = samplers::spiral(300, 1.0, &mut seeded_rng(1));
    let shifted = &a + &array![[0.3f32, -0.4]];
    assert!(wasserstein2(&a, &a).expect("same shape") < 1e-12);
    assert!((wasserstein2(&a, &shifted).expect("same shape") - 0.5).abs() < 1e-6);
    let error = wasserstein2(&a, &samplers::spiral(10, 1.0, &mut seeded_rng(1))).expect_err("sizes differ");
    assert_eq!(error, MetricsError::Shape { left: 300, left_dim: 2, right: 10, right_dim: 2 });
}

#[test]
fn mmd_and_energy_separate_different_distributions() {
    let target = samplers::spiral(400, 1.0, &mut seeded_rng(2));
    let same = samplers::spiral(400, 1.0, &mut seeded_rng(3));
    let other = samplers::gaussian(400, 2, 0.5, &mut seeded_rng(4));
    let mmd_same = mmd_rbf(&target, &same).expect("shape");
    let mmd_other = mmd_rbf(&target, &other).expect("shape");
    assert!(mmd_same.abs() < 0.015 && mmd_other > 0.04, "{mmd_same} vs {mmd_other}");
    let energy_same = energy_distance(&target, &same).expect("shape");
    let energy_other = energy_distance(&target, &other).expect("shape");
    assert!(energy_same.abs() < 0.02 && energy_other > 0.1, "{energy_same} vs {energy_other}");
    // Energy distance of two point masses is 2|x − y|.
    let at = |x: f32| Array2::from_elem((5, 1), x);
    assert!((energy_distance(&at(0.0), &at(3.0)).expect("shape") - 6.0).abs() < 1e-12);
}

#[test]
fn straightness_is_zero_for_straight_paths_and_measures_curvature() {
    let steps = 1000;
    let x0 = array![[0.0f32, 0.0], [1.0, 2.0]];
    let x1 = array![[2.0f32, 1.0], [-1.0, 0.0]];
    let straight: Vec<(f64, Array2<f32>)> = (0..=steps)
        .map(|k| k as f64 / steps as f64)
        .map(|t| (t, &x0 * (1.0 - t as f32) + &x1 * t as f32))
        .collect();
    assert!(straightness(&straight).expect("trajectory") < 1e-8);
    // Half circle x(t) = (cos πt, sin πt): displacement (−2, 0), velocity π(−sin πt, cos πt);
    // ∫₀¹ |(−2, 0) − v|² dt = 4 − 8 + π² = π² − 4.
    let arc: Vec<(f64, Array2<f32>)> = (0..=steps)
        .map(|k| k as f64 / steps as f64)
        .map(|t| {
            (t, array![[(std::f64::consts::PI * t).cos() as f32, (std::f64::consts::PI * t).sin() as f32]])
        })
        .collect();
    let measured = straightness(&arc).expect("trajectory");
    let exact = std::f64::consts::PI.powi(2) - 4.0;
    assert!((measured - exact).abs() < 1e-3, "{measured} vs {exact}");
    // Backward in time gives the same number.
    let reversed: Vec<_> = arc.iter().rev().cloned().collect();
    assert!((straightness(&reversed).expect("trajectory") - measured).abs() < 1e-9);
    assert_eq!(straightness(&arc[..1]), Err(MetricsError::ShortTrajectory));
}

#[test]
fn non_finite_samples_are_refused_not_a_panic() {
    let good = array![[0.0f32, 1.0], [2.0, 3.0], [4.0, 5.0]];
    let bad = array![[0.0f32, f32::NAN], [2.0, 3.0], [f32::INFINITY, 5.0]];
    assert_eq!(
        wasserstein2(&good, &bad).unwrap_err(),
        MetricsError::NonFinite { which: "second", rows: 2, total: 3 }
    );
    assert_eq!(
        wasserstein2(&bad, &good).unwrap_err().to_string(),
        "2 of the 3 points of the first sample are not finite"
    );
}

/// The textbook O(n³) Hungarian algorithm (potentials u, v and a path array, as in
/// e-maxx): an independent reference for `assign_min_cost`. Returns the minimum total cost.
fn reference_min_cost(cost: &[f64], n: usize) -> f64 {
    let (mut u, mut v) = (vec![0.0; n + 1], vec![0.0; n + 1]);
    let (mut p, mut way) = (vec![0usize; n + 1], vec![0usize; n + 1]);
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        let mut minv = vec![f64::INFINITY; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let (i0, mut delta, mut j1) = (p[j0], f64::INFINITY, 0);
            for j in 1..=n {
                if !used[j] {
                    let current = cost[(i0 - 1) * n + (j - 1)] - u[i0] - v[j];
                    if current < minv[j] {
                        minv[j] = current;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    (1..=n).map(|j| cost[(p[j] - 1) * n + (j - 1)]).sum()
}

#[test]
fn assignment_matches_a_reference_hungarian_on_larger_problems() {
    // Continuous random costs (no ties to hide a wrong dual) and squared distances between
    // point clouds, at sizes where every search and dual update is exercised many times.
    let mut rng = seeded_rng(12);
    for n in [12, 40, 90] {
        let random: Vec<f64> = samplers::uniform_square(n * n, 1.0, &mut rng)
            .column(0)
            .iter()
            .map(|&c| f64::from(c) + 1.0)
            .collect();
        let a = samplers::gaussian(n, 2, 1.0, &mut rng);
        let b = samplers::spiral(n, 1.0, &mut rng);
        let squared: Vec<f64> = (0..n * n)
            .map(|k| {
                let (i, j) = (k / n, k % n);
                (0..2).map(|d| f64::from(a[[i, d]] - b[[j, d]]).powi(2)).sum()
            })
            .collect();
        for cost in [&random, &squared] {
            let matching = assign_min_cost(cost, n);
            let mut seen = matching.clone();
            seen.sort_unstable();
            assert_eq!(seen, (0..n).collect::<Vec<_>>(), "n = {n}: not a permutation");
            let total: f64 = matching.iter().enumerate().map(|(i, &j)| cost[i * n + j]).sum();
            let best = reference_min_cost(cost, n);
            assert!((total - best).abs() < 1e-9 * best.max(1.0), "n = {n}: {total} against {best}");
        }
    }
}

#[test]
fn mmd_energy_and_straightness_equal_values_worked_by_hand() {
    // a = {(0,0), (0,1)}, b = {(3,0), (3,1)}: within each sample one pair at d² = 1, across
    // pairs at d² = 9, 10, 10, 9. With k(d²) = Σσ exp(−d²/2σ²) and U-statistics within samples:
    // MMD² = 2k(1) − (k(9) + k(10)); energy = 2·(3 + √10)/2 − 1 − 1 = 1 + √10.
    let a = ndarray::array![[0.0f32, 0.0], [0.0, 1.0]];
    let b = ndarray::array![[3.0f32, 0.0], [3.0, 1.0]];
    let k = |d2: f64| flow_metrics::MMD_BANDWIDTHS.iter().map(|s| (-d2 / (2.0 * s * s)).exp()).sum::<f64>();
    let mmd = mmd_rbf(&a, &b).expect("same shape");
    assert!((mmd - (2.0 * k(1.0) - k(9.0) - k(10.0))).abs() < 1e-12, "MMD² {mmd}");
    // σ = 1 alone, by hand: 2e^{-1/2} − e^{-9/2} − e^{-5} = 1.19548…; the other bandwidths add to it.
    assert!(mmd > 1.19, "MMD² {mmd}");
    let energy = energy_distance(&a, &b).expect("same shape");
    assert!((energy - (1.0 + 10f64.sqrt())).abs() < 1e-12, "energy {energy}");

    // One particle moving 1 unit over t ∈ [0, 1], then resting over [1, 2]: the straight path
    // has velocity 0.5, the deviations are 0.25 on each unit of time, the mean over the span 0.25.
    let path = vec![
        (0.0, ndarray::array![[0.0f32]]),
        (1.0, ndarray::array![[1.0f32]]),
        (2.0, ndarray::array![[1.0f32]]),
    ];
    let value = straightness(&path).expect("a path");
    assert!((value - 0.25).abs() < 1e-12, "straightness {value}");
    // A mean over particles: three copies of that particle score the same.
    let copies: Vec<(f64, Array2<f32>)> = path
        .iter()
        .map(|(t, x)| (*t, ndarray::concatenate![ndarray::Axis(0), x.view(), x.view(), x.view()]))
        .collect();
    let mean = straightness(&copies).expect("a path");
    assert!((mean - 0.25).abs() < 1e-12, "straightness of three copies {mean}");
    // A straight path at constant speed over [0, 2] in unequal steps, and a single step, are straight.
    let straight = vec![
        (0.0, ndarray::array![[0.0f32, 1.0]]),
        (0.5, ndarray::array![[1.0f32, 1.5]]),
        (2.0, ndarray::array![[4.0f32, 3.0]]),
    ];
    assert!(straightness(&straight).expect("a path").abs() < 1e-12);
    assert_eq!(straightness(&[straight[0].clone(), straight[2].clone()]).expect("one step"), 0.0);
}

#[test]
fn ot_pairs_are_a_permutation_of_least_cost_and_sinkhorn_approaches_them() {
    use flow_metrics::couplings::{ot_pairing, sinkhorn_plan, squared_costs};
    let mut rng = seeded_rng(21);
    let (a, b) = (samplers::gaussian(64, 2, 1.0, &mut rng), samplers::moons(64, &mut rng));
    let n = a.nrows();
    let cost = squared_costs(&a, &b);
    let pairing = ot_pairing(&a, &b).expect("same shape");
    let mut seen = pairing.clone();
    seen.sort_unstable();
    assert_eq!(seen, (0..n).collect::<Vec<_>>(), "not a permutation");
    let mean = |p: &[usize]| p.iter().enumerate().map(|(i, &j)| cost[i * n + j]).sum::<f64>() / n as f64;
    let exact = mean(&pairing);
    // Lower than pairing by index (what independent draws do), and the W2² of the two samples.
    assert!(exact < 0.5 * mean(&(0..n).collect::<Vec<_>>()), "OT {exact}");
    assert!((exact - wasserstein2(&a, &b).expect("w2").powi(2)).abs() < 1e-9);

    // Sinkhorn: a plan with uniform marginals whose cost falls to the exact one as ε falls.
    let mut previous = f64::INFINITY;
    for epsilon in [0.5, 0.05, 0.005] {
        let plan = sinkhorn_plan(&a, &b, epsilon).expect("plan");
        for (sums, what) in
            [(plan.sum_axis(ndarray::Axis(1)), "row"), (plan.sum_axis(ndarray::Axis(0)), "column")]
        {
            let worst = sums.iter().map(|s| (s * n as f64 - 1.0).abs()).fold(0.0, f64::max);
            assert!(worst < 1e-3, "ε = {epsilon}: {what} sums off by {worst}");
        }
        let transport: f64 = plan.iter().zip(&cost).map(|(p, c)| p * c).sum();
        assert!(
            transport >= exact - 1e-9 && transport < previous,
            "ε = {epsilon}: cost {transport}, exact {exact}"
        );
        previous = transport;
    }
    assert!(previous < 1.02 * exact, "ε = 0.005: cost {previous} against exact {exact}");
    assert!(sinkhorn_plan(&a, &b, 0.0).is_err() && sinkhorn_plan(&a, &b, f64::NAN).is_err());
}

#[test]
fn sinkhorn_gives_the_entropic_plan_a_plain_iteration_converges_to() {
    use flow_metrics::couplings::{sinkhorn_plan, squared_costs};
    // Plain Sinkhorn (no logs, no stabilisation, no ε-scaling) is exact in the limit and stable
    // at these ε: the stabilised plan must match it entry by entry.
    let mut rng = seeded_rng(31);
    let (a, b) = (samplers::gaussian(24, 2, 1.0, &mut rng), samplers::eight_gaussians(24, &mut rng));
    let n = a.nrows();
    let cost = squared_costs(&a, &b);
    let mean = cost.iter().sum::<f64>() / cost.len() as f64;
    for (relative, iterations, bound) in [(0.3, 20_000, 2e-3), (0.05, 20_000, 2e-3), (0.01, 200_000, 1e-2)] {
        let epsilon = relative * mean;
        let kernel: Vec<f64> = cost.iter().map(|c| (-c / epsilon).exp()).collect();
        let (mut u, mut v) = (vec![1.0; n], vec![1.0; n]);
        for _ in 0..iterations {
            for i in 0..n {
                u[i] = 1.0 / n as f64 / (0..n).map(|j| kernel[i * n + j] * v[j]).sum::<f64>();
            }
            for j in 0..n {
                v[j] = 1.0 / n as f64 / (0..n).map(|i| kernel[i * n + j] * u[i]).sum::<f64>();
            }
        }
        let plan = sinkhorn_plan(&a, &b, relative).expect("plan");
        let worst = (0..n * n)
            .map(|k| (plan[[k / n, k % n]] - u[k / n] * kernel[k] * v[k % n]).abs() * (n * n) as f64)
            .fold(0.0, f64::max);
        assert!(worst < bound, "ε = {relative} × mean cost: largest difference {worst} (in units of 1/n²)");
    }
    // Points all in one place: every pairing costs nothing, and the plan spreads the mass evenly.
    let still = Array2::<f32>::zeros((5, 2));
    let plan = sinkhorn_plan(&still, &still, 0.05).expect("plan");
    assert!(plan.iter().all(|&p| (p - 1.0 / 25.0).abs() < 1e-15), "{plan:?}");
    assert!(sinkhorn_plan(&a, &b, f64::INFINITY).is_err());
}

/// The total squared distance of `matching`, after checking it is a permutation.
fn matched_cost(a: &Array2<f32>, b: &Array2<f32>, matching: &[usize]) -> f64 {
    let mut seen = vec![false; b.nrows()];
    for &j in matching {
        assert!(!std::mem::replace(&mut seen[j], true), "column {j} matched twice");
    }
    assert_eq!(matching.len(), a.nrows());
    let flat = flow_metrics::couplings::squared_costs(a, b);
    matching.iter().enumerate().map(|(i, &j)| flat[i * b.nrows() + j]).sum()
}

#[test]
fn point_assignment_equals_the_dense_solver_beyond_its_size() {
    let flat = |a: &Array2<f32>| a.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>();
    // Above 400 points the sparse, certified path runs. Cases: far transport,
    // two samples of one distribution (odd size), three dimensions, and a grid
    // of repeated points (ties everywhere).
    let grid = |n: usize, offset: usize| {
        Array2::from_shape_fn((n, 2), |(i, d)| (((i * 7 + offset) / if d == 0 { 1 } else { 5 }) % 5) as f32)
    };
    let cases = [
        (
            Dataset::EightGaussians.sample(1000, 2, &mut seeded_rng(1)).expect("2-D"),
            Dataset::TorchdynMoons.sample(1000, 2, &mut seeded_rng(2)).expect("2-D"),
        ),
        (
            Dataset::Moons.sample(1201, 2, &mut seeded_rng(3)).expect("2-D"),
            Dataset::Moons.sample(1201, 2, &mut seeded_rng(4)).expect("2-D"),
        ),
        (
            Dataset::Gaussian.sample(900, 3, &mut seeded_rng(5)).expect("any dimension"),
            Dataset::Gaussian.sample(900, 3, &mut seeded_rng(6)).expect("any dimension") + 1.5f32,
        ),
        (grid(1000, 0), grid(1000, 3)),
    ];
    // The defaults, and sizes so small that even these problems pass through
    // several coarse levels, start from a poor graph and need repairs.
    let tiny = SparseSettings { dense_up_to: 30, candidates: 2, nearest: 1 };
    // Sizes of zero are taken as the least that works.
    let (a, b) = (
        &cases[0].0.slice(ndarray::s![..60, ..]).to_owned(),
        &cases[0].1.slice(ndarray::s![..60, ..]).to_owned(),
    );
    let none = SparseSettings { dense_up_to: 0, candidates: 0, nearest: 0 };
    let dense = matched_cost(a, b, &assign_min_cost(&flow_metrics::couplings::squared_costs(a, b), 60));
    let sparse = matched_cost(a, b, &assign_points_with(&flat(a), &flat(b), 2, none));
    assert!((sparse - dense).abs() <= 1e-9 * dense, "zero sizes: sparse {sparse}, dense {dense}");
    for (a, b) in &cases {
        let n = a.nrows();
        let dense = matched_cost(a, b, &assign_min_cost(&flow_metrics::couplings::squared_costs(a, b), n));
        for settings in [SparseSettings::default(), tiny] {
            let sparse = matched_cost(a, b, &assign_points_with(&flat(a), &flat(b), a.ncols(), settings));
            assert!(
                (sparse - dense).abs() <= 1e-9 * dense.max(1.0),
                "n = {n}, {settings:?}: sparse {sparse}, dense {dense}"
            );
        }
    }
}

#[test]
fn c2ots_condition_weight_keeps_the_asked_share_of_pairs_open() {
    use flow_metrics::couplings::{condition_weight, squared_costs};
    let n = 128;
    let mut rng = seeded_rng(3);
    let x0 = Dataset::EightGaussians.sample(n, 2, &mut rng).expect("2-D");
    let x1 = Dataset::TorchdynMoons.sample(n, 2, &mut rng).expect("2-D");
    let values = x1.column(0).to_owned().insert_axis(ndarray::Axis(1));
    let (m, c) = (squared_costs(&x0, &x1), squared_costs(&values, &values));
    // The share of pairs (i, j) with M[i, j] + w·C[i, j] ≤ M[j, j], as C2OT's search counts it.
    let open = |w: f64| {
        (0..n * n).filter(|&k| m[k] + w * c[k] <= m[(k % n) * n + k % n]).count() as f64 / (n * n) as f64
    };
    for target in [0.02, 0.05, 0.2] {
        let w = condition_weight(&m, &c, n, target, 100.0).expect("weight");
        assert!((open(w) - target).abs() < 5e-3, "r = {target}: w = {w} keeps {} open", open(w));
        // The share falls as the weight grows: a larger w keeps fewer pairs open.
        assert!(open(w / 2.0) >= open(w) && open(w) >= open(2.0 * w));
    }
    // Even w = 0 keeps fewer open than asked: no condition cost at all.
    assert_eq!(condition_weight(&m, &c, n, open(0.0) + 0.01, 100.0).expect("weight"), 0.0);
    // Conditions that never differ cannot close pairs: the search gives up after ten doublings
    // (100 · 2¹⁰, as theirs does) and bisects between the last two.
    let same = vec![0.0; n * n];
    let w = condition_weight(&m, &same, n, 0.05, 100.0).expect("weight");
    assert!((51_200.0..=102_400.0).contains(&w), "{w}");
    assert!(condition_weight(&m, &c[..10], n, 0.05, 100.0).is_err());
    // A start far enough up that doubling passes the cap within ten steps returns the cap.
    assert_eq!(condition_weight(&m, &same, n, 0.05, 1e6).expect("weight"), 1e8);
    // A ratio met exactly at w = 0 is searched for, not given up on; one met exactly at the
    // start is found at or below it.
    assert!(condition_weight(&m, &c, n, open(0.0), 100.0).expect("weight") > 0.0);
    assert!(condition_weight(&m, &c, n, open(100.0), 100.0).expect("weight") <= 100.0);
    // Each pair against its column's own pair, M[j, j]: when every source sits on its own
    // target, only those own pairs are that cheap, so no weight is needed to keep 5 % closed.
    let beside = x0.mapv(|v| v + 1e-3);
    let own = squared_costs(&x0, &beside);
    assert_eq!(condition_weight(&own, &c, n, 0.05, 100.0).expect("weight"), 0.0);
    // The search stops at the first bisection within 10⁻³ of r: pinned for this draw.
    insta::assert_snapshot!(format!("{:.6}", condition_weight(&m, &c, n, 0.05, 100.0).expect("weight")));
}
