//! `flowmatch reproduce --experiment c2ot-conditional`: C2OT's conditional 8gaussians → moons
//! table (Figure 1: a discrete and a continuous condition, each under flow matching,
//! minibatch OT and C2OT), trained and measured on their protocol, ours beside theirs.
//!
//! Their protocol (`moons.py`): the discrete condition is the moon a target
//! point belongs to, the continuous one its x coordinate; minibatch OT ignores
//! conditions, C2OT transports only within a class (discrete) or adds
//! w·(c₀ − c₁)² with w searched per batch for r = 0.05 (continuous). Evaluation:
//! 10 000 fresh sources, each given the condition of one of 10 000 fresh
//! targets, integrated by Euler × 1 and dopri5, W2² against those targets.

use std::path::PathBuf;
use std::time::Instant;

use flow_data::{ConditionSpec, ConditionedTarget, Dataset};
use flow_model::{Guide, Integrator, VelocityNet};
use flow_ode::{Record, Solver, TimeGrid};
use flow_train::{Coupling, PairSource, RunMetadata, RunOptions};
use ndarray::Array2;

use super::table::Cell;
use super::{Protocol, RECIPE, Runs, Scores, dopri5, model_config, source};
use crate::cli::ReproduceArgs;
use crate::commands::{self, device_label};
use crate::error::{CliError, Result};

pub mod table;

/// The condition a model is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Which moon the target lies on (their `cls`).
    Moon,
    /// The target's x coordinate (their `x`).
    TargetX,
}

impl Condition {
    pub const ALL: [Condition; 2] = [Condition::Moon, Condition::TargetX];

    pub fn name(self) -> &'static str {
        match self {
            Condition::Moon => "discrete (moon)",
            Condition::TargetX => "continuous (target x)",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Condition::Moon => "cls",
            Condition::TargetX => "x",
        }
    }

    fn spec(self) -> ConditionSpec {
        match self {
            Condition::Moon => ConditionSpec::Label,
            Condition::TargetX => ConditionSpec::Coordinate(0),
        }
    }

    /// Each target point with this condition.
    fn target(self) -> Result<ConditionedTarget> {
        Ok(ConditionedTarget::builtin(Dataset::TorchdynMoons, 2, &[self.spec()])?)
    }
}

/// How pairs are coupled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    FlowMatching,
    Ot,
    C2ot,
}

impl Method {
    pub const ALL: [Method; 3] = [Method::FlowMatching, Method::Ot, Method::C2ot];

    pub fn name(self) -> &'static str {
        match self {
            Method::FlowMatching => "flow matching",
            Method::Ot => "minibatch OT",
            Method::C2ot => "C2OT",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Method::FlowMatching => "fm",
            Method::Ot => "ot",
            Method::C2ot => "c2ot",
        }
    }

    fn coupling(self) -> Coupling {
        match self {
            Method::FlowMatching => Coupling::Independent,
            Method::Ot => Coupling::Ot,
            Method::C2ot => Coupling::C2ot(Coupling::DEFAULT_RATIO),
        }
    }
}

/// C2OT's Figure 1 (conditional rows): W2² mean ± std over 10 runs, Euler 1 step and adaptive.
pub fn published(condition: Condition, method: Method) -> (Cell, Cell) {
    match (condition, method) {
        (Condition::Moon, Method::FlowMatching) => (Cell::new(2.573, 0.112), Cell::new(0.059, 0.029)),
        (Condition::Moon, Method::Ot) => (Cell::new(0.483, 0.059), Cell::new(0.462, 0.025)),
        (Condition::Moon, Method::C2ot) => (Cell::new(0.048, 0.010), Cell::new(0.018, 0.006)),
        (Condition::TargetX, Method::FlowMatching) => (Cell::new(0.732, 0.052), Cell::new(0.028, 0.010)),
        (Condition::TargetX, Method::Ot) => (Cell::new(8.276, 6.510), Cell::new(2.143, 1.993)),
        (Condition::TargetX, Method::C2ot) => (Cell::new(0.077, 0.024), Cell::new(0.013, 0.003)),
    }
}

