//! The one error type of flow-metrics.

pub type Result<T> = std::result::Result<T, MetricsError>;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetricsError {
    #[error("samples differ in size: {left} × {left_dim} against {right} × {right_dim} (need the same)")]
    Shape { left: usize, left_dim: usize, right: usize, right_dim: usize },
    #[error("{position} position and {condition} condition costs for {n} × {n} pairs")]
    Costs { position: usize, condition: usize, n: usize },
    #[error("samples are empty")]
    Empty,
    #[error("{rows} of the {total} points of the {which} sample are not finite")]
    NonFinite { which: &'static str, rows: usize, total: usize },
    #[error("a trajectory needs at least two recorded states")]
    ShortTrajectory,
    #[error(
        "Sinkhorn's regularisation {0} is not usable (it must be positive and finite, and not so small that the plan underflows)"
    )]
    Regularisation(f64),
}
