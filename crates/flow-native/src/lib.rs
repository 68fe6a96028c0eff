//! flow-native: the velocity MLP trained and evaluated on the CPU without libtorch.
//!
//! At the post's size (3 → 64 → 64 → 64 → 2, batch 2048) a training step is
//! ≈100 MFLOP spread over dozens of small tensor operations; libtorch spends
//! much of it on dispatch, temporaries and separate passes for bias,
//! activation and its backward. Here a step is one pass per layer over blocks
//! of 256 rows, each block on one thread: products with the bias folded in
//! (AVX-512, AVX2+FMA or NEON register tiles, whichever the CPU has), the
//! activation and its slope from one exponential, and a flat gradient summed
//! block by block.
//!
//! Invariants: parameters use PyTorch's `nn.Sequential` flat layout (weight
//! `out × in` row-major, then bias, per linear map), so they move to and from
//! libtorch tensors by a plain copy; results do not depend on the thread
//! count (blocks are fixed and summed in order); no randomness, no IO, no
//! libtorch; no safe function runs an instruction the CPU lacks (kernels are
//! checked against the CPU when a [`Workspace`] is made).

#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

mod activation;
mod error;
mod kernels;
mod network;

pub use activation::Activation;
pub use error::{NativeError, Result};
pub use kernels::{KERNEL_VARIABLE, Kernel};
pub use network::{Adam, Mlp, Workspace, parameter_count};
