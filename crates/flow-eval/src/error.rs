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
}
