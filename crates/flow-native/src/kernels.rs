//! Matrix products and activations on plain `f32` slices.
//!
//! Two implementations of each: AVX-512 (chosen at run time when the CPU has
//! it) and a portable one the compiler vectorises as it can. They differ only
//! in the order of additions inside a product, so results agree to rounding.

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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    Avx512,
    Portable,
}

impl Kernel {
    /// The fastest the running CPU supports.
    pub fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Kernel::Avx512;
        }
        Kernel::Portable
    }
}

/// `c[i][j] = bias[j] + Σₖ a(i, k)·b[k][j]` (bias absent: zero) for i < m, j < n, k < depth.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    kernel: Kernel,
    (m, n, depth): (usize, usize, usize),
    a: Strided,
    b: Rows<&[f32]>,
    c: Rows<&mut [f32]>,
    bias: Option<&[f32]>,
) {
    if m == 0 || n == 0 {
        return;
    }
    // The AVX-512 path works on raw pointers: every access below is inside these bounds.
    assert!(depth == 0 || a.data.len() > (m - 1) * a.row + (depth - 1) * a.col);
    assert!(depth == 0 || b.data.len() >= (depth - 1) * b.stride + n);
    assert!(c.data.len() >= (m - 1) * c.stride + n);
    assert!(bias.is_none_or(|bias| bias.len() >= n));
    match kernel {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Kernel::Avx512 is only chosen when the CPU has AVX-512F, and the
        // asserts above bound every index the tiles touch.
        Kernel::Avx512 => unsafe { avx512::matmul((m, n, depth), a, b, c, bias) },
        _ => matmul_portable((m, n, depth), a, b, c, bias),
    }
}

