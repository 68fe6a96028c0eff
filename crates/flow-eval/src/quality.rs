//! `QualityProbe`: fixed samples and a noise floor, so models are compared on the same numbers.

use flow_data::PointSource;
use flow_model::Integrator;
use flow_ode::{Record, Solver, TimeGrid};
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::{EvalError, Result};

/// Independent draws averaged for every W₂ and for the noise floor: a single
/// W₂ between two 2 000-point spiral samples varies by ±15 % from draw to draw.
pub const FLOOR_DRAWS: usize = 4;

/// Steps of the Euler trajectory on which straightness is measured.
pub const STRAIGHTNESS_STEPS: usize = 100;

/// Sample quality of a model, always next to its noise floor and its cost.
#[derive(Clone, Debug, Serialize)]
pub struct Quality {
    pub solver: String,
    /// A stochastic solver's noise scale (absent for the deterministic ones).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise: Option<f64>,
    pub steps: usize,
    /// Velocity evaluations per sample.
    pub nfe: usize,
    pub n: usize,
    /// Exact W₂ between `n` model samples and `n` target points, mean of [`FLOOR_DRAWS`] draws.
    pub w2: f64,
    /// W₂ between two independent target samples of the same size, mean of
    /// [`FLOOR_DRAWS`] draws: what a perfect model would score.
    pub w2_floor: f64,
    pub w2_ratio: f64,
    /// MMD² and energy distance on the first draw.
    pub mmd: f64,
    pub energy: f64,
    /// E ∫ ‖(X₁ − X₀) − v(Xₜ, t)‖² dt on Euler trajectories of [`STRAIGHTNESS_STEPS`] steps.
    pub straightness: f64,
}

/// Fixed source and target samples and a noise floor, so that several models
/// or solver settings are compared on the same numbers.
pub struct QualityProbe {
    /// [`FLOOR_DRAWS`] independent source samples and target samples.
    pub sources: Vec<Array2<f32>>,
    pub targets: Vec<Array2<f32>>,
    pub floor: f64,
}

