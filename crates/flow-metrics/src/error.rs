pub type Result<T> = std::result::Result<T, MetricsError>;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetricsError {
    #[error("samples differ in size: {left} × {left_dim} against {right} × {right_dim} (need the same)")]
    Shape { left: usize, left_dim: usize, right: usize, right_dim: usize },
    #[error("samples are empty")]
    Empty,
    #[error("a trajectory needs at least two recorded states")]
    ShortTrajectory,
}
