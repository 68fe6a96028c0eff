//! flow-train: teach a [`VelocityNet`](flow_model::VelocityNet) to move sources onto targets.
//!
//! - [`train`]: the loop shared by flow matching and reflow. Each step takes a
//!   batch of pairs (x₀, x₁) from a [`PairSource`], draws times t by a
//!   [`TimeSampling`], asks the config's [`flow_path::AffinePath`] for xₜ and its
//!   target velocity (the line: xₜ = (1 − t)x₀ + t·x₁, target x₁ − x₀) and
//!   regresses v(xₜ, t) onto it (mean squared error, Adam on the flat parameter vector).
//! - [`PairSource`]: independent random pairs (flow matching; a [`Coupling`]
//!   pairs them by minibatch optimal transport), or a teacher's
//!   integrated targets, per batch (`online`, the post's way) or from a pool
//!   generated once (`pool`, the rectified-flow paper's way).
//! - [`reflow`]: rounds of distillation, each student teaching the next.
//!
//! Invariants: every random draw comes from the run's seed (ChaCha8 for batches,
//! libtorch's generator only for initial weights); same seed, device and thread
//! count give the same losses and weights. Checkpoints are written atomically
//! and a non-finite loss stops training before anything bad is saved.

mod coupling;
mod error;
mod pairs;
mod reflow;
mod run;
mod time_sampling;
mod trainer;

pub use coupling::{Coupling, Drawn};
pub use error::{Result, TrainError};
pub use flow_model::{Backend, Runtime};
pub use flow_model::{Batch, Kernel, Place};
pub use pairs::{PairMode, PairSource, TeacherSettings};
pub use reflow::{ReflowSettings, reflow};
pub use run::{
    LOSSES_FILE, MODEL_FILE, Pairs, PointsRef, RUN_RECORD_FILE, RunKind, RunMetadata, RunOptions, RunRecord,
    RunSpec, STATE_FILE, TrainedModel, read_losses,
};
pub use time_sampling::TimeSampling;
pub use trainer::{LrSchedule, Recipe, TrainConfig, TrainReport, train};
