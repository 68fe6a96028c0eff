//! Log-densities under a trained flow: the instantaneous change of variables, integrated from t = 1 back to t = 0.
//!
//! Along a path of the flow, d log pₜ(xₜ)/dt = −∇·v(xₜ, t). Integrating the
//! point and ℓ with dℓ/dt = ∇·v from ℓ(1) = 0 at the data point back to
//! t = 0 gives log p₁(x₁) = log p₀(x₀) + ℓ(0), where p₀ is the source's density.

use flow_data::Dataset;
use flow_model::{Integrator, ModelError};
use flow_ode::{Record, Solver, TimeGrid, VelocityField};
use ndarray::{Array2, Axis, s};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{EvalError, Result};

/// Up to this dimension the divergence is exact unless probes are asked for:
/// d Jacobian products per evaluation cost less than the noise of an estimate.
pub const EXACT_UP_TO: usize = 32;

/// How ∇·v is computed along the paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Divergence {
    /// The trace of the Jacobian, from d products per evaluation.
    Exact,
    /// Hutchinson's estimate E\[εᵀJε\] with `probes` Rademacher vectors per point,
    /// drawn once from `seed` and held along the path.
    Hutchinson { probes: usize, seed: u64 },
}

impl Divergence {
    /// Exact up to [`EXACT_UP_TO`] dimensions unless `probes` are given; else Hutchinson.
    pub fn for_dimension(dim: usize, probes: Option<usize>, seed: u64) -> Divergence {
        match probes {
            None if dim <= EXACT_UP_TO => Divergence::Exact,
            None => Divergence::Hutchinson { probes: 1, seed },
            Some(probes) => Divergence::Hutchinson { probes: probes.max(1), seed },
        }
    }
}

/// log p₁ of every point, what it cost, and how uncertain an estimate is.
#[derive(Clone, Debug)]
pub struct LogDensities {
    pub log_prob: Vec<f64>,
    /// With Hutchinson's estimator and more than one probe: the standard error of each value.
    pub standard_error: Option<Vec<f64>>,
    /// Where each point came from at t = 0.
    pub latents: Array2<f32>,
    /// Network evaluations per point (each with its Jacobian products).
    pub nfe: usize,
}

/// Negative log-likelihood of a sample under a model: how many nats it costs
/// to encode a point (lower is better), what it cost to compute.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Nll {
    pub nats: f64,
    pub nats_per_dimension: f64,
    pub n: usize,
    /// Network evaluations per point.
    pub nfe: usize,
}

/// The mean negative log-likelihood of `points` (dopri5 at the default tolerances, exact divergence up to
/// [`EXACT_UP_TO`] dimensions); `None` when `source` has no closed-form density.
pub fn nll(model: &Integrator, source: Dataset, points: &Array2<f32>) -> Result<Option<Nll>> {
    if !source.has_density(points.ncols()) {
        return Ok(None);
    }
    let solver = Solver::new(flow_ode::SolverKind::Dopri5, Solver::DEFAULT_RTOL, Solver::DEFAULT_ATOL)?;
    let divergence = Divergence::for_dimension(points.ncols(), None, 0);
    let found = log_density(model, source, points, (solver, 1), divergence)?;
    let nats = -found.log_prob.iter().sum::<f64>() / found.log_prob.len().max(1) as f64;
    Ok(Some(Nll {
        nats,
        nats_per_dimension: nats / points.ncols() as f64,
        n: points.nrows(),
        nfe: found.nfe,
    }))
}

