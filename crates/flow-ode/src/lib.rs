//! flow-ode: integrate dx/dt = v(x, t) for a whole batch of particles at once.
//!
//! The solvers are generic over the [`State`] (a batch of positions: an
//! `ndarray` here, a tch tensor in flow-model) and the [`VelocityField`], so
//! they are tested on analytic fields with exact solutions and run unchanged on
//! a network on CPU or GPU.
//!
//! Invariants: a solver calls the field only through `velocity` and counts every
//! call (NFE); it never mutates a state in place, so recorded trajectories stay
//! valid; time may run forward (0 → 1) or backward (1 → 0). No libtorch here.

mod error;
mod grid;
mod solver;
mod state;

pub use error::{OdeError, Result};
pub use grid::{TimeGrid, check_warp, warp_time};
pub use solver::{Record, Solution, Solver, SolverKind, integrate};
pub use state::State;

/// A time-dependent velocity field evaluated on a batch of states.
pub trait VelocityField<S> {
    fn velocity(&self, x: &S, t: f64) -> S;
}

impl<S, F: Fn(&S, f64) -> S> VelocityField<S> for F {
    fn velocity(&self, x: &S, t: f64) -> S {
        self(x, t)
    }
}
