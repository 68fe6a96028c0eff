//! The one error type of flow-train.

use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, TrainError>;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Model(#[from] flow_model::ModelError),
    #[error(transparent)]
    Data(#[from] flow_data::DataError),
    #[error(transparent)]
    Ode(#[from] flow_ode::OdeError),
    #[error(transparent)]
    Metrics(#[from] flow_metrics::MetricsError),
    #[error(transparent)]
    Path(#[from] flow_path::PathError),
    /// Settings that cannot work, whatever the data: a usage mistake.
    #[error("{0}")]
    Config(String),
    /// Data and a model (or teacher) that do not fit together, found once both
    /// were read: a run-time failure, not a usage mistake.
    #[error("{0}")]
    Mismatch(String),
    #[error("the source is {from}-dimensional but the target is {to}-dimensional")]
    Dimensions { from: usize, to: usize },
    #[error(transparent)]
    UnknownName(#[from] flow_options::UnknownName),
    #[error("loss became {loss} at step {step}; stopped, {}", if *kept { "the last checkpoint is kept" } else { "nothing was saved" })]
    NonFiniteLoss { step: usize, loss: f32, kept: bool },
    #[error("{path}: cannot resume: {reason}")]
    Resume { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("{0}")]
    Header(String),
    #[error("{0}")]
    ResumeMismatch(String),
    #[error("stopped {0}")]
    Stopped(String),
    #[error("{dir}: in use by {owner}; wait for it to finish or choose another --out")]
    InUse { dir: PathBuf, owner: String },
}
