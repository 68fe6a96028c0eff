//! Distances between two samples: exact W2 by optimal assignment, RBF MMD², energy distance.

use ndarray::{Array2, ArrayView1};

use crate::{MetricsError, Result, SparseSettings, assign_points_from};

pub(crate) fn check_same_shape(a: &Array2<f32>, b: &Array2<f32>) -> Result<()> {
    if a.dim() != b.dim() {
        return Err(MetricsError::Shape {
            left: a.nrows(),
            left_dim: a.ncols(),
            right: b.nrows(),
            right_dim: b.ncols(),
        });
    }
    if a.is_empty() {
        return Err(MetricsError::Empty);
    }
    // A NaN cost breaks the assignment's comparisons (it panicked on a NaN model's samples).
    for (sample, which) in [(a, "first"), (b, "second")] {
        let rows = sample.rows().into_iter().filter(|row| row.iter().any(|v| !v.is_finite())).count();
        if rows > 0 {
            return Err(MetricsError::NonFinite { which, rows, total: sample.nrows() });
        }
    }
    Ok(())
}

fn squared_distance(x: ArrayView1<f32>, y: ArrayView1<f32>) -> f64 {
    x.iter().zip(y).map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2)).sum()
}

/// Exact W₂ between two samples of equal size with uniform weights:
/// √(min over matchings of the mean squared distance between matched points).
pub fn wasserstein2(a: &Array2<f32>, b: &Array2<f32>) -> Result<f64> {
    Ok(wasserstein2_from(a, b, None)?.0)
}

/// [`wasserstein2`] with the assignment started from column duals for `b`
/// (see [`assign_points_from`]); also returns the optimal ones.
fn wasserstein2_from(a: &Array2<f32>, b: &Array2<f32>, start: Option<&[f64]>) -> Result<(f64, Vec<f64>)> {
    check_same_shape(a, b)?;
    let (flat_a, flat_b) = (as_f64(a), as_f64(b));
    let (matching, duals) = assign_points_from(&flat_a, &flat_b, a.ncols(), start, SparseSettings::default());
    let total: f64 = matching.iter().enumerate().map(|(i, &j)| squared_distance(a.row(i), b.row(j))).sum();
    Ok(((total / a.nrows() as f64).sqrt(), duals))
}

/// [`wasserstein2`] of each sample against one `target`, in order, each
/// assignment starting from the last one's optimal duals: the same values,
/// sooner when consecutive samples are alike (a model's samples at growing
/// step counts).
pub fn wasserstein2_series(samples: &[&Array2<f32>], target: &Array2<f32>) -> Result<Vec<f64>> {
    let mut duals: Option<Vec<f64>> = None;
    samples
        .iter()
        .map(|sample| {
            let (w2, optimal) = wasserstein2_from(sample, target, duals.as_deref())?;
            duals = Some(optimal);
            Ok(w2)
        })
        .collect()
}

/// Row-major `f64` coordinates.
pub(crate) fn as_f64(points: &Array2<f32>) -> Vec<f64> {
    points.rows().into_iter().flat_map(|row| row.into_iter().map(|&v| f64::from(v))).collect()
}

/// RBF bandwidths σ of [`mmd_rbf`]: spanning the scales of the 2-D toy sets.
pub const MMD_BANDWIDTHS: [f64; 6] = [0.1, 0.2, 0.5, 1.0, 2.0, 5.0];

/// Mean of `kernel(d²)` over pairs, leaving out the diagonal when `same` (U-statistic).
fn mean_pairwise(a: &Array2<f32>, b: &Array2<f32>, same: bool, kernel: impl Fn(f64) -> f64) -> f64 {
    let mut sum = 0.0;
    let mut count = 0usize;
    for (i, x) in a.rows().into_iter().enumerate() {
        for (j, y) in b.rows().into_iter().enumerate() {
            if !(same && i == j) {
                sum += kernel(squared_distance(x, y));
                count += 1;
            }
        }
    }
    sum / count.max(1) as f64
}

