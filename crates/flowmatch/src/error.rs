//! One error type for the tool: a one-line message and whether it was a usage
//! mistake (exit 2) or something that went wrong while running (exit 1).

#[derive(Debug)]
pub enum CliError {
    Usage(String),
    Runtime(String),
}

pub type Result<T> = std::result::Result<T, CliError>;

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Runtime(_) => 1,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            CliError::Usage(m) | CliError::Runtime(m) => m,
        }
    }

    pub fn usage(message: impl Into<String>) -> CliError {
        CliError::Usage(message.into())
    }

    pub fn runtime(message: impl Into<String>) -> CliError {
        CliError::Runtime(message.into())
    }
}

impl From<flow_data::DataError> for CliError {
    fn from(error: flow_data::DataError) -> CliError {
        use flow_data::DataError::*;
        match error {
            UnknownName(_) | Dimension { .. } | Extension { .. } | Condition(_) | OutputIsInput { .. } => {
                CliError::Usage(error.to_string())
            }
            _ => CliError::Runtime(error.to_string()),
        }
    }
}

impl From<flow_ode::OdeError> for CliError {
    fn from(error: flow_ode::OdeError) -> CliError {
        match error {
            flow_ode::OdeError::TooManySteps { .. } => CliError::Runtime(error.to_string()),
            _ => CliError::Usage(error.to_string()),
        }
    }
}

impl From<flow_model::ModelError> for CliError {
    fn from(error: flow_model::ModelError) -> CliError {
        use flow_model::ModelError::*;
        match error {
            UnknownName(_) | Config(_) => CliError::Usage(error.to_string()),
            Data(inner) => inner.into(),
            Ode(inner) => inner.into(),
            Path(inner) => inner.into(),
            _ => CliError::Runtime(error.to_string()),
        }
    }
}

impl From<flow_train::TrainError> for CliError {
    fn from(error: flow_train::TrainError) -> CliError {
        use flow_train::TrainError::*;
        match error {
            Config(_) | UnknownName(_) => CliError::Usage(error.to_string()),
            Ode(inner) => inner.into(),
            Model(inner) => inner.into(),
            Data(inner) => inner.into(),
            Path(inner) => inner.into(),
            _ => CliError::Runtime(error.to_string()),
        }
    }
}

impl From<flow_eval::EvalError> for CliError {
    fn from(error: flow_eval::EvalError) -> CliError {
        use flow_eval::EvalError::*;
        match error {
            Model(inner) => inner.into(),
            Data(inner) => inner.into(),
            Ode(inner) => inner.into(),
            Metrics(inner) => inner.into(),
            NoDensity(_) | Dimension { .. } | NonFinite { .. } | Overflowed { .. } | Draws { .. } => {
                CliError::Runtime(error.to_string())
            }
        }
    }
}

impl From<flow_metrics::MetricsError> for CliError {
    fn from(error: flow_metrics::MetricsError) -> CliError {
        CliError::Runtime(error.to_string())
    }
}

impl From<flow_viz::VizError> for CliError {
    fn from(error: flow_viz::VizError) -> CliError {
        match error {
            flow_viz::VizError::Data(inner) => inner.into(),
            _ => CliError::Runtime(error.to_string()),
        }
    }
}

impl From<flow_path::PathError> for CliError {
    fn from(error: flow_path::PathError) -> CliError {
        match error {
            flow_path::PathError::UnknownName(_)
            | flow_path::PathError::Sigma(_)
            | flow_path::PathError::BridgeSigma(_)
            | flow_path::PathError::Reschedule(_)
            | flow_path::PathError::ScoreWithoutNoise => CliError::Usage(error.to_string()),
            _ => CliError::Runtime(error.to_string()),
        }
    }
}
