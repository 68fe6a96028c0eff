//! Conditions attached to target points (a class label, continuous values) and the input features a network sees for them.
//!
//! A condition row holds the label first (when there is one), then the values.
//! A network sees it as features: a one-hot over `classes + 1` slots (the last
//! is the learned null class of classifier-free guidance), then the values and
//! a `1` that says they are present (all zero for the null condition).

use std::path::Path;
use std::sync::Arc;

use ndarray::{Array2, Axis};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::{DataError, Dataset, PointSource, Result};

/// What conditions a model takes: a label of `classes` classes (0: none) and `values` continuous values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionShape {
    pub classes: usize,
    pub values: usize,
}

impl ConditionShape {
    pub const NONE: ConditionShape = ConditionShape { classes: 0, values: 0 };

    pub fn is_none(&self) -> bool {
        *self == ConditionShape::NONE
    }

    /// Columns of a condition row: the label, then the values.
    pub fn columns(&self) -> usize {
        usize::from(self.classes > 0) + self.values
    }

    /// Network input features per row.
    pub fn features(&self) -> usize {
        let label = if self.classes > 0 { self.classes + 1 } else { 0 };
        let values = if self.values > 0 { self.values + 1 } else { 0 };
        label + values
    }

    /// One line, for reports and messages.
    pub fn describe(&self) -> String {
        match (self.classes, self.values) {
            (0, 0) => "unconditional".to_owned(),
            (k, 0) => format!("a label of {k} classes"),
            (0, v) => format!("{v} continuous value{}", if v == 1 { "" } else { "s" }),
            (k, v) => {
                format!("a label of {k} classes and {v} continuous value{}", if v == 1 { "" } else { "s" })
            }
        }
    }

    /// Checks one condition row: a whole-number label below `classes`, finite values.
    pub fn check_row(&self, row: &[f32]) -> Result<()> {
        let bad = |message: String| Err(DataError::Condition(message));
        if row.len() != self.columns() {
            return bad(format!("{} condition values given, the model takes {}", row.len(), self.describe()));
        }
        if let (true, Some(&label)) = (self.classes > 0, row.first())
            && (!label.is_finite() || label.fract() != 0.0 || label < 0.0 || label >= self.classes as f32)
        {
            return bad(format!(
                "label {label} is not one of 0 … {} (the model's classes)",
                self.classes - 1
            ));
        }
        if let Some(value) = row.iter().skip(usize::from(self.classes > 0)).find(|v| !v.is_finite()) {
            return bad(format!("condition value {value} is not finite"));
        }
        Ok(())
    }

    /// Checks every row of `conditions` (rows × columns).
    pub fn check(&self, conditions: &Array2<f32>) -> Result<()> {
        conditions.rows().into_iter().try_for_each(|row| self.check_row(&row.to_vec()))
    }

    /// A condition row from text: `K` (a label), `V` (a value), or `K,V,…` in row order.
    pub fn parse(&self, text: &str) -> Result<Vec<f32>> {
        let row = text
            .split(',')
            .map(|cell| {
                cell.trim()
                    .parse::<f32>()
                    .map_err(|_| DataError::Condition(format!("`{}` is not a number", cell.trim())))
            })
            .collect::<Result<Vec<f32>>>()?;
        self.check_row(&row)?;
        Ok(row)
    }

    /// The features of checked condition rows, row-major (rows × features);
    /// rows where `dropped` says so get the null condition instead.
    pub fn encode(&self, conditions: &Array2<f32>, dropped: impl Fn(usize) -> bool) -> Vec<f32> {
        let width = self.features();
        if width == 0 {
            return Vec::new();
        }
        let mut features = vec![0.0; conditions.nrows() * width];
        // A standard layout makes every row a slice: this runs on every training batch, so no copy per row.
        let rows = conditions.as_standard_layout();
        for ((i, row), out) in rows.rows().into_iter().enumerate().zip(features.chunks_exact_mut(width)) {
            self.encode_row(row.to_slice().filter(|_| !dropped(i)), out);
        }
        features
    }

    /// The null condition's features for `rows` rows.
    pub fn null_features(&self, rows: usize) -> Vec<f32> {
        let width = self.features();
        if width == 0 {
            return Vec::new();
        }
        let mut features = vec![0.0; rows * width];
        features.chunks_exact_mut(width).for_each(|out| self.encode_row(None, out));
        features
    }

    fn encode_row(&self, row: Option<&[f32]>, out: &mut [f32]) {
        out.fill(0.0);
        let mut at = 0;
        let mut columns = row.unwrap_or(&[]).iter();
        if self.classes > 0 {
            let slot = columns.next().map_or(self.classes, |&label| label as usize);
            out[slot] = 1.0;
            at = self.classes + 1;
        }
        if self.values > 0 && row.is_some() {
            for (out, &value) in out[at..at + self.values].iter_mut().zip(columns) {
                *out = value;
            }
            out[at + self.values] = 1.0;
        }
    }
}

