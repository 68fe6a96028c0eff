//! What a checkpoint says about the run that made it: the typed form of its header entries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flow_data::{ConditionSpec, Dataset, PointSource};
use flow_path::{AffinePath, Objective, PathName, Scheduler};

use crate::{Coupling, Result, TrainError};

/// Which training made a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunKind {
    FlowMatching,
    Reflow,
}

flow_options::named_value!(RunKind, "run kind");

impl RunKind {
    pub const ALL: [RunKind; 2] = [RunKind::FlowMatching, RunKind::Reflow];

    pub fn name(self) -> &'static str {
        match self {
            RunKind::FlowMatching => "flow-matching",
            RunKind::Reflow => "reflow",
        }
    }
}

/// Where a run's source or target points come from: a built-in set, or a file of the user's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PointsRef {
    Builtin(Dataset),
    /// Stored absolute, so the file is found from any directory.
    File(PathBuf),
}

impl PointsRef {
    /// The file's path made absolute when it can be.
    pub fn file(path: &Path) -> PointsRef {
        PointsRef::File(path.canonicalize().unwrap_or_else(|_| path.to_owned()))
    }

    /// How the header spells it: the set's name, or `data:PATH`.
    pub fn label(&self) -> String {
        match self {
            PointsRef::Builtin(dataset) => dataset.name().to_owned(),
            PointsRef::File(path) => format!("{DATA_PREFIX}{}", path.display()),
        }
    }

    /// The points, in `dim` dimensions; `None` for a file that is no longer there.
    pub fn points(&self, dim: usize) -> Result<Option<PointSource>> {
        match self {
            PointsRef::Builtin(dataset) => Ok(Some(PointSource::builtin(*dataset, dim)?)),
            PointsRef::File(path) if path.is_file() => {
                Ok(Some(PointSource::Data(Arc::new(flow_data::files::read_points(path)?))))
            }
            PointsRef::File(_) => Ok(None),
        }
    }
}

const DATA_PREFIX: &str = "data:";

/// The header entries of a checkpoint written by a training run. Entries the
/// format does not know are ignored; missing ones are `None` (the source then
/// reads as the Gaussian, as every run before the entry existed used it).
#[derive(Clone, Debug, PartialEq)]
pub struct RunMetadata {
    pub kind: Option<RunKind>,
    pub source: PointsRef,
    pub target: Option<PointsRef>,
    /// The teacher a reflow run distilled, as the user named it.
    pub teacher: Option<PathBuf>,
    /// Training steps the weights have taken (absent from a finished multi-round reflow's top model).
    pub step: Option<usize>,
    /// The round of a multi-round reflow that wrote the checkpoint.
    pub reflow_round: Option<usize>,
    /// Where the target's conditions came from, in the order the user gave them
    /// (empty for an unconditional model; the network's config says what it takes).
    pub conditions: Vec<ConditionSpec>,
    /// The probability path the network was trained on (absent from the
    /// header: the line, as every checkpoint before the entry existed).
    pub path: AffinePath,
    /// A conditional model's condition dropout: 0 means its null condition never trained, so
    /// guidance and unconditional samples cannot work (absent: unknown, as before the entry).
    pub condition_dropout: Option<f64>,
    /// How a flow-matching run paired its sources and targets (absent from the header:
    /// independent, as every checkpoint before the entry existed reads).
    pub coupling: Coupling,
    /// What the network predicts: the velocity (a flow) or \[SF\]2M's score (absent from the
    /// header: the velocity, as every checkpoint before the entry).
    pub objective: Objective,
}

impl Default for RunMetadata {
    fn default() -> RunMetadata {
        RunMetadata {
            kind: None,
            source: PointsRef::Builtin(Dataset::Gaussian),
            target: None,
            teacher: None,
            step: None,
            reflow_round: None,
            conditions: Vec::new(),
            path: AffinePath::LINE,
            condition_dropout: None,
            coupling: Coupling::Independent,
            objective: Objective::Velocity,
        }
    }
}

