//! flow-eval's one test binary: the probe scores a flow whose answer is known.

use flow_data::{Dataset, PointSource};
use flow_eval::{FLOOR_DRAWS, QualityProbe};
use flow_model::{Integrator, ModelConfig, VelocityNet};
use flow_ode::Solver;

/// A network whose velocity is zero everywhere: its flow leaves every point where it is.
fn still() -> Integrator {
    let mut net = VelocityNet::new(ModelConfig::default(), tch::Device::Cpu).expect("default config");
    let count = net.flat_parameters().numel();
    net.set_parameters(&vec![0.0; count]).expect("same size");
    Integrator::auto(&net).expect("integrates")
}

fn builtin(dataset: Dataset) -> PointSource {
    PointSource::builtin(dataset, 2).expect("2-D")
}

#[test]
fn a_flow_that_already_has_the_target_scores_the_noise_floor() {
    // Source and target are both the spiral, and the flow does nothing: its samples are
    // independent target draws, which is exactly what the floor measures.
    let probe =
        QualityProbe::new(&builtin(Dataset::Spiral), &builtin(Dataset::Spiral), 400, 0).expect("probe");
    let quality = probe.measure(&still(), Solver::Rk4, 5).expect("measures");
    assert_eq!((quality.nfe, quality.n, quality.steps), (20, 400, 5));
    assert!((0.85..1.2).contains(&quality.w2_ratio), "ratio {}", quality.w2_ratio);
    assert_eq!(quality.w2_floor, probe.floor);
    // Paths that do not move are perfectly straight.
    assert_eq!(quality.straightness, 0.0);
    assert!(quality.mmd.abs() < 0.01, "MMD² {}", quality.mmd);
}

#[test]
fn a_flow_that_misses_the_target_scores_far_above_the_floor_and_probes_repeat() {
    let probe =
        QualityProbe::new(&builtin(Dataset::Gaussian), &builtin(Dataset::Spiral), 400, 1).expect("probe");
    let model = still();
    let measured = probe.measure_many(&model, &[(Solver::Euler, 3), (Solver::Heun, 2)]).expect("measures");
    assert_eq!(measured.iter().map(|q| q.nfe).collect::<Vec<_>>(), [3, 4]);
    for quality in &measured {
        assert!(quality.w2_ratio > 1.3, "{} × {}: ratio {}", quality.solver, quality.steps, quality.w2_ratio);
    }
    // The floor is a mean over several draws, and the same seed gives the same numbers.
    assert_eq!(FLOOR_DRAWS, probe.sources.len());
    let again =
        QualityProbe::new(&builtin(Dataset::Gaussian), &builtin(Dataset::Spiral), 400, 1).expect("probe");
    assert_eq!(again.floor, probe.floor);
    assert_eq!(again.w2(&model, Solver::Euler, 3).expect("measures").0, measured[0].w2);
}
