//! The product in AVX2 register tiles of up to 6 rows × 16 columns, with FMA.

use std::arch::x86_64::*;

use super::{Rows, Strided};

const LANES: usize = 8;
/// A tile is up to 6 rows × 2 registers of 8 columns: 12 accumulators, 2 for
/// a row of `b` and 1 broadcast fit the 16 vector registers.
const TILE_ROWS: usize = 6;
const TILE_CHUNKS: usize = 2;

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
    /// Lanes in use per register, for the right edge (a lane is on when its
    /// sign bit is set, as `vmaskmovps` reads it).
    masks: [__m256i; TILE_CHUNKS],
}

/// As [`super::matmul_portable`].
///
/// # Safety
/// The CPU must support AVX2 and FMA, and the operands must satisfy the
/// bounds that [`super::matmul`] asserts before calling this.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn matmul(
    (m, n, depth): (usize, usize, usize),
    a: Strided,
    b: Rows<&[f32]>,
    c: Rows<&mut [f32]>,
    bias: Option<&[f32]>,
) {
    let c_base = c.data.as_mut_ptr();
    let lane_index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let mut col = 0;
    while col < n {
        let width = (n - col).min(TILE_CHUNKS * LANES);
        let chunks = width.div_ceil(LANES);
        let mut masks = [_mm256_setzero_si256(); TILE_CHUNKS];
        for (i, mask) in masks.iter_mut().enumerate().take(chunks) {
            let left = (width - i * LANES) as i32;
            *mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(left), lane_index);
        }
        let full = width == TILE_CHUNKS * LANES;
        let mut row = 0;
        while row < m {
            let rows = (m - row).min(TILE_ROWS);
            // SAFETY: row < m and col < n, so the offsets stay inside the
            // slices (the caller's bounds).
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
            // SAFETY: the tile covers `rows` rows and `width` columns inside the
            // operands (whole registers only when `full`); AVX2 and FMA are
            // present (this function's contract).
            unsafe {
                match (rows, full) {
                    (1, true) => run_chunks::<1, false>(tile, chunks),
                    (2, true) => run_chunks::<2, false>(tile, chunks),
                    (3, true) => run_chunks::<3, false>(tile, chunks),
                    (4, true) => run_chunks::<4, false>(tile, chunks),
                    (5, true) => run_chunks::<5, false>(tile, chunks),
                    (_, true) => run_chunks::<6, false>(tile, chunks),
                    (1, false) => run_chunks::<1, true>(tile, chunks),
                    (2, false) => run_chunks::<2, true>(tile, chunks),
                    (3, false) => run_chunks::<3, true>(tile, chunks),
                    (4, false) => run_chunks::<4, true>(tile, chunks),
                    (5, false) => run_chunks::<5, true>(tile, chunks),
                    (_, false) => run_chunks::<6, true>(tile, chunks),
                }
            }
            row += rows;
        }
        col += width;
    }
}

/// # Safety
/// As [`run`].
#[target_feature(enable = "avx2,fma")]
unsafe fn run_chunks<const R: usize, const MASKED: bool>(tile: Tile, chunks: usize) {
    // SAFETY: forwarded contract.
    unsafe {
        match chunks {
            1 => run::<R, 1, MASKED>(tile),
            _ => run::<R, 2, MASKED>(tile),
        }
    }
}

/// # Safety
/// AVX2 and FMA must be present; `tile` must point at R rows of `a` and `c`
/// and `depth` rows of `b`, each valid for the columns its masks select (all
/// `C` registers when `MASKED` is false).
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn run<const R: usize, const C: usize, const MASKED: bool>(tile: Tile) {
    let mut acc = [[_mm256_setzero_ps(); C]; R];
    if let Some(bias) = tile.bias {
        for c in 0..C {
            // SAFETY: the tile's bias columns.
            let value = unsafe { read::<MASKED>(bias.add(c * LANES), tile.masks[c]) };
            for row in acc.iter_mut() {
                row[c] = value;
            }
        }
    }
    for k in 0..tile.depth {
        // SAFETY: k < depth rows of `b`.
        let b_row = unsafe { tile.b.add(k * tile.ldb) };
        let mut b = [_mm256_setzero_ps(); C];
        for (c, value) in b.iter_mut().enumerate() {
            // SAFETY: inside row k of `b`.
            *value = unsafe { read::<MASKED>(b_row.add(c * LANES), tile.masks[c]) };
        }
        // SAFETY: column k of `a`.
        let a_col = unsafe { tile.a.add(k * tile.a_col) };
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: element (r, k) of `a`, r < R.
            let a = _mm256_set1_ps(unsafe { *a_col.add(r * tile.a_row) });
            for c in 0..C {
                row[c] = _mm256_fmadd_ps(a, b[c], row[c]);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (c, &value) in row.iter().enumerate() {
            // SAFETY: inside row r of `c`, the selected lanes only.
            unsafe {
                let at = tile.c.add(r * tile.ldc + c * LANES);
                if MASKED {
                    _mm256_maskstore_ps(at, tile.masks[c], value);
                } else {
                    _mm256_storeu_ps(at, value);
                }
            }
        }
    }
}

/// Eight lanes from `at`, or only those `mask` selects when `MASKED`.
///
/// # Safety
/// AVX2 must be present and `at` valid for the lanes read.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn read<const MASKED: bool>(at: *const f32, mask: __m256i) -> __m256 {
    // SAFETY: the caller's contract.
    unsafe { if MASKED { _mm256_maskload_ps(at, mask) } else { _mm256_loadu_ps(at) } }
}
