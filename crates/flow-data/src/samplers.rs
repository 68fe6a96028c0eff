//! Seeded samplers. Each returns an `n × d` array of `f32` points.
//!
//! Arithmetic is done in `f64` and rounded once, so the numbers do not depend
//! on the order of float32 operations.

use std::f64::consts::PI;

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use crate::{DataError, Result, SeededRng};

pub fn seeded_rng(seed: u64) -> SeededRng {
    SeededRng::seed_from_u64(seed)
}

fn normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    StandardNormal.sample(rng)
}

fn from_rows(rows: Vec<[f64; 2]>) -> Array2<f32> {
    Array2::from_shape_fn((rows.len(), 2), |(i, j)| rows[i][j] as f32)
}

/// Independent N(0, 1) coordinates times `scale`, in `dim` dimensions (the post's source).
pub fn gaussian<R: Rng + ?Sized>(n: usize, dim: usize, scale: f64, rng: &mut R) -> Array2<f32> {
    Array2::from_shape_simple_fn((n, dim), || (normal(rng) * scale) as f32)
}

/// The post's spiral: θ ~ U[0, 6π], point (scale/2π)(θ cos θ, θ sin θ) plus
/// 0.1·scale·N(0, 1) noise on each coordinate.
pub fn spiral<R: Rng + ?Sized>(n: usize, scale: f64, rng: &mut R) -> Array2<f32> {
    let rows = (0..n)
        .map(|_| {
            let theta = rng.random_range(0.0..6.0 * PI);
            let radius = scale / (2.0 * PI) * theta;
            [
                radius * theta.cos() + 0.1 * scale * normal(rng),
                radius * theta.sin() + 0.1 * scale * normal(rng),
            ]
        })
        .collect();
    from_rows(rows)
}

/// The two moons' evenly spaced arcs before noise: `n / 2` points on the outer
/// half circle, then the rest on the inner one (scikit-learn's and torchdyn's).
fn moon_arcs(n: usize) -> Vec<[f64; 2]> {
    let outer = n / 2;
    let inner = n - outer;
    let spaced = |count: usize, i: usize| {
        if count > 1 { PI * i as f64 / (count - 1) as f64 } else { 0.0 }
    };
    let outer_arc = (0..outer).map(|i| {
        let a = spaced(outer, i);
        [a.cos(), a.sin()]
    });
    let inner_arc = (0..inner).map(|i| {
        let a = spaced(inner, i);
        [1.0 - a.cos(), 1.0 - a.sin() - 0.5]
    });
    outer_arc.chain(inner_arc).collect()
}

/// scikit-learn's `make_moons` (evenly spaced half circles, shuffled, noise 0.2),
/// scaled by 3 and shifted by −1 as in torchcfm's toy data.
pub fn moons<R: Rng + ?Sized>(n: usize, rng: &mut R) -> Array2<f32> {
    moons_labeled(n, rng).0
}

/// [`moons`] and each point's arc: 0 outer, 1 inner (scikit-learn's labels).
pub fn moons_labeled<R: Rng + ?Sized>(n: usize, rng: &mut R) -> (Array2<f32>, Vec<u32>) {
    let mut rows: Vec<([f64; 2], u32)> = arcs_labeled(n);
    shuffle(&mut rows, rng);
    for (row, _) in &mut rows {
        for x in row.iter_mut() {
            *x = (*x + 0.2 * normal(rng)) * 3.0 - 1.0;
        }
    }
    split_labels(rows)
}

/// The arcs of [`moon_arcs`] with their labels: 0 for the outer arc, 1 for the inner.
fn arcs_labeled(n: usize) -> Vec<([f64; 2], u32)> {
    let outer = n / 2;
    moon_arcs(n).into_iter().enumerate().map(|(i, row)| (row, u32::from(i >= outer))).collect()
}

fn split_labels(rows: Vec<([f64; 2], u32)>) -> (Array2<f32>, Vec<u32>) {
    let labels = rows.iter().map(|(_, label)| *label).collect();
    (from_rows(rows.into_iter().map(|(row, _)| row).collect()), labels)
}

/// torchdyn's `generate_moons(n, noise = 0.2)` scaled by 3 and shifted by −1,
/// C2OT's target: the same evenly spaced arcs as [`moons`], but in order (the
/// outer arc first, as torchdyn returns them) and with ONE uniform [0, 0.2)
/// value per point added to both coordinates, not Gaussian noise on each.
pub fn torchdyn_moons<R: Rng + ?Sized>(n: usize, rng: &mut R) -> Array2<f32> {
    torchdyn_moons_labeled(n, rng).0
}

