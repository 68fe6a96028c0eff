//! `run.json`: what a run did and with which settings, and the check that a resumed run keeps them.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::run::RUN_RECORD_FILE;
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

/// Settings a resumed run may change: how long it runs, how often it saves,
/// and which code computes the same steps.
const CHANGEABLE_ON_RESUME: [&str; 3] = ["training.steps", "training.checkpoint_every", "training.backend"];

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

    /// Before a resumed run starts: it must be the same command with the same
    /// settings as the one recorded in `dir` (else its continuation would
    /// silently mix two runs). A run killed before it wrote its record is
    /// checked only against its training state. A different architecture is
    /// left to the checkpoint, which reports it with a message of its own.
    pub fn check_resume(dir: &Path, command: &str, settings: &serde_json::Value) -> Result<()> {
        let Some(earlier) = RunRecord::read(dir)? else {
            return Ok(());
        };
        if earlier.command != command {
            return Err(TrainError::ResumeMismatch(format!(
                "{} holds a `{}` run; resume it with `flowmatch {} --resume`",
                dir.display(),
                earlier.command,
                earlier.command
            )));
        }
        let (mut before, mut now) = (Vec::new(), Vec::new());
        flatten("", &earlier.settings, &mut before);
        flatten("", settings, &mut now);
        let differs =
            |key: &str, value: &String| before.iter().find(|(k, _)| k == key).is_none_or(|(_, v)| v != value);
        if now.iter().any(|(key, value)| key.starts_with("model.") && differs(key, value)) {
            return Ok(());
        }
        for (key, value) in &now {
            if CHANGEABLE_ON_RESUME.contains(&key.as_str()) {
                continue;
            }
            let old = before.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap_or_default();
            if &old != value {
                return Err(TrainError::ResumeMismatch(format!(
                    "--resume with a different {key} ({old} before, {value} now): resume with the same settings or start a new run in another --out"
                )));
            }
        }
        Ok(())
    }
}

/// `a.b.c = value` pairs of a JSON object's leaves.
fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                flatten(&path, inner, out);
            }
        }
        leaf => out.push((prefix.to_owned(), leaf.to_string())),
    }
}