fn matmul_portable(
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

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{Rows, Strided};

    const LANES: usize = 16;
    /// A tile is up to 6 rows × 4 registers of 16 columns: 24 accumulators,
    /// 4 for a row of `b` and 1 broadcast fit the 32 vector registers.
    const TILE_ROWS: usize = 6;
    const TILE_CHUNKS: usize = 4;

    #[derive(Clone, Copy)]
    struct Tile {
        a: *const f32,
        a_row: usize,
        a_col: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        bias: Option<*const f32>,
        depth: usize,
        masks: [u16; TILE_CHUNKS],
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn matmul(
        (m, n, depth): (usize, usize, usize),
        a: Strided,
        b: Rows<&[f32]>,
        c: Rows<&mut [f32]>,
        bias: Option<&[f32]>,
    ) {
        let c_base = c.data.as_mut_ptr();
        let mut col = 0;
        while col < n {
            let width = (n - col).min(TILE_CHUNKS * LANES);
            let chunks = width.div_ceil(LANES);
            let mut masks = [0u16; TILE_CHUNKS];
            for (i, mask) in masks.iter_mut().enumerate().take(chunks) {
                let left = width - i * LANES;
                *mask = if left >= LANES { u16::MAX } else { (1u16 << left) - 1 };
            }
            let mut row = 0;
            while row < m {
                let rows = (m - row).min(TILE_ROWS);
                // SAFETY: offsets stay inside the slices (checked by the caller's asserts).
                let tile = unsafe {
                    Tile {
                        a: a.data.as_ptr().add(row * a.row),
                        a_row: a.row,
                        a_col: a.col,
                        b: b.data.as_ptr().add(col),
                        ldb: b.stride,
                        c: c_base.add(row * c.stride + col),
                        ldc: c.stride,
                        bias: bias.map(|bias| bias.as_ptr().add(col)),
                        depth,
                        masks,
                    }
                };
                unsafe {
                    match rows {
                        1 => run_rows::<1>(tile, chunks),
                        2 => run_rows::<2>(tile, chunks),
                        3 => run_rows::<3>(tile, chunks),
                        4 => run_rows::<4>(tile, chunks),
                        5 => run_rows::<5>(tile, chunks),
                        _ => run_rows::<6>(tile, chunks),
                    }
                }
                row += rows;
            }
            col += width;
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn run_rows<const R: usize>(tile: Tile, chunks: usize) {
        unsafe {
            match chunks {
                1 => run::<R, 1>(tile),
                2 => run::<R, 2>(tile),
                3 => run::<R, 3>(tile),
                _ => run::<R, 4>(tile),
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn run<const R: usize, const C: usize>(tile: Tile) {
        let mut acc = [[_mm512_setzero_ps(); C]; R];
        if let Some(bias) = tile.bias {
            for c in 0..C {
                let value = unsafe { _mm512_maskz_loadu_ps(tile.masks[c], bias.add(c * LANES)) };
                for row in acc.iter_mut() {
                    row[c] = value;
                }
            }
        }
        for k in 0..tile.depth {
            let b_row = unsafe { tile.b.add(k * tile.ldb) };
            let mut b = [_mm512_setzero_ps(); C];
            for (c, value) in b.iter_mut().enumerate() {
                *value = unsafe { _mm512_maskz_loadu_ps(tile.masks[c], b_row.add(c * LANES)) };
            }
            let a_col = unsafe { tile.a.add(k * tile.a_col) };
            for (r, row) in acc.iter_mut().enumerate() {
                let a = _mm512_set1_ps(unsafe { *a_col.add(r * tile.a_row) });
                for c in 0..C {
                    row[c] = _mm512_fmadd_ps(a, b[c], row[c]);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (c, (&value, &mask)) in row.iter().zip(&tile.masks).enumerate() {
                unsafe { _mm512_mask_storeu_ps(tile.c.add(r * tile.ldc + c * LANES), mask, value) };
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

/// The hidden layers' nonlinearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// Exact (erf) GELU, PyTorch's `nn.GELU()` default.
    Gelu,
    Silu,
    Relu,
    Tanh,
}

/// Applies `activation` to `values` in place and, when `slopes` is given (training),
/// writes its derivative at the old values there for the backward pass.
pub(crate) fn activate(
    kernel: Kernel,
    activation: Activation,
    values: &mut [f32],
    slopes: Option<&mut [f32]>,
) {
    assert!(slopes.as_ref().is_none_or(|s| s.len() == values.len()));
    match kernel {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: chosen only on CPUs with AVX-512F; the body is safe code.
        Kernel::Avx512 => unsafe { activate_avx512(activation, values, slopes) },
        _ => activate_portable(activation, values, slopes),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn activate_avx512(activation: Activation, values: &mut [f32], slopes: Option<&mut [f32]>) {
    activate_portable(activation, values, slopes)
}

/// Branch-free element functions, so the loops vectorise; without slopes the
/// compiler drops the derivative's arithmetic.
#[inline(always)]
fn activate_portable(activation: Activation, values: &mut [f32], slopes: Option<&mut [f32]>) {
    match activation {
        Activation::Gelu => each(values, slopes, gelu),
        Activation::Silu => each(values, slopes, silu),
        Activation::Relu => each(values, slopes, relu),
        Activation::Tanh => each(values, slopes, tanh),
    }
}

#[inline(always)]
fn each(values: &mut [f32], slopes: Option<&mut [f32]>, f: impl Fn(f32) -> (f32, f32)) {
    match slopes {
        Some(slopes) => {
            for (v, s) in values.iter_mut().zip(slopes.iter_mut()) {
                (*v, *s) = f(*v);
            }
        }
        None => {
            for v in values.iter_mut() {
                *v = f(*v).0;
            }
        }
    }
}

/// eˣ to about 2 ulp: round x/ln 2 to n, a degree-6 polynomial on the
/// remainder, times 2ⁿ built from its exponent bits. x is clamped to
/// [−87, 88] so 2ⁿ stays a normal number.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const ROUNDING: f32 = 12_582_912.0; // 1.5 · 2²³: adding it rounds to an integer
    const LN2_HIGH: f32 = 0.693_145_75;
    const LN2_LOW: f32 = 1.428_606_8e-6;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUNDING;
    let n = shifted - ROUNDING;
    let r = x - n * LN2_HIGH - n * LN2_LOW;
    let p = 1.0
        + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // `shifted`'s low mantissa bits hold n itself; integer arithmetic on them
    // (rather than a saturating float-to-int cast) keeps the loop vectorised.
    let exponent = shifted.to_bits().wrapping_sub(ROUNDING.to_bits()).wrapping_add(127) << 23;
    p * f32::from_bits(exponent)
}

/// GELU and its slope from one exponential: Φ(z) by Abramowitz & Stegun
/// 7.1.26 (|error| < 1.5e-7), φ(z) = e^{−z²/2}/√(2π).
#[inline(always)]
fn gelu(z: f32) -> (f32, f32) {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [0.254_829_6, -0.284_496_74, 1.421_413_8, -1.453_152, 1.061_405_4];
    let u = z.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let gauss = exp(-0.5 * z * z);
    let t = 1.0 / (1.0 + P * u);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    // The lower tail directly, so Φ keeps its relative accuracy for negative z.
    let tail = 0.5 * poly * gauss;
    let cdf = if z < 0.0 { tail } else { 1.0 - tail };
    let density = gauss * 0.398_942_3; // 1/√(2π)
    (z * cdf, cdf + z * density)
}

#[inline(always)]
fn silu(z: f32) -> (f32, f32) {
    let sigmoid = 1.0 / (1.0 + exp(-z));
    (z * sigmoid, sigmoid * (1.0 + z * (1.0 - sigmoid)))
}

#[inline(always)]
fn relu(z: f32) -> (f32, f32) {
    if z > 0.0 { (z, 1.0) } else { (0.0, 0.0) }
}

#[inline(always)]
fn tanh(z: f32) -> (f32, f32) {
    let e = exp(-2.0 * z.abs());
    let value = ((1.0 - e) / (1.0 + e)).copysign(z);
    (value, 1.0 - value * value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std() {
        for i in -800..=800 {
            let x = i as f32 * 0.1;
            let relative = (exp(x) - x.exp()).abs() / x.exp();
            assert!(relative < 4e-7, "exp({x}): {} vs {}", exp(x), x.exp());
        }
    }
}