/// [`torchdyn_moons`] and each point's arc: 0 outer, 1 inner (torchdyn's labels).
pub fn torchdyn_moons_labeled<R: Rng + ?Sized>(n: usize, rng: &mut R) -> (Array2<f32>, Vec<u32>) {
    let rows = arcs_labeled(n)
        .into_iter()
        .map(|([x, y], label)| {
            let shift = 0.2 * rng.random::<f64>();
            ([(x + shift) * 3.0 - 1.0, (y + shift) * 3.0 - 1.0], label)
        })
        .collect();
    split_labels(rows)
}

/// Eight Gaussians with centres at radius 5 on multiples of 45° and covariance
/// √0.1·I (torchcfm's `sample_8gaussians`).
pub fn eight_gaussians<R: Rng + ?Sized>(n: usize, rng: &mut R) -> Array2<f32> {
    eight_gaussians_labeled(n, rng).0
}

/// [`eight_gaussians`] and each point's component k (its centre at angle k·45°).
pub fn eight_gaussians_labeled<R: Rng + ?Sized>(n: usize, rng: &mut R) -> (Array2<f32>, Vec<u32>) {
    let std_dev = 0.1f64.sqrt().sqrt();
    let rows = (0..n)
        .map(|_| {
            let component = rng.random_range(0..8u32);
            let angle = f64::from(component) * PI / 4.0;
            (
                [5.0 * angle.cos() + std_dev * normal(rng), 5.0 * angle.sin() + std_dev * normal(rng)],
                component,
            )
        })
        .collect();
    split_labels(rows)
}

/// The FFJORD checkerboard: eight unit squares of a 4 × 4 board, scaled by 2 (range [−4, 4]).
pub fn checkerboard<R: Rng + ?Sized>(n: usize, rng: &mut R) -> Array2<f32> {
    checkerboard_labeled(n, rng).0
}

/// [`checkerboard`] and each point's square, 0 … 7: column by column from the left, lower square first.
pub fn checkerboard_labeled<R: Rng + ?Sized>(n: usize, rng: &mut R) -> (Array2<f32>, Vec<u32>) {
    let rows = (0..n)
        .map(|_| {
            let x = rng.random::<f64>() * 4.0 - 2.0;
            let y = rng.random::<f64>() - 2.0 * f64::from(rng.random_range(0..2u8));
            let y = y + x.floor().rem_euclid(2.0);
            // Column 0 … 3 of the board, and which of its two squares (below or above y = 0).
            let column = (x.floor() + 2.0) as u32;
            let upper = u32::from(y >= 0.0);
            ([2.0 * x, 2.0 * y], 2 * column + upper)
        })
        .collect();
    split_labels(rows)
}

/// scikit-learn's `make_circles(factor = 0.5, noise = 0.08)` scaled by 3 (FFJORD's "circles").
pub fn circles<R: Rng + ?Sized>(n: usize, rng: &mut R) -> Array2<f32> {
    circles_labeled(n, rng).0
}

/// [`circles`] and each point's ring: 0 outer, 1 inner (scikit-learn's labels).
pub fn circles_labeled<R: Rng + ?Sized>(n: usize, rng: &mut R) -> (Array2<f32>, Vec<u32>) {
    let outer = n / 2;
    let inner = n - outer;
    let ring = |count: usize, radius: f64, label: u32| {
        (0..count).map(move |i| {
            let a = 2.0 * PI * i as f64 / count as f64;
            ([radius * a.cos(), radius * a.sin()], label)
        })
    };
    let mut rows: Vec<([f64; 2], u32)> = ring(outer, 1.0, 0).chain(ring(inner, 0.5, 1)).collect();
    shuffle(&mut rows, rng);
    for (row, _) in &mut rows {
        for x in row.iter_mut() {
            *x = (*x + 0.08 * normal(rng)) * 3.0;
        }
    }
    split_labels(rows)
}

/// Uniform on the square [−scale, scale]².
pub fn uniform_square<R: Rng + ?Sized>(n: usize, scale: f64, rng: &mut R) -> Array2<f32> {
    let rows = (0..n).map(|_| [rng.random_range(-scale..scale), rng.random_range(-scale..scale)]).collect();
    from_rows(rows)
}

/// log Σ exp(terms), without overflow.
fn log_sum_exp(terms: &[f64]) -> f64 {
    let top = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if top == f64::NEG_INFINITY {
        return top;
    }
    top + terms.iter().map(|t| (t - top).exp()).sum::<f64>().ln()
}

