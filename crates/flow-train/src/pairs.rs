use flow_data::PointSource;
use flow_model::{TensorState, VelocityNet, array_to_tensor};
use flow_ode::{Record, Solver, TimeGrid};
use rand::Rng;
use tch::{Device, Kind, Tensor};

use crate::{Result, TrainError};

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
    /// The teacher's map x₀ ↦ x₁ on a batch already on the device.
    pub fn transport(&self, teacher: &VelocityNet, x0: Tensor) -> Result<Tensor> {
        let grid = TimeGrid::uniform(self.steps)?;
        let solution = flow_ode::integrate(teacher, TensorState(x0), &grid, self.solver, Record::Nothing)?;
        Ok(solution.state.0)
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

    /// `online`, `pool` (16 384 pairs) or `pool:N`.
    pub fn parse(text: &str) -> Result<PairMode> {
        match text {
            "online" => Ok(PairMode::Online),
            "pool" => Ok(PairMode::Pool(PairMode::DEFAULT_POOL)),
            other => other
                .strip_prefix("pool:")
                .and_then(|n| n.parse().ok())
                .filter(|&n: &usize| n > 0)
                .map(PairMode::Pool)
                .ok_or_else(|| TrainError::UnknownPairMode(other.to_owned())),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            PairMode::Online => "online".into(),
            PairMode::Pool(n) => format!("pool:{n}"),
        }
    }
}

/// Batches of (x₀, x₁) pairs on the training device.
pub enum PairSource {
    /// Flow matching: sources and targets drawn independently, paired at random.
    Independent { source: PointSource, target: PointSource },
    /// Reflow, post style: each batch's targets are the teacher's images of its sources.
    Online { teacher: Box<VelocityNet>, source: PointSource, settings: TeacherSettings },
    /// Reflow, paper style: pairs generated once.
    Pool { x0: Tensor, x1: Tensor },
}

/// Pool pairs are integrated this many at a time: large enough to keep the
/// device busy, small enough to bound memory.
const POOL_CHUNK: usize = 16_384;

impl PairSource {
    /// Flow-matching pairs; source and target must have the same dimension.
    pub fn independent(source: PointSource, target: PointSource) -> Result<PairSource> {
        if source.dim() != target.dim() {
            return Err(TrainError::Config(format!(
                "source {} and target {} differ in dimension",
                source.describe(),
                target.describe()
            )));
        }
        Ok(PairSource::Independent { source, target })
    }

    /// Generates a pool of `size` teacher pairs on `device`.
    pub fn pool<R: Rng + ?Sized>(
        teacher: &VelocityNet,
        source: &PointSource,
        settings: TeacherSettings,
        size: usize,
        rng: &mut R,
    ) -> Result<PairSource> {
        let (kind, device) = (teacher.kind(), teacher.device());
        let mut starts = Vec::new();
        let mut ends = Vec::new();
        let mut made = 0;
        while made < size {
            let count = POOL_CHUNK.min(size - made);
            let x0 = array_to_tensor(&source.draw(count, rng), kind, device);
            ends.push(settings.transport(teacher, x0.shallow_clone())?);
            starts.push(x0);
            made += count;
        }
        Ok(PairSource::Pool { x0: Tensor::cat(&starts, 0), x1: Tensor::cat(&ends, 0) })
    }

    pub fn dim(&self) -> usize {
        match self {
            PairSource::Independent { target, .. } => target.dim(),
            PairSource::Online { source, .. } => source.dim(),
            PairSource::Pool { x0, .. } => x0.size()[1] as usize,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            PairSource::Independent { source, target } => {
                format!("independent pairs: {} → {}", source.describe(), target.describe())
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

    /// `n` pairs as `(x₀, x₁)`, each `n × d` of `kind` on `device`.
    pub fn next_batch<R: Rng + ?Sized>(
        &self,
        n: usize,
        rng: &mut R,
        kind: Kind,
        device: Device,
    ) -> Result<(Tensor, Tensor)> {
        match self {
            PairSource::Independent { source, target } => {
                let x0 = source.draw(n, rng);
                let x1 = target.draw(n, rng);
                let both = ndarray::concatenate![ndarray::Axis(1), x0, x1];
                let both = array_to_tensor(&both, kind, device);
                let d = x0.ncols() as i64;
                Ok((both.narrow(1, 0, d), both.narrow(1, d, d)))
            }
            PairSource::Online { teacher, source, settings } => {
                let x0 = array_to_tensor(&source.draw(n, rng), kind, device);
                let x1 = settings.transport(teacher, x0.shallow_clone())?;
                Ok((x0, x1))
            }
            PairSource::Pool { x0, x1 } => {
                let size = x0.size()[0];
                let rows: Vec<i64> = (0..n).map(|_| rng.random_range(0..size)).collect();
                let rows = Tensor::from_slice(&rows).to_device(device);
                Ok((x0.index_select(0, &rows), x1.index_select(0, &rows)))
            }
        }
    }
}
