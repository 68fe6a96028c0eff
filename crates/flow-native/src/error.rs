pub type Result<T> = std::result::Result<T, NativeError>;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NativeError {
    #[error("shape mismatch: {0}")]
    Shape(String),
    #[error("cannot start worker threads: {0}")]
    Threads(String),
}
