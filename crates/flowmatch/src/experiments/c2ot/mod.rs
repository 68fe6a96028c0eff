//! `flowmatch reproduce --experiment c2ot`: C2OT's unconditional 8gaussians → moons table
//! (Cheng & Schwing 2025, Figure 1), trained and measured on their protocol, ours beside theirs.
//!
//! Their protocol, read from their `moons.py` and `playground_utils.py`:
//! sources from 8gaussians (torchcfm's: radius 5, covariance √0.1·I), targets
//! from torchdyn's moons ·3 − 1 ([`Dataset::TorchdynMoons`]), 20 000 Adam steps
//! at batch 256, and for each of 10 seeds: 10 000 fresh sources integrated by
//! Euler in one step and by dopri5 at atol = rtol = 1e-4, each scored by POT's
//! `emd2` (squared cost, no square root: W2²) against 10 000 fresh targets.
//! What differs is said in the table's notes: our network and learning rates,
//! and where our plan is computed on fewer points than theirs.

pub mod conditional;
pub mod table;

use std::path::PathBuf;
use std::time::Instant;

use flow_data::{Dataset, PointSource};
use flow_model::{Integrator, ModelConfig, VelocityNet};
use flow_ode::{Record, Solver, SolverKind, TimeGrid};
use flow_train::{
    Coupling, PairMode, PairSource, PointsRef, Recipe, ReflowSettings, RunMetadata, RunOptions, TrainConfig,
};
use ndarray::Array2;

use self::table::{Cell, MethodRow, StepsRow, Table};
use super::write_table;
use crate::cli::ReproduceArgs;
use crate::commands::{self, device_label};
use crate::error::{CliError, Result};

/// The methods of the table, in its order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    FlowMatching,
    Ot,
    Sinkhorn,
    /// Reflow of the same seed's flow-matching model: a one-step method by distillation.
    Reflow,
    /// Reflow of the same seed's OT model: whether the two straightenings compose.
    ReflowOt,
}

impl Method {
    pub const ALL: [Method; 5] =
        [Method::FlowMatching, Method::Ot, Method::Sinkhorn, Method::Reflow, Method::ReflowOt];

    pub fn name(self) -> &'static str {
        match self {
            Method::FlowMatching => "flow matching (independent)",
            Method::Ot => "minibatch OT",
            Method::Sinkhorn => "minibatch Sinkhorn (ε = 0.05)",
            Method::Reflow => "reflow of flow matching",
            Method::ReflowOt => "reflow of minibatch OT",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Method::FlowMatching => "fm",
            Method::Ot => "ot",
            Method::Sinkhorn => "sinkhorn",
            Method::Reflow => "reflow",
            Method::ReflowOt => "reflow-ot",
        }
    }

    /// The model a reflow method distils (of the same seed); `None` for the others.
    fn teacher(self) -> Option<Method> {
        match self {
            Method::Reflow => Some(Method::FlowMatching),
            Method::ReflowOt => Some(Method::Ot),
            Method::FlowMatching | Method::Ot | Method::Sinkhorn => None,
        }
    }

    /// C2OT's Figure 1 (unconditional): W2² mean ± std over 10 runs, Euler 1 step and adaptive.
    pub fn published(self) -> Option<(Cell, Cell)> {
        match self {
            Method::FlowMatching => Some((Cell::new(6.232, 0.186), Cell::new(0.120, 0.045))),
            Method::Ot => Some((Cell::new(0.072, 0.025), Cell::new(0.050, 0.040))),
            Method::Sinkhorn | Method::Reflow | Method::ReflowOt => None,
        }
    }
}

/// The sizes of a run: C2OT's, or a quick one for tests.
#[derive(Clone, Copy, Debug)]
pub struct Protocol {
    pub seeds: usize,
    /// Sinkhorn's plan costs about a hundred training steps at batch 256, so fewer seeds train it.
    pub sinkhorn_seeds: usize,
    pub steps: usize,
    pub batch: usize,
    /// Rows per optimal-transport plan (C2OT: 1 024, split over four steps).
    pub ot_batch: usize,
    pub reflow_steps: usize,
    pub reflow_pool: usize,
    /// Fresh sources integrated, and fresh targets they are scored against.
    pub eval_points: usize,
}

impl Protocol {
    pub const FULL: Protocol = Protocol {
        seeds: 10,
        sinkhorn_seeds: 3,
        steps: 20_000,
        batch: 256,
        ot_batch: 256,
        reflow_steps: 5_000,
        reflow_pool: PairMode::DEFAULT_POOL,
        eval_points: 10_000,
    };
    pub const QUICK: Protocol = Protocol {
        seeds: 2,
        sinkhorn_seeds: 1,
        steps: 300,
        batch: 256,
        ot_batch: 256,
        reflow_steps: 100,
        reflow_pool: 2048,
        eval_points: 600,
    };

