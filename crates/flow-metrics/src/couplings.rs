//! Optimal-transport couplings of two equal-size samples: the exact assignment, and Sinkhorn's entropic plan.

use ndarray::Array2;

use crate::distances::{as_f64, check_same_shape};
use crate::{MetricsError, Result, assign_points};

/// Squared Euclidean distances between every row of `a` and every row of `b`, row-major.
pub fn squared_costs(a: &Array2<f32>, b: &Array2<f32>) -> Vec<f64> {
    let mut cost = Vec::with_capacity(a.nrows() * b.nrows());
    for x in a.rows() {
        for y in b.rows() {
            cost.push(x.iter().zip(y).map(|(p, q)| (f64::from(*p) - f64::from(*q)).powi(2)).sum());
        }
    }
    cost
}

/// The optimal transport pairing of `a` and `b` under squared distance: row
/// `i` of `a` goes to row `pairing[i]` of `b` (a permutation).
pub fn ot_pairing(a: &Array2<f32>, b: &Array2<f32>) -> Result<Vec<usize>> {
    check_same_shape(a, b)?;
    Ok(assign_points(&as_f64(a), &as_f64(b), a.ncols()))
}

/// Iterations of each [`sinkhorn_plan`] stage at most: it stops earlier once the marginals
/// are met, and at this cap returns the plan it has (a very small ε converges slowly).
pub const SINKHORN_ITERATIONS: usize = 2000;
/// The largest marginal error (relative to the uniform mass 1/n) at which Sinkhorn stops.
pub const SINKHORN_TOLERANCE: f64 = 1e-4;
/// Scalings larger than e^ABSORB are folded into the potentials (and the kernel recomputed).
const ABSORB: f64 = 30.0;

/// The entropic optimal transport plan between the uniform measures on `a`
/// and `b` with squared-distance cost and regularisation `epsilon` times the
/// mean cost (so that the same `epsilon` means the same blur at any scale).
/// Entry (i, j) is the mass sent from row i of `a` to row j of `b`; rows and
/// columns sum to 1/n.
///
/// Sinkhorn's iterations on scalings u, v of the kernel exp((fᵢ + gⱼ − Cᵢⱼ)/ε),
/// with the potentials f, g kept in the log domain and the scalings absorbed
/// into them whenever they grow large (Schmitzer's stabilisation): stable for
/// small ε, with matrix-vector products rather than exponentials per
/// iteration. ε is lowered to its target in halvings from 16 ε (ε-scaling),
/// each stage starting from the last one's potentials: far fewer iterations
/// than starting at a small ε.
pub fn sinkhorn_plan(a: &Array2<f32>, b: &Array2<f32>, epsilon: f64) -> Result<Array2<f64>> {
    check_same_shape(a, b)?;
    if !(epsilon.is_finite() && epsilon > 0.0) {
        return Err(MetricsError::Regularisation(epsilon));
    }
    let n = a.nrows();
    let cost = squared_costs(a, b);
    let mean = cost.iter().sum::<f64>() / cost.len() as f64;
    if mean == 0.0 {
        // Every point on every other: any plan is optimal, the uniform one included.
        return Ok(Array2::from_elem((n, n), 1.0 / (n * n) as f64));
    }
    entropic_plan(cost, n, epsilon * mean)
}

/// [`sinkhorn_plan`] with an absolute regularisation `reg` on the squared costs, as POT's
/// `sinkhorn(a, b, M, reg)` takes it (torchcfm's SB-CFM: reg = 2σ²).
pub fn sinkhorn_plan_absolute(a: &Array2<f32>, b: &Array2<f32>, reg: f64) -> Result<Array2<f64>> {
    check_same_shape(a, b)?;
    if !(reg.is_finite() && reg > 0.0) {
        return Err(MetricsError::Regularisation(reg));
    }
    entropic_plan(squared_costs(a, b), a.nrows(), reg)
}

/// The entropic plan of `cost` (n × n, row-major) at regularisation `epsilon`, by log-domain
/// Sinkhorn iterations with ε-scaling.
fn entropic_plan(cost: Vec<f64>, n: usize, epsilon: f64) -> Result<Array2<f64>> {
    // Start from a c-transform pair, so that every row and column of the kernel holds a 1.
    let mut f: Vec<f64> =
        (0..n).map(|i| (0..n).map(|j| cost[i * n + j]).fold(f64::INFINITY, f64::min)).collect();
    let mut g: Vec<f64> =
        (0..n).map(|j| (0..n).map(|i| cost[i * n + j] - f[i]).fold(f64::INFINITY, f64::min)).collect();
    let largest = cost.iter().copied().fold(0.0, f64::max);
    let mut stage = largest.min(FIRST_STAGE * epsilon).max(epsilon);
    while stage > epsilon {
        iterate(&cost, n, stage, (&mut f, &mut g), (STAGE_TOLERANCE, STAGE_ITERATIONS))?;
        stage = (stage / 2.0).max(epsilon);
    }
    iterate(&cost, n, epsilon, (&mut f, &mut g), (SINKHORN_TOLERANCE, SINKHORN_ITERATIONS))?;
    Ok(Array2::from_shape_fn((n, n), |(i, j)| ((f[i] + g[j] - cost[i * n + j]) / epsilon).exp()))
}

