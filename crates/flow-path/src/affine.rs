//! The affine path: a batch (x₀, x₁, t) and optional noise into the network's input x_t and its target velocity.

use crate::{Coefficients, Conversion, PathError, Prediction, Result, Rows, Scheduler};

/// x_t = σ_t x₀ + α_t x₁ + s_t·ε with target α̇_t x₁ + σ̇_t x₀ + ṡ_t·ε: the scheduler's
/// interpolant, blurred by fresh noise ε ~ N(0, I) of scale s_t = `sigma` (constant: torchcfm's
/// σ of I-CFM, whose target keeps x₁ − x₀) or s_t = σ√(t(1 − t)) (the Brownian bridge of
/// Schrödinger-bridge CFM). σ = 0 is the deterministic path; the default is the line.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct AffinePath {
    /// α_t and σ_t.
    pub scheduler: Scheduler,
    /// The scale σ of the fresh noise added to x_t (0: none).
    pub sigma: f64,
    /// How the noise's scale changes with time.
    pub noise: NoiseShape,
}

/// How the noise added to x_t scales with time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NoiseShape {
    /// σ at every t, the target unchanged (I-CFM).
    #[default]
    Constant,
    /// σ√(t(1 − t)), zero at both ends, its rate of change in the target: torchcfm's
    /// `SchrodingerBridgeConditionalFlowMatcher`, u_t = x₁ − x₀ + (1 − 2t)/(2t(1 − t) + 10⁻⁸)·(x_t − μ_t).
    Bridge,
}

/// A path by the name `--path` takes: a scheduler's, or `bridge` (the line with bridge noise).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PathName {
    /// A scheduler's path with constant noise.
    Scheduled(Scheduler),
    /// The Brownian bridge between the pair.
    Bridge,
}

impl flow_options::NamedOption for PathName {
    const WHAT: &'static str = "probability path";

    fn forms() -> Vec<&'static str> {
        let mut forms = Scheduler::forms();
        forms.push("bridge");
        forms
    }

    fn from_form(text: &str) -> Option<PathName> {
        match text {
            "bridge" => Some(PathName::Bridge),
            other => Scheduler::from_form(other).map(PathName::Scheduled),
        }
    }
}

flow_options::from_str_by_forms!(PathName);

impl std::fmt::Display for PathName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathName::Scheduled(scheduler) => scheduler.fmt(f),
            PathName::Bridge => f.write_str("bridge"),
        }
    }
}

/// One coordinate of x_t's law and of the marginal velocity v(x, t) = intercept + slope·x, for
/// a Gaussian target reached from the standard Gaussian ([`AffinePath::gaussian_marginal`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GaussianMarginal {
    /// The mean of x_t.
    pub mean: f64,
    /// The variance of x_t.
    pub variance: f64,
    /// ∂v/∂x: half the variance's rate of change over the variance.
    pub slope: f64,
    /// v at x = 0.
    pub intercept: f64,
}

impl GaussianMarginal {
    /// The marginal velocity at `x`.
    pub fn velocity(&self, x: f64) -> f64 {
        self.intercept + self.slope * x
    }
}

/// What a path gives one batch: the network's input positions and their regression targets.
pub struct PathSample<R> {
    /// The points on the path at each row's time: the network's input positions.
    pub x_t: R,
    /// The path's velocity there (or, for [`Objective::Score`], its score target): the
    /// regression target.
    pub target: R,
    /// Each row's weight in the mean squared error (`None`: all 1, plain MSE).
    pub weights: Option<Vec<f32>>,
}

/// What a network regresses onto along a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Objective {
    /// The path's velocity: a flow (every run before the objective existed).
    #[default]
    Velocity,
    /// \[SF\]2M's score (Tong, Malkin, Fatras et al. 2024; torchcfm's `compute_lambda`):
    /// ‖λ_t·s(x_t, t) + ε‖² with λ_t = 2s_t/σ², so s learns (σ²/2)·∇log p_t, the drift
    /// the SDE dx = [v + s] dt + σ dW adds to the flow. Needs a noisy path (σ > 0), and holds
    /// whatever the coupling.
    Score,
}

impl Objective {
    /// Both, in the order help lines list them.
    pub const ALL: [Objective; 2] = [Objective::Velocity, Objective::Score];

    /// How the header and `run.json` spell it.
    pub fn name(self) -> &'static str {
        match self {
            Objective::Velocity => "velocity",
            Objective::Score => "score",
        }
    }
}

