//! Matrix products on plain `f32` slices, and the choice of code that computes them.
//!
//! Four implementations of one product: AVX-512 and AVX2+FMA register tiles
//! (x86-64), NEON tiles (aarch64), and a portable loop the compiler vectorises
//! as it can. The CPU is asked at run time; a [`Supported`] kernel is the only
//! way to reach the intrinsics, so no safe caller can run an instruction the
//! CPU lacks. They differ only in the order of additions inside a product, so
//! results agree to rounding.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "aarch64")]
mod neon;

use std::fmt;
use std::str::FromStr;

use crate::{NativeError, Result};

/// A read-only matrix whose element (i, k) is `data[i * row + k * col]`: a
/// transposed operand is the same memory with the strides swapped.
#[derive(Clone, Copy)]
pub(crate) struct Strided<'a> {
    pub data: &'a [f32],
    pub row: usize,
    pub col: usize,
}

/// A row-major matrix with `n` columns in use and rows `stride` apart.
pub(crate) struct Rows<T> {
    pub data: T,
    pub stride: usize,
}

/// Which code computes products.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// 6 × 64 tiles of 512-bit registers (x86-64 with AVX-512F and DQ).
    Avx512,
    /// 6 × 16 tiles of 256-bit registers with fused multiply-add (x86-64-v3).
    Avx2,
    /// 6 × 16 tiles of 128-bit registers (aarch64).
    Neon,
    /// Plain loops, for any CPU.
    Portable,
}

/// The environment variable that overrides the kernel choice (`auto` or a kernel's name).
pub const KERNEL_VARIABLE: &str = "FLOWMATCH_KERNEL";

impl Kernel {
    /// Every kernel, fastest first.
    pub const ALL: [Kernel; 4] = [Kernel::Avx512, Kernel::Avx2, Kernel::Neon, Kernel::Portable];

    pub fn name(self) -> &'static str {
        match self {
            Kernel::Avx512 => "avx512",
            Kernel::Avx2 => "avx2",
            Kernel::Neon => "neon",
            Kernel::Portable => "portable",
        }
    }

    /// Whether the running CPU has every instruction set this kernel's code is
    /// compiled with (including what the compiler may use inside it, such as
    /// FMA under AVX-512).
    pub fn is_supported(self) -> bool {
        match self {
            Kernel::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512dq")
                    && std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "aarch64")]
            Kernel::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The fastest kernel the running CPU supports.
    pub fn detect() -> Kernel {
        Kernel::ALL.into_iter().find(|kernel| kernel.is_supported()).unwrap_or(Kernel::Portable)
    }

    /// The kernels this CPU supports, fastest first.
    pub fn supported() -> Vec<Kernel> {
        Kernel::ALL.into_iter().filter(|kernel| kernel.is_supported()).collect()
    }

    /// The kernel to use: `FLOWMATCH_KERNEL` when it is set (and not `auto`),
    /// else the fastest this CPU supports. Naming an unknown kernel, or one
    /// this CPU lacks, is an error.
    pub fn requested() -> Result<Kernel> {
        let Some(value) = std::env::var_os(KERNEL_VARIABLE) else {
            return Ok(Kernel::detect());
        };
        let text = value.to_string_lossy();
        if text.is_empty() || text == "auto" {
            return Ok(Kernel::detect());
        }
        let kernel: Kernel = text.parse()?;
        Supported::new(kernel).map(Supported::kernel)
    }

    /// Whether this kernel beats libtorch's CPU path on the network it runs:
    /// measured in PERF.md, the portable loops do not.
    pub fn is_fast(self) -> bool {
        self != Kernel::Portable
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kernel {
    type Err = NativeError;

    fn from_str(text: &str) -> Result<Kernel> {
        Kernel::ALL.into_iter().find(|kernel| kernel.name() == text).ok_or_else(|| {
            let valid: Vec<&str> = Kernel::ALL.iter().map(|kernel| kernel.name()).collect();
            NativeError::UnknownKernel { name: text.to_owned(), valid: valid.join(", ") }
        })
    }
}

/// A kernel the running CPU supports: only [`Supported::new`] makes one, after
/// asking the CPU, so code holding it may run that kernel's instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Supported(Kernel);

impl Supported {
    pub fn new(kernel: Kernel) -> Result<Supported> {
        if kernel.is_supported() {
            Ok(Supported(kernel))
        } else {
            Err(NativeError::UnsupportedKernel(kernel))
        }
    }

    pub fn kernel(self) -> Kernel {
        self.0
    }
}

/// `c[i][j] = bias[j] + Σₖ a(i, k)·b[k][j]` (bias absent: zero) for i < m, j < n, k < depth.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    kernel: Supported,
    (m, n, depth): (usize, usize, usize),
    a: Strided,
    b: Rows<&[f32]>,
    c: Rows<&mut [f32]>,
    bias: Option<&[f32]>,
) {
    if m == 0 || n == 0 {
        return;
    }
    // The tiles work on raw pointers: every access they make is inside these bounds.
    assert!(depth == 0 || a.data.len() > (m - 1) * a.row + (depth - 1) * a.col);
    assert!(depth == 0 || b.data.len() >= (depth - 1) * b.stride + n);
    assert!(c.data.len() >= (m - 1) * c.stride + n);
    assert!(bias.is_none_or(|bias| bias.len() >= n));
    match kernel.kernel() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Supported` AVX-512 kernel exists only when the CPU has
        // AVX-512F (checked by `Kernel::is_supported`), and the asserts above
        // bound every index the tiles touch.
        Kernel::Avx512 => unsafe { avx512::matmul((m, n, depth), a, b, c, bias) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, for AVX2 and FMA.
        Kernel::Avx2 => unsafe { avx2::matmul((m, n, depth), a, b, c, bias) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: as above, for NEON.
        Kernel::Neon => unsafe { neon::matmul((m, n, depth), a, b, c, bias) },
        _ => matmul_portable((m, n, depth), a, b, c, bias),
    }
}

/// The reference product; the tiles also use it for columns left over at the right edge.
pub(crate) fn matmul_portable(
    (m, n, depth): (usize, usize, usize),
    a: Strided,
    b: Rows<&[f32]>,
    c: Rows<&mut [f32]>,
    bias: Option<&[f32]>,
) {
    for i in 0..m {
        let out = &mut c.data[i * c.stride..i * c.stride + n];
        match bias {
            Some(bias) => out.copy_from_slice(&bias[..n]),
            None => out.fill(0.0),
        }
        for k in 0..depth {
            let scale = a.data[i * a.row + k * a.col];
            let row = &b.data[k * b.stride..k * b.stride + n];
            for (o, &value) in out.iter_mut().zip(row) {
                *o += scale * value;
            }
        }
    }
}

/// Adds the rows of an `m × n` row-major matrix into `sums` (length n).
pub(crate) fn column_sums(matrix: &[f32], n: usize, sums: &mut [f32]) {
    sums.fill(0.0);
    for row in matrix.chunks_exact(n) {
        for (s, &v) in sums.iter_mut().zip(row) {
            *s += v;
        }
    }
}