/// log p₁(x) of each row of `points` under the flow of `model` from `source`.
pub fn log_density(
    model: &Integrator,
    source: Dataset,
    points: &Array2<f32>,
    (solver, steps): (Solver, usize),
    divergence: Divergence,
) -> Result<LogDensities> {
    let (rows, dim) = points.dim();
    if dim != model.net().config().dim {
        return Err(EvalError::Dimension { points: dim, model: model.net().config().dim });
    }
    if let Some(row) = points.rows().into_iter().position(|row| row.iter().any(|v| !v.is_finite())) {
        return Err(EvalError::NonFinite { row: row + 1 });
    }
    // The source's density is needed at the end; ask before integrating.
    if !source.has_density(dim) {
        return Err(EvalError::NoDensity(source.name()));
    }
    let (vectors, directions, columns) = match divergence {
        Divergence::Exact => (unit_vectors(rows, dim)?, dim, 1),
        Divergence::Hutchinson { probes, seed } => (rademacher(rows, dim, probes, seed)?, probes, probes),
    };
    let field =
        ChangeOfVariables { model, dim, vectors, directions, summed: divergence == Divergence::Exact };
    let mut start = Array2::zeros((rows, dim + columns));
    start.slice_mut(s![.., ..dim]).assign(points);
    let grid = TimeGrid::uniform(steps)?.reversed();
    let solution = flow_ode::integrate(&field, start, &grid, solver, Record::Nothing)?;
    let latents = solution.state.slice(s![.., ..dim]).to_owned();
    let changes = solution.state.slice(s![.., dim..]).to_owned();
    let base = source.log_density(&latents).ok_or(EvalError::NoDensity(source.name()))?;
    let mut log_prob = Vec::with_capacity(rows);
    let mut standard_error = Vec::with_capacity(rows);
    for (row, base) in changes.axis_iter(Axis(0)).zip(base) {
        let values: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        log_prob.push(base + mean);
        if values.len() > 1 {
            let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (values.len() - 1) as f64;
            standard_error.push((variance / values.len() as f64).sqrt());
        }
    }
    if let Some(row) = log_prob.iter().position(|v| v.is_nan()) {
        return Err(EvalError::Overflowed { row: row + 1 });
    }
    let standard_error = (columns > 1).then_some(standard_error);
    Ok(LogDensities { log_prob, standard_error, latents, nfe: solution.nfe })
}

/// The unit vectors e₀ … e_{d−1} for every row (rows × d × d).
fn unit_vectors(rows: usize, dim: usize) -> Result<Vec<f32>> {
    let what = format!("exact divergences of {rows} points in {dim} dimensions");
    flow_data::budget::check_allocation(&what, rows as u128 * (dim * dim) as u128, 4)?;
    let mut vectors = vec![0.0; rows * dim * dim];
    for row in vectors.chunks_exact_mut(dim * dim) {
        for i in 0..dim {
            row[i * dim + i] = 1.0;
        }
    }
    Ok(vectors)
}

/// Random ±1 vectors, `probes` per row (rows × probes × d), on their own stream of `seed`.
fn rademacher(rows: usize, dim: usize, probes: usize, seed: u64) -> Result<Vec<f32>> {
    let what = format!("{probes} probes of {rows} points in {dim} dimensions");
    flow_data::budget::check_allocation(&what, rows as u128 * probes as u128 * dim as u128, 4)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(4);
    Ok((0..rows * probes * dim).map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 }).collect())
}

/// The flow with ℓ appended: (x, ℓ) ↦ (v(x, t), ∇·v(x, t)), or one ℓ per probe.
struct ChangeOfVariables<'a> {
    model: &'a Integrator,
    dim: usize,
    vectors: Vec<f32>,
    directions: usize,
    /// Exact: the forms are summed into one trace column.
    summed: bool,
}

impl VelocityField<Array2<f32>> for ChangeOfVariables<'_> {
    type Error = ModelError;

    fn velocity(&self, state: &Array2<f32>, t: f64) -> std::result::Result<Array2<f32>, ModelError> {
        let (rows, width) = state.dim();
        let x = state.slice(s![.., ..self.dim]).to_owned();
        let mut derivative = Array2::zeros((rows, width));
        let (velocity, forms) = self.model.velocity_and_forms(&x, t, (&self.vectors, self.directions))?;
        derivative.slice_mut(s![.., ..self.dim]).assign(&velocity);
        if self.summed {
            derivative.slice_mut(s![.., self.dim]).assign(&forms.sum_axis(Axis(1)));
        } else {
            derivative.slice_mut(s![.., self.dim..]).assign(&forms);
        }
        Ok(derivative)
    }
}