flow_options::named_value!(Objective, "objective");

impl AffinePath {
    /// The straight line x_t = x₀ + t(x₁ − x₀) with target x₁ − x₀.
    pub const LINE: AffinePath =
        AffinePath { scheduler: Scheduler::Linear, sigma: 0.0, noise: NoiseShape::Constant };

    /// `scheduler` with constant noise of scale `sigma` (finite, ≥ 0).
    pub fn new(scheduler: Scheduler, sigma: f64) -> Result<AffinePath> {
        if !(sigma.is_finite() && sigma >= 0.0) {
            return Err(PathError::Sigma(sigma));
        }
        Ok(AffinePath { scheduler, sigma, noise: NoiseShape::Constant })
    }

    /// The Brownian bridge of scale `sigma` (finite, > 0) around the line.
    pub fn bridge(sigma: f64) -> Result<AffinePath> {
        if !(sigma.is_finite() && sigma > 0.0) {
            return Err(PathError::BridgeSigma(sigma));
        }
        Ok(AffinePath { scheduler: Scheduler::Linear, sigma, noise: NoiseShape::Bridge })
    }

    /// The path `name` names, with noise scale `sigma`.
    pub fn named(name: PathName, sigma: f64) -> Result<AffinePath> {
        match name {
            PathName::Scheduled(scheduler) => AffinePath::new(scheduler, sigma),
            PathName::Bridge => AffinePath::bridge(sigma),
        }
    }

