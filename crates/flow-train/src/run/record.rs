//! `run.json`: what a run did and with which settings, and the check that a resumed run keeps them.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::run::{RUN_RECORD_FILE, RunSpec};
use crate::{Result, TrainError, TrainReport};

/// What `run.json` holds: enough to trace any result to its settings.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RunRecord {
    /// The command that ran: `train` or `reflow`.
    pub command: String,
    pub version: String,
    pub device: String,
    pub threads: i32,
    /// What computed the steps: `libtorch`, or `native` with its kernel.
    pub backend: String,
    pub kernel: Option<String>,
    /// The settings as the command resolved them (recipe, pairs, model, training, …).
    pub settings: serde_json::Value,
    pub seconds: f64,
    pub steps_per_second: f64,
    pub steps: usize,
    pub resumed_from_step: usize,
    pub final_loss: Option<f32>,
}

impl RunRecord {
    /// The record of `report`, a run of `command` on `device` with `settings`.
    pub fn new(command: &str, device: &str, settings: serde_json::Value, report: &TrainReport) -> RunRecord {
        RunRecord {
            command: command.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            device: device.to_owned(),
            threads: tch::get_num_threads(),
            backend: report.backend.to_owned(),
            kernel: report.kernel.map(str::to_owned),
            settings,
            seconds: report.seconds,
            steps_per_second: report.steps_per_second,
            steps: report.losses.len(),
            resumed_from_step: report.started_at,
            final_loss: report.losses.last().copied(),
        }
    }

    /// Writes `dir/run.json`, atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| TrainError::Internal(e.to_string()))?;
        flow_data::files::write_atomically(&dir.join(RUN_RECORD_FILE), |out| writeln!(out, "{text}"))?;
        Ok(())
    }

    /// The record in `dir`, if a run wrote one.
    pub fn read(dir: &Path) -> Result<Option<RunRecord>> {
        let path = dir.join(RUN_RECORD_FILE);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| TrainError::Resume { path, reason: format!("unreadable run record ({e})") })
    }

    /// Before a resumed run of `now` starts: the run recorded in `dir` must be the same
    /// command with the same spec, but for what a spec lets a resume change (see
    /// [`RunSpec::check_resume`]). A run killed before it wrote its record is checked only
    /// against its training state.
    pub fn check_resume_spec(dir: &Path, now: &RunSpec) -> Result<()> {
        let Some(earlier) = RunRecord::read(dir)? else {
            return Ok(());
        };
        let path = dir.join(RUN_RECORD_FILE);
        let recorded = RunSpec::from_settings(&earlier.command, &earlier.settings)
            .map_err(|e| TrainError::Resume { path, reason: format!("unreadable run record ({e})") })?;
        recorded.check_resume(now, dir)
    }

    /// [`RunRecord::check_resume_spec`] for settings as run.json spells them.
    pub fn check_resume(dir: &Path, command: &str, settings: &serde_json::Value) -> Result<()> {
        RunRecord::check_resume_spec(dir, &RunSpec::from_settings(command, settings)?)
    }
}
