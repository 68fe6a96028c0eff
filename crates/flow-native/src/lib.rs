//! flow-native: the velocity MLP trained and evaluated on the CPU without libtorch.
//!
//! At the post's size (3 → 64 → 64 → 64 → 2, batch 2048) a training step is
//! ≈100 MFLOP spread over dozens of small tensor operations; libtorch spends
//! much of it on dispatch, temporaries and separate passes for bias,
//! activation and its backward. Here a step is one pass per layer over blocks
//! of 256 rows, each block on one thread: products with the bias folded in
//! (AVX-512 when the CPU has it), the activation and its slope from one
//! exponential, and a flat gradient summed block by block.
//!
//! Invariants: parameters use PyTorch's `nn.Sequential` flat layout (weight
//! `out × in` row-major, then bias, per linear map), so they move to and from
//! libtorch tensors by a plain copy; results do not depend on the thread
//! count (blocks are fixed and summed in order); no randomness, no IO, no
//! libtorch.

mod error;
mod kernels;
mod network;

pub use error::{NativeError, Result};
pub use kernels::{Activation, Kernel};
pub use network::{Adam, Mlp, Workspace, parameter_count};
