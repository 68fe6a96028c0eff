//! Where training pairs come from: independent draws, a teacher per batch, or a pool made once.

use flow_data::{ConditionShape, ConditionedTarget, PointSource};
use flow_model::{Batch, Integrator, Place, Runtime, VelocityNet, array_to_tensor, tensor_to_array};
use flow_ode::{Record, Solver, TimeGrid};
use ndarray::Array2;
use rand::Rng;
use tch::Tensor;

use crate::coupling::{Drawn, stack_rows};
use crate::{Coupling, Result, TrainError};

/// How a teacher turns sources into targets: the post uses RK4 with 20 steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TeacherSettings {
    pub solver: Solver,
    pub steps: usize,
}

impl Default for TeacherSettings {
    fn default() -> TeacherSettings {
        TeacherSettings { solver: Solver::Rk4, steps: 20 }
    }
}

impl TeacherSettings {
    /// The teacher's map x₀ ↦ x₁ on host points, on the teacher's backend.
    pub fn transport(&self, teacher: &Integrator, x0: &Array2<f32>) -> Result<Array2<f32>> {
        let grid = TimeGrid::uniform(self.steps)?;
        Ok(teacher.integrate(x0, &grid, self.solver, Record::Nothing)?.points)
    }
}

/// Where reflow gets its pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PairMode {
    /// A fresh teacher integration for every batch (the post's sampler).
    Online,
    /// This many pairs integrated once, in large batches, then resampled
    /// (the rectified-flow paper's procedure).
    Pool(usize),
}

impl PairMode {
    /// 16 384 pairs reflow as well as 65 536 (measured in PERF.md) at a quarter of the cost.
    pub const DEFAULT_POOL: usize = 16_384;

    /// The forms the command line accepts.
    pub const FORMS: [&'static str; 3] = ["online", "pool", "pool:N"];

    /// `online`, `pool` (16 384 pairs) or `pool:N`.
    pub fn parse(text: &str) -> Result<PairMode> {
        Ok(text.parse()?)
    }

    pub fn describe(&self) -> String {
        self.to_string()
    }
}

impl flow_options::NamedOption for PairMode {
    const WHAT: &'static str = "pair mode";

    fn forms() -> Vec<&'static str> {
        PairMode::FORMS.to_vec()
    }

    fn from_form(text: &str) -> Option<PairMode> {
        match text {
            "online" => Some(PairMode::Online),
            "pool" => Some(PairMode::Pool(PairMode::DEFAULT_POOL)),
            other => other
                .strip_prefix("pool:")
                .and_then(|n| n.parse().ok())
                .filter(|&n: &usize| n > 0)
                .map(PairMode::Pool),
        }
    }
}

flow_options::from_str_by_forms!(PairMode);

impl std::fmt::Display for PairMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PairMode::Online => f.write_str("online"),
            PairMode::Pool(n) => write!(f, "pool:{n}"),
        }
    }
}

/// Batches of (x₀, x₁) pairs on the training device.
pub enum PairSource {
    /// Flow matching: sources and targets drawn independently, then paired by `coupling`
    /// (`independent`: as drawn; otherwise each `coupling_batch` rows by its plan): a batch
    /// smaller than that is served from a coupled block of `coupling_batch` pairs
    /// (torchcfm's and C2OT's large plan split over several steps), kept in `block`.
    Coupled {
        source: PointSource,
        /// The targets, and the condition of each (none for an unconditional model).
        target: ConditionedTarget,
        coupling: Coupling,
        coupling_batch: usize,
        block: Box<std::sync::Mutex<CoupledBlock>>,
    },
    /// Reflow, post style: each batch's targets are the teacher's images of its sources.
    Online { teacher: Box<Integrator>, source: PointSource, settings: TeacherSettings },
    /// Reflow, paper style: pairs generated once.
    Pool { x0: Tensor, x1: Tensor },
}

/// Pool pairs are integrated this many at a time: large enough to keep the
/// device busy, small enough to bound memory.
const POOL_CHUNK: usize = 16_384;

impl PairSource {
    /// Flow-matching pairs; source and target must have the same dimension.
    pub fn independent(source: PointSource, target: PointSource) -> Result<PairSource> {
        PairSource::coupled(source, target, Coupling::Independent, usize::MAX)
    }

    /// Reflow pairs made by `teacher` for every batch; its backend is chosen once, here, by `runtime`.
    pub fn online(
        teacher: &VelocityNet,
        runtime: Runtime,
        source: PointSource,
        settings: TeacherSettings,
    ) -> Result<PairSource> {
        Ok(PairSource::Online { teacher: Box::new(Integrator::new(teacher, runtime)?), source, settings })
    }

