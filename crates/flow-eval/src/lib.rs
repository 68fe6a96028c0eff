//! flow-eval: how good a trained flow is, always next to what a perfect one would score.
//!
//! - [`QualityProbe`]: fixed source and target draws and their W₂ noise floor,
//!   so that models and solver settings are compared on the same numbers;
//!   [`Quality`] holds W₂ (exact, with its floor), MMD², energy distance,
//!   straightness and the cost in network evaluations (NFE).
//!
//! - [`likelihood`]: log p₁(x) of any point by the instantaneous change of
//!   variables, with the exact divergence (small dimension) or Hutchinson's
//!   estimate, on the native kernels or libtorch.
//!
//! New measures of a trained flow (likelihood, per-class quality, …) join
//! here, next to the probe, and take an [`Integrator`](flow_model::Integrator)
//! so that the network's backend is chosen once per model.
//!
//! Invariants: every draw comes from the probe's seed, so two probes built
//! with the same arguments score a model identically; W₂ is always reported
//! with the floor measured on the same number of points.

mod error;
pub mod likelihood;
mod quality;

pub use error::{EvalError, Result};
pub use quality::{FLOOR_DRAWS, Quality, QualityProbe, STRAIGHTNESS_STEPS};
