//! A run directory: the files a training run writes and resumes from, its lock, and the options of a run.

mod checkpoints;
mod metadata;
mod record;
mod spec;

pub(crate) use checkpoints::{resume, save};
pub use metadata::{PointsRef, RunKind, RunMetadata};
pub use record::RunRecord;
pub use spec::{Pairs, RunSpec};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::{Result, TrainError};

pub const MODEL_FILE: &str = "model.safetensors";
pub const STATE_FILE: &str = "train-state.safetensors";
pub const LOSSES_FILE: &str = "losses.csv";
pub const RUN_RECORD_FILE: &str = "run.json";

/// Everything about a run that is not a training hyper-parameter.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Where checkpoints and the loss log go; `None` trains in memory.
    pub out_dir: Option<PathBuf>,
    /// Continue from the checkpoint in `out_dir`.
    pub resume: bool,
    /// Set (e.g. by Ctrl-C) to stop after the current step, with a checkpoint.
    pub stop: Option<Arc<AtomicBool>>,
    pub show_progress: bool,
    /// Shown before the progress bar: "flow matching", "reflow round 1", …
    pub label: String,
    /// What saved models say of the run in their header (kind, source, target, …).
    pub metadata: RunMetadata,
    /// Which code computes the steps and the reflow teacher's integrations
    /// (results agree to rounding, not bit for bit), and the native kernel.
    pub runtime: flow_model::Runtime,
}

impl RunOptions {
    pub fn stop_requested(&self) -> bool {
        self.stop.as_ref().is_some_and(|flag| flag.load(Ordering::SeqCst))
    }
}

/// A saved model and what its header says of the run that trained it.
pub struct TrainedModel {
    pub net: flow_model::VelocityNet,
    pub metadata: RunMetadata,
}

impl TrainedModel {
    /// Loads a checkpoint onto `device`; a malformed run entry in its header is an error.
    pub fn load(path: &Path, device: tch::Device) -> Result<TrainedModel> {
        let checkpoint = flow_model::checkpoint::load(path, device)?;
        let metadata = RunMetadata::from_header(&checkpoint.metadata)
            .map_err(|e| TrainError::Header(format!("{}: {e}", path.display())))?;
        Ok(TrainedModel { net: checkpoint.net, metadata })
    }

    /// The distribution its flow starts from.
    pub fn source(&self) -> Result<flow_data::PointSource> {
        self.metadata.source_points(self.net.config().dim)
    }

    /// The distribution it learned, when the header names one that is still there: for a
    /// data file whose columns held conditions, the coordinates without them.
    pub fn target(&self) -> Result<Option<flow_data::PointSource>> {
        match &self.metadata.target {
            Some(PointsRef::File(path)) if path.is_file() && !self.metadata.conditions.is_empty() => {
                let conditioned = flow_data::ConditionedTarget::from_file(path, &self.metadata.conditions)?;
                Ok(Some(conditioned.points))
            }
            Some(target) => target.points(self.net.config().dim),
            None => Ok(None),
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io { path: path.to_owned(), source }
}

pub(crate) fn create_dir(dir: &Path) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        return Err(TrainError::Io {
            path: dir.to_owned(),
            source: std::io::Error::other("exists and is not a directory"),
        });
    }
    std::fs::create_dir_all(dir).map_err(io_error(dir))
}

/// The file in a run directory that a writer holds an exclusive lock on.
pub const LOCK_FILE: &str = ".lock";

/// An exclusive lock on a run directory, held while a run writes it and
/// released when dropped (or when the process dies, whatever kills it).
pub(crate) struct DirLock {
    _file: std::fs::File,
}

/// Locks `dir` (which exists) for this process; a second writer gets an error
/// naming the process that holds it.
pub(crate) fn lock_dir(dir: &Path) -> Result<DirLock> {
    use std::io::{Read, Seek, Write};
    let path = dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io_error(&path))?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0).map_err(io_error(&path))?;
            file.rewind().map_err(io_error(&path))?;
            write!(file, "{}", std::process::id()).map_err(io_error(&path))?;
            Ok(DirLock { _file: file })
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut owner = String::new();
            let _ = file.read_to_string(&mut owner);
            let owner = match owner.trim() {
                "" => "another process".to_owned(),
                pid => format!("process {pid}"),
            };
            Err(TrainError::InUse { dir: dir.to_owned(), owner })
        }
        Err(std::fs::TryLockError::Error(source)) => Err(TrainError::Io { path, source }),
    }
}

/// `step,loss` lines, atomically.
pub(crate) fn write_losses(path: &Path, losses: &[f32]) -> Result<()> {
    flow_data::files::write_atomically(path, |out| {
        writeln!(out, "step,loss")?;
        for (step, loss) in losses.iter().enumerate() {
            writeln!(out, "{},{loss}", step + 1)?;
        }
        Ok(())
    })?;
    Ok(())
}

/// The losses of a `losses.csv` written by a run.
pub fn read_losses(path: &Path) -> Result<Vec<f32>> {
    let points = match flow_data::files::read_points(path) {
        // A run stopped before its first step logs only the header.
        Err(flow_data::DataError::Empty { .. }) => return Ok(Vec::new()),
        other => other?,
    };
    if points.ncols() != 2 {
        return Err(TrainError::Resume {
            path: path.to_owned(),
            reason: "expected columns step,loss".into(),
        });
    }
    Ok(points.column(1).to_vec())
}

/// Removes what killed writers left behind (`*.tmp`); called with the
/// directory's lock held, so no live writer owns them.
pub(crate) fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
