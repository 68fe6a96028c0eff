//! Reflow: rounds of distillation, each student teaching the next.

use std::time::Instant;

use flow_data::PointSource;
use flow_model::VelocityNet;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::run::{MODEL_FILE, RunOptions, STATE_FILE};
use crate::{
    PairMode, PairSource, Result, TeacherSettings, TimeSampling, TrainConfig, TrainError, TrainReport, train,
};

/// Reflow settings; the defaults are the post's: RK4 × 20 teacher targets,
/// online pairs, warped times (s = 0.5), 1 000 steps of batch 2048, one round,
/// student starting from the teacher's weights.
#[derive(Clone, Debug, PartialEq)]
pub struct ReflowSettings {
    pub teacher: TeacherSettings,
    pub mode: PairMode,
    pub rounds: usize,
    /// Start each student from its teacher's weights (the post found training
    /// from scratch poor) rather than from a fresh initialisation.
    pub from_teacher: bool,
    pub train: TrainConfig,
}

impl Default for ReflowSettings {
    fn default() -> ReflowSettings {
        ReflowSettings {
            teacher: TeacherSettings::default(),
            mode: PairMode::Online,
            rounds: 1,
            from_teacher: true,
            train: TrainConfig {
                steps: 1000,
                time_sampling: TimeSampling::Warp(0.5),
                ..TrainConfig::default()
            },
        }
    }
}

/// One round of distillation.
#[derive(Clone, Debug, Serialize)]
pub struct RoundReport {
    /// Seconds spent generating the pair pool (0 in online mode).
    pub pool_seconds: f64,
    pub train: TrainReport,
}

/// Runs `settings.rounds` rounds of reflow from `teacher`; returns the last student.
/// With several rounds, round k writes into `out_dir/round-k` and the final
/// model is also saved as `out_dir/model.safetensors`. With `options.resume`,
/// an interrupted run continues with the same settings and ends with the
/// weights an uninterrupted one would have.
pub fn reflow(
    teacher: &VelocityNet,
    source: &PointSource,
    settings: &ReflowSettings,
    options: &RunOptions,
) -> Result<(VelocityNet, Vec<RoundReport>)> {
    if settings.rounds == 0 {
        return Err(TrainError::Config("rounds must be at least 1".into()));
    }
    if !teacher.config().condition.is_none() {
        return Err(TrainError::Config(format!(
            "the teacher is conditioned on {}; reflow distils unconditional models only",
            teacher.config().condition.describe()
        )));
    }
    if source.dim() != teacher.config().dim {
        return Err(TrainError::Mismatch(format!(
            "source is {}-dimensional but the teacher is {}-dimensional",
            source.dim(),
            teacher.config().dim
        )));
    }
    let mut current = teacher.try_clone()?;
    let mut reports = Vec::with_capacity(settings.rounds);
    for round in 1..=settings.rounds {
        let mut round_options = options_for_round(options, settings.rounds, round);
        // Resume rounds that left a training state; finished ones return at once with their
        // weights (and regenerate the same pool, so the next round sees the same teacher),
        // rounds never started train afresh.
        round_options.resume = options.resume
            && round_options.out_dir.as_ref().is_some_and(|dir| dir.join(STATE_FILE).is_file());
        let clock = Instant::now();
        let pairs = match settings.mode {
            PairMode::Online => {
                PairSource::online(&current, options.runtime, source.clone(), settings.teacher)?
            }
            PairMode::Pool(size) => {
                let mut rng = pool_rng(settings.train.seed, round);
                let teacher = (&current, options.runtime);
                PairSource::pool_until(teacher, source, settings.teacher, size, &mut rng, || {
                    options.stop_requested()
                })?
            }
        };
        let pool_seconds = clock.elapsed().as_secs_f64();
        let mut student = if settings.from_teacher {
            current.try_clone()?
        } else {
            tch::manual_seed(settings.train.seed as i64 + round as i64);
            VelocityNet::new(*current.config(), current.device())?
        };
        let train_config =
            TrainConfig { seed: settings.train.seed + round as u64 - 1, ..settings.train.clone() };
        let report = train(&mut student, &pairs, &train_config, &round_options)?;
        let interrupted = report.interrupted;
        reports.push(RoundReport { pool_seconds, train: report });
        current = student;
        if interrupted {
            break;
        }
    }
    // Only a finished run gets the top-level model: an interrupted one would
    // otherwise look finished (its rounds' directories hold the checkpoints).
    let finished = reports.len() == settings.rounds && reports.last().is_some_and(|r| !r.train.interrupted);
    if settings.rounds > 1
        && finished
        && let Some(dir) = &options.out_dir
    {
        flow_model::checkpoint::save(&current, &dir.join(MODEL_FILE), &options.metadata.to_header())?;
    }
    Ok((current, reports))
}

/// Pools are drawn on their own stream of the run's seed, one per round.
fn pool_rng(seed: u64, round: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(100 + round as u64);
    rng
}

fn options_for_round(options: &RunOptions, rounds: usize, round: usize) -> RunOptions {
    let mut round_options = options.clone();
    if rounds > 1 {
        round_options.out_dir = options.out_dir.as_ref().map(|dir| dir.join(format!("round-{round}")));
        round_options.label = format!("{} {round}/{rounds}", options.label);
        round_options.metadata.reflow_round = Some(round);
    }
    round_options
}
