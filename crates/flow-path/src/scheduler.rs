//! Schedulers: the coefficients α_t, σ_t of x_t = σ_t x₀ + α_t x₁, their time derivatives, and the conversions between predictions.

use std::f64::consts::FRAC_PI_2;

use crate::{PathError, Result};

/// How a path mixes source and data over time: α_t weighs the data point,
/// σ_t the source point, with α₀ = 0, σ₀ = 1 and α₁ = 1, σ₁ = 0.
/// Each value names its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Scheduler {
    /// α_t = t, σ_t = 1 − t: the straight line of rectified flow and I-CFM
    /// (flow_matching's `CondOTScheduler`); the project's path since the post.
    #[default]
    Linear,
    /// α_t = sin(πt/2), σ_t = cos(πt/2): torchcfm's
    /// `VariancePreservingConditionalFlowMatcher`, flow_matching's
    /// `CosineScheduler`, rectified-flow's spherical interpolation.
    Cosine,
}

/// α_t, σ_t and their derivatives at one time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Coefficients {
    /// α_t, the data point's weight.
    pub alpha: f64,
    /// σ_t, the source point's weight.
    pub sigma: f64,
    /// dα_t/dt.
    pub d_alpha: f64,
    /// dσ_t/dt.
    pub d_sigma: f64,
}

/// What a network (or a formula) predicts at (x_t, t) for a path from the
/// standard Gaussian source: each is a fixed linear function of x_t and the
/// velocity, so any one gives the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prediction {
    /// The marginal velocity v(x, t) = E[dx_t/dt | x_t = x].
    Velocity,
    /// The source point's expectation E[x₀ | x_t = x] (noise prediction, ε).
    Noise,
    /// The data point's expectation E[x₁ | x_t = x] (data prediction, x̂₁).
    Data,
    /// The score ∇ log p_t(x) = −E[x₀ | x_t = x] / σ_t.
    Score,
}

/// `to = x·x_t + given·from`, the conversion between two predictions at one time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conversion {
    /// The coefficient of x_t.
    pub x: f64,
    /// The coefficient of the prediction converted from.
    pub given: f64,
}

impl Scheduler {
    /// Every scheduler, in the order help lines list them.
    pub const ALL: [Scheduler; 2] = [Scheduler::Linear, Scheduler::Cosine];

    /// Its name, as `--path` and checkpoint headers spell it.
    pub fn name(self) -> &'static str {
        match self {
            Scheduler::Linear => "linear",
            Scheduler::Cosine => "cosine",
        }
    }

    /// The coefficients at `t` ∈ [0, 1].
    pub fn at(&self, t: f64) -> Coefficients {
        match self {
            Scheduler::Linear => Coefficients { alpha: t, sigma: 1.0 - t, d_alpha: 1.0, d_sigma: -1.0 },
            Scheduler::Cosine => {
                // cos(πt/2) as sin(π(1 − t)/2): exactly 0 at t = 1, where the score is singular.
                let (alpha, sigma) = ((FRAC_PI_2 * t).sin(), (FRAC_PI_2 * (1.0 - t)).sin());
                Coefficients { alpha, sigma, d_alpha: FRAC_PI_2 * sigma, d_sigma: -FRAC_PI_2 * alpha }
            }
        }
    }

    /// σ_t = 1 − α_t for every t: x_t = x₀ + α_t (x₁ − x₀) and the target is
    /// α̇_t (x₁ − x₀), one difference per row.
    pub(crate) fn is_convex(&self) -> bool {
        matches!(self, Scheduler::Linear)
    }

    /// α_t = t: the convex path's target is the difference itself.
    pub(crate) fn is_unit_speed(&self) -> bool {
        matches!(self, Scheduler::Linear)
    }

    /// The coefficients (a, b) of `prediction` = a·x_t + b·v at `t`.
    fn in_velocity(&self, prediction: Prediction, t: f64) -> (f64, f64) {
        let Coefficients { alpha, sigma, d_alpha, d_sigma } = self.at(t);
        // From x_t = α x₁ + σ x₀ and v = α̇ x₁ + σ̇ x₀, solved for x₀ and x₁.
        let det = d_alpha * sigma - alpha * d_sigma;
        match prediction {
            Prediction::Velocity => (0.0, 1.0),
            Prediction::Noise => (d_alpha / det, -alpha / det),
            Prediction::Data => (-d_sigma / det, sigma / det),
            Prediction::Score => (-d_alpha / (det * sigma), alpha / (det * sigma)),
        }
    }

    /// How to turn a `from` prediction at (x_t, t) into a `to` one, for a
    /// path from the standard Gaussian; an error where the map is singular
    /// (the score at t = 1, where σ_t = 0; a noise prediction at t = 0, where
    /// it no longer depends on the velocity).
    pub fn conversion(&self, from: Prediction, to: Prediction, t: f64) -> Result<Conversion> {
        let (a_from, b_from) = self.in_velocity(from, t);
        let (a_to, b_to) = self.in_velocity(to, t);
        // v = (from − a_from·x) / b_from, substituted into to = a_to·x + b_to·v.
        let conversion = Conversion { x: a_to - b_to * a_from / b_from, given: b_to / b_from };
        if conversion.x.is_finite() && conversion.given.is_finite() && b_from != 0.0 {
            Ok(conversion)
        } else {
            let what = if from == Prediction::Score || to == Prediction::Score {
                "the score"
            } else {
                "a prediction"
            };
            Err(PathError::Singular { what, t, path: self.name() })
        }
    }
}

flow_options::named_value!(Scheduler, "probability path");