fn bad_entry(key: &str, reason: impl std::fmt::Display) -> TrainError {
    TrainError::Header(format!("the checkpoint's {key}: {reason}"))
}

fn number(header: &BTreeMap<String, String>, key: &str) -> Result<Option<usize>> {
    header
        .get(key)
        .map(|text| text.parse().map_err(|_| bad_entry(key, format!("`{text}` is not a count"))))
        .transpose()
}

impl RunMetadata {
    /// Metadata of a flow-matching run from `source` to `target`.
    pub fn flow_matching(source: PointsRef, target: Option<PointsRef>) -> RunMetadata {
        RunMetadata { kind: Some(RunKind::FlowMatching), source, target, ..RunMetadata::default() }
    }

    /// Metadata of a reflow run distilling `teacher`, whose own metadata is `of_teacher`.
    pub fn reflow(of_teacher: &RunMetadata, teacher: &Path) -> RunMetadata {
        RunMetadata {
            kind: Some(RunKind::Reflow),
            teacher: Some(teacher.to_owned()),
            step: None,
            reflow_round: None,
            // Reflow regresses onto the teacher's straight-line pairs, whatever its path.
            path: AffinePath::LINE,
            // Its pairs are the teacher's flow, not a minibatch coupling.
            coupling: Coupling::Independent,
            ..of_teacher.clone()
        }
    }

    /// The header entries (`kind`, `source`, `target`, `teacher`, `step`, `reflow_round`,
    /// `conditions` and `condition_dropout` for a conditional model, and `path` / `path_sigma`
    /// for a path other than the line).
    pub fn to_header(&self) -> BTreeMap<String, String> {
        let mut header = BTreeMap::new();
        if let Some(kind) = self.kind {
            header.insert("kind".to_owned(), kind.name().to_owned());
        }
        header.insert("source".to_owned(), self.source.label());
        header.insert("target".to_owned(), self.target.as_ref().map(PointsRef::label).unwrap_or_default());
        if let Some(teacher) = &self.teacher {
            header.insert("teacher".to_owned(), teacher.display().to_string());
        }
        if let Some(step) = self.step {
            header.insert("step".to_owned(), step.to_string());
        }
        if let Some(round) = self.reflow_round {
            header.insert("reflow_round".to_owned(), round.to_string());
        }
        if !self.conditions.is_empty() {
            let specs: Vec<String> = self.conditions.iter().map(ToString::to_string).collect();
            header.insert("conditions".to_owned(), serde_json::Value::from(specs).to_string());
        }
        if let Some(dropout) = self.condition_dropout {
            header.insert("condition_dropout".to_owned(), dropout.to_string());
        }
        if self.objective != Objective::Velocity {
            header.insert("objective".to_owned(), self.objective.name().to_owned());
        }
        // Only when planned, so independent runs' checkpoints keep the bytes they always had.
        if self.coupling != Coupling::Independent {
            header.insert("coupling".to_owned(), self.coupling.to_string());
        }
        // Only off the line, so the line's checkpoints keep the bytes they always had.
        if self.path != AffinePath::LINE {
            header.insert("path".to_owned(), self.path.name().to_string());
            if self.path.sigma > 0.0 {
                header.insert("path_sigma".to_owned(), self.path.sigma.to_string());
            }
        }
        header
    }

