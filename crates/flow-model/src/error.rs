//! The one error type of flow-model.

use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, ModelError>;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    UnknownName(#[from] flow_options::UnknownName),
    #[error("device `{requested}` asked for, but {available}")]
    CudaUnavailable { requested: String, available: String },
    #[error("invalid model configuration: {0}")]
    Config(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a flowmatch checkpoint ({reason})")]
    NotACheckpoint { path: PathBuf, reason: String },
    #[error("{path}: tensor `{name}` is missing")]
    MissingTensor { path: PathBuf, name: String },
    #[error("{path}: tensor `{name}` has shape {found:?}, expected {expected:?}")]
    Shape { path: PathBuf, name: String, expected: Vec<i64>, found: Vec<usize> },
    #[error("{path}: checkpoint is for {found}, expected {expected}")]
    Architecture { path: PathBuf, expected: String, found: String },
    #[error(transparent)]
    Data(#[from] flow_data::DataError),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("native kernels: {0}")]
    Native(#[from] flow_native::NativeError),
    #[error(transparent)]
    Ode(#[from] flow_ode::OdeError),
    #[error(transparent)]
    Path(#[from] flow_path::PathError),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("{rows} of {total} points became NaN or infinite on the way through the network")]
    NonFinite { rows: usize, total: usize },
}