/// Seeds of the full run: theirs are 10; see the table's notes for what ours cost.
pub const FULL_SEEDS: usize = 10;

pub fn run(args: ReproduceArgs) -> Result<()> {
    let started = Instant::now();
    let (device, runtime) = commands::runtime(&args.runtime)?;
    let base = if args.quick { Protocol::QUICK } else { Protocol::FULL };
    let protocol = Protocol { seeds: if args.quick { base.seeds } else { FULL_SEEDS }, ..base };
    let out = args.out.clone();
    std::fs::create_dir_all(&out).map_err(|e| CliError::runtime(format!("{}: {e}", out.display())))?;
    let runs = Runs { out: out.clone(), device, runtime, protocol, retrain: args.retrain, quick: args.quick };

    let mut rows = Vec::new();
    let mut first_models = Vec::new();
    let mut reused = 0;
    for condition in Condition::ALL {
        for method in Method::ALL {
            let mut row =
                table::Row { condition, method, euler: Vec::new(), adaptive: Vec::new(), nfe: Vec::new() };
            for seed in 0..protocol.seeds as u64 {
                let clock = Instant::now();
                if !runs.retrain
                    && runs.conditional_dir(condition, method, seed).join(flow_train::MODEL_FILE).is_file()
                {
                    reused += 1;
                }
                let model = Integrator::new(&runs.conditional_model(condition, method, seed)?, runtime)?;
                let scores = runs.conditional_scores(condition, method, seed, &model)?;
                eprintln!(
                    "c2ot-conditional: {} / {} seed {seed}: W2² {:.4} (1 step), {:.4} (dopri5, {} NFE) ({:.1} s)",
                    condition.name(),
                    method.name(),
                    scores.euler,
                    scores.adaptive,
                    scores.nfe,
                    clock.elapsed().as_secs_f64()
                );
                row.euler.push(scores.euler);
                row.adaptive.push(scores.adaptive);
                row.nfe.push(scores.nfe as f64);
                if seed == 0 {
                    first_models.push((condition, method, model));
                }
            }
            rows.push(row);
        }
    }
    let figure = draw_figure(&first_models)?;
    flow_viz::save_png(&out.join(FIGURE_FILE), &figure)?;
    let table = table::Table {
        quick: args.quick,
        device: device_label(device),
        threads: tch::get_num_threads(),
        protocol,
        model: model_config(),
        flow_rate: RECIPE.flow_matching(),
        rows,
        figure: FIGURE_FILE,
        seconds: started.elapsed().as_secs_f64(),
        reused: (reused, Condition::ALL.len() * Method::ALL.len() * protocol.seeds),
    };
    super::write_table(&out.join(TABLE_FILE), &table::render(&table), "c2ot-conditional", started)
}

pub const TABLE_FILE: &str = "c2ot-conditional.md";
pub const FIGURE_FILE: &str = "c2ot-conditional.png";

impl Runs {
    fn conditional_dir(&self, condition: Condition, method: Method, seed: u64) -> PathBuf {
        let p = self.protocol;
        let quick = if self.quick { "-quick" } else { "" };
        let name = format!(
            "c2ot-{}-{}-{}x{}-ot{}-h{}-seed{seed}{quick}",
            condition.slug(),
            method.slug(),
            p.steps,
            p.batch,
            p.ot_batch,
            model_config().architecture.as_mlp().hidden
        );
        self.out.join("checkpoints").join(name)
    }

    fn conditional_scores(
        &self,
        condition: Condition,
        method: Method,
        seed: u64,
        model: &Integrator,
    ) -> Result<Scores> {
        let dir = self.conditional_dir(condition, method, seed);
        Scores::kept_or_measured(&dir, self.protocol.eval_points, self.retrain, || {
            score(condition, model, self.protocol.eval_points, seed)
        })
    }

