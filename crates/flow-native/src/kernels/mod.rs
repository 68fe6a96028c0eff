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

    /// The CPU features this kernel's code is compiled with, as `target_feature`
    /// and `/proc/cpuinfo` name them: its own instruction sets and what the
    /// compiler may use inside them (FMA under AVX-512).
    fn required_features(self) -> &'static [&'static str] {
        match self {
            Kernel::Avx512 => &["avx512f", "avx512dq", "avx2", "fma"],
            Kernel::Avx2 => &["avx2", "fma"],
            Kernel::Neon => &["neon"],
            Kernel::Portable => &[],
        }
    }

    /// Whether the running CPU has every feature this kernel's code is compiled with.
    pub fn is_supported(self) -> bool {
        self.supported_by(cpu_has)
    }

    /// Whether a CPU with the features `has` reports could run this kernel.
    fn supported_by(self, has: impl Fn(&str) -> bool) -> bool {
        self.required_features().iter().all(|feature| has(feature))
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
        let value = std::env::var_os(KERNEL_VARIABLE);
        Kernel::from_request(value.as_ref().map(|value| value.to_string_lossy()).as_deref())
    }

    /// The kernel a `FLOWMATCH_KERNEL` value asks for: unset, empty or `auto`
    /// mean the fastest this CPU supports.
    fn from_request(value: Option<&str>) -> Result<Kernel> {
        match value {
            None | Some("" | "auto") => Ok(Kernel::detect()),
            Some(name) => Supported::new(name.parse()?).map(Supported::kernel),
        }
    }

    /// Whether this kernel beats libtorch's CPU path on the network it runs:
    /// measured in PERF.md, the portable loops do not.
    pub fn is_fast(self) -> bool {
        self != Kernel::Portable
    }
}

