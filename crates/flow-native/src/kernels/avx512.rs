//! The product in AVX-512 register tiles of up to 6 rows × 64 columns.

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

/// As [`super::matmul_portable`].
///
/// # Safety
/// The CPU must support AVX-512F, and the operands must satisfy the bounds
/// that [`super::matmul`] asserts before calling this.
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
            // SAFETY: the tile covers `rows` rows and `width` masked columns
            // inside the operands; AVX-512F is present (this function's contract).
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

/// # Safety
/// As [`run`].
#[target_feature(enable = "avx512f")]
unsafe fn run_rows<const R: usize>(tile: Tile, chunks: usize) {
    // SAFETY: forwarded contract.
    unsafe {
        match chunks {
            1 => run::<R, 1>(tile),
            2 => run::<R, 2>(tile),
            3 => run::<R, 3>(tile),
            _ => run::<R, 4>(tile),
        }
    }
}

/// # Safety
/// AVX-512F must be present; `tile` must point at R rows of `a` and `c` and
/// `depth` rows of `b`, each valid for the columns its masks select.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn run<const R: usize, const C: usize>(tile: Tile) {
    let mut acc = [[_mm512_setzero_ps(); C]; R];
    if let Some(bias) = tile.bias {
        for c in 0..C {
            // SAFETY: masked load of the tile's bias columns.
            let value = unsafe { _mm512_maskz_loadu_ps(tile.masks[c], bias.add(c * LANES)) };
            for row in acc.iter_mut() {
                row[c] = value;
            }
        }
    }
    for k in 0..tile.depth {
        // SAFETY: k < depth rows of `b`.
        let b_row = unsafe { tile.b.add(k * tile.ldb) };
        let mut b = [_mm512_setzero_ps(); C];
        for (c, value) in b.iter_mut().enumerate() {
            // SAFETY: masked load inside row k of `b`.
            *value = unsafe { _mm512_maskz_loadu_ps(tile.masks[c], b_row.add(c * LANES)) };
        }
        // SAFETY: column k of `a`.
        let a_col = unsafe { tile.a.add(k * tile.a_col) };
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: element (r, k) of `a`, r < R.
            let a = _mm512_set1_ps(unsafe { *a_col.add(r * tile.a_row) });
            for c in 0..C {
                row[c] = _mm512_fmadd_ps(a, b[c], row[c]);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (c, (&value, &mask)) in row.iter().zip(&tile.masks).enumerate() {
            // SAFETY: masked store inside row r of `c`.
            unsafe { _mm512_mask_storeu_ps(tile.c.add(r * tile.ldc + c * LANES), mask, value) };
        }
    }
}
