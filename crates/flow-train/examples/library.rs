//! The crates as a library: learn a flow from the Gaussian onto the post's spiral, sample it, and score log-densities.
//!
//! `cargo run --release -p flow-train --example library -- [STEPS]` prints one JSON line:
//! the last training loss, the samples' W2 against fresh spiral points with its noise floor,
//! and the mean log-density of fresh spiral points. flow-train's test suite runs [`run`].

use flow_data::{Dataset, PointSource, seeded_rng};
use flow_eval::QualityProbe;
use flow_eval::likelihood::{Divergence, log_density};
use flow_model::{Integrator, ModelConfig, Runtime, VelocityNet};
use flow_ode::{Record, Solver, TimeGrid};
use flow_train::{LrSchedule, PairSource, RunOptions, TrainConfig, train};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let steps = std::env::args().nth(1).map_or(Ok(2000), |text| text.parse())?;
    println!("{}", run(steps)?);
    Ok(())
}

/// Trains for `steps`, then samples and scores; the figures as JSON.
pub fn run(steps: usize) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let (gaussian, spiral) =
        (PointSource::builtin(Dataset::Gaussian, 2)?, PointSource::builtin(Dataset::Spiral, 2)?);

    // Train: independent pairs on the straight-line path, our recipe's rate, in memory.
    let pairs = PairSource::independent(gaussian.clone(), spiral.clone())?;
    tch::manual_seed(0);
    let mut net = VelocityNet::new(ModelConfig::default(), tch::Device::Cpu)?;
    let config = TrainConfig {
        steps,
        lr: 8e-3,
        lr_schedule: LrSchedule::Cosine,
        checkpoint_every: 0,
        ..TrainConfig::default()
    };
    let report = train(&mut net, &pairs, &config, &RunOptions::default())?;

    // Sample: RK4 × 20 from fresh Gaussian points, on the fastest backend for this network.
    let model = Integrator::new(&net, Runtime::default())?;
    let start = gaussian.draw(2000, &mut seeded_rng(1))?;
    let samples = model.integrate(&start, &TimeGrid::uniform(20)?, Solver::Rk4, Record::Nothing)?.points;
    let probe = QualityProbe::new(&gaussian, &spiral, samples.nrows(), 2)?;
    let w2 = probe.w2_of_sample(&samples)?;

    // Log-densities of fresh spiral points: the change of variables back to the Gaussian.
    let points = spiral.draw(500, &mut seeded_rng(3))?;
    let densities = log_density(&model, Dataset::Gaussian, &points, (Solver::Rk4, 20), Divergence::Exact)?;
    let mean = densities.log_prob.iter().sum::<f64>() / densities.log_prob.len() as f64;

    let last_loss = report.losses.last().copied().unwrap_or(f32::NAN);
    Ok(
        serde_json::json!({ "last_loss": last_loss, "w2": w2, "floor": probe.floor, "mean_log_density": mean }),
    )
}
