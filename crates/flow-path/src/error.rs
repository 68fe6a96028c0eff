//! The one error type of flow-path.

/// flow-path's results.
pub type Result<T> = std::result::Result<T, PathError>;

/// What can go wrong with a path; each message names the problem.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PathError {
    /// A path name that is none of the schedulers'.
    #[error(transparent)]
    UnknownName(#[from] flow_options::UnknownName),
    /// A noise scale below 0 or not finite.
    #[error("the path's noise scale σ must be finite and at least 0, not {0}")]
    Sigma(f64),
    /// A bridge without noise, which would be the line.
    #[error("the bridge needs a noise scale σ > 0 (--sigma; SB-CFM's default is 1), not {0}")]
    BridgeSigma(f64),
    /// A noisy path sampled without noise rows.
    #[error("a path with σ = {0} > 0 needs noise rows for every batch")]
    MissingNoise(f64),
    /// Rows of a batch that do not match its times (`what`: which rows).
    #[error("{what}: {rows} rows for {times} times")]
    #[allow(missing_docs)]
    Rows { what: &'static str, rows: usize, times: usize },
    /// A schedule change to or from a path whose end marginal is not the data's.
    #[error(
        "cannot change the schedule to or from `{0}`: its data end keeps the blur σ_min (use linear, cosine, vp or polynomial:N)"
    )]
    Reschedule(String),
    /// A score objective on a path without noise, whose conditional score is not defined.
    #[error(
        "the score objective needs a noisy path (--path bridge, or --sigma > 0): without noise x_t has no score to learn"
    )]
    ScoreWithoutNoise,
    /// A conversion that divides by zero at `t` (the score where σ_t = 0).
    #[error("{what} is singular at t = {t} on the {path} path")]
    #[allow(missing_docs)]
    Singular { what: &'static str, t: f64, path: &'static str },
}
