//! What the solvers integrate: the `State` and `VelocityField` traits, and their ndarray forms.

use ndarray::Array2;

/// A batch of positions the solvers can combine linearly.
pub trait State: Clone {
    /// `self + Σ cᵢ·xᵢ`, as a new state.
    fn combine(&self, terms: &[(f64, &Self)]) -> Self;

    /// Root-mean-square of `self / (atol + rtol·max(|a|, |b|))`, elementwise:
    /// the usual error measure of adaptive solvers (≤ 1 means within tolerance).
    fn scaled_rms(&self, a: &Self, b: &Self, rtol: f64, atol: f64) -> f64;
}

macro_rules! impl_state_for_array2 {
    ($float:ty) => {
        impl State for Array2<$float> {
            fn combine(&self, terms: &[(f64, &Self)]) -> Self {
                let mut out = self.clone();
                for (coefficient, term) in terms {
                    out.scaled_add(*coefficient as $float, term);
                }
                out
            }

            fn scaled_rms(&self, a: &Self, b: &Self, rtol: f64, atol: f64) -> f64 {
                let mut sum = 0.0f64;
                ndarray::Zip::from(self).and(a).and(b).for_each(|&e, &x, &y| {
                    let scale = atol + rtol * f64::from(x.abs().max(y.abs()));
                    sum += (f64::from(e) / scale).powi(2);
                });
                (sum / self.len().max(1) as f64).sqrt()
            }
        }
    };
}

impl_state_for_array2!(f32);
impl_state_for_array2!(f64);
