//! flow-ode: integrate dx/dt = v(x, t) for a whole batch of particles at once, or sample its SDE.
//!
//! The solvers are generic over the [`State`] (a batch of positions: an
//! `ndarray` here, a tch tensor in flow-model) and the [`VelocityField`], so
//! they are tested on analytic fields with exact solutions and run unchanged on
//! a network on CPU or GPU.
//!
//! Invariants: a solver calls the field only through `velocity` and counts every
//! call (NFE); a field's failure ends the integration with the field's own error; it never mutates a state in place, so recorded trajectories stay
//! valid; time may run forward (0 → 1) or backward (1 → 0). The stochastic samplers
//! ([`integrate_with_noise`]) run forward only and draw all their noise from the caller's
//! closure, so a seeded closure gives the same samples every time. No libtorch here.

mod error;
mod grid;
mod solver;
mod state;
pub mod stochastic;

pub use error::{OdeError, Result};
pub use grid::{TimeGrid, check_warp, warp_time};
pub use solver::{Record, Solution, Solver, SolverKind, integrate};
pub use state::State;
pub use stochastic::{Diffusion, Noise, integrate_with_noise};

/// A time-dependent velocity field evaluated on a batch of states.
pub trait VelocityField<S> {
    /// Why an evaluation can fail; the solvers' own errors convert into it,
    /// so an integration returns one error type.
    type Error: From<OdeError>;

    fn velocity(&self, x: &S, t: f64) -> std::result::Result<S, Self::Error>;
}

/// A closure `(x, t) ↦ v` is a field that cannot fail.
impl<S, F: Fn(&S, f64) -> S> VelocityField<S> for F {
    type Error = OdeError;

    fn velocity(&self, x: &S, t: f64) -> Result<S> {
        Ok(self(x, t))
    }
}

/// A closure `(x, t) ↦ Result<v, E>` as a field that fails with `E`.
pub struct Fallible<F>(pub F);

impl<S, E: From<OdeError>, F: Fn(&S, f64) -> std::result::Result<S, E>> VelocityField<S> for Fallible<F> {
    type Error = E;

    fn velocity(&self, x: &S, t: f64) -> std::result::Result<S, E> {
        (self.0)(x, t)
    }
}
