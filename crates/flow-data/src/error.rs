//! The one error type of flow-data.

use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, DataError>;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(transparent)]
    UnknownName(#[from] flow_options::UnknownName),
    #[error("dataset `{name}` is {supported}-dimensional, not {requested}-dimensional")]
    Dimension { name: &'static str, supported: usize, requested: usize },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: is a directory, expected a file")]
    IsDirectory { path: PathBuf },
    #[error("--out {out} is the input {input}: writing it would destroy what is read; name another file")]
    OutputIsInput { out: PathBuf, input: PathBuf },
    #[error("{path}: line {line}, column {column}: `{cell}` is not a number")]
    NotANumber { path: PathBuf, line: usize, column: usize, cell: String },
    #[error("{path}: line {line}, column {column}: {value} is not finite")]
    NotFinite { path: PathBuf, line: usize, column: usize, value: f64 },
    #[error(
        "{path}: line {line}, column {column}: {value:e} is outside the range of 32-bit floats (±3.4e38)"
    )]
    OutOfRange { path: PathBuf, line: usize, column: usize, value: f64 },
    #[error("{path}: line {line} has {found} columns, expected {expected}")]
    Ragged { path: PathBuf, line: usize, expected: usize, found: usize },
    #[error("{path}: no data points")]
    Empty { path: PathBuf },
    #[error("{path}: {message}")]
    Npy { path: PathBuf, message: String },
    #[error("{path}: unsupported extension (use .csv or .npy)")]
    Extension { path: PathBuf },
    /// A condition that cannot be used, named in the message.
    #[error("{0}")]
    Condition(String),
    #[error("{what} needs {needed}, more than the {available} of memory available")]
    TooLarge { what: String, needed: String, available: String },
}