impl QualityProbe {
    pub fn new(source: &PointSource, target: &PointSource, n: usize, seed: u64) -> Result<QualityProbe> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(3);
        let sources = (0..FLOOR_DRAWS).map(|_| source.draw(n, &mut rng)).collect::<flow_data::Result<_>>()?;
        let targets: Vec<Array2<f32>> =
            (0..FLOOR_DRAWS).map(|_| target.draw(n, &mut rng)).collect::<flow_data::Result<_>>()?;
        let others: Vec<Array2<f32>> =
            (0..FLOOR_DRAWS).map(|_| target.draw(n, &mut rng)).collect::<flow_data::Result<_>>()?;
        let pairs: Vec<_> = targets.iter().zip(&others).collect();
        let floor = mean(&flow_metrics::wasserstein2_many(&pairs)?);
        Ok(QualityProbe { sources, targets, floor })
    }

    pub fn n(&self) -> usize {
        self.sources[0].nrows()
    }

    /// The model's samples from each of the probe's source draws, and the NFE per sample.
    pub fn samples(
        &self,
        model: &Integrator,
        solver: Solver,
        steps: usize,
    ) -> Result<(Vec<Array2<f32>>, usize)> {
        let grid = TimeGrid::uniform(steps)?;
        let mut nfe = 0;
        let samples = self
            .sources
            .iter()
            .map(|sources| {
                let solution = model.integrate(sources, &grid, solver, Record::Nothing)?;
                nfe = solution.nfe;
                Ok(solution.points)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((samples, nfe))
    }

    /// Mean W₂ of the model's samples against the targets, with the NFE it cost.
    pub fn w2(&self, model: &Integrator, solver: Solver, steps: usize) -> Result<(f64, usize)> {
        let (samples, nfe) = self.samples(model, solver, steps)?;
        Ok((self.w2_of(&[samples])?[0], nfe))
    }

    /// For each set of draws (one sample per target draw), the mean W₂ against
    /// the probe's targets; every assignment runs in parallel.
    pub fn w2_of(&self, sample_sets: &[Vec<Array2<f32>>]) -> Result<Vec<f64>> {
        self.check_draws(sample_sets)?;
        let pairs: Vec<_> =
            sample_sets.iter().flat_map(|samples| samples.iter().zip(&self.targets)).collect();
        let all = flow_metrics::wasserstein2_many(&pairs)?;
        Ok(all.chunks(FLOOR_DRAWS).map(mean).collect())
    }

    /// [`QualityProbe::w2_of`] for sets that change little from one to the
    /// next (one model's samples at growing step counts): each target draw's
    /// samples are one series, each assignment starting from the last one's
    /// duals; the same values, sooner. The series run in parallel.
    pub fn w2_of_alike(&self, sample_sets: &[Vec<Array2<f32>>]) -> Result<Vec<f64>> {
        self.check_draws(sample_sets)?;
        let series: Vec<(Vec<&Array2<f32>>, &Array2<f32>)> = self
            .targets
            .iter()
            .enumerate()
            .map(|(draw, target)| (sample_sets.iter().map(|samples| &samples[draw]).collect(), target))
            .collect();
        let by_draw = flow_metrics::wasserstein2_many_series(&series)?;
        Ok((0..sample_sets.len())
            .map(|set| mean(&by_draw.iter().map(|values| values[set]).collect::<Vec<f64>>()))
            .collect())
    }

    /// Every set must hold one sample per draw.
    fn check_draws(&self, sample_sets: &[Vec<Array2<f32>>]) -> Result<()> {
        let draws = self.targets.len();
        match sample_sets.iter().find(|set| set.len() != draws) {
            Some(set) => Err(EvalError::Draws { given: set.len(), draws }),
            None => Ok(()),
        }
    }

    /// Mean W₂ of one fixed sample (e.g. another program's) against every target draw.
    pub fn w2_of_sample(&self, sample: &Array2<f32>) -> Result<f64> {
        let pairs: Vec<_> = self.targets.iter().map(|t| (sample, t)).collect();
        Ok(mean(&flow_metrics::wasserstein2_many(&pairs)?))
    }

    pub fn straightness(&self, model: &Integrator) -> Result<f64> {
        let grid = TimeGrid::uniform(STRAIGHTNESS_STEPS)?;
        let path = model.integrate(&self.sources[0], &grid, Solver::Euler, Record::Every(1))?;
        Ok(flow_metrics::straightness(&path.trajectory)?)
    }

    pub fn measure(&self, model: &Integrator, solver: Solver, steps: usize) -> Result<Quality> {
        let mut all = self.measure_many(model, &[(solver, steps)])?;
        all.pop().ok_or(flow_metrics::MetricsError::Empty.into())
    }

    /// [`QualityProbe::measure`] for several solver settings of one model:
    /// straightness is measured once and the W₂ assignments run in parallel.
    pub fn measure_many(&self, model: &Integrator, settings: &[(Solver, usize)]) -> Result<Vec<Quality>> {
        let straightness = self.straightness(model)?;
        let (sample_sets, nfes): (Vec<Vec<Array2<f32>>>, Vec<usize>) = settings
            .iter()
            .map(|&(solver, steps)| self.samples(model, solver, steps))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .unzip();
        let w2s = self.w2_of(&sample_sets)?;
        // MMD and energy distance of each setting on its own thread: each is an
        // O(n²) pass that would otherwise run on one core after the assignments.
        let target = &self.targets[0];
        let kernels: Vec<(f64, f64)> = std::thread::scope(|scope| {
            let handles: Vec<_> = sample_sets
                .iter()
                .map(|samples| {
                    scope.spawn(move || -> Result<(f64, f64)> {
                        Ok((
                            flow_metrics::mmd_rbf(&samples[0], target)?,
                            flow_metrics::energy_distance(&samples[0], target)?,
                        ))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect::<Result<Vec<_>>>()
        })?;
        let mut measured = Vec::with_capacity(settings.len());
        for (((&(solver, steps), (mmd, energy)), nfe), w2) in settings.iter().zip(kernels).zip(nfes).zip(w2s)
        {
            measured.push(Quality {
                solver: solver.name().into(),
                noise: solver.noise(),
                steps,
                nfe,
                n: self.n(),
                w2,
                w2_floor: self.floor,
                w2_ratio: w2 / self.floor,
                mmd,
                energy,
                straightness,
            });
        }
        Ok(measured)
    }
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}
