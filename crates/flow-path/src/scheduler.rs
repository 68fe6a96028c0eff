//! Schedulers: the coefficients α_t, σ_t of x_t = σ_t x₀ + α_t x₁, their time derivatives, and the conversions between predictions.

use std::f64::consts::FRAC_PI_2;

use crate::{PathError, Result};

/// How a path mixes source and data over time: α_t weighs the data point,
/// σ_t the source point, with α₁ = 1, σ₁ = 0 and (but for `vp`, which only
/// comes close) α₀ = 0. Each value names its source.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Scheduler {
    /// α_t = t, σ_t = 1 − t: the straight line of rectified flow and I-CFM
    /// (flow_matching's `CondOTScheduler`); the project's path since the post.
    #[default]
    Linear,
    /// α_t = sin(πt/2), σ_t = cos(πt/2): torchcfm's
    /// `VariancePreservingConditionalFlowMatcher`, flow_matching's
    /// `CosineScheduler`, rectified-flow's spherical interpolation.
    Cosine,
    /// The variance-preserving diffusion schedule in flow matching's time (flow_matching's
    /// `VPScheduler`): with T(t) = ½(1 − t)²(β_max − β_min) + (1 − t)β_min,
    /// α_t = e^{−T/2} and σ_t = √(1 − e^{−T}). At t = 0, α₀ = e^{−T(0)/2} (0.0066 for the
    /// defaults 0.1, 20): the source is the data almost wholly noised.
    Vp {
        /// β at the data end (t = 1).
        beta_min: f64,
        /// β at the source end (t = 0).
        beta_max: f64,
    },
    /// α_t = tⁿ, σ_t = 1 − tⁿ (flow_matching's `PolynomialConvexScheduler`).
    Polynomial {
        /// The exponent n > 0 (1 is the line).
        exponent: f64,
    },
    /// Lipman et al.'s conditional flow matching with σ_min (torchcfm's
    /// `TargetConditionalFlowMatcher`): α_t = t, σ_t = 1 − (1 − σ_min)t, so the target
    /// x₁ − (1 − σ_min)x₀ leaves the data blurred by σ_min; it assumes the Gaussian source.
    Target {
        /// The width σ_min ∈ [0, 1) left at t = 1.
        sigma_min: f64,
    },
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
    /// flow_matching's `VPScheduler` defaults.
    pub const VP: Scheduler = Scheduler::Vp { beta_min: 0.1, beta_max: 20.0 };

    /// One of each kind (at its defaults, or a typical parameter), in the order help lines list them.
    pub const ALL: [Scheduler; 5] = [
        Scheduler::Linear,
        Scheduler::Cosine,
        Scheduler::VP,
        Scheduler::Polynomial { exponent: 2.0 },
        Scheduler::Target { sigma_min: 0.01 },
    ];

    /// Its kind's name (its parameters are in [`std::fmt::Display`]).
    pub fn name(self) -> &'static str {
        match self {
            Scheduler::Linear => "linear",
            Scheduler::Cosine => "cosine",
            Scheduler::Vp { .. } => "vp",
            Scheduler::Polynomial { .. } => "polynomial",
            Scheduler::Target { .. } => "target",
        }
    }

    /// Whether the path starts from the Gaussian's own samples and so needs that source
    /// (`target`'s blur σ_min is a width in the Gaussian's units).
    pub fn needs_gaussian_source(self) -> bool {
        matches!(self, Scheduler::Target { .. })
    }

    /// The coefficients at `t` ∈ [0, 1].
    pub fn at(&self, t: f64) -> Coefficients {
        match *self {
            Scheduler::Linear => Coefficients { alpha: t, sigma: 1.0 - t, d_alpha: 1.0, d_sigma: -1.0 },
            Scheduler::Cosine => {
                // cos(πt/2) as sin(π(1 − t)/2): exactly 0 at t = 1, where the score is singular.
                let (alpha, sigma) = ((FRAC_PI_2 * t).sin(), (FRAC_PI_2 * (1.0 - t)).sin());
                Coefficients { alpha, sigma, d_alpha: FRAC_PI_2 * sigma, d_sigma: -FRAC_PI_2 * alpha }
            }
            Scheduler::Vp { beta_min, beta_max } => {
                let s = 1.0 - t;
                let big_t = 0.5 * s * s * (beta_max - beta_min) + s * beta_min;
                let d_big_t = -s * (beta_max - beta_min) - beta_min;
                let alpha = (-0.5 * big_t).exp();
                // 1 − e^{−T} as −expm1(−T): exact near t = 1, where T → 0.
                let sigma = (-(-big_t).exp_m1()).sqrt();
                let d_sigma =
                    if sigma > 0.0 { 0.5 * d_big_t * (-big_t).exp() / sigma } else { f64::NEG_INFINITY };
                Coefficients { alpha, sigma, d_alpha: -0.5 * d_big_t * alpha, d_sigma }
            }
            Scheduler::Polynomial { exponent } => {
                let alpha = t.powf(exponent);
                let d_alpha = if t > 0.0 {
                    exponent * t.powf(exponent - 1.0)
                } else {
                    exponent * 0f64.powf(exponent - 1.0)
                };
                Coefficients { alpha, sigma: 1.0 - alpha, d_alpha, d_sigma: -d_alpha }
            }
            Scheduler::Target { sigma_min } => Coefficients {
                alpha: t,
                sigma: 1.0 - (1.0 - sigma_min) * t,
                d_alpha: 1.0,
                d_sigma: -(1.0 - sigma_min),
            },
        }
    }

    /// σ_t = 1 − α_t for every t: x_t = x₀ + α_t (x₁ − x₀) and the target is
    /// α̇_t (x₁ − x₀), one difference per row.
    pub(crate) fn is_convex(&self) -> bool {
        matches!(self, Scheduler::Linear | Scheduler::Polynomial { .. })
    }

    /// α_t = t: the convex path's target is the difference itself.
    pub(crate) fn is_unit_speed(&self) -> bool {
        matches!(self, Scheduler::Linear)
    }

    /// How to turn a `from` prediction at (x_t, t) into a `to` one, for a
    /// path from the standard Gaussian; an error where the map is singular
    /// (the score at t = 1, where σ_t = 0; a noise prediction at t = 0, where
    /// it no longer depends on the velocity).
    pub fn conversion(&self, from: Prediction, to: Prediction, t: f64) -> Result<Conversion> {
        self.at(t).conversion(from, to).ok_or(PathError::Singular {
            what: singular(from, to),
            t,
            path: self.name(),
        })
    }
}

