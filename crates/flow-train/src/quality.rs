use flow_data::PointSource;
use flow_model::{VelocityNet, integrate_points};
use flow_ode::{Record, Solver, TimeGrid};
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::Result;

/// How to measure a model: sample size, solver, steps, seed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QualitySettings {
    pub n: usize,
    pub solver: Solver,
    pub steps: usize,
    pub seed: u64,
}

impl Default for QualitySettings {
    /// 2 000 samples through RK4 with 20 steps, as the post samples.
    fn default() -> QualitySettings {
        QualitySettings { n: 2000, solver: Solver::Rk4, steps: 20, seed: 0 }
    }
}

/// Steps of the Euler trajectory on which straightness is measured.
pub const STRAIGHTNESS_STEPS: usize = 100;

/// Sample quality of a model, always next to its noise floor and its cost.
#[derive(Clone, Debug, Serialize)]
pub struct Quality {
    pub solver: String,
    pub steps: usize,
    /// Velocity evaluations per sample.
    pub nfe: usize,
    pub n: usize,
    /// Exact W₂ between the model's samples and a target sample.
    pub w2: f64,
    /// W₂ between two independent target samples of the same size: the best a
    /// perfect model could score.
    pub w2_floor: f64,
    pub w2_ratio: f64,
    pub mmd: f64,
    pub energy: f64,
    /// E ∫ ‖(X₁ − X₀) − v(Xₜ, t)‖² dt on Euler trajectories of [`STRAIGHTNESS_STEPS`] steps.
    pub straightness: f64,
}

/// A fixed source sample, target sample and noise floor, so that several
/// models or solver settings are compared on the same numbers.
pub struct QualityProbe {
    pub sources: Array2<f32>,
    pub targets: Array2<f32>,
    pub floor: f64,
}

impl QualityProbe {
    pub fn new(source: &PointSource, target: &PointSource, n: usize, seed: u64) -> Result<QualityProbe> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(3);
        let sources = source.draw(n, &mut rng);
        let targets = target.draw(n, &mut rng);
        let other = target.draw(n, &mut rng);
        let floor = flow_metrics::wasserstein2(&targets, &other)?;
        Ok(QualityProbe { sources, targets, floor })
    }

    /// The model's samples from the probe's sources.
    pub fn samples(&self, net: &VelocityNet, solver: Solver, steps: usize) -> Result<(Array2<f32>, usize)> {
        let solution =
            integrate_points(net, &self.sources, &TimeGrid::uniform(steps)?, solver, Record::Nothing)?;
        Ok((solution.points, solution.nfe))
    }

    /// W₂ only (the cheap part of [`QualityProbe::measure`]), with the NFE it cost.
    pub fn w2(&self, net: &VelocityNet, solver: Solver, steps: usize) -> Result<(f64, usize)> {
        let (samples, nfe) = self.samples(net, solver, steps)?;
        Ok((flow_metrics::wasserstein2(&samples, &self.targets)?, nfe))
    }

    pub fn straightness(&self, net: &VelocityNet) -> Result<f64> {
        let grid = TimeGrid::uniform(STRAIGHTNESS_STEPS)?;
        let path = integrate_points(net, &self.sources, &grid, Solver::Euler, Record::Every(1))?;
        Ok(flow_metrics::straightness(&path.trajectory)?)
    }

    pub fn measure(&self, net: &VelocityNet, solver: Solver, steps: usize) -> Result<Quality> {
        let mut all = self.measure_many(net, &[(solver, steps)])?;
        all.pop().ok_or(flow_metrics::MetricsError::Empty.into())
    }

    /// [`QualityProbe::measure`] for several solver settings of one model:
    /// straightness is measured once and the W₂ assignments run in parallel.
    pub fn measure_many(&self, net: &VelocityNet, settings: &[(Solver, usize)]) -> Result<Vec<Quality>> {
        let straightness = self.straightness(net)?;
        let runs = settings
            .iter()
            .map(|&(solver, steps)| self.samples(net, solver, steps))
            .collect::<Result<Vec<_>>>()?;
        let w2s = self.w2_of(&runs.iter().map(|(samples, _)| samples).collect::<Vec<_>>())?;
        let mut measured = Vec::with_capacity(runs.len());
        for ((&(solver, steps), (samples, nfe)), w2) in settings.iter().zip(&runs).zip(w2s) {
            measured.push(Quality {
                solver: solver.name().into(),
                steps,
                nfe: *nfe,
                n: self.sources.nrows(),
                w2,
                w2_floor: self.floor,
                w2_ratio: w2 / self.floor,
                mmd: flow_metrics::mmd_rbf(samples, &self.targets)?,
                energy: flow_metrics::energy_distance(samples, &self.targets)?,
                straightness,
            });
        }
        Ok(measured)
    }

    /// W₂ of each sample set against the probe's targets, in parallel.
    pub fn w2_of(&self, samples: &[&Array2<f32>]) -> Result<Vec<f64>> {
        let pairs: Vec<_> = samples.iter().map(|s| (*s, &self.targets)).collect();
        Ok(flow_metrics::wasserstein2_many(&pairs)?)
    }
}

/// All quality measures of `net` carrying `source` toward `target`.
pub fn evaluate(
    net: &VelocityNet,
    source: &PointSource,
    target: &PointSource,
    settings: &QualitySettings,
) -> Result<Quality> {
    QualityProbe::new(source, target, settings.n, settings.seed)?.measure(
        net,
        settings.solver,
        settings.steps,
    )
}

/// W₂ between two independent target samples of size `n`.
pub fn noise_floor(target: &PointSource, n: usize, seed: u64) -> Result<f64> {
    Ok(QualityProbe::new(target, target, n, seed)?.floor)
}
