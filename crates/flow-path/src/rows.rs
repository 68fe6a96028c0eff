//! What a path combines: batches of points row by row (`Rows`), and its host form on ndarray.

use ndarray::Array2;

/// A batch of points (one per row) that a path combines linearly with one
/// coefficient per row. flow-model implements it for tensors on a device;
/// here it is implemented for host rows.
pub trait Rows: Sized {
    /// One coefficient per row, in the form the batch multiplies by.
    type Column;

    /// How many points the batch holds.
    fn rows(&self) -> usize;

    /// `values` (one per row) as a column this batch can be scaled by.
    fn column(&self, values: &[f32]) -> Self::Column;

    /// `self − other`.
    fn minus(&self, other: &Self) -> Self;

    /// `c ⊙ self`: each row scaled by its coefficient.
    fn scaled(&self, c: &Self::Column) -> Self;

    /// `self + c ⊙ other`.
    fn plus_scaled(&self, c: &Self::Column, other: &Self) -> Self;
}

impl Rows for Array2<f32> {
    type Column = Array2<f32>;

    fn rows(&self) -> usize {
        self.nrows()
    }

    fn column(&self, values: &[f32]) -> Array2<f32> {
        Array2::from_shape_fn((values.len(), 1), |(i, _)| values[i])
    }

    fn minus(&self, other: &Array2<f32>) -> Array2<f32> {
        self - other
    }

    fn scaled(&self, c: &Array2<f32>) -> Array2<f32> {
        self * c
    }

    fn plus_scaled(&self, c: &Array2<f32>, other: &Array2<f32>) -> Array2<f32> {
        // c · other first, then the sum (addition commutes exactly): the tensor form's rounding.
        let mut product = other * c;
        product.zip_mut_with(self, |p, &x| *p += x);
        product
    }
}