    fn seeds_of(&self, method: Method) -> usize {
        if method == Method::Sinkhorn { self.sinkhorn_seeds } else { self.seeds }
    }
}

/// Our network for this task: wider than the post's (C2OT's is a 128-wide residual MLP of 400k weights).
pub fn model_config() -> ModelConfig {
    ModelConfig { architecture: flow_model::Architecture::mlp(128, 3), ..ModelConfig::default() }
}

/// Our learning rates: the tuned recipe (C2OT: Adam at a constant 3e-4).
const RECIPE: Recipe = Recipe::Tuned;
/// Euler step counts of the sweep.
pub const SWEEP_STEPS: [usize; 5] = [1, 2, 4, 8, 16];
/// C2OT's dopri5 tolerances.
const TOLERANCE: f64 = 1e-4;

/// dopri5 at C2OT's tolerances.
fn dopri5() -> Result<Solver> {
    Ok(Solver::new(SolverKind::Dopri5, TOLERANCE, TOLERANCE)?)
}

fn source() -> PointSource {
    PointSource::Builtin { dataset: Dataset::EightGaussians, dim: 2 }
}

/// What the checkpoints of this table record: 8gaussians → torchdyn's moons.
fn metadata() -> RunMetadata {
    RunMetadata::flow_matching(
        PointsRef::Builtin(Dataset::EightGaussians),
        Some(PointsRef::Builtin(Dataset::TorchdynMoons)),
    )
}

fn target() -> PointSource {
    PointSource::Builtin { dataset: Dataset::TorchdynMoons, dim: 2 }
}

pub fn run(args: ReproduceArgs) -> Result<()> {
    let started = Instant::now();
    let (device, runtime) = commands::runtime(&args.runtime)?;
    let protocol = if args.quick { Protocol::QUICK } else { Protocol::FULL };
    let out = args.out.clone();
    std::fs::create_dir_all(&out).map_err(|e| CliError::runtime(format!("{}: {e}", out.display())))?;
    let runs = Runs { out: out.clone(), device, runtime, protocol, retrain: args.retrain, quick: args.quick };

    let mut rows = Vec::new();
    let mut first_models = Vec::new();
    let mut reused = 0;
    for method in Method::ALL {
        let mut euler = Vec::new();
        let mut adaptive = Vec::new();
        let mut nfe = Vec::new();
        for seed in 0..protocol.seeds_of(method) as u64 {
            let clock = Instant::now();
            if !runs.retrain && runs.dir(method, seed).join(flow_train::MODEL_FILE).is_file() {
                reused += 1;
            }
            let model = Integrator::new(&runs.model(method, seed)?, runtime)?;
            let scores = runs.scores(method, seed, &model)?;
            eprintln!(
                "c2ot: {} seed {seed}: W2² {:.4} (1 step), {:.4} (dopri5, {} NFE) ({:.1} s)",
                method.name(),
                scores.euler,
                scores.adaptive,
                scores.nfe,
                clock.elapsed().as_secs_f64()
            );
            euler.push(scores.euler);
            adaptive.push(scores.adaptive);
            nfe.push(scores.nfe as f64);
            if seed == 0 {
                first_models.push((method, model));
            }
        }
        rows.push(MethodRow { method, euler, adaptive, nfe });
    }
    let sweep = first_models
        .iter()
        .map(|(method, model)| sweep_row(*method, model, protocol.eval_points))
        .collect::<Result<Vec<_>>>()?;
    let figure = draw_figure(&first_models)?;
    flow_viz::save_png(&out.join(FIGURE_FILE), &figure)?;

    let table = Table {
        quick: args.quick,
        device: device_label(device),
        threads: tch::get_num_threads(),
        protocol,
        model: model_config(),
        flow_rate: RECIPE.flow_matching(),
        reflow_rate: RECIPE.reflow(),
        rows,
        sweep,
        figure: FIGURE_FILE,
        seconds: started.elapsed().as_secs_f64(),
        reused: (reused, Method::ALL.iter().map(|&m| protocol.seeds_of(m)).sum()),
    };
    write_table(&out.join(TABLE_FILE), &table::render(&table), "c2ot", started)
}

pub const TABLE_FILE: &str = "c2ot.md";
pub const FIGURE_FILE: &str = "c2ot.png";

/// Trains (or reloads) one model per method and seed, under `OUT/checkpoints/`
/// (and, in [`conditional`], one per condition, method and seed).
struct Runs {
    out: PathBuf,
    device: tch::Device,
    runtime: flow_model::Runtime,
    protocol: Protocol,
    retrain: bool,
    quick: bool,
}