/// Where one condition column of a target comes from, as the command line names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConditionSpec {
    /// `label`: a built-in set's natural label.
    Label,
    /// `coordN`: coordinate N of the target point, as a continuous value.
    Coordinate(usize),
    /// `NAME` or `NAME:label`: a column of the target's CSV file (taken out of its coordinates),
    /// or a `.npy` file of one value per target point.
    Column { name: String, label: bool },
}

impl ConditionSpec {
    pub const FORMS: [&'static str; 5] = ["label", "coordN", "COLUMN", "COLUMN:label", "FILE.npy[:label]"];

    pub fn parse(text: &str) -> Result<ConditionSpec> {
        let text = text.trim();
        if text == "label" {
            return Ok(ConditionSpec::Label);
        }
        if let Some(index) = text.strip_prefix("coord").and_then(|n| n.parse().ok()) {
            return Ok(ConditionSpec::Coordinate(index));
        }
        let (name, label) = match text.strip_suffix(":label") {
            Some(name) => (name, true),
            None => (text, false),
        };
        if name.is_empty() {
            return Err(DataError::Condition(format!(
                "empty condition `{text}` (forms: {})",
                ConditionSpec::FORMS.join(", ")
            )));
        }
        Ok(ConditionSpec::Column { name: name.to_owned(), label })
    }

    fn is_label(&self) -> bool {
        matches!(self, ConditionSpec::Label | ConditionSpec::Column { label: true, .. })
    }
}

impl std::fmt::Display for ConditionSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConditionSpec::Label => f.write_str("label"),
            ConditionSpec::Coordinate(i) => write!(f, "coord{i}"),
            ConditionSpec::Column { name, label: true } => write!(f, "{name}:label"),
            ConditionSpec::Column { name, label: false } => f.write_str(name),
        }
    }
}

impl std::str::FromStr for ConditionSpec {
    type Err = DataError;
    fn from_str(text: &str) -> Result<ConditionSpec> {
        ConditionSpec::parse(text)
    }
}

/// One resolved condition column.
#[derive(Clone, Debug)]
enum Column {
    BuiltinLabel,
    Coordinate(usize),
    /// One value per point of a data set.
    Given(Arc<Vec<f32>>),
}

/// A target and the conditions of each of its points.
#[derive(Clone, Debug)]
pub struct ConditionedTarget {
    pub points: PointSource,
    columns: Vec<Column>,
    shape: ConditionShape,
}

impl ConditionedTarget {
    /// A target without conditions.
    pub fn unconditional(points: PointSource) -> ConditionedTarget {
        ConditionedTarget { points, columns: Vec::new(), shape: ConditionShape::NONE }
    }

    /// A built-in set with `specs` (only `label` and `coordN` apply).
    pub fn builtin(dataset: Dataset, dim: usize, specs: &[ConditionSpec]) -> Result<ConditionedTarget> {
        let points = PointSource::builtin(dataset, dim)?;
        let columns = specs
            .iter()
            .map(|spec| match spec {
                ConditionSpec::Label if dataset.classes() > 0 => Ok((Column::BuiltinLabel, dataset.classes())),
                ConditionSpec::Label => Err(DataError::Condition(format!(
                    "`{dataset}` has no natural label (labelled sets: {})",
                    labelled_sets()
                ))),
                ConditionSpec::Coordinate(i) => coordinate(*i, dim),
                ConditionSpec::Column { name, .. } => Err(DataError::Condition(format!(
                    "condition `{name}` names a data column, but the target is the built-in `{dataset}` (use label or coordN)"
                ))),
            })
            .collect::<Result<Vec<_>>>()?;
        ConditionedTarget::assemble(points, specs, columns)
    }

    /// A data file's points with `specs`: columns of its CSV header (taken out of the
    /// coordinates), `.npy` files of one value per point, or coordinates.
    pub fn from_file(path: &Path, specs: &[ConditionSpec]) -> Result<ConditionedTarget> {
        let named: Vec<&str> = specs
            .iter()
            .filter_map(|spec| match spec {
                ConditionSpec::Column { name, .. } if !name.ends_with(".npy") => Some(name.as_str()),
                _ => None,
            })
            .collect();
        let (points, taken) = crate::files::read_points_taking(path, &named)?;
        let rows = points.nrows();
        let dim = points.ncols();
        let mut taken = taken.into_iter();
        let columns = specs
            .iter()
            .map(|spec| {
                let classes_of = |values: &[f32], name: &str| -> Result<usize> {
                    if !spec.is_label() {
                        return Ok(0);
                    }
                    label_classes(values, name)
                };
                match spec {
                    ConditionSpec::Label => Err(DataError::Condition(format!(
                        "`label` is a built-in set's label; for {} name its column (COLUMN:label)",
                        path.display()
                    ))),
                    ConditionSpec::Coordinate(i) => coordinate(*i, dim),
                    ConditionSpec::Column { name, .. } if name.ends_with(".npy") => {
                        let values = read_condition_npy(Path::new(name), rows)?;
                        let classes = classes_of(&values, name)?;
                        Ok((Column::Given(Arc::new(values)), classes))
                    }
                    ConditionSpec::Column { name, .. } => {
                        let values =
                            taken.next().ok_or_else(|| DataError::Condition(format!("column `{name}`")))?;
                        let classes = classes_of(&values, name)?;
                        Ok((Column::Given(Arc::new(values)), classes))
                    }
                }
            })
            .collect::<Result<Vec<_>>>()?;
        ConditionedTarget::assemble(PointSource::Data(Arc::new(points)), specs, columns)
    }