/// ε-scaling starts at this multiple of the target ε (or at the largest cost, if lower): from the
/// c-transform start, larger blurs only cost kernels (measured: half the time at batch 256).
const FIRST_STAGE: f64 = 16.0;
/// The marginal error at which an intermediate ε stage hands over to the next, and its iterations at most.
const STAGE_TOLERANCE: f64 = 1e-2;
const STAGE_ITERATIONS: usize = 200;

/// Sinkhorn's iterations at one ε, updating the potentials in place until the
/// rows' marginal error is below `tolerance` (or the iterations run out).
fn iterate(
    cost: &[f64],
    n: usize,
    epsilon: f64,
    (f, g): (&mut [f64], &mut [f64]),
    (tolerance, iterations): (f64, usize),
) -> Result<()> {
    let mass = 1.0 / n as f64;
    let kernel = |f: &[f64], g: &[f64]| -> Vec<f64> {
        (0..n * n).map(|k| ((f[k / n] + g[k % n] - cost[k]) / epsilon).exp()).collect()
    };
    let mut k = kernel(f, g);
    let (mut u, mut v) = (vec![1.0; n], vec![1.0; n]);
    let mut column = vec![0.0; n];
    for iteration in 0..iterations {
        for i in 0..n {
            let row: f64 = (0..n).map(|j| k[i * n + j] * v[j]).sum();
            u[i] = mass / row;
        }
        column.fill(0.0);
        for i in 0..n {
            for j in 0..n {
                column[j] += k[i * n + j] * u[i];
            }
        }
        for j in 0..n {
            v[j] = mass / column[j];
        }
        let large = u.iter().chain(&v).any(|s| !s.is_finite() || s.ln().abs() > ABSORB);
        if large || iteration % 10 == 9 {
            // Columns are exact after the v update; the rows say how far from the plan it is.
            let worst = (0..n)
                .map(|i| (u[i] * (0..n).map(|j| k[i * n + j] * v[j]).sum::<f64>() / mass - 1.0).abs())
                .fold(0.0, f64::max);
            for (potential, scaling) in f.iter_mut().zip(&u).chain(g.iter_mut().zip(&v)) {
                *potential += epsilon * scaling.ln();
            }
            if !f.iter().chain(g.iter()).all(|p| p.is_finite()) {
                return Err(MetricsError::Regularisation(epsilon));
            }
            if worst < tolerance {
                return Ok(());
            }
            k = kernel(f, g);
            u.fill(1.0);
            v.fill(1.0);
        }
    }
    Ok(())
}

/// C2OT's condition weight: the w at which a fraction ≈ `target_ratio` of the
/// pairs (i, j) cost no more under `M + w·C` than row j's own pair does under
/// M alone (`M[i, j] + w·C[i, j] ≤ M[j, j]`), so that roughly that share of
/// pairings stays open. `position_costs` and `condition_costs` are n × n and
/// row-major. The search is theirs (`c2ot/ot.py`, `search_for_w`): 0 when even
/// w = 0 keeps fewer; else doubling from `initial` until the ratio drops to
/// the target (capped at 10⁸), then bisection until it is within `tolerance`,
/// at most `max_iterations` each.
pub fn condition_weight(
    position_costs: &[f64],
    condition_costs: &[f64],
    n: usize,
    target_ratio: f64,
    initial: f64,
) -> Result<f64> {
    if position_costs.len() != n * n || condition_costs.len() != n * n {
        return Err(MetricsError::Costs {
            position: position_costs.len(),
            condition: condition_costs.len(),
            n,
        });
    }
    const MAX_ITERATIONS: usize = 10;
    const TOLERANCE: f64 = 1e-3;
    const MAX_WEIGHT: f64 = 1e8;
    let ratio = |w: f64| {
        let kept = position_costs
            .iter()
            .zip(condition_costs)
            .enumerate()
            .filter(|(k, (m, c))| *m + w * *c <= position_costs[(k % n) * n + k % n])
            .count();
        kept as f64 / (n * n).max(1) as f64
    };
    if ratio(0.0) < target_ratio {
        return Ok(0.0);
    }
    let (mut low, mut high) = (0.0, initial);
    for _ in 0..MAX_ITERATIONS {
        if ratio(high) > target_ratio {
            low = high;
            high *= 2.0;
        } else {
            break;
        }
        if high > MAX_WEIGHT {
            return Ok(MAX_WEIGHT);
        }
    }
    let mut middle = high;
    for _ in 0..MAX_ITERATIONS {
        middle = (low + high) / 2.0;
        let kept = ratio(middle);
        if kept < target_ratio {
            high = middle;
        } else {
            low = middle;
        }
        if (kept - target_ratio).abs() < TOLERANCE {
            break;
        }
    }
    Ok(middle)
}