    fn conditional_model(&self, condition: Condition, method: Method, seed: u64) -> Result<VelocityNet> {
        let dir = self.conditional_dir(condition, method, seed);
        if let Some(net) = self.kept_model(&dir, "c2ot-conditional")? {
            return Ok(net);
        }
        // No condition dropout: theirs trains on conditions only, and the table never guides.
        let config = self.train_config(seed);
        let metadata = RunMetadata { conditions: vec![condition.spec()], ..super::metadata() };
        let p = self.protocol;
        let pairs = PairSource::conditioned(source(), condition.target()?, method.coupling(), p.ot_batch)?;
        tch::manual_seed(seed as i64);
        let mut net = VelocityNet::new(
            flow_model::ModelConfig { condition: pairs.condition(), ..model_config() },
            self.device,
        )?;
        let options = RunOptions {
            out_dir: Some(dir.clone()),
            show_progress: true,
            label: format!("c2ot {} {}, seed {seed}", condition.slug(), method.slug()),
            metadata,
            runtime: self.runtime,
            ..RunOptions::default()
        };
        flow_train::train(&mut net, &pairs, &config, &options)?;
        Ok(net)
    }
}

/// Fresh sources, fresh targets, and the targets' conditions, of `seed`'s evaluation: the
/// same sources and targets as the unconditional table's.
fn evaluation_draws(
    condition: Condition,
    n: usize,
    seed: u64,
) -> Result<(Array2<f32>, Array2<f32>, Array2<f32>)> {
    let mut rng = flow_data::seeded_rng(seed + 1_000);
    let x0 = source().draw(n, &mut rng)?;
    let (x1, c1) = condition.target()?.draw(n, &mut rng)?;
    Ok((x0, x1, c1))
}

/// C2OT's conditional evaluation: source i integrated under target i's condition, W2² against the targets.
fn score(condition: Condition, model: &Integrator, n: usize, seed: u64) -> Result<Scores> {
    let (x0, x1, c1) = evaluation_draws(condition, n, seed)?;
    let guide = Guide::new(model.net().config().condition, &c1, 1.0)?;
    let one = TimeGrid::uniform(1)?;
    let euler = model.integrate_guided(&x0, &guide, &one, Solver::Euler, Record::Nothing)?;
    let adaptive = model.integrate_guided(&x0, &guide, &one, dopri5()?, Record::Nothing)?;
    let w2 = flow_metrics::wasserstein2_many(&[(&euler.points, &x1), (&adaptive.points, &x1)])?;
    Ok(Scores { eval_points: n, euler: w2[0].powi(2), adaptive: w2[1].powi(2), nfe: adaptive.nfe })
}

/// Points per figure panel.
const DRAWN_POINTS: usize = 1_000;

/// One row per method (seed 0): for each condition, samples in one Euler step and by
/// dopri5, coloured by their condition (the moon, or the target x asked for).
fn draw_figure(models: &[(Condition, Method, Integrator)]) -> Result<flow_viz::RgbImage> {
    let mut rows = Vec::new();
    for method in Method::ALL {
        let mut panels = Vec::new();
        for (condition, _, model) in models.iter().filter(|(_, m, _)| *m == method) {
            let (x0, _, c1) = evaluation_draws(*condition, DRAWN_POINTS, 3_000)?;
            let guide = Guide::new(model.net().config().condition, &c1, 1.0)?;
            let shades = shades(&c1);
            for (solver, label) in [(Solver::Euler, "1 step"), (dopri5()?, "dopri5")] {
                let end =
                    model.integrate_guided(&x0, &guide, &TimeGrid::uniform(1)?, solver, Record::Nothing)?;
                let title = format!("{}, {}: {label}", method.slug(), condition.slug());
                panels.push(flow_viz::scatter_shaded(&end.points, &shades, &title, super::FIGURE_RANGE)?);
            }
        }
        rows.push(flow_viz::side_by_side(&panels.iter().collect::<Vec<_>>()));
    }
    Ok(flow_viz::stacked(&rows.iter().collect::<Vec<_>>()))
}

/// Each row's condition mapped onto [0, 1] over the rows' range.
fn shades(conditions: &Array2<f32>) -> Vec<f64> {
    let column = conditions.column(0);
    let (low, high) =
        column.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    let span = f64::from(high - low).max(f64::MIN_POSITIVE);
    column.iter().map(|&v| f64::from(v - low) / span).collect()
}