    /// Its name, as [`AffinePath::named`] takes it.
    pub fn name(&self) -> PathName {
        match self.noise {
            NoiseShape::Constant => PathName::Scheduled(self.scheduler),
            NoiseShape::Bridge => PathName::Bridge,
        }
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
            PathSample { x_t, target, weights: None }
        } else {
            let x_t = x0.scaled(&column(|c| c.sigma)).plus_scaled(&column(|c| c.alpha), x1);
            let target = x0.scaled(&column(|c| c.d_sigma)).plus_scaled(&column(|c| c.d_alpha), x1);
            PathSample { x_t, target, weights: None }
        };
        if self.needs_noise() {
            let noise = noise.ok_or(PathError::MissingNoise(self.sigma))?;
            if noise.rows() != times.len() {
                return Err(PathError::Rows { what: "noise rows", rows: noise.rows(), times: times.len() });
            }
            let (scale, rate): (Vec<f32>, Vec<f32>) = times
                .iter()
                .map(|&t| {
                    let (scale, rate) = self.noise_at(f64::from(t));
                    (scale as f32, rate as f32)
                })
                .unzip();
            sample.x_t = sample.x_t.plus_scaled(&x0.column(&scale), noise);
            if self.noise == NoiseShape::Bridge {
                sample.target = sample.target.plus_scaled(&x0.column(&rate), noise);
            }
        }
        Ok(sample)
    }

    /// [`AffinePath::sample`] for `objective`: the velocity's, or the score's — the same x_t,
    /// the target −ε/λ_t and the row weight λ_t², so that the weighted error is \[SF\]2M's
    /// ‖λ_t·s + ε‖² (rows where λ_t = 0, at the bridge's ends, get weight and target 0: the
    /// score is not learned there, and the loss leaves out their constant ‖ε‖²).
    pub fn sample_for<R: Rows>(
        &self,
        objective: Objective,
        x0: &R,
        x1: &R,
        times: &[f32],
        noise: Option<&R>,
    ) -> Result<PathSample<R>> {
        let sample = self.sample(x0, x1, times, noise)?;
        if objective == Objective::Velocity {
            return Ok(sample);
        }
        let noise = match noise {
            Some(noise) if self.needs_noise() => noise,
            _ => return Err(PathError::ScoreWithoutNoise),
        };
        let weights: Vec<f64> = times.iter().map(|&t| self.score_weight(f64::from(t))).collect();
        let inverse: Vec<f32> =
            weights.iter().map(|&w| if w > 0.0 { (-1.0 / w) as f32 } else { 0.0 }).collect();
        let target = noise.scaled(&x0.column(&inverse));
        Ok(PathSample {
            x_t: sample.x_t,
            target,
            weights: Some(weights.iter().map(|w| (w * w) as f32).collect()),
        })
    }

    /// \[SF\]2M's λ_t = 2s_t/σ² (torchcfm's `compute_lambda`, with its 10⁻⁸): the score
    /// network's s times λ_t predicts −ε.
    pub fn score_weight(&self, t: f64) -> f64 {
        2.0 * self.noise_at(t).0 / (self.sigma * self.sigma + 1e-8)
    }

    /// The noise's scale s_t and its rate ṡ_t at `t` (ṡ = 0 for constant noise, which
    /// leaves the target alone).
    pub fn noise_at(&self, t: f64) -> (f64, f64) {
        match self.noise {
            NoiseShape::Constant => (self.sigma, 0.0),
            NoiseShape::Bridge => {
                let scale = self.sigma * (t * (1.0 - t)).sqrt();
                // torchcfm's σ'_t/σ_t, with its 10⁻⁸ where t(1 − t) vanishes.
                (scale, (1.0 - 2.0 * t) / (2.0 * t * (1.0 - t) + 1e-8) * scale)
            }
        }
    }

    /// The path as one Gaussian blur of the data, for a standard Gaussian source independent
    /// of x₁: x_t = σ_t x₀ + α_t x₁ + s_t ε is α_t x₁ + σ̄_t z with z ~ N(0, I) and
    /// σ̄_t = √(σ_t² + s_t²), and its marginal velocity is the scheduler (α_t, σ̄_t)'s
    /// (E[σ̇_t x₀ + ṡ_t ε | x_t] = (σ_t σ̇_t + s_t ṡ_t)/σ̄_t · E[z | x_t] = dσ̄_t/dt · E[z | x_t]).
    /// What the score and the stochastic samplers read.
    pub fn marginal_coefficients(&self, t: f64) -> Coefficients {
        let c = self.scheduler.at(t);
        let (scale, rate) = self.noise_at(t);
        if scale == 0.0 {
            return c;
        }
        let sigma = c.sigma.hypot(scale);
        Coefficients { sigma, d_sigma: (c.sigma * c.d_sigma + scale * rate) / sigma, ..c }
    }

    /// How to turn a `from` prediction at (x_t, t) into a `to` one (the score from the
    /// velocity, for one: for the line without noise, ∇log p_t(x) = −(x − t·v)/(1 − t)), on
    /// this path from the standard Gaussian with independent pairs; an error where the map is
    /// singular (the score at t = 1 on a path that ends without noise).
    pub fn conversion(&self, from: Prediction, to: Prediction, t: f64) -> Result<Conversion> {
        self.marginal_coefficients(t).conversion(from, to).ok_or(PathError::Singular {
            what: crate::scheduler::singular(from, to),
            t,
            path: match self.noise {
                NoiseShape::Bridge => "bridge",
                NoiseShape::Constant => self.scheduler.name(),
            },
        })
    }

    /// The marginal of x_t, and its velocity, when x₀ ~ N(0, 1) and x₁ ~ N(`mean`, `variance`)
    /// are drawn independently, one coordinate at a time: a closed form every affine path
    /// has, so a trained field can be checked against it.
    ///
    /// x_t = σ_t x₀ + α_t x₁ + s_t ε is a sum of independent Gaussians: its mean is α_t μ and
    /// its variance V_t = σ_t² + α_t² v + s_t². Its target u = σ̇_t x₀ + α̇_t x₁ + ṡ_t ε is
    /// jointly Gaussian with it, so the marginal velocity E[u | x_t = x] is the linear
    /// regression E(u) + Cov(u, x_t)/V_t · (x − α_t μ), with E(u) = α̇_t μ and
    /// Cov(u, x_t) = σ̇_t σ_t + α̇_t α_t v + ṡ_t s_t = V̇_t / 2.
    pub fn gaussian_marginal(&self, t: f64, mean: f64, variance: f64) -> GaussianMarginal {
        let c = self.scheduler.at(t);
        let (scale, rate) = self.noise_at(t);
        let spread = c.sigma * c.sigma + c.alpha * c.alpha * variance + scale * scale;
        let slope = (c.d_sigma * c.sigma + c.d_alpha * c.alpha * variance + rate * scale) / spread;
        GaussianMarginal {
            mean: c.alpha * mean,
            variance: spread,
            slope,
            intercept: c.d_alpha * mean - slope * c.alpha * mean,
        }
    }

    /// How the path reads in messages and reports: `linear`, or `cosine, σ = 0.1`.
    pub fn describe(&self) -> String {
        if self.sigma > 0.0 {
            format!("{}, σ = {}", self.name(), self.sigma)
        } else {
            self.name().to_string()
        }
    }
}