fn shuffle<T, R: Rng + ?Sized>(items: &mut [T], rng: &mut R) {
    // Fisher–Yates written out so the draw sequence is part of this crate's contract.
    for i in (1..items.len()).rev() {
        let j = rng.random_range(0..=i);
        items.swap(i, j);
    }
}

/// The sets of Tong et al.'s 2-D benchmark (torchcfm's `runner/`), each as its data module
/// draws it.
///
/// scikit-learn's `make_moons(noise = 0.05)` ×2 with x − 1 (the runner's `SKLearnDataModule`).
pub fn moons_cfm<R: Rng + ?Sized>(n: usize, rng: &mut R) -> Array2<f32> {
    let mut rows: Vec<[f64; 2]> = moon_arcs(n);
    shuffle(&mut rows, rng);
    for row in &mut rows {
        for x in row.iter_mut() {
            *x = (*x + 0.05 * normal(rng)) * 2.0;
        }
        row[0] -= 1.0;
    }
    from_rows(rows)
}

/// scikit-learn's `make_s_curve(noise = 0.05)`, its coordinates 0 and 2, ×1.5 (the runner's
/// `SKLearnDataModule`): t ~ U(−3π/2, 3π/2), (sin t, sign(t)(cos t − 1)) plus noise.
pub fn s_curve<R: Rng + ?Sized>(n: usize, rng: &mut R) -> Array2<f32> {
    let rows = (0..n)
        .map(|_| {
            let t = 3.0 * PI * (rng.random::<f64>() - 0.5);
            let (x, z) = (t.sin(), t.signum() * (t.cos() - 1.0));
            [1.5 * (x + 0.05 * normal(rng)), 1.5 * (z + 0.05 * normal(rng))]
        })
        .collect();
    from_rows(rows)
}

/// torchdyn's `generate_gaussians(n_gaussians = 8, radius = 5, std_gaussians = 1)`, the
/// runner's N → 8gaussians target: centres at radius 5 on multiples of 45°, unit variance, the
/// same number of points from each (torchdyn draws n/8 per centre; shuffled, as the runner's
/// random split leaves them), so that a sample's modes are balanced as theirs are.
pub fn eight_gaussians_torchdyn<R: Rng + ?Sized>(n: usize, rng: &mut R) -> Array2<f32> {
    let mut rows: Vec<[f64; 2]> = (0..n)
        .map(|i| {
            let angle = (i * 8 / n.max(1)) as f64 * PI / 4.0;
            [5.0 * angle.cos() + normal(rng), 5.0 * angle.sin() + normal(rng)]
        })
        .collect();
    shuffle(&mut rows, rng);
    from_rows(rows)
}

/// The Diffusion Schrödinger Bridge's moon (torchcfm's `runner/.../two_dim.py`, the source of
/// moons → 8gaussians): `make_moons(noise = 0.1)` standardised by one mean and standard deviation
/// over both coordinates, ×7. DSB takes them from its sample; these are their limits, in closed
/// form: the mean ((0 + 1) + (2/π + ½ − 2/π))/4 = 3/8, the second moment
/// (½ + 3/2 + ½ + ¾ − 2/π)/4 + 0.1² = 0.8225 − 1/(2π).
pub fn moons_dsb<R: Rng + ?Sized>(n: usize, rng: &mut R) -> Array2<f32> {
    let mean = 0.375;
    let deviation = (0.8225 - 0.5 / PI - mean * mean).sqrt();
    let mut rows: Vec<[f64; 2]> = moon_arcs(n);
    shuffle(&mut rows, rng);
    for row in &mut rows {
        for x in row.iter_mut() {
            *x = (*x + 0.1 * normal(rng) - mean) / deviation * 7.0;
        }
    }
    from_rows(rows)
}

/// DSB's 8 Gaussians (the target of moons → 8gaussians): centres at radius 4 on multiples of
/// 45°, standard deviation 0.5, all ×3 (radius 12, deviation 1.5).
pub fn eight_gaussians_dsb<R: Rng + ?Sized>(n: usize, rng: &mut R) -> Array2<f32> {
    let rows = (0..n)
        .map(|_| {
            let (x, y) = (0.5 * normal(rng), 0.5 * normal(rng));
            let angle = f64::from(rng.random_range(0..8u32)) * PI / 4.0;
            [3.0 * (x + 4.0 * angle.cos()), 3.0 * (y + 4.0 * angle.sin())]
        })
        .collect();
    from_rows(rows)
}

