//! flow-model: the velocity network v(x, t) on libtorch, and its checkpoints.
//!
//! - [`ModelConfig`] / [`VelocityNet`]: the post's MLP by default (position ⊕
//!   time → 3 × 64 GELU → position), with width, depth, activation, precision
//!   and an optional sinusoidal time embedding configurable, for any dimension.
//! - [`DeviceChoice`]: `auto`, `cpu`, `cuda`, `cuda:N`; asking for a GPU that is
//!   not there is an error, never a silent CPU run.
//! - [`checkpoint`]: safetensors files whose header carries the architecture,
//!   written atomically and checked tensor by tensor on load.
//! - [`Backend`] / [`Integrator`]: which code runs a network (libtorch or the
//!   native CPU kernels), decided once per network, and host points
//!   integrated through it.
//! - [`TensorState`]: a batch of positions on the model's device, so flow-ode's
//!   solvers run on the network without host↔device copies inside the loop.
//!
//! Invariants: evaluation through [`flow_ode::VelocityField`] runs without
//! autograd; tensor names match PyTorch's `nn.Sequential` (see ARCHITECTURE.md).

mod backend;
pub mod checkpoint;
mod device;
mod error;
mod integrator;
mod mlp;
mod state;
pub mod testing;

pub use backend::{Backend, Batch, Engine, FlatAdam, NativeField, OptimiserState, Place, Runtime};
pub use device::{DeviceChoice, device_name};
pub use error::{ModelError, Result};
pub use flow_native::Kernel;
pub use integrator::{Guide, Integrator, PointsSolution, integrate_points};
pub use mlp::{Activation, Architecture, Mlp, ModelConfig, Precision, TimeEmbedding, VelocityNet};
pub use state::{TensorState, array_to_tensor, tensor_to_array};
