//! What a run computes, typed: built once from the command line, serialised as run.json's `settings`, and compared on `--resume`.

use std::path::PathBuf;

use flow_model::{Backend, ModelConfig};
use flow_ode::SolverKind;
use serde_json::{Value, json};

use crate::{Coupling, PairMode, Recipe, Result, TrainConfig, TrainError};

/// Where a run's pairs come from: flow matching's data, or reflow's teacher.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)]
pub enum Pairs {
    /// Flow matching from `source` to `target` (as the header labels them), coupled by
    /// `coupling` in plans of `ot_batch` rows, each target with the conditions `conditions`;
    /// `data_files`: each data file's fingerprint (`flow_data::files::fingerprint`), so that
    /// a resume on a changed file is refused (empty in records from before it existed).
    FlowMatching {
        source: String,
        target: String,
        coupling: Coupling,
        ot_batch: usize,
        conditions: Vec<String>,
        data_files: Vec<String>,
    },
    /// Reflow of the model in `teacher`: its `solver` × `steps` integrations, `rounds` rounds,
    /// each student starting from its teacher's weights when `from_teacher`.
    Reflow {
        teacher: PathBuf,
        mode: PairMode,
        solver: SolverKind,
        steps: usize,
        rounds: usize,
        from_teacher: bool,
    },
}

/// Everything that decides what a run computes, and the backend asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSpec {
    /// Where the pairs come from.
    pub pairs: Pairs,
    /// The network trained (`None` for reflow: the teacher's). `None` also where a record
    /// holds a model entry this version cannot read; the checkpoint then names the mismatch.
    pub model: Option<ModelConfig>,
    /// The named learning-rate choice (recorded even where `--lr` overrides it).
    pub recipe: Recipe,
    /// The training settings as resolved from the recipe and flags.
    pub training: TrainConfig,
    /// Which code computes the steps: a runtime choice, recorded beside the training settings.
    pub backend: Backend,
}