/// Whether the running CPU has `feature` (a name from [`Kernel::required_features`]);
/// a feature of another architecture is absent.
fn cpu_has(feature: &str) -> bool {
    #[cfg(target_arch = "x86_64")]
    match feature {
        "avx512f" => return std::arch::is_x86_feature_detected!("avx512f"),
        "avx512dq" => return std::arch::is_x86_feature_detected!("avx512dq"),
        "avx2" => return std::arch::is_x86_feature_detected!("avx2"),
        "fma" => return std::arch::is_x86_feature_detected!("fma"),
        _ => {}
    }
    #[cfg(target_arch = "aarch64")]
    if feature == "neon" {
        return std::arch::is_aarch64_feature_detected!("neon");
    }
    false
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kernel_needs_every_feature_its_code_is_compiled_with() {
        let needs: [(Kernel, &[&str]); 4] = [
            (Kernel::Avx512, &["avx512f", "avx512dq", "avx2", "fma"]),
            (Kernel::Avx2, &["avx2", "fma"]),
            (Kernel::Neon, &["neon"]),
            (Kernel::Portable, &[]),
        ];
        for (kernel, features) in needs {
            assert!(kernel.supported_by(|feature| features.contains(&feature)), "{kernel}");
            for &missing in features {
                let without = |feature: &str| feature != missing && features.contains(&feature);
                assert!(!kernel.supported_by(without), "{kernel} without {missing}");
            }
        }
        assert!(Kernel::Portable.supported_by(|_| false));
    }

    /// The CPU's features as Linux lists them, read independently of `std::arch`; `None`
    /// where there is no such list for this architecture (another OS, or an emulator
    /// showing its host's `/proc/cpuinfo`).
    fn cpuinfo_features() -> Option<Vec<String>> {
        let key = if cfg!(target_arch = "aarch64") { "Features" } else { "flags" };
        let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
        let line = text.lines().find(|line| line.split(':').next().is_some_and(|k| k.trim() == key))?;
        let names = line.split(':').nth(1)?.split_whitespace();
        // Linux calls NEON `asimd` on aarch64.
        Some(names.map(|name| if name == "asimd" { "neon".to_owned() } else { name.to_owned() }).collect())
    }

    #[test]
    fn detection_agrees_with_the_features_linux_lists() {
        let Some(listed) = cpuinfo_features() else {
            eprintln!("skipped: no feature list in /proc/cpuinfo for this architecture");
            return;
        };
        let is_listed = |feature: &str| listed.iter().any(|name| name == feature);
        for feature in Kernel::ALL.iter().flat_map(|kernel| kernel.required_features()) {
            assert_eq!(cpu_has(feature), is_listed(feature), "{feature}");
        }
        for kernel in Kernel::ALL {
            let expected = kernel.required_features().iter().all(|feature| is_listed(feature));
            assert_eq!(kernel.is_supported(), expected, "{kernel}");
        }
        assert!(!cpu_has("sse9"));
    }

    #[test]
    fn the_environment_value_names_a_kernel_or_asks_for_the_fastest() {
        for value in [None, Some(""), Some("auto")] {
            assert_eq!(Kernel::from_request(value), Ok(Kernel::detect()), "{value:?}");
        }
        for kernel in Kernel::ALL {
            match Kernel::from_request(Some(kernel.name())) {
                Ok(chosen) => assert!(chosen == kernel && kernel.is_supported()),
                Err(error) => {
                    assert!(!kernel.is_supported());
                    assert_eq!(error, NativeError::UnsupportedKernel(kernel));
                }
            }
        }
        assert!(matches!(Kernel::from_request(Some("AUTO")), Err(NativeError::UnknownKernel { .. })));
    }

    #[test]
    fn only_the_portable_kernel_is_slower_than_libtorch() {
        // Measured in PERF.md (section 12): the portable loops train at 0.4× PyTorch eager.
        for kernel in Kernel::ALL {
            assert_eq!(kernel.is_fast(), kernel != Kernel::Portable, "{kernel}");
        }
    }

    fn product(
        kernel: Supported,
        (m, n, depth): (usize, usize, usize),
        a: &[f32],
        b: &[f32],
        bias: &[f32],
    ) -> Vec<f32> {
        let mut c = vec![f32::NAN; m * n];
        let a = Strided { data: a, row: depth, col: 1 };
        matmul(
            kernel,
            (m, n, depth),
            a,
            Rows { data: b, stride: n },
            Rows { data: &mut c, stride: n },
            Some(bias),
        );
        c
    }

    #[test]
    fn the_simd_kernels_fuse_each_multiply_add_and_the_portable_one_rounds_the_product() {
        // (1 + 2⁻¹²)² = 1 + 2⁻¹¹ + 2⁻²⁴: rounded to f32 the 2⁻²⁴ is lost (a tie, to even), so
        // adding the bias −(1 + 2⁻¹¹) gives 0; one fused multiply-add keeps it.
        let x = 1.0 + 2f32.powi(-12);
        let bias = -(1.0 + 2f32.powi(-11));
        // Across full tiles and an edge of rows and columns: the x86 tiles mask their right
        // edge, NEON's leaves the columns past its last 16 to the portable loop.
        let (m, n) = (7, 70);
        for kernel in Kernel::supported() {
            let fused_columns = match kernel {
                Kernel::Portable => 0,
                Kernel::Neon => n / 16 * 16,
                Kernel::Avx512 | Kernel::Avx2 => n,
            };
            let c =
                product(Supported::new(kernel).unwrap(), (m, n, 1), &vec![x; m], &vec![x; n], &vec![bias; n]);
            for (j, &value) in c.iter().enumerate() {
                let expected = if j % n < fused_columns { 2f32.powi(-24) } else { 0.0 };
                assert_eq!(value, expected, "{kernel}: row {}, column {}", j / n, j % n);
            }
        }
    }

    #[test]
    fn empty_products_touch_nothing() {
        for kernel in Kernel::supported() {
            let kernel = Supported::new(kernel).unwrap();
            for (m, n) in [(0, 3), (3, 0)] {
                let mut c = vec![7.0f32; 4];
                let a = Strided { data: &[1.0; 6], row: 2, col: 1 };
                let b = Rows { data: &[1.0f32; 6][..], stride: 3 };
                matmul(kernel, (m, n, 2), a, b, Rows { data: &mut c, stride: 3 }, None);
                assert_eq!(c, [7.0; 4]);
            }
        }
    }
}