impl Runs {
    fn dir(&self, method: Method, seed: u64) -> PathBuf {
        let p = self.protocol;
        let quick = if self.quick { "-quick" } else { "" };
        // The name carries what changes the result, so a checkpoint is only reused for the same run.
        let name = match method.teacher() {
            Some(teacher) => {
                let teacher = self.dir(teacher, seed);
                let teacher = teacher.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned());
                format!(
                    "c2ot-{}{}x{}-pool{}-of-{teacher}",
                    method.slug(),
                    p.reflow_steps,
                    p.batch,
                    p.reflow_pool
                )
            }
            None => format!("c2ot-{}-{}x{}-ot{}", method.slug(), p.steps, p.batch, p.ot_batch),
        };
        self.out
            .join("checkpoints")
            .join(format!("{name}-h{}-seed{seed}{quick}", model_config().architecture.as_mlp().hidden))
    }

    fn scores(&self, method: Method, seed: u64, model: &Integrator) -> Result<Scores> {
        let dir = self.dir(method, seed);
        Scores::kept_or_measured(&dir, self.protocol.eval_points, self.retrain, || {
            score(model, self.protocol.eval_points, seed)
        })
    }

    /// The model kept in `dir` by an earlier run, unless `--retrain`; else `None`,
    /// and the scores kept there are forgotten (a new model will be trained).
    fn kept_model(&self, dir: &std::path::Path, label: &str) -> Result<Option<VelocityNet>> {
        let model = dir.join(flow_train::MODEL_FILE);
        if !self.retrain && model.is_file() {
            eprintln!("{label}: reusing {} (--retrain to train again)", model.display());
            return Ok(Some(flow_model::checkpoint::load(&model, self.device)?.net));
        }
        Scores::forget(dir);
        Ok(None)
    }

    /// Flow matching on the protocol's steps and batch, at our recipe's rate.
    fn train_config(&self, seed: u64) -> TrainConfig {
        TrainConfig { seed, ..RECIPE.flow_matching_config(self.protocol.steps, self.protocol.batch) }
    }

    fn model(&self, method: Method, seed: u64) -> Result<VelocityNet> {
        let dir = self.dir(method, seed);
        if let Some(net) = self.kept_model(&dir, "c2ot")? {
            return Ok(net);
        }
        let p = self.protocol;
        let config = self.train_config(seed);
        let metadata = metadata();
        let options = |label: String, metadata: RunMetadata| RunOptions {
            out_dir: Some(dir.clone()),
            show_progress: true,
            label,
            metadata,
            runtime: self.runtime,
            ..RunOptions::default()
        };
        if let Some(of) = method.teacher() {
            let teacher = self.model(of, seed)?;
            let settings = ReflowSettings {
                mode: PairMode::Pool(p.reflow_pool),
                train: TrainConfig { seed, ..RECIPE.reflow_config(p.reflow_steps, p.batch) },
                ..ReflowSettings::default()
            };
            let metadata = RunMetadata::reflow(&metadata, &self.dir(of, seed).join(flow_train::MODEL_FILE));
            let label = format!("c2ot {}, seed {seed}", method.slug());
            let (net, _) = flow_train::reflow(&teacher, &source(), &settings, &options(label, metadata))?;
            return Ok(net);
        }
        let coupling = match method {
            Method::Ot => Coupling::Ot,
            Method::Sinkhorn => Coupling::Sinkhorn(Coupling::DEFAULT_EPSILON),
            _ => Coupling::Independent,
        };
        let pairs = PairSource::coupled(source(), target(), coupling, p.ot_batch)?;
        tch::manual_seed(seed as i64);
        let mut net = VelocityNet::new(model_config(), self.device)?;
        let label = format!("c2ot {}, seed {seed}", method.slug());
        flow_train::train(&mut net, &pairs, &config, &options(label, metadata))?;
        Ok(net)
    }
}

/// The fresh sources and targets of `seed`'s evaluation.
fn evaluation_draws(n: usize, seed: u64) -> Result<(Array2<f32>, Array2<f32>)> {
    let mut rng = flow_data::seeded_rng(seed + 1_000);
    let x0 = source().draw(n, &mut rng)?;
    Ok((x0, target().draw(n, &mut rng)?))
}

/// One model's scores on C2OT's evaluation.
#[derive(serde::Serialize, serde::Deserialize)]
struct Scores {
    eval_points: usize,
    euler: f64,
    adaptive: f64,
    nfe: usize,
}