/// A built-in distribution, looked up by name for the CLI and training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dataset {
    Gaussian,
    Spiral,
    Moons,
    TorchdynMoons,
    EightGaussians,
    Checkerboard,
    Circles,
    Uniform,
    MoonsCfm,
    SCurve,
    EightGaussiansTorchdyn,
    MoonsDsb,
    EightGaussiansDsb,
}

impl Dataset {
    pub const ALL: [Dataset; 13] = [
        Dataset::Gaussian,
        Dataset::Spiral,
        Dataset::Moons,
        Dataset::TorchdynMoons,
        Dataset::EightGaussians,
        Dataset::Checkerboard,
        Dataset::Circles,
        Dataset::Uniform,
        Dataset::MoonsCfm,
        Dataset::SCurve,
        Dataset::EightGaussiansTorchdyn,
        Dataset::MoonsDsb,
        Dataset::EightGaussiansDsb,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Dataset::Gaussian => "gaussian",
            Dataset::Spiral => "spiral",
            Dataset::Moons => "moons",
            Dataset::TorchdynMoons => "moons-torchdyn",
            Dataset::EightGaussians => "8gaussians",
            Dataset::Checkerboard => "checkerboard",
            Dataset::Circles => "circles",
            Dataset::Uniform => "uniform",
            Dataset::MoonsCfm => "moons-cfm",
            Dataset::SCurve => "scurve",
            Dataset::EightGaussiansTorchdyn => "8gaussians-torchdyn",
            Dataset::MoonsDsb => "moons-dsb",
            Dataset::EightGaussiansDsb => "8gaussians-dsb",
        }
    }

    pub fn from_name(name: &str) -> Result<Dataset> {
        Ok(name.parse()?)
    }

    /// Whether the set exists in any dimension (only the Gaussian does).
    pub fn any_dimension(self) -> bool {
        self == Dataset::Gaussian
    }

    /// Whether [`Dataset::log_density`] knows this set's density in `dim` dimensions.
    pub fn has_density(self, dim: usize) -> bool {
        match self {
            Dataset::Gaussian => true,
            Dataset::EightGaussians | Dataset::Uniform => dim == 2,
            _ => false,
        }
    }

    /// The log-density of every row, for the sets whose density has a closed
    /// form: the standard Gaussian (any dimension), 8gaussians (an equal
    /// mixture) and the uniform square (−∞ outside it). `None` for the others.
    pub fn log_density(self, points: &Array2<f32>) -> Option<Vec<f64>> {
        if !self.has_density(points.ncols()) {
            return None;
        }
        let dim = points.ncols() as f64;
        let half_log_two_pi = 0.5 * (2.0 * PI).ln();
        let rows = points.rows().into_iter().map(|row| row.iter().map(|&v| f64::from(v)).collect::<Vec<_>>());
        match self {
            Dataset::Gaussian => Some(
                rows.map(|x| -0.5 * x.iter().map(|v| v * v).sum::<f64>() - dim * half_log_two_pi).collect(),
            ),
            Dataset::EightGaussians => {
                let variance = 0.1f64.sqrt();
                Some(
                    rows.map(|x| {
                        let terms: Vec<f64> = (0..8)
                            .map(|k| {
                                let angle = f64::from(k) * PI / 4.0;
                                let (dx, dy) = (x[0] - 5.0 * angle.cos(), x[1] - 5.0 * angle.sin());
                                -(dx * dx + dy * dy) / (2.0 * variance)
                                    - (2.0 * PI * variance).ln()
                                    - 8f64.ln()
                            })
                            .collect();
                        log_sum_exp(&terms)
                    })
                    .collect(),
                )
            }
            Dataset::Uniform => Some(
                rows.map(|x| if x.iter().all(|v| v.abs() <= 1.0) { -(4f64.ln()) } else { f64::NEG_INFINITY })
                    .collect(),
            ),
            _ => None,
        }
    }

    /// How many classes the set's natural label has (8gaussians: its component,
    /// the moons: their arc, circles: their ring, checkerboard: its square); 0 for sets without one.
    pub fn classes(self) -> usize {
        match self {
            Dataset::EightGaussians | Dataset::Checkerboard => 8,
            Dataset::Moons | Dataset::TorchdynMoons | Dataset::Circles => 2,
            _ => 0,
        }
    }

    /// As [`Dataset::sample`] (the same points from the same draws), with each
    /// point's natural label; `None` for a set without labels.
    pub fn sample_labeled<R: Rng + ?Sized>(
        self,
        n: usize,
        dim: usize,
        rng: &mut R,
    ) -> Result<Option<(Array2<f32>, Vec<u32>)>> {
        if self.classes() == 0 {
            return Ok(None);
        }
        self.sample(0, dim, rng)?;
        crate::budget::check_allocation(&format!("{n} labeled points of dimension {dim}"), n as u128 * 3, 4)?;
        Ok(match self {
            Dataset::Moons => Some(moons_labeled(n, rng)),
            Dataset::TorchdynMoons => Some(torchdyn_moons_labeled(n, rng)),
            Dataset::EightGaussians => Some(eight_gaussians_labeled(n, rng)),
            Dataset::Checkerboard => Some(checkerboard_labeled(n, rng)),
            Dataset::Circles => Some(circles_labeled(n, rng)),
            _ => None,
        })
    }

    /// `n` points in `dim` dimensions; all sets but the Gaussian are 2-D only.
    pub fn sample<R: Rng + ?Sized>(self, n: usize, dim: usize, rng: &mut R) -> Result<Array2<f32>> {
        if !self.any_dimension() && dim != 2 {
            return Err(DataError::Dimension { name: self.name(), supported: 2, requested: dim });
        }
        crate::budget::check_allocation(
            &format!("{n} points of dimension {dim}"),
            n as u128 * dim as u128,
            4,
        )?;
        Ok(match self {
            Dataset::Gaussian => gaussian(n, dim, 1.0, rng),
            Dataset::Spiral => spiral(n, 1.0, rng),
            Dataset::Moons => moons(n, rng),
            Dataset::TorchdynMoons => torchdyn_moons(n, rng),
            Dataset::EightGaussians => eight_gaussians(n, rng),
            Dataset::Checkerboard => checkerboard(n, rng),
            Dataset::Circles => circles(n, rng),
            Dataset::Uniform => uniform_square(n, 1.0, rng),
            Dataset::MoonsCfm => moons_cfm(n, rng),
            Dataset::SCurve => s_curve(n, rng),
            Dataset::EightGaussiansTorchdyn => eight_gaussians_torchdyn(n, rng),
            Dataset::MoonsDsb => moons_dsb(n, rng),
            Dataset::EightGaussiansDsb => eight_gaussians_dsb(n, rng),
        })
    }
}

