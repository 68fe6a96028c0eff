//! How flow matching pairs sources with targets inside a minibatch: independently (the post's), by exact optimal transport, or by Sinkhorn's plan.

use flow_metrics::couplings::{ot_pairing, sinkhorn_plan};
use ndarray::{Array2, Axis};
use rand::Rng;

use crate::{Result, TrainError};

/// The pairing of a batch's sources and targets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Coupling {
    /// As drawn: each source with an independent target (the post's flow matching).
    Independent,
    /// The optimal assignment of each minibatch under squared distance (OT-CFM):
    /// straighter paths without a second training stage.
    Ot,
    /// Pairs drawn from the minibatch's entropic plan with this regularisation
    /// (a fraction of the batch's mean squared distance), as torchcfm's
    /// `sinkhorn` sampler draws them.
    Sinkhorn(f64),
}

impl Coupling {
    /// A blur of 5 % of the mean squared distance.
    pub const DEFAULT_EPSILON: f64 = 0.05;
    /// The forms the command line accepts.
    pub const FORMS: [&'static str; 4] = ["independent", "ot", "sinkhorn", "sinkhorn:EPS"];

    pub fn parse(text: &str) -> Result<Coupling> {
        let unknown = || TrainError::UnknownName {
            what: "coupling",
            name: text.to_owned(),
            valid: Coupling::FORMS.join(", "),
        };
        match text {
            "independent" => Ok(Coupling::Independent),
            "ot" => Ok(Coupling::Ot),
            "sinkhorn" => Ok(Coupling::Sinkhorn(Coupling::DEFAULT_EPSILON)),
            other => other
                .strip_prefix("sinkhorn:")
                .and_then(|e| e.parse::<f64>().ok())
                .filter(|e| e.is_finite() && *e > 0.0)
                .map(Coupling::Sinkhorn)
                .ok_or_else(unknown),
        }
    }

    /// Reorders (or, for Sinkhorn, redraws) the rows of `x0` and `x1` in
    /// chunks of `chunk` rows so that each chunk is coupled; draws come from `rng`.
    pub fn apply<R: Rng + ?Sized>(
        &self,
        (x0, x1): (Array2<f32>, Array2<f32>),
        chunk: usize,
        rng: &mut R,
    ) -> Result<(Array2<f32>, Array2<f32>)> {
        if *self == Coupling::Independent || x0.nrows() == 0 {
            return Ok((x0, x1));
        }
        let chunk = chunk.max(1);
        let (mut sources, mut targets) = (Vec::new(), Vec::new());
        for start in (0..x0.nrows()).step_by(chunk) {
            let end = (start + chunk).min(x0.nrows());
            let a = x0.slice(ndarray::s![start..end, ..]).to_owned();
            let b = x1.slice(ndarray::s![start..end, ..]).to_owned();
            let (rows, columns) = match self {
                Coupling::Ot => ((0..a.nrows()).collect(), ot_pairing(&a, &b)?),
                Coupling::Sinkhorn(epsilon) => draw_pairs(&sinkhorn_plan(&a, &b, *epsilon)?, rng),
                Coupling::Independent => ((0..a.nrows()).collect(), (0..b.nrows()).collect()),
            };
            sources.push(a.select(Axis(0), &rows));
            targets.push(b.select(Axis(0), &columns));
        }
        Ok((stack_rows(&sources)?, stack_rows(&targets)?))
    }
}

/// The rows of `parts`, one after another.
pub(crate) fn stack_rows(parts: &[Array2<f32>]) -> Result<Array2<f32>> {
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    ndarray::concatenate(Axis(0), &views).map_err(|e| TrainError::Internal(e.to_string()))
}

/// n pairs (i, j) drawn with replacement with probability plan[i, j] / Σ plan.
fn draw_pairs<R: Rng + ?Sized>(plan: &Array2<f64>, rng: &mut R) -> (Vec<usize>, Vec<usize>) {
    let n = plan.ncols();
    let mut cumulative = Vec::with_capacity(plan.len());
    let mut total = 0.0;
    for &p in plan.iter() {
        total += p;
        cumulative.push(total);
    }
    (0..plan.nrows())
        .map(|_| {
            let u = rng.random::<f64>() * total;
            let k = cumulative.partition_point(|&c| c <= u).min(plan.len() - 1);
            (k / n, k % n)
        })
        .unzip()
}

impl std::str::FromStr for Coupling {
    type Err = TrainError;
    fn from_str(text: &str) -> Result<Coupling> {
        Coupling::parse(text)
    }
}

impl std::fmt::Display for Coupling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Coupling::Independent => f.write_str("independent"),
            Coupling::Ot => f.write_str("ot"),
            Coupling::Sinkhorn(epsilon) => write!(f, "sinkhorn:{epsilon}"),
        }
    }
}
