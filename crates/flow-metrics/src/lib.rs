//! flow-metrics: how good is a sample, and how straight is a flow.
//!
//! - [`wasserstein2`]: the exact 2-Wasserstein distance between two equal-size
//!   samples, by solving the assignment problem on squared Euclidean costs
//!   ([`assign_min_cost`] on a matrix; [`assign_points`] from the points, in
//!   O(n) memory, for the 10 000-point samples of published protocols).
//! - [`mmd_rbf`]: squared maximum mean discrepancy with a sum of RBF kernels.
//! - [`energy_distance`]: Székely's energy distance.
//! - [`couplings`]: the optimal pairing of two samples (exact assignment) and
//!   Sinkhorn's entropic plan, for minibatch optimal-transport training.
//! - [`straightness`]: the rectified-flow paper's E ∫ ‖(X₁ − X₀) − v(Xₜ, t)‖² dt,
//!   evaluated on a flow's own recorded trajectory.
//!
//! Invariants: pure functions of `f32` point arrays (computed in `f64`); no
//! randomness, no IO, no libtorch.

mod assignment;
pub mod couplings;
mod distances;
mod error;
mod point_assignment;

pub use assignment::assign_min_cost;
pub use distances::{
    MMD_BANDWIDTHS, energy_distance, mmd_rbf, straightness, wasserstein2, wasserstein2_many,
    wasserstein2_many_series, wasserstein2_series,
};
pub use error::{MetricsError, Result};
pub use point_assignment::{SparseSettings, assign_points, assign_points_from, assign_points_with};
