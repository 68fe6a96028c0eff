//! How flow matching pairs sources with targets inside a minibatch: independently (the post's), by exact optimal transport, by Sinkhorn's plan, or by condition-aware transport (C2OT).

use flow_data::ConditionShape;
use flow_metrics::couplings::{
    condition_weight, ot_pairing, sinkhorn_plan, sinkhorn_plan_absolute, squared_costs,
};
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
    /// Pairs drawn from the entropic plan with this absolute regularisation of the
    /// squared costs, as POT's `sinkhorn(a, b, M, reg)` and torchcfm's SB-CFM (reg = 2σ²).
    SinkhornAbsolute(f64),
    /// Condition-aware optimal transport (C2OT, Cheng & Schwing 2025): each source
    /// takes the condition of the target drawn beside it, and a pair's cost gains
    /// w·|c₀ − c₁|². Labels must match (w = ∞: transport within each class); for
    /// continuous values w is searched per batch so that this fraction of pairs
    /// stays as cheap as the batch's own pairs (their `--r`).
    C2ot(f64),
}

/// A minibatch as drawn: sources, targets, and the targets' condition rows.
pub struct Drawn {
    pub x0: Array2<f32>,
    pub x1: Array2<f32>,
    pub c1: Array2<f32>,
}

impl Coupling {
    /// A blur of 5 % of the mean squared distance.
    pub const DEFAULT_EPSILON: f64 = 0.05;
    /// C2OT's default share of open pairings for continuous conditions (`--r 0.05`).
    pub const DEFAULT_RATIO: f64 = 0.05;
    /// C2OT's starting condition weight for continuous conditions.
    const INITIAL_WEIGHT: f64 = 100.0;
    /// The forms the command line accepts.
    pub const FORMS: [&'static str; 7] =
        ["independent", "ot", "sinkhorn", "sinkhorn:EPS", "sinkhorn-abs:REG", "c2ot", "c2ot:R"];

    pub fn parse(text: &str) -> Result<Coupling> {
        Ok(text.parse()?)
    }

    /// Refuses, before anything is drawn, a plan of `rows` points in `dim` dimensions whose
    /// working memory would not fit: the entropic plan holds its costs and plan (n² each), the
    /// exact assignment a few dozen candidates and duals per point.
    pub fn check_plan_memory(&self, rows: usize, dim: usize) -> Result<()> {
        let (rows, dim) = (rows as u128, dim as u128);
        let values = match self {
            Coupling::Independent => return Ok(()),
            Coupling::Sinkhorn(_) | Coupling::SinkhornAbsolute(_) => 2 * rows * rows,
            Coupling::Ot | Coupling::C2ot(_) => rows * (2 * dim + 64),
        };
        let what = format!("a {self} plan of {rows} points");
        Ok(flow_data::budget::check_allocation(&what, values, 8)?)
    }

    /// Whether the coupling reads the targets' conditions.
    pub fn needs_conditions(&self) -> bool {
        matches!(self, Coupling::C2ot(_))
    }

    /// Reorders (or, for Sinkhorn, redraws) the rows of `x0` and `x1` in
    /// chunks of `chunk` rows so that each chunk is coupled; draws come from `rng`.
    pub fn apply<R: Rng + ?Sized>(
        &self,
        (x0, x1): (Array2<f32>, Array2<f32>),
        chunk: usize,
        rng: &mut R,
    ) -> Result<(Array2<f32>, Array2<f32>)> {
        let c1 = Array2::zeros((x1.nrows(), 0));
        let coupled = self.apply_conditioned(Drawn { x0, x1, c1 }, ConditionShape::NONE, chunk, rng)?;
        Ok((coupled.x0, coupled.x1))
    }

    /// [`Coupling::apply`] with the targets' condition rows, which follow their targets.
    pub fn apply_conditioned<R: Rng + ?Sized>(
        &self,
        drawn: Drawn,
        shape: ConditionShape,
        chunk: usize,
        rng: &mut R,
    ) -> Result<Drawn> {
        if *self == Coupling::Independent || drawn.x0.nrows() == 0 {
            return Ok(drawn);
        }
        let chunk = chunk.max(1);
        let (mut sources, mut targets, mut conditions) = (Vec::new(), Vec::new(), Vec::new());
        for start in (0..drawn.x0.nrows()).step_by(chunk) {
            let end = (start + chunk).min(drawn.x0.nrows());
            let rows_of = |m: &Array2<f32>| m.slice(ndarray::s![start..end, ..]).to_owned();
            let (a, b, c) = (rows_of(&drawn.x0), rows_of(&drawn.x1), rows_of(&drawn.c1));
            let (rows, columns) = match self {
                Coupling::Ot => ((0..a.nrows()).collect(), ot_pairing(&a, &b)?),
                Coupling::Sinkhorn(epsilon) => draw_pairs(&sinkhorn_plan(&a, &b, *epsilon)?, rng),
                Coupling::SinkhornAbsolute(reg) => draw_pairs(&sinkhorn_plan_absolute(&a, &b, *reg)?, rng),
                Coupling::C2ot(ratio) => ((0..a.nrows()).collect(), c2ot_pairing(&a, &b, &c, shape, *ratio)?),
                Coupling::Independent => ((0..a.nrows()).collect(), (0..b.nrows()).collect()),
            };
            sources.push(a.select(Axis(0), &rows));
            targets.push(b.select(Axis(0), &columns));
            conditions.push(c.select(Axis(0), &columns));
        }
        Ok(Drawn { x0: stack_rows(&sources)?, x1: stack_rows(&targets)?, c1: stack_rows(&conditions)? })
    }
}

/// C2OT's pairing: source i carries target i's condition; sources go only to
/// targets of their label, at least cost |x₀ − x₁|² + w·|v₀ − v₁|² over the
/// continuous values v (w from [`condition_weight`]); that is plain transport
/// of the points extended by √w·v, class by class.
fn c2ot_pairing(
    x0: &Array2<f32>,
    x1: &Array2<f32>,
    c1: &Array2<f32>,
    shape: ConditionShape,
    ratio: f64,
) -> Result<Vec<usize>> {
    if shape.is_none() {
        return Err(TrainError::Config(
            "the c2ot coupling needs conditions on the target (--condition)".to_owned(),
        ));
    }
    let n = x0.nrows();
    let label_columns = usize::from(shape.classes > 0);
    let values = c1.slice(ndarray::s![.., label_columns..]).to_owned();
    let weight = if shape.values > 0 {
        let positions = squared_costs(x0, x1);
        let conditions = squared_costs(&values, &values);
        condition_weight(&positions, &conditions, n, ratio, Coupling::INITIAL_WEIGHT)?
    } else {
        0.0
    };
    let scale = weight.sqrt() as f32;
    let extend = |x: &Array2<f32>| ndarray::concatenate![Axis(1), x.view(), (&values * scale).view()];
    let (a, b) = (extend(x0), extend(x1));
    let labels: Vec<u32> = (0..n).map(|i| if label_columns > 0 { c1[[i, 0]] as u32 } else { 0 }).collect();
    let mut pairing = vec![0; n];
    let mut classes: Vec<u32> = labels.clone();
    classes.sort_unstable();
    classes.dedup();
    for class in classes {
        // The sources of a class are the rows whose (own) target has it: the same rows on both sides.
        let members: Vec<usize> = (0..n).filter(|&i| labels[i] == class).collect();
        let within = ot_pairing(&a.select(Axis(0), &members), &b.select(Axis(0), &members))?;
        for (k, &row) in members.iter().enumerate() {
            pairing[row] = members[within[k]];
        }
    }
    Ok(pairing)
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

impl flow_options::NamedOption for Coupling {
    const WHAT: &'static str = "coupling";

    fn forms() -> Vec<&'static str> {
        Coupling::FORMS.to_vec()
    }

    fn from_form(text: &str) -> Option<Coupling> {
        match text {
            "independent" => Some(Coupling::Independent),
            "ot" => Some(Coupling::Ot),
            "sinkhorn" => Some(Coupling::Sinkhorn(Coupling::DEFAULT_EPSILON)),
            "c2ot" => Some(Coupling::C2ot(Coupling::DEFAULT_RATIO)),
            other => {
                let positive = |text: &str| text.parse::<f64>().ok().filter(|e| e.is_finite() && *e > 0.0);
                if let Some(reg) = other.strip_prefix("sinkhorn-abs:") {
                    return positive(reg).map(Coupling::SinkhornAbsolute);
                }
                if let Some(ratio) = other.strip_prefix("c2ot:") {
                    return ratio.parse::<f64>().ok().filter(|r| *r > 0.0 && *r < 1.0).map(Coupling::C2ot);
                }
                other.strip_prefix("sinkhorn:").and_then(positive).map(Coupling::Sinkhorn)
            }
        }
    }
}

flow_options::from_str_by_forms!(Coupling);

impl std::fmt::Display for Coupling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Coupling::Independent => f.write_str("independent"),
            Coupling::Ot => f.write_str("ot"),
            Coupling::Sinkhorn(epsilon) => write!(f, "sinkhorn:{epsilon}"),
            Coupling::SinkhornAbsolute(reg) => write!(f, "sinkhorn-abs:{reg}"),
            Coupling::C2ot(ratio) => write!(f, "c2ot:{ratio}"),
        }
    }
}