/// Unbiased squared MMD with the kernel Σσ exp(−‖x − y‖² / 2σ²) over [`MMD_BANDWIDTHS`].
/// Zero in expectation for identical distributions (so it can be slightly negative).
pub fn mmd_rbf(a: &Array2<f32>, b: &Array2<f32>) -> Result<f64> {
    check_same_shape(a, b)?;
    let kernel = |d2: f64| MMD_BANDWIDTHS.iter().map(|s| (-d2 / (2.0 * s * s)).exp()).sum::<f64>();
    Ok(mean_pairwise(a, a, true, kernel) + mean_pairwise(b, b, true, kernel)
        - 2.0 * mean_pairwise(a, b, false, kernel))
}

/// Energy distance 2E‖X − Y‖ − E‖X − X′‖ − E‖Y − Y′‖ (U-statistics within samples).
pub fn energy_distance(a: &Array2<f32>, b: &Array2<f32>) -> Result<f64> {
    check_same_shape(a, b)?;
    let distance = f64::sqrt;
    Ok(2.0 * mean_pairwise(a, b, false, distance)
        - mean_pairwise(a, a, true, distance)
        - mean_pairwise(b, b, true, distance))
}

/// Straightness of a flow from its recorded trajectory `(tₖ, xₖ)`, first to last:
/// Σₖ Δtₖ · mean over particles of ‖(x_last − x_first) − (xₖ₊₁ − xₖ)/Δtₖ‖².
///
/// With Euler steps (xₖ₊₁ − xₖ)/Δtₖ is exactly v(xₖ, tₖ), so this is the
/// rectified-flow paper's E ∫ ‖(X₁ − X₀) − v(Xₜ, t)‖² dt by the rectangle rule.
/// Zero for straight constant-speed paths.
pub fn straightness(trajectory: &[(f64, Array2<f32>)]) -> Result<f64> {
    let (Some((t_first, first)), Some((t_last, last))) = (trajectory.first(), trajectory.last()) else {
        return Err(MetricsError::ShortTrajectory);
    };
    if trajectory.len() < 2 {
        return Err(MetricsError::ShortTrajectory);
    }
    check_same_shape(first, last)?;
    let span = t_last - t_first;
    let displacement = (last - first).mapv(f64::from) / span;
    let particles = first.nrows() as f64;
    let mut total = 0.0;
    for pair in trajectory.windows(2) {
        let ((t0, x0), (t1, x1)) = (&pair[0], &pair[1]);
        let dt = t1 - t0;
        let velocity = (x1 - x0).mapv(f64::from) / dt;
        let deviation: f64 = (&displacement - &velocity).mapv(|d| d * d).sum();
        total += dt.abs() * deviation / particles;
    }
    Ok(total / span.abs())
}

/// [`wasserstein2`] of several pairs at once, spread over the machine's cores
/// (each assignment is independent and single-threaded).
pub fn wasserstein2_many(pairs: &[(&Array2<f32>, &Array2<f32>)]) -> Result<Vec<f64>> {
    on_workers(pairs.len(), |i| wasserstein2(pairs[i].0, pairs[i].1)).into_iter().collect()
}

/// [`wasserstein2_series`] of several series (samples, target) at once, spread over the cores.
pub fn wasserstein2_many_series(series: &[(Vec<&Array2<f32>>, &Array2<f32>)]) -> Result<Vec<Vec<f64>>> {
    on_workers(series.len(), |i| wasserstein2_series(&series[i].0, series[i].1)).into_iter().collect()
}

/// `work(i)` for every i in `0..count`, on one worker per core, in order of i.
fn on_workers<T: Send>(count: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(count.max(1));
    // Workers take the next item as they finish: assignment times vary several-fold
    // between pairs, so fixed shares would leave a core idle.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut done: Vec<(usize, T)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= count {
                            break mine;
                        }
                        mine.push((i, work(i)));
                    }
                })
            })
            .collect();
        // A worker's panic is a bug: pass it on rather than report a missing result.
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, value)| value).collect()
}
