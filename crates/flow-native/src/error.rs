//! The one error type of flow-native.

pub type Result<T> = std::result::Result<T, NativeError>;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NativeError {
    #[error("shape mismatch: {0}")]
    Shape(String),
    #[error("cannot start worker threads: {0}")]
    Threads(String),
    #[error("unknown kernel `{name}` in FLOWMATCH_KERNEL (valid: auto, {valid})")]
    UnknownKernel { name: String, valid: String },
    #[error("this CPU cannot run the {0} kernel (it supports: {supported})", supported = supported_names())]
    UnsupportedKernel(crate::Kernel),
}

fn supported_names() -> String {
    crate::Kernel::supported().iter().map(|kernel| kernel.name()).collect::<Vec<_>>().join(", ")
}
