//! The one error type of flow-viz.

pub type Result<T> = std::result::Result<T, VizError>;

#[derive(Debug, thiserror::Error)]
pub enum VizError {
    #[error("plots need 2-D points, these are {0}-dimensional")]
    NotTwoDimensional(usize),
    #[error("nothing to draw: {0}")]
    Empty(&'static str),
    #[error("drawing failed: {0}")]
    Draw(String),
    #[error("encoding failed: {0}")]
    Encode(String),
    #[error(transparent)]
    Data(#[from] flow_data::DataError),
}

impl VizError {
    pub(crate) fn draw(error: impl std::fmt::Display) -> VizError {
        VizError::Draw(error.to_string())
    }
}
