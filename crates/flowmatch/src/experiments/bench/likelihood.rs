//! The likelihood row of `bench`: log-densities of the same points under the same model, ours against `tests/python/logprob_pytorch.py`.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use flow_data::{Dataset, PointSource};
use flow_eval::likelihood::{Divergence, log_density};
use flow_model::{Integrator, Runtime, VelocityNet};
use flow_ode::{Solver, SolverKind};
use serde_json::Value;

use crate::error::{CliError, Result};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/python/logprob_pytorch.py");
/// Points scored, as the likelihood issue sets the comparison.
pub const POINTS: usize = 10_000;
const TRIES: usize = 3;

/// Best-of-three seconds for ours and PyTorch's, and the NFE each took (equal controllers take the same steps).
pub struct Timing {
    pub ours_seconds: f64,
    pub theirs_seconds: f64,
    pub nfe: (usize, usize),
}

pub fn compare(
    python: &Path,
    threads: i32,
    (flow, runtime): (&VelocityNet, Runtime),
    dir: &Path,
) -> Result<Timing> {
    let points = PointSource::post_target().draw(POINTS, &mut flow_data::seeded_rng(8))?;
    let (model_path, points_path) =
        (dir.join("likelihood-model.safetensors"), dir.join("likelihood-points.npy"));
    flow_model::checkpoint::save(flow, &model_path, &Default::default())?;
    flow_data::files::write_points(&points_path, &points)?;
    let model = Integrator::new(flow, runtime)?;
    let dopri5 = (Solver::new(SolverKind::Dopri5, Solver::DEFAULT_RTOL, Solver::DEFAULT_ATOL)?, 1);
    let mut ours_seconds = f64::INFINITY;
    let mut ours_nfe = 0;
    for _ in 0..TRIES {
        let clock = Instant::now();
        ours_nfe = log_density(&model, Dataset::Gaussian, &points, dopri5, Divergence::Exact)?.nfe;
        ours_seconds = ours_seconds.min(clock.elapsed().as_secs_f64());
    }
    let mut theirs_seconds = f64::INFINITY;
    let mut theirs_nfe = 0;
    for _ in 0..TRIES {
        let output = Command::new(python)
            .arg(SCRIPT)
            .args(["--threads", &threads.to_string(), "--tolerance", &Solver::DEFAULT_RTOL.to_string()])
            .arg("--model")
            .arg(&model_path)
            .arg("--points")
            .arg(&points_path)
            .output()
            .map_err(|e| CliError::runtime(format!("cannot run {}: {e}", python.display())))?;
        let value: Value = serde_json::from_slice(&output.stdout).map_err(|e| {
            CliError::runtime(format!("the PyTorch likelihood script printed no JSON result ({e})"))
        })?;
        let seconds = value["seconds"]
            .as_f64()
            .ok_or_else(|| CliError::runtime("the likelihood script gave no time"))?;
        theirs_seconds = theirs_seconds.min(seconds);
        theirs_nfe = value["nfe"].as_u64().unwrap_or_default() as usize;
    }
    Ok(Timing { ours_seconds, theirs_seconds, nfe: (ours_nfe, theirs_nfe) })
}