    /// Puts the label column first and works out the shape.
    fn assemble(
        points: PointSource,
        specs: &[ConditionSpec],
        columns: Vec<(Column, usize)>,
    ) -> Result<ConditionedTarget> {
        let labels = specs.iter().filter(|spec| spec.is_label()).count();
        if labels > 1 {
            return Err(DataError::Condition(format!(
                "{labels} label conditions given; a model takes at most one"
            )));
        }
        let mut shape = ConditionShape::NONE;
        let mut ordered = Vec::with_capacity(columns.len());
        for ((column, classes), spec) in columns.into_iter().zip(specs) {
            if spec.is_label() {
                shape.classes = classes;
                ordered.insert(0, column);
            } else {
                shape.values += 1;
                ordered.push(column);
            }
        }
        Ok(ConditionedTarget { points, columns: ordered, shape })
    }

    pub fn shape(&self) -> ConditionShape {
        self.shape
    }

    /// `n` points and their condition rows (`n × shape.columns()`); the points
    /// come from the same draws as `points.draw(n, rng)`.
    pub fn draw<R: Rng + ?Sized>(&self, n: usize, rng: &mut R) -> Result<(Array2<f32>, Array2<f32>)> {
        let width = self.columns.len();
        if width == 0 {
            return Ok((self.points.draw(n, rng)?, Array2::zeros((n, 0))));
        }
        let (points, labels, rows) = match &self.points {
            PointSource::Builtin { dataset, dim } => match dataset.sample_labeled(n, *dim, rng) {
                Ok(Some((points, labels))) => (points, labels, Vec::new()),
                // Sets without labels (`builtin` refused a label for them) draw as usual.
                Ok(None) => (self.points.draw(n, rng)?, Vec::new(), Vec::new()),
                Err(error) => return Err(error),
            },
            // Never empty: `from_file` refuses a file without points.
            PointSource::Data(data) => {
                let rows: Vec<usize> = (0..n).map(|_| rng.random_range(0..data.nrows())).collect();
                (data.select(Axis(0), &rows), Vec::new(), rows)
            }
        };
        let rows_drawn = points.nrows();
        let conditions = Array2::from_shape_fn((rows_drawn, width), |(i, j)| match &self.columns[j] {
            Column::BuiltinLabel => labels.get(i).map_or(0.0, |&label| label as f32),
            Column::Coordinate(c) => points[[i, *c]],
            Column::Given(values) => rows.get(i).and_then(|&r| values.get(r)).copied().unwrap_or(0.0),
        });
        Ok((points, conditions))
    }
}

fn labelled_sets() -> String {
    Dataset::ALL.iter().filter(|d| d.classes() > 0).map(|d| d.name()).collect::<Vec<_>>().join(", ")
}

fn coordinate(index: usize, dim: usize) -> Result<(Column, usize)> {
    if index >= dim {
        return Err(DataError::Condition(format!(
            "coord{index} is not a coordinate of {dim}-dimensional points (coord0 … coord{})",
            dim.saturating_sub(1)
        )));
    }
    Ok((Column::Coordinate(index), 0))
}

/// Classes of a label column: its largest value + 1, every value a whole number ≥ 0.
fn label_classes(values: &[f32], name: &str) -> Result<usize> {
    if let Some((row, value)) =
        values.iter().enumerate().find(|(_, v)| v.fract() != 0.0 || **v < 0.0 || **v > MAX_CLASSES as f32)
    {
        return Err(DataError::Condition(format!(
            "label `{name}`, row {}: {value} is not a whole number in 0 … {MAX_CLASSES}",
            row + 1
        )));
    }
    Ok(values.iter().fold(0.0f32, |a, &b| a.max(b)) as usize + 1)
}

/// Labels above this are more likely a continuous column named as a label by mistake.
const MAX_CLASSES: usize = 65_535;

/// A `.npy` of one finite value per point (`rows` of them, 1-D or `rows × 1`).
fn read_condition_npy(path: &Path, rows: usize) -> Result<Vec<f32>> {
    // A 2-D file's own faults (a NaN, a truncated body) are its; one that is not 2-D is read
    // as the 1-D vector it most likely is, with that reader's faults.
    let values = match crate::files::read_points(path) {
        Ok(values) => values,
        Err(DataError::Npy { .. }) => crate::files::read_vector(path)?.insert_axis(Axis(1)),
        Err(other) => return Err(other),
    };
    if values.ncols() != 1 || values.nrows() != rows {
        // What the file holds is a fault of the file, found while running: not a usage mistake.
        return Err(DataError::Npy {
            path: path.to_owned(),
            message: format!(
                "holds {} × {} values, expected one per point ({rows})",
                values.nrows(),
                values.ncols()
            ),
        });
    }
    Ok(values.into_raw_vec_and_offset().0)
}