/// Scores are kept beside the model they measure, so that a rerun that
/// reuses the model (to add a method, or redraw the table) does not measure it again.
const SCORES_FILE: &str = "c2ot-scores.json";

impl Scores {
    /// The scores of the model in `dir`: read back when they were measured on
    /// `eval_points` points before (and `retrain` is off), else measured and kept.
    fn kept_or_measured(
        dir: &std::path::Path,
        eval_points: usize,
        retrain: bool,
        measure: impl FnOnce() -> Result<Scores>,
    ) -> Result<Scores> {
        let file = dir.join(SCORES_FILE);
        if !retrain {
            let kept =
                std::fs::read(&file).ok().and_then(|bytes| serde_json::from_slice::<Scores>(&bytes).ok());
            if let Some(kept) = kept.filter(|s| s.eval_points == eval_points) {
                return Ok(kept);
            }
        }
        let scores = measure()?;
        let text = serde_json::to_string_pretty(&scores).map_err(|e| CliError::runtime(e.to_string()))?;
        flow_data::files::write_atomically(&file, |out| out.write_all(text.as_bytes()))?;
        Ok(scores)
    }

    /// Scores of an earlier model in `dir` no longer apply once it is trained again.
    fn forget(dir: &std::path::Path) {
        let _ = std::fs::remove_file(dir.join(SCORES_FILE));
    }
}

/// C2OT's evaluation: `n` fresh sources integrated by Euler × 1 and by dopri5,
/// each scored by exact W2² against `n` fresh targets. The draws depend on
/// the seed only (theirs reseed before evaluating), not on the method.
fn score(model: &Integrator, n: usize, seed: u64) -> Result<Scores> {
    let (x0, x1) = evaluation_draws(n, seed)?;
    let one = TimeGrid::uniform(1)?;
    let euler = model.integrate(&x0, &one, Solver::Euler, Record::Nothing)?;
    let adaptive = model.integrate(&x0, &one, dopri5()?, Record::Nothing)?;
    let w2 = flow_metrics::wasserstein2_many(&[(&euler.points, &x1), (&adaptive.points, &x1)])?;
    Ok(Scores { eval_points: n, euler: w2[0].powi(2), adaptive: w2[1].powi(2), nfe: adaptive.nfe })
}

/// W2² by Euler step count, and straightness, of one method's seed-0 model, on
/// the table's seed-0 draws (so its one-step value repeats the table's).
fn sweep_row(method: Method, model: &Integrator, n: usize) -> Result<StepsRow> {
    let (x0, x1) = evaluation_draws(n, 0)?;
    let ends = SWEEP_STEPS
        .iter()
        .map(|&steps| {
            Ok(model.integrate(&x0, &TimeGrid::uniform(steps)?, Solver::Euler, Record::Nothing)?.points)
        })
        .collect::<Result<Vec<Array2<f32>>>>()?;
    let pairs: Vec<_> = ends.iter().map(|end| (end, &x1)).collect();
    let w2_squared = flow_metrics::wasserstein2_many(&pairs)?.into_iter().map(|w| w * w).collect();
    let path = model.integrate(&x0, &TimeGrid::uniform(100)?, Solver::Euler, Record::Every(1))?;
    Ok(StepsRow { method, w2_squared, straightness: flow_metrics::straightness(&path.trajectory)? })
}

/// Drawn paths per panel.
const DRAWN_PATHS: usize = 400;
/// The panels span [−7, 7]², as C2OT's figures do.
const FIGURE_RANGE: f64 = 7.0;

/// One row per method (seed 0): its paths in one Euler step and by dopri5.
fn draw_figure(models: &[(Method, Integrator)]) -> Result<flow_viz::RgbImage> {
    let x0 = source().draw(DRAWN_PATHS, &mut flow_data::seeded_rng(3_000))?;
    let mut rows = Vec::new();
    for (method, model) in models {
        let one = model.integrate(&x0, &TimeGrid::uniform(1)?, Solver::Euler, Record::Every(1))?;
        // Every accepted dopri5 step is recorded, so curved paths show as curves.
        let fine = model.integrate(&x0, &TimeGrid::uniform(1)?, dopri5()?, Record::Every(1))?;
        let left = flow_viz::trajectories_within(
            &one.trajectory,
            DRAWN_PATHS,
            &format!("{}, 1 step", method.slug()),
            FIGURE_RANGE,
        )?;
        let right = flow_viz::trajectories_within(
            &fine.trajectory,
            DRAWN_PATHS,
            &format!("{}, dopri5", method.slug()),
            FIGURE_RANGE,
        )?;
        rows.push(flow_viz::side_by_side(&[&left, &right]));
    }
    Ok(flow_viz::stacked(&rows.iter().collect::<Vec<_>>()))
}
