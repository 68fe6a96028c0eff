//! Which code runs a network, decided in one place for training, sampling and evaluation,
//! and the two backends themselves: `native` (flow-native's kernels, for inference and
//! training) and `training` (one run's optimiser state on either backend).

mod flat_adam;
pub(crate) mod native;
mod training;

pub use flat_adam::FlatAdam;
pub use native::NativeField;
pub use training::{Batch, Engine, OptimiserState, Place};

use flow_native::Kernel;

use crate::{Result, VelocityNet};

/// Which code runs the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Backend {
    /// Native kernels where they apply (CPU, f32, raw time) and beat libtorch
    /// (a SIMD kernel: AVX-512, AVX2 or NEON), libtorch elsewhere.
    #[default]
    Auto,
    /// libtorch, on any device and precision.
    Libtorch,
    /// flow-native's fused CPU kernels (an error for a network they cannot run).
    Native,
}

flow_options::named_value!(Backend, "backend");

impl Backend {
    /// Every backend, in the order help lines list them.
    pub const ALL: [Backend; 3] = [Backend::Auto, Backend::Libtorch, Backend::Native];

    /// Its name, as `--backend` and run.json spell it.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Libtorch => "libtorch",
            Backend::Native => "native",
        }
    }

    /// The backend that will actually run `net` with native `kernel`: never
    /// `Auto`. Asking for `native` on a network the kernels cannot run is an
    /// error that says why.
    pub fn resolve(self, net: &VelocityNet, kernel: Kernel) -> Result<Backend> {
        match self {
            Backend::Auto if kernel.is_fast() && net.to_native().is_ok() => Ok(Backend::Native),
            Backend::Auto | Backend::Libtorch => Ok(Backend::Libtorch),
            Backend::Native => {
                net.to_native()?;
                Ok(Backend::Native)
            }
        }
    }
}

/// How a process runs its networks: the backend asked for and the native kernel
/// it may use. Built once at the edge (the command line reads `FLOWMATCH_KERNEL`
/// there, through [`Kernel::requested`]) and handed to everything that trains or
/// evaluates a network, so no library code reads the environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Runtime {
    /// The backend asked for (`auto` resolves per network).
    pub backend: Backend,
    /// The native kernel the native backend computes with.
    pub kernel: Kernel,
}

impl Runtime {
    /// `backend` with the fastest kernel this CPU supports.
    pub fn new(backend: Backend) -> Runtime {
        Runtime { backend, kernel: Kernel::detect() }
    }

    /// `backend` with the kernel `FLOWMATCH_KERNEL` asks for (the fastest this
    /// CPU supports when unset): for the command line and tests, the edges.
    pub fn requested(backend: Backend) -> Result<Runtime> {
        let kernel = match Kernel::requested() {
            Ok(kernel) => kernel,
            // libtorch runs no native kernel: a kernel this CPU lacks is no reason to refuse it.
            Err(_) if backend == Backend::Libtorch => Kernel::detect(),
            Err(e) => return Err(e.into()),
        };
        Ok(Runtime { backend, kernel })
    }

    /// The same kernel with another backend.
    pub fn with_backend(self, backend: Backend) -> Runtime {
        Runtime { backend, ..self }
    }

    /// The backend that will run `net` (see [`Backend::resolve`]).
    pub fn resolve(&self, net: &VelocityNet) -> Result<Backend> {
        self.backend.resolve(net, self.kernel)
    }
}

impl Default for Runtime {
    /// `auto` with the fastest kernel this CPU supports.
    fn default() -> Runtime {
        Runtime::new(Backend::Auto)
    }
}
