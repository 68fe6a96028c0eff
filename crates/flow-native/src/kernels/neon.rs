//! The product in NEON register tiles of up to 6 rows × 16 columns (aarch64).

use std::arch::aarch64::*;

use super::{Rows, Strided, matmul_portable};

const LANES: usize = 4;
/// A tile is up to 6 rows × 4 registers of 4 columns: 24 accumulators, 4 for
/// a row of `b` and 1 broadcast fit the 32 vector registers.
const TILE_ROWS: usize = 6;
const TILE_CHUNKS: usize = 4;
const TILE_WIDTH: usize = TILE_CHUNKS * LANES;

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
}

/// As [`super::matmul_portable`]; columns past the last whole tile (NEON has
/// no masked loads) go through the portable loop.
///
/// # Safety
/// The CPU must support NEON, and the operands must satisfy the bounds that
/// [`super::matmul`] asserts before calling this.
#[target_feature(enable = "neon")]
pub(super) unsafe fn matmul(
    (m, n, depth): (usize, usize, usize),
    a: Strided,
    b: Rows<&[f32]>,
    c: Rows<&mut [f32]>,
    bias: Option<&[f32]>,
) {
    let tiled = n - n % TILE_WIDTH;
    let c_base = c.data.as_mut_ptr();
    for col in (0..tiled).step_by(TILE_WIDTH) {
        let mut row = 0;
        while row < m {
            let rows = (m - row).min(TILE_ROWS);
            // SAFETY: row < m and col + 16 ≤ n, so the offsets stay inside the
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
                }
            };
            // SAFETY: the tile covers `rows` rows and 16 columns inside the
            // operands; NEON is present (this function's contract).
            unsafe {
                match rows {
                    1 => run::<1>(tile),
                    2 => run::<2>(tile),
                    3 => run::<3>(tile),
                    4 => run::<4>(tile),
                    5 => run::<5>(tile),
                    _ => run::<6>(tile),
                }
            }
            row += rows;
        }
    }
    if tiled < n {
        matmul_portable(
            (m, n - tiled, depth),
            a,
            Rows { data: &b.data[tiled..], stride: b.stride },
            Rows { data: &mut c.data[tiled..], stride: c.stride },
            bias.map(|bias| &bias[tiled..]),
        );
    }
}

/// # Safety
/// NEON must be present; `tile` must point at R rows of `a` and `c` and
/// `depth` rows of `b`, each valid for 16 columns.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn run<const R: usize>(tile: Tile) {
    let mut acc = [[vdupq_n_f32(0.0); TILE_CHUNKS]; R];
    if let Some(bias) = tile.bias {
        for c in 0..TILE_CHUNKS {
            // SAFETY: the tile's bias columns.
            let value = unsafe { vld1q_f32(bias.add(c * LANES)) };
            for row in acc.iter_mut() {
                row[c] = value;
            }
        }
    }
    for k in 0..tile.depth {
        // SAFETY: k < depth rows of `b`.
        let b_row = unsafe { tile.b.add(k * tile.ldb) };
        let mut b = [vdupq_n_f32(0.0); TILE_CHUNKS];
        for (c, value) in b.iter_mut().enumerate() {
            // SAFETY: inside row k of `b`.
            *value = unsafe { vld1q_f32(b_row.add(c * LANES)) };
        }
        // SAFETY: column k of `a`.
        let a_col = unsafe { tile.a.add(k * tile.a_col) };
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: element (r, k) of `a`, r < R.
            let a = unsafe { *a_col.add(r * tile.a_row) };
            for c in 0..TILE_CHUNKS {
                row[c] = vfmaq_n_f32(row[c], b[c], a);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (c, &value) in row.iter().enumerate() {
            // SAFETY: inside row r of `c`.
            unsafe { vst1q_f32(tile.c.add(r * tile.ldc + c * LANES), value) };
        }
    }
}
