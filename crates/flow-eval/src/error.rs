//! The one error type of flow-eval.

pub type Result<T> = std::result::Result<T, EvalError>;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Model(#[from] flow_model::ModelError),
    #[error(transparent)]
    Data(#[from] flow_data::DataError),
    #[error(transparent)]
    Ode(#[from] flow_ode::OdeError),
    #[error(transparent)]
    Metrics(#[from] flow_metrics::MetricsError),
    #[error("the source `{0}` has no closed-form density (gaussian, 8gaussians and uniform have one)")]
    NoDensity(&'static str),
    #[error("the points are {points}-dimensional but the model is {model}-dimensional")]
    Dimension { points: usize, model: usize },
    #[error("a set of {given} samples for a probe of {draws} draws (one sample per draw)")]
    Draws { given: usize, draws: usize },
    #[error("point {row} is not finite (NaN or infinite)")]
    NonFinite { row: usize },
    /// A finite point whose integration back to the source overflowed.
    #[error(
        "point {row} is finite, but its integration back to the source overflowed (NaN): it lies too far out for this model"
    )]
    Overflowed { row: usize },
}
