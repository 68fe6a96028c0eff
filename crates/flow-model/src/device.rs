//! Devices as the user names them (`auto`, `cpu`, `cuda`, `cuda:N`), resolved against what libtorch sees.

use tch::Device;

use crate::{ModelError, Result};

/// Where the network runs, as the user names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The first GPU when libtorch sees one, else the CPU.
    Auto,
    Cpu,
    Cuda(usize),
}

impl DeviceChoice {
    /// The tch device, checking that a requested GPU exists.
    pub fn resolve(&self) -> Result<Device> {
        match self {
            DeviceChoice::Auto => Ok(Device::cuda_if_available()),
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda(index) => {
                let count = tch::Cuda::device_count() as usize;
                if *index < count {
                    Ok(Device::Cuda(*index))
                } else {
                    Err(ModelError::CudaUnavailable {
                        requested: format!("cuda:{index}"),
                        available: match count {
                            0 => "libtorch sees no CUDA device".to_owned(),
                            n => format!("only {n} CUDA device(s) are visible"),
                        },
                    })
                }
            }
        }
    }
}

impl flow_options::NamedOption for DeviceChoice {
    const WHAT: &'static str = "device";

    fn forms() -> Vec<&'static str> {
        vec!["auto", "cpu", "cuda", "cuda:N"]
    }

    /// `auto`, `cpu`, `cuda` (or `gpu`) or `cuda:N`.
    fn from_form(text: &str) -> Option<DeviceChoice> {
        match text {
            "auto" => Some(DeviceChoice::Auto),
            "cpu" => Some(DeviceChoice::Cpu),
            "cuda" | "gpu" => Some(DeviceChoice::Cuda(0)),
            other => other.strip_prefix("cuda:").and_then(|index| index.parse().ok()).map(DeviceChoice::Cuda),
        }
    }
}

flow_options::from_str_by_forms!(DeviceChoice);

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceChoice::Auto => f.write_str("auto"),
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda(index) => write!(f, "cuda:{index}"),
        }
    }
}

/// A short human name for a device: `cpu` or `cuda:0`.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".to_owned(),
    }
}
