//! flow-data: where points come from and where they go.
//!
//! - [`samplers`]: the post's Gaussian and spiral plus the usual 2-D toy sets,
//!   each drawing from a caller-supplied RNG; [`Dataset`] looks them up by name.
//! - [`files`]: user point sets as CSV or `.npy`, validated on the way in, and
//!   atomic writes (temp file + rename) for everything the project saves.
//! - [`conditions`]: labels and continuous conditions of target points, and
//!   the network features they become.
//! - [`tables`]: column names for point files, and recorded paths as tables.
//!
//! Invariants: samplers return `n × d` `f32` arrays and draw only from the RNG
//! they are given ([`seeded_rng`] gives a stream that is stable across
//! versions), so a seed pins every number. No libtorch here.

pub mod budget;
pub mod conditions;
mod error;
pub mod files;
pub mod samplers;
pub mod tables;

pub use conditions::{ConditionShape, ConditionSpec, ConditionedTarget};
pub use error::{DataError, Result};
pub use samplers::{Dataset, PointSource, seeded_rng};

/// The random number generator used across the project: ChaCha8, whose output
/// stream is fixed by its specification rather than by a library version.
pub type SeededRng = rand_chacha::ChaCha8Rng;