    /// Flow-matching pairs coupled by `coupling` in minibatches of `batch` rows;
    /// source and target must have the same dimension (two data files may not).
    pub fn coupled(
        source: PointSource,
        target: PointSource,
        coupling: Coupling,
        batch: usize,
    ) -> Result<PairSource> {
        PairSource::conditioned(source, ConditionedTarget::unconditional(target), coupling, batch)
    }

    /// As [`PairSource::coupled`], each target with its conditions (for a conditional model).
    pub fn conditioned(
        source: PointSource,
        target: ConditionedTarget,
        coupling: Coupling,
        batch: usize,
    ) -> Result<PairSource> {
        if source.dim() != target.points.dim() {
            return Err(TrainError::Dimensions { from: source.dim(), to: target.points.dim() });
        }
        if coupling.needs_conditions() && target.shape().is_none() {
            return Err(TrainError::Config(format!(
                "the {coupling} coupling needs conditions on the target (--condition)"
            )));
        }
        coupling.check_plan_memory(batch, source.dim())?;
        Ok(PairSource::Coupled {
            source,
            target,
            coupling,
            coupling_batch: batch.max(1),
            block: Box::new(std::sync::Mutex::new(CoupledBlock::default())),
        })
    }

    /// Generates a pool of `size` teacher pairs on the teacher's device, integrated on the
    /// backend `runtime` resolves for it.
    pub fn pool<R: Rng + ?Sized>(
        teacher: (&VelocityNet, Runtime),
        source: &PointSource,
        settings: TeacherSettings,
        size: usize,
        rng: &mut R,
    ) -> Result<PairSource> {
        PairSource::pool_until(teacher, source, settings, size, rng, || false)
    }

    /// As [`PairSource::pool`], giving up between chunks once `stopped()` says so
    /// (Ctrl-C must not wait for a large pool).
    pub fn pool_until<R: Rng + ?Sized>(
        (teacher, runtime): (&VelocityNet, Runtime),
        source: &PointSource,
        settings: TeacherSettings,
        size: usize,
        rng: &mut R,
        stopped: impl Fn() -> bool,
    ) -> Result<PairSource> {
        let what = format!("a pool of {size} teacher pairs");
        flow_data::budget::check_allocation(&what, size as u128 * source.dim() as u128 * 2, 4)?;
        let (kind, device) = (teacher.kind(), teacher.device());
        let field = Integrator::new(teacher, runtime)?;
        let mut starts = Vec::new();
        let mut ends = Vec::new();
        let mut made = 0;
        while made < size {
            // Between chunks only: a stop asked before the pool began still
            // yields the first chunk, and the run then checkpoints as usual.
            if made > 0 && stopped() {
                return Err(TrainError::Stopped(format!(
                    "while the teacher pool was generated ({made} of {size} pairs); this round saved nothing yet"
                )));
            }
            let count = POOL_CHUNK.min(size - made);
            let x0 = source.draw(count, rng)?;
            ends.push(array_to_tensor(&settings.transport(&field, &x0)?, kind, device));
            starts.push(array_to_tensor(&x0, kind, device));
            made += count;
        }
        Ok(PairSource::Pool { x0: Tensor::cat(&starts, 0), x1: Tensor::cat(&ends, 0) })
    }

    pub fn dim(&self) -> usize {
        match self {
            PairSource::Coupled { target, .. } => target.points.dim(),
            PairSource::Online { source, .. } => source.dim(),
            PairSource::Pool { x0, .. } => x0.size()[1] as usize,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            PairSource::Coupled { source, target, coupling, .. } => {
                let conditioned = if target.shape().is_none() {
                    String::new()
                } else {
                    format!(" conditioned on {}", target.shape().describe())
                };
                format!("{coupling} pairs: {} → {}{conditioned}", source.describe(), target.points.describe())
            }
            PairSource::Online { source, settings, .. } => format!(
                "online teacher pairs from {} ({} × {})",
                source.describe(),
                settings.solver.name(),
                settings.steps
            ),
            PairSource::Pool { x0, .. } => format!("pool of {} teacher pairs", x0.size()[0]),
        }
    }

    /// The conditions the targets carry (none but for conditional flow matching).
    pub fn condition(&self) -> ConditionShape {
        match self {
            PairSource::Coupled { target, .. } => target.shape(),
            PairSource::Online { .. } | PairSource::Pool { .. } => ConditionShape::NONE,
        }
    }