    /// Reads the entries [`RunMetadata::to_header`] writes; a malformed one is
    /// an error naming it (a problem of the file, met at run time).
    pub fn from_header(header: &BTreeMap<String, String>) -> Result<RunMetadata> {
        let kind = header
            .get("kind")
            .map(|name| {
                <RunKind as flow_options::NamedOption>::from_form(name)
                    .ok_or_else(|| bad_entry("kind", format!("unknown run kind `{name}`")))
            })
            .transpose()?;
        let points = |key: &str, text: &str| -> Result<PointsRef> {
            Ok(match text.strip_prefix(DATA_PREFIX) {
                Some(path) => PointsRef::File(PathBuf::from(path)),
                None => PointsRef::Builtin(Dataset::from_name(text).map_err(|e| bad_entry(key, e))?),
            })
        };
        let source = match header.get("source") {
            Some(text) => points("source", text)?,
            None => PointsRef::Builtin(Dataset::Gaussian),
        };
        let target = match header.get("target").map(String::as_str) {
            None | Some("") => None,
            Some(text) => Some(points("target", text)?),
        };
        let name = match header.get("path") {
            Some(name) => name.parse::<PathName>().map_err(|e| bad_entry("path", e))?,
            None => PathName::Scheduled(Scheduler::Linear),
        };
        let sigma = match header.get("path_sigma") {
            Some(text) => {
                text.parse().map_err(|_| bad_entry("path_sigma", format!("`{text}` is not a number")))?
            }
            None => 0.0,
        };
        let path = AffinePath::named(name, sigma).map_err(|e| bad_entry("path_sigma", e))?;
        let coupling = match header.get("coupling") {
            Some(text) => text.parse().map_err(|e| bad_entry("coupling", e))?,
            None => Coupling::Independent,
        };
        let objective = match header.get("objective") {
            Some(text) => text.parse().map_err(|e| bad_entry("objective", e))?,
            None => Objective::Velocity,
        };
        Ok(RunMetadata {
            kind,
            source,
            target,
            path,
            coupling,
            objective,
            teacher: header.get("teacher").map(PathBuf::from),
            step: number(header, "step")?,
            reflow_round: number(header, "reflow_round")?,
            condition_dropout: match header.get("condition_dropout") {
                Some(text) => Some(
                    text.parse()
                        .map_err(|_| bad_entry("condition_dropout", format!("`{text}` is not a number")))?,
                ),
                None => None,
            },
            conditions: match header.get("conditions") {
                None => Vec::new(),
                Some(text) => serde_json::from_str::<Vec<String>>(text)
                    .map_err(|e| bad_entry("conditions", e))?
                    .iter()
                    .map(|spec| ConditionSpec::parse(spec).map_err(|e| bad_entry("conditions", e)))
                    .collect::<Result<_>>()?,
            },
        })
    }

    /// The source distribution in `dim` dimensions: the built-in set, or the
    /// data file resampled (an error naming the file when it is gone).
    pub fn source_points(&self, dim: usize) -> Result<PointSource> {
        match &self.source {
            PointsRef::Builtin(dataset) => {
                PointSource::builtin(*dataset, dim).map_err(|e| bad_entry("source", e))
            }
            PointsRef::File(path) => self.source.points(dim)?.ok_or_else(|| {
                bad_entry(
                    "source",
                    format!("the data file {} is not there; give the points with --input", path.display()),
                )
            }),
        }
    }

    /// The path whose score the network's velocity gives, for the stochastic samplers: a run
    /// from the standard Gaussian with independent pairs; a usage error naming what is not.
    pub fn score_path(&self) -> Result<AffinePath> {
        let refuse = |why: String| {
            Err(TrainError::Config(format!(
                "{why}, so its velocity does not give the score the stochastic samplers need; sample it with an ODE solver (e.g. --solver euler)"
            )))
        };
        if self.kind == Some(RunKind::Reflow) {
            return refuse("this is a reflow model, whose pairs are its teacher's coupling".into());
        }
        if self.coupling != Coupling::Independent {
            return refuse(format!(
                "this model was trained with --coupling {}, not independent pairs",
                self.coupling
            ));
        }
        if self.source != PointsRef::Builtin(Dataset::Gaussian) {
            return refuse(format!(
                "this model's source is {}, not the standard Gaussian",
                self.source.label()
            ));
        }
        Ok(self.path)
    }

    /// The source's built-in set, when it is one (a data file has no density).
    pub fn source_dataset(&self) -> Option<Dataset> {
        match self.source {
            PointsRef::Builtin(dataset) => Some(dataset),
            PointsRef::File(_) => None,
        }
    }
}
