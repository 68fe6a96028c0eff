//! The one error type of flow-path.

pub type Result<T> = std::result::Result<T, PathError>;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PathError {
    #[error(transparent)]
    UnknownName(#[from] flow_options::UnknownName),
    #[error("the path's noise scale σ must be finite and at least 0, not {0}")]
    Sigma(f64),
    #[error("a path with σ = {0} > 0 needs noise rows for every batch")]
    MissingNoise(f64),
    #[error("{what}: {rows} rows for {times} times")]
    Rows { what: &'static str, rows: usize, times: usize },
    #[error("{what} is singular at t = {t} on the {path} path")]
    Singular { what: &'static str, t: f64, path: &'static str },
}
