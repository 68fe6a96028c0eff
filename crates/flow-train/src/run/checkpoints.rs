//! Checkpoints of a run: the resumable training state, the published model and the loss log, saved together and resumed from.

use std::collections::BTreeMap;
use std::path::Path;

use flow_model::VelocityNet;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use super::{LOSSES_FILE, MODEL_FILE, RunMetadata, RunOptions, STATE_FILE};
use crate::{Result, TrainError};
use flow_model::{Engine, OptimiserState};

pub(crate) fn save(
    net: &VelocityNet,
    engine: &Engine,
    rng: &ChaCha8Rng,
    losses: &[f32],
    options: &RunOptions,
) -> Result<()> {
    let Some(dir) = &options.out_dir else {
        return Ok(());
    };
    let metadata = RunMetadata { step: Some(losses.len()), ..options.metadata.clone() }.to_header();
    // The state first: it alone is what resuming reads, so a kill before the
    // loss log or the model is rewritten still leaves a run that resumes.
    let average = engine.average(net);
    save_state(&dir.join(STATE_FILE), &engine.state(net), rng.get_word_pos(), losses, average.as_ref())?;
    super::write_losses(&dir.join(LOSSES_FILE), losses)?;
    let published = net.with_parameters(&average.unwrap_or_else(|| engine.raw(net)))?;
    flow_model::checkpoint::save(&published, &dir.join(MODEL_FILE), &metadata)?;
    tracing::debug!(step = losses.len(), dir = %dir.display(), "checkpoint");
    Ok(())
}

/// Restores weights, optimiser, RNG and losses; returns the losses so far.
pub(crate) fn resume(
    net: &mut VelocityNet,
    engine: &mut Engine,
    rng: &mut ChaCha8Rng,
    options: &RunOptions,
) -> Result<Vec<f32>> {
    let Some(dir) = &options.out_dir else {
        return Err(TrainError::Internal("resuming needs the run directory".into()));
    };
    let mut state = load_state(&dir.join(STATE_FILE))?;
    // A state that carries its loss log is complete by itself; the model file,
    // when there is one, still has to be of this network's architecture.
    let self_contained =
        state.losses.as_ref().is_some_and(|losses| losses.len() as u64 == state.optimiser.step);
    let mut losses = if self_contained {
        let model = dir.join(MODEL_FILE);
        if model.exists() {
            let header = flow_model::checkpoint::load_into(net, &model)?;
            check_same_run(dir, &header, &options.metadata)?;
        }
        state.losses.take().unwrap_or_default()
    } else {
        resume_from_separate_files(net, dir, &state)?
    };
    let expected = net.flat_parameters().numel();
    let optimiser = &state.optimiser;
    let tensors = [
        Some(&optimiser.parameters),
        Some(&optimiser.first),
        Some(&optimiser.second),
        state.average.as_ref(),
    ];
    if tensors.iter().flatten().any(|t| t.numel() != expected) {
        return Err(TrainError::Resume {
            path: dir.clone(),
            reason: format!("the training state is not for this network ({expected} parameters)"),
        });
    }
    // What the run had published: the state's average (or raw weights), or, in the
    // older layout, the model file just loaded into `net`.
    let published = match (&state.average, self_contained) {
        (Some(average), true) => average.shallow_clone(),
        (None, true) => state.optimiser.parameters.shallow_clone(),
        (_, false) => net.flat_parameters().detach().copy(),
    };
    engine.restore(net, &state.optimiser, &published)?;
    rng.set_word_pos(state.rng_word);
    losses.truncate(state.optimiser.step as usize);
    tracing::info!(step = state.optimiser.step, dir = %dir.display(), "resumed");
    Ok(losses)
}

/// What the checkpoint's header says the run learned (its kind, source, target, path and
/// conditions) must be what the resuming command asks for: run.json may be gone (or never
/// written, after a SIGKILL), the header is written with every checkpoint.
fn check_same_run(dir: &Path, header: &BTreeMap<String, String>, now: &RunMetadata) -> Result<()> {
    let before = RunMetadata::from_header(header)?;
    let differs = |what: &str, before: String, now: String| TrainError::Resume {
        path: dir.to_owned(),
        reason: format!("its checkpoint was trained with {what} {before}, not {now}; --force starts afresh"),
    };
    let label = |points: &Option<super::PointsRef>| {
        points.as_ref().map_or("none".to_owned(), super::PointsRef::label)
    };
    if before.source != now.source {
        return Err(differs("source", before.source.label(), now.source.label()));
    }
    if before.target != now.target {
        return Err(differs("target", label(&before.target), label(&now.target)));
    }
    if before.path != now.path {
        return Err(differs("path", before.path.describe(), now.path.describe()));
    }
    let conditions =
        |c: &[flow_data::ConditionSpec]| c.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    if before.conditions != now.conditions {
        return Err(differs("conditions", conditions(&before.conditions), conditions(&now.conditions)));
    }
    Ok(())
}

/// A state written before it carried the loss log: the model file and
/// `losses.csv` must then agree with it (and the model holds the average).
fn resume_from_separate_files(
    net: &mut VelocityNet,
    dir: &std::path::Path,
    state: &SavedState,
) -> Result<Vec<f32>> {
    let header = flow_model::checkpoint::load_into(net, &dir.join(MODEL_FILE))?;
    let losses = super::read_losses(&dir.join(LOSSES_FILE))?;
    let model_step = RunMetadata::from_header(&header)?.step.map_or(u64::MAX, |step| step as u64);
    if model_step != state.optimiser.step || losses.len() as u64 != state.optimiser.step {
        return Err(TrainError::Resume {
            path: dir.to_owned(),
            reason: format!(
                "model (step {model_step}), optimiser (step {}) and loss log ({} steps) disagree",
                state.optimiser.step,
                losses.len()
            ),
        });
    }
    Ok(losses)
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
