//! flow-path: where a flow-matching interpolant and its target come from.
//!
//! A probability path carries a source point x₀ (t = 0) to a data point x₁
//! (t = 1). Its [`Scheduler`] gives the coefficients of the affine
//! interpolant x_t = σ_t x₀ + α_t x₁ and their time derivatives; the
//! [`AffinePath`] turns a batch (x₀, x₁, t) into the network's input x_t and
//! its regression target dx_t/dt, written once over [`Rows`] so that the
//! same code serves host rows (ndarray, the native kernels) and tensors
//! (flow-model's implementation). [`Scheduler::conversion`] gives the
//! closed-form maps between a velocity and the noise, data and score
//! predictions of a path from the standard Gaussian, which stochastic
//! samplers and likelihoods need; [`ScheduleChange`] samples a model trained on
//! one scheduler along another's paths.
//!
//! The vocabulary follows facebookresearch/flow_matching (`path/`,
//! `path/scheduler/`): time runs from the source at t = 0 to the data at t = 1.
//!
//! Invariants: pure (no libtorch, no I/O, no randomness of its own — noise
//! comes in as rows); the line trains bit for bit as the project always did,
//! x_t = x₀ + t·(x₁ − x₀) with target x₁ − x₀; a path is a value (adding one
//! is adding a [`Scheduler`] variant), never code in a training loop.

#![warn(missing_docs)]

mod affine;
mod error;
mod rows;
mod scheduler;
mod transform;

pub use affine::{AffinePath, GaussianMarginal, NoiseShape, Objective, PathName, PathSample};
pub use error::{PathError, Result};
pub use rows::Rows;
pub use scheduler::{Coefficients, Conversion, Prediction, Scheduler};
pub use transform::{Reparametrisation, ScheduleChange};