    /// `n` pairs (x₀, x₁), each `n × d`, where the training engine wants them,
    /// with their targets' condition features; each row's condition is dropped
    /// (replaced by the null condition) with probability `dropout`.
    /// Both places consume the same draws, so both engines see the same pairs.
    pub fn next_batch<R: Rng + ?Sized>(
        &self,
        n: usize,
        rng: &mut R,
        place: Place,
        dropout: f64,
    ) -> Result<Batch> {
        let (x0, x1) = match self {
            PairSource::Coupled { source, target, coupling, coupling_batch, block } => {
                let draw = |count: usize, rng: &mut R| {
                    let x0 = source.draw(count, rng)?;
                    let (x1, c1) = target.draw(count, rng)?;
                    coupling.apply_conditioned(Drawn { x0, x1, c1 }, target.shape(), *coupling_batch, rng)
                };
                let drawn = if *coupling_batch > n && *coupling != Coupling::Independent {
                    let mut block =
                        block.lock().map_err(|_| TrainError::Internal("a pair block lock".into()))?;
                    block.take(n, |rng| draw(*coupling_batch, rng), rng)?
                } else {
                    draw(n, rng)?
                };
                let shape = target.shape();
                // Drawn only for a conditional model, so unconditional runs keep their batches.
                let dropped: Vec<bool> = if shape.is_none() || dropout == 0.0 {
                    Vec::new()
                } else {
                    (0..n).map(|_| rng.random::<f64>() < dropout).collect()
                };
                let features = shape.encode(&drawn.c1, |i| dropped.get(i).copied().unwrap_or(false));
                return Ok(arrays_batch(drawn.x0, drawn.x1, features, place));
            }
            PairSource::Online { teacher, source, settings } => {
                let x0 = source.draw(n, rng)?;
                let x1 = settings.transport(teacher, &x0)?;
                return Ok(arrays_batch(x0, x1, Vec::new(), place));
            }
            PairSource::Pool { x0, x1 } => {
                let size = x0.size()[0];
                let rows: Vec<i64> = (0..n).map(|_| rng.random_range(0..size)).collect();
                let rows = Tensor::from_slice(&rows).to_device(x0.device());
                (x0.index_select(0, &rows), x1.index_select(0, &rows))
            }
        };
        Ok(match place {
            Place::Rows => {
                Batch::Rows { x0: tensor_to_array(&x0)?, x1: tensor_to_array(&x1)?, features: Vec::new() }
            }
            Place::Tensors(kind, device) => Batch::Tensors {
                x0: x0.to_kind(kind).to_device(device),
                x1: x1.to_kind(kind).to_device(device),
                features: None,
            },
        })
    }
}

/// Coupled pairs drawn a block at a time and served in order, batch by batch.
/// A run resumed from a checkpoint starts a fresh block, so it matches an
/// uninterrupted run when it stops on a block boundary (every `--checkpoint-every`
/// that is a multiple of the block's batches).
pub struct CoupledBlock {
    block: Drawn,
    served: usize,
}

impl Default for CoupledBlock {
    fn default() -> CoupledBlock {
        let empty = || Array2::zeros((0, 0));
        CoupledBlock { block: Drawn { x0: empty(), x1: empty(), c1: empty() }, served: 0 }
    }
}

impl CoupledBlock {
    /// The next `n` pairs, drawing new blocks with `draw` as the current one runs out.
    fn take<R: Rng + ?Sized>(
        &mut self,
        n: usize,
        draw: impl Fn(&mut R) -> Result<Drawn>,
        rng: &mut R,
    ) -> Result<Drawn> {
        let (mut x0, mut x1, mut c1) = (Vec::new(), Vec::new(), Vec::new());
        let mut taken = 0;
        while taken < n {
            if self.served == self.block.x0.nrows() {
                self.block = draw(rng)?;
                self.served = 0;
                if self.block.x0.nrows() == 0 {
                    return Err(TrainError::Internal("an empty block of pairs".into()));
                }
            }
            let count = (n - taken).min(self.block.x0.nrows() - self.served);
            let rows = ndarray::s![self.served..self.served + count, ..];
            x0.push(self.block.x0.slice(rows).to_owned());
            x1.push(self.block.x1.slice(rows).to_owned());
            c1.push(self.block.c1.slice(rows).to_owned());
            self.served += count;
            taken += count;
        }
        Ok(Drawn { x0: stack_rows(&x0)?, x1: stack_rows(&x1)?, c1: stack_rows(&c1)? })
    }
}

/// A batch from host pairs and their condition features (rows × features, row-major; empty for none).
fn arrays_batch(x0: Array2<f32>, x1: Array2<f32>, features: Vec<f32>, place: Place) -> Batch {
    match place {
        Place::Rows => Batch::Rows { x0, x1, features },
        Place::Tensors(kind, device) => {
            let both = array_to_tensor(&ndarray::concatenate![ndarray::Axis(1), x0, x1], kind, device);
            let d = x0.ncols() as i64;
            let rows = x0.nrows() as i64;
            let features = (!features.is_empty())
                .then(|| Tensor::from_slice(&features).view([rows, -1]).to_kind(kind).to_device(device));
            Batch::Tensors { x0: both.narrow(1, 0, d), x1: both.narrow(1, d, d), features }
        }
    }
}