flow_options::named_value!(Dataset, "dataset");

/// Where training points come from: a built-in distribution, or a user's data
/// set resampled with replacement.
#[derive(Clone, Debug)]
pub enum PointSource {
    Builtin { dataset: Dataset, dim: usize },
    Data(std::sync::Arc<Array2<f32>>),
}

impl PointSource {
    /// A built-in set in `dim` dimensions (checked: only the Gaussian has other than 2).
    pub fn builtin(dataset: Dataset, dim: usize) -> Result<PointSource> {
        dataset.sample(0, dim, &mut seeded_rng(0))?;
        Ok(PointSource::Builtin { dataset, dim })
    }

    /// The post's source: the standard Gaussian in 2-D.
    pub fn post_source() -> PointSource {
        PointSource::Builtin { dataset: Dataset::Gaussian, dim: 2 }
    }

    /// The post's target: its spiral.
    pub fn post_target() -> PointSource {
        PointSource::Builtin { dataset: Dataset::Spiral, dim: 2 }
    }

    pub fn dim(&self) -> usize {
        match self {
            PointSource::Builtin { dim, .. } => *dim,
            PointSource::Data(points) => points.ncols(),
        }
    }

    /// A short description for run records and reports.
    pub fn describe(&self) -> String {
        match self {
            PointSource::Builtin { dataset, dim } => format!("{dataset} ({dim}-D)"),
            PointSource::Data(points) => format!("data ({} points, {}-D)", points.nrows(), points.ncols()),
        }
    }

    /// `n` points; the data set is resampled uniformly with replacement (an
    /// empty one gives no points). A built-in set in a dimension it does not
    /// have (a `Builtin` made without [`PointSource::builtin`]) is an error.
    pub fn draw<R: Rng + ?Sized>(&self, n: usize, rng: &mut R) -> Result<Array2<f32>> {
        match self {
            PointSource::Builtin { dataset, dim } => dataset.sample(n, *dim, rng),
            PointSource::Data(points) if points.nrows() == 0 => Ok(Array2::zeros((0, points.ncols()))),
            PointSource::Data(points) => {
                let rows: Vec<usize> = (0..n).map(|_| rng.random_range(0..points.nrows())).collect();
                Ok(points.select(ndarray::Axis(0), &rows))
            }
        }
    }
}
