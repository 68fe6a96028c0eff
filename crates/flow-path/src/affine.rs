//! The affine path: a batch (x₀, x₁, t) and optional noise into the network's input x_t and its target velocity.

use crate::{PathError, Result, Rows, Scheduler};

/// x_t = σ_t x₀ + α_t x₁ + σ·ε with target α̇_t x₁ + σ̇_t x₀: the scheduler's
/// interpolant, blurred by fresh noise ε ~ N(0, I) of scale `sigma` (torchcfm's
/// σ of I-CFM; 0 is the deterministic path). The default is the line with σ = 0.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct AffinePath {
    /// α_t and σ_t.
    pub scheduler: Scheduler,
    /// The scale of the fresh noise added to x_t (0: none).
    pub sigma: f64,
}

/// What a path gives one batch: the network's input positions and their regression targets.
pub struct PathSample<R> {
    /// The points on the path at each row's time: the network's input positions.
    pub x_t: R,
    /// The path's velocity there: the regression target.
    pub target: R,
}

impl AffinePath {
    /// The straight line x_t = x₀ + t(x₁ − x₀) with target x₁ − x₀.
    pub const LINE: AffinePath = AffinePath { scheduler: Scheduler::Linear, sigma: 0.0 };

    /// `scheduler` with noise scale `sigma` (finite, ≥ 0).
    pub fn new(scheduler: Scheduler, sigma: f64) -> Result<AffinePath> {
        if !(sigma.is_finite() && sigma >= 0.0) {
            return Err(PathError::Sigma(sigma));
        }
        Ok(AffinePath { scheduler, sigma })
    }

    /// Whether `sample` needs a noise row per point.
    pub fn needs_noise(&self) -> bool {
        self.sigma > 0.0
    }

    /// The path's point and target velocity for each row of (x₀, x₁) at its
    /// time in `times`; `noise` (standard normal rows) is used only when σ > 0.
    pub fn sample<R: Rows>(&self, x0: &R, x1: &R, times: &[f32], noise: Option<&R>) -> Result<PathSample<R>> {
        for (what, rows) in [("source rows", x0.rows()), ("data rows", x1.rows())] {
            if rows != times.len() {
                return Err(PathError::Rows { what, rows, times: times.len() });
            }
        }
        let coefficients: Vec<_> = times.iter().map(|&t| self.scheduler.at(f64::from(t))).collect();
        let column = |value: fn(&crate::Coefficients) -> f64| {
            let values: Vec<f32> = coefficients.iter().map(|c| value(c) as f32).collect();
            x0.column(&values)
        };
        let mut sample = if self.scheduler.is_convex() {
            // x₀ + α_t (x₁ − x₀): the form (and rounding) training has always used for the line.
            let difference = x1.minus(x0);
            let x_t = x0.plus_scaled(&column(|c| c.alpha), &difference);
            let target = if self.scheduler.is_unit_speed() {
                difference
            } else {
                difference.scaled(&column(|c| c.d_alpha))
            };
            PathSample { x_t, target }
        } else {
            let x_t = x0.scaled(&column(|c| c.sigma)).plus_scaled(&column(|c| c.alpha), x1);
            let target = x0.scaled(&column(|c| c.d_sigma)).plus_scaled(&column(|c| c.d_alpha), x1);
            PathSample { x_t, target }
        };
        if self.needs_noise() {
            let noise = noise.ok_or(PathError::MissingNoise(self.sigma))?;
            if noise.rows() != times.len() {
                return Err(PathError::Rows { what: "noise rows", rows: noise.rows(), times: times.len() });
            }
            let scale = vec![self.sigma as f32; times.len()];
            sample.x_t = sample.x_t.plus_scaled(&x0.column(&scale), noise);
        }
        Ok(sample)
    }

    /// How the path reads in messages and run records: `linear`, or `cosine, σ = 0.1`.
    pub fn describe(&self) -> String {
        if self.sigma > 0.0 {
            format!("{}, σ = {}", self.scheduler, self.sigma)
        } else {
            self.scheduler.to_string()
        }
    }
}