impl RunSpec {
    /// The command that runs it: `train` or `reflow`.
    pub fn command(&self) -> &'static str {
        match self.pairs {
            Pairs::FlowMatching { .. } => "train",
            Pairs::Reflow { .. } => "reflow",
        }
    }

    /// run.json's `settings`: the shape every record has had, entries that were added later
    /// written only when used, so older runs compare alike.
    pub fn to_settings(&self) -> Value {
        let mut training = self.training.to_json();
        training["backend"] = json!(self.backend.name());
        let mut settings = json!({ "recipe": self.recipe.name(), "training": training });
        if let Some(model) = &self.model {
            settings["model"] = json!(model);
        }
        match &self.pairs {
            Pairs::FlowMatching { source, target, coupling, ot_batch, conditions, data_files } => {
                if !data_files.is_empty() {
                    settings["data_files"] = json!(data_files);
                }
                settings["source"] = json!(source);
                settings["target"] = json!(target);
                if *coupling != Coupling::Independent {
                    settings["coupling"] = json!(coupling.to_string());
                    settings["ot_batch"] = json!(ot_batch);
                }
                if !conditions.is_empty() {
                    settings["conditions"] = json!(conditions);
                }
            }
            Pairs::Reflow { teacher, mode, solver, steps, rounds, from_teacher } => {
                settings["teacher"] = json!(teacher.display().to_string());
                settings["pairs"] = json!(mode.to_string());
                settings["teacher_solver"] = json!(solver.name());
                settings["teacher_steps"] = json!(steps);
                settings["rounds"] = json!(rounds);
                settings["from_teacher"] = json!(from_teacher);
            }
        }
        settings
    }

    /// The spec a `command` run recorded as `settings` (records of every earlier version read:
    /// an entry added later is absent there and takes the value runs had before it existed).
    pub fn from_settings(command: &str, settings: &Value) -> Result<RunSpec> {
        let bad = |key: &str| TrainError::Config(format!("run record: a missing or malformed `{key}`"));
        let text = |value: &Value, key: &str| value[key].as_str().map(str::to_owned).ok_or_else(|| bad(key));
        let count =
            |value: &Value, key: &str| value[key].as_u64().map(|n| n as usize).ok_or_else(|| bad(key));
        let training_value = &settings["training"];
        let training = TrainConfig::from_json(training_value).ok_or_else(|| bad("training"))?;
        let backend = match training_value.get("backend") {
            Some(name) => {
                name.as_str().and_then(|n| n.parse().ok()).ok_or_else(|| bad("training.backend"))?
            }
            None => Backend::Auto,
        };
        let recipe = text(settings, "recipe")?.parse().map_err(|_| bad("recipe"))?;
        let model = settings.get("model").and_then(|model| ModelConfig::from_json(model.clone()).ok());
        let pairs = match command {
            "train" => Pairs::FlowMatching {
                source: text(settings, "source")?,
                target: text(settings, "target")?,
                coupling: match settings.get("coupling") {
                    Some(coupling) => {
                        coupling.as_str().and_then(|c| c.parse().ok()).ok_or_else(|| bad("coupling"))?
                    }
                    None => Coupling::Independent,
                },
                ot_batch: settings
                    .get("ot_batch")
                    .map_or(Ok(training.batch_size), |_| count(settings, "ot_batch"))?,
                conditions: match settings.get("conditions") {
                    Some(list) => serde_json::from_value(list.clone()).map_err(|_| bad("conditions"))?,
                    None => Vec::new(),
                },
                data_files: match settings.get("data_files") {
                    Some(list) => serde_json::from_value(list.clone()).map_err(|_| bad("data_files"))?,
                    None => Vec::new(),
                },
            },
            "reflow" => Pairs::Reflow {
                teacher: PathBuf::from(text(settings, "teacher")?),
                mode: text(settings, "pairs")?.parse().map_err(|_| bad("pairs"))?,
                solver: text(settings, "teacher_solver")?.parse().map_err(|_| bad("teacher_solver"))?,
                steps: count(settings, "teacher_steps")?,
                rounds: count(settings, "rounds")?,
                from_teacher: settings["from_teacher"].as_bool().ok_or_else(|| bad("from_teacher"))?,
            },
            other => return Err(TrainError::Internal(format!("no run spec for the command `{other}`"))),
        };
        Ok(RunSpec { pairs, model, recipe, training, backend })
    }

    /// This spec with what a resumed run may change taken from `now`: how long it runs, how
    /// often it saves and which code computes the same steps.
    fn with_resumable_settings_of(&self, now: &RunSpec) -> RunSpec {
        let mut spec = self.clone();
        // A record from before data files were fingerprinted cannot say whether they changed.
        if let (
            Pairs::FlowMatching { data_files: earlier, .. },
            Pairs::FlowMatching { data_files: current, .. },
        ) = (&mut spec.pairs, &now.pairs)
            && earlier.is_empty()
        {
            earlier.clone_from(current);
        }
        spec.training.steps = now.training.steps;
        spec.training.checkpoint_every = now.training.checkpoint_every;
        spec.backend = now.backend;
        spec
    }

    /// Before `now` continues the run `self` recorded: the same command and the same spec, but
    /// for what may change. A different network is left to the checkpoint, which names it.
    pub fn check_resume(&self, now: &RunSpec, dir: &std::path::Path) -> Result<()> {
        if self.command() != now.command() {
            return Err(TrainError::ResumeMismatch(format!(
                "{} holds a `{}` run; resume it with `flowmatch {} --resume`",
                dir.display(),
                self.command(),
                self.command()
            )));
        }
        if self.model != now.model {
            return Ok(());
        }
        let earlier = self.with_resumable_settings_of(now);
        if earlier == *now {
            return Ok(());
        }
        // Name the first setting that differs, as run.json spells it.
        let (mut before, mut after) = (Vec::new(), Vec::new());
        flatten("", &earlier.to_settings(), &mut before);
        flatten("", &now.to_settings(), &mut after);
        let differing = after.into_iter().find_map(|(key, value)| {
            let old = before.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone()).unwrap_or_default();
            (old != value).then_some((key, old, value))
        });
        let (key, old, value) = differing.unwrap_or_else(|| ("settings".into(), "?".into(), "?".into()));
        Err(TrainError::ResumeMismatch(format!(
            "--resume with a different {key} ({old} before, {value} now): resume with the same settings or start a new run in another --out"
        )))
    }
}

/// `a.b.c = value` pairs of a JSON object's leaves.
fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                flatten(&path, inner, out);
            }
        }
        leaf => out.push((prefix.to_owned(), leaf.to_string())),
    }
}