/// What a singular conversion fails to give, for its message.
pub(crate) fn singular(from: Prediction, to: Prediction) -> &'static str {
    if from == Prediction::Score || to == Prediction::Score { "the score" } else { "a prediction" }
}

impl Coefficients {
    /// The coefficients (a, b) of `prediction` = a·x_t + b·v.
    fn in_velocity(&self, prediction: Prediction) -> (f64, f64) {
        let Coefficients { alpha, sigma, d_alpha, d_sigma } = *self;
        // From x_t = α x₁ + σ x₀ and v = α̇ x₁ + σ̇ x₀, solved for x₀ and x₁.
        let det = d_alpha * sigma - alpha * d_sigma;
        match prediction {
            Prediction::Velocity => (0.0, 1.0),
            Prediction::Noise => (d_alpha / det, -alpha / det),
            Prediction::Data => (-d_sigma / det, sigma / det),
            Prediction::Score => (-d_alpha / (det * sigma), alpha / (det * sigma)),
        }
    }

    /// The map from a `from` prediction to a `to` one where x_t = α x₁ + σ x₀ with x₀ a
    /// standard Gaussian independent of x₁; `None` where it divides by zero.
    pub fn conversion(&self, from: Prediction, to: Prediction) -> Option<Conversion> {
        let (a_from, b_from) = self.in_velocity(from);
        let (a_to, b_to) = self.in_velocity(to);
        // v = (from − a_from·x) / b_from, substituted into to = a_to·x + b_to·v.
        let conversion = Conversion { x: a_to - b_to * a_from / b_from, given: b_to / b_from };
        (conversion.x.is_finite() && conversion.given.is_finite() && b_from != 0.0).then_some(conversion)
    }
}

impl flow_options::NamedOption for Scheduler {
    const WHAT: &'static str = "probability path";

    fn forms() -> Vec<&'static str> {
        vec!["linear", "cosine", "vp", "vp:BMIN,BMAX", "polynomial:N", "target:SMIN"]
    }

    fn from_form(text: &str) -> Option<Scheduler> {
        let positive = |x: f64| x.is_finite() && x > 0.0;
        match text {
            "linear" => Some(Scheduler::Linear),
            "cosine" => Some(Scheduler::Cosine),
            "vp" => Some(Scheduler::VP),
            other => {
                if let Some(betas) = other.strip_prefix("vp:") {
                    let (low, high) = betas.split_once(',')?;
                    let (beta_min, beta_max) = (low.trim().parse().ok()?, high.trim().parse().ok()?);
                    return (positive(beta_min) && positive(beta_max) && beta_min < beta_max)
                        .then_some(Scheduler::Vp { beta_min, beta_max });
                }
                if let Some(n) = other.strip_prefix("polynomial:") {
                    let exponent = n.parse().ok().filter(|&n| positive(n))?;
                    return Some(Scheduler::Polynomial { exponent });
                }
                let sigma_min: f64 = other.strip_prefix("target:")?.parse().ok()?;
                (0.0..1.0).contains(&sigma_min).then_some(Scheduler::Target { sigma_min })
            }
        }
    }
}

flow_options::from_str_by_forms!(Scheduler);

impl std::fmt::Display for Scheduler {
    /// The form that parses back to it: `linear`, `vp:0.1,20`, `polynomial:2`, `target:0.01`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scheduler::Vp { beta_min, beta_max } => write!(f, "vp:{beta_min},{beta_max}"),
            Scheduler::Polynomial { exponent } => write!(f, "polynomial:{exponent}"),
            Scheduler::Target { sigma_min } => write!(f, "target:{sigma_min}"),
            other => f.write_str(other.name()),
        }
    }
}
