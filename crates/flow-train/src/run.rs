//! A run directory: the files a training run writes and resumes from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tch::{Kind, Tensor};

use crate::engine::OptimiserState;
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
    /// Extra header entries for saved models (dataset, settings, …).
    pub metadata: BTreeMap<String, String>,
    /// The native kernel; `None`: [`flow_native::Kernel::requested`] (the
    /// fastest this CPU has, or what `FLOWMATCH_KERNEL` names).
    pub kernel: Option<flow_native::Kernel>,
}

impl RunOptions {
    /// The native kernel this run uses (see [`RunOptions::kernel`]).
    pub fn kernel(&self) -> Result<flow_native::Kernel> {
        Ok(self.kernel.map_or_else(flow_native::Kernel::requested, Ok)?)
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.as_ref().is_some_and(|flag| flag.load(Ordering::SeqCst))
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

/// Everything a resumed run needs, in one file written atomically: raw
/// weights, optimiser moments, batch-RNG position, the loss log and (with EMA)
/// the average. It is written first; `losses.csv` and `model.safetensors` are
/// derived from it, so a kill between the writes leaves a run that resumes
/// from this file.
pub(crate) fn save_state(
    path: &Path,
    state: &OptimiserState,
    rng_word: u128,
    losses: &[f32],
    average: Option<&Tensor>,
) -> Result<()> {
    let counters = Tensor::from_slice(&[state.step as i64, (rng_word >> 64) as i64, rng_word as u64 as i64]);
    let losses = Tensor::from_slice(losses);
    let parameters = state.parameters.detach();
    let mut tensors = vec![
        ("parameters", &parameters),
        ("first_moment", &state.first),
        ("second_moment", &state.second),
        ("counters", &counters),
        ("losses", &losses),
    ];
    if let Some(average) = average {
        tensors.push(("average", average));
    }
    // Atomic, the temp file removed on failure (a full disk must not also keep
    // a half-written file filling it), and IO errors that name the path.
    Ok(flow_model::checkpoint::write_tensors(path, &tensors)?)
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

pub(crate) struct SavedState {
    pub optimiser: OptimiserState,
    pub rng_word: u128,
    /// The loss log and the weight average, in states written since they joined it.
    pub losses: Option<Vec<f32>>,
    pub average: Option<Tensor>,
}

pub(crate) fn load_state(path: &Path) -> Result<SavedState> {
    let bad = |reason: String| TrainError::Resume { path: path.to_owned(), reason };
    if !path.exists() {
        return Err(bad("no training state here (was the run saved by `flowmatch train`?)".into()));
    }
    let tensors: BTreeMap<String, Tensor> =
        Tensor::read_safetensors(path).map_err(|e| bad(e.to_string()))?.into_iter().collect();
    let get = |name: &str| {
        tensors.get(name).map(Tensor::shallow_clone).ok_or_else(|| bad(format!("missing `{name}`")))
    };
    let counters =
        Vec::<i64>::try_from(get("counters")?.to_kind(Kind::Int64)).map_err(|e| bad(e.to_string()))?;
    let [step, high, low] = counters[..] else {
        return Err(bad("malformed counters".into()));
    };
    Ok(SavedState {
        optimiser: OptimiserState {
            parameters: get("parameters")?,
            first: get("first_moment")?,
            second: get("second_moment")?,
            step: step as u64,
        },
        rng_word: ((high as u64 as u128) << 64) | (low as u64 as u128),
        losses: match tensors.get("losses") {
            Some(losses) => {
                Some(Vec::<f32>::try_from(losses.to_kind(Kind::Float)).map_err(|e| bad(e.to_string()))?)
            }
            None => None,
        },
        average: tensors.get("average").map(Tensor::shallow_clone),
    })
}
