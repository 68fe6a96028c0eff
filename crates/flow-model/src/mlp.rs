//! The velocity network on libtorch: its configuration, flat parameter tensor and forward pass.

use flow_data::ConditionShape;
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::{ModelError, Result};
pub use flow_native::Activation;

/// The hidden layers' activation on tensors (exact, erf GELU: PyTorch's `nn.GELU()` default).
fn activate(activation: Activation, x: &Tensor) -> Tensor {
    match activation {
        Activation::Gelu => x.gelu("none"),
        Activation::Silu => x.silu(),
        Activation::Relu => x.relu(),
        Activation::Tanh => x.tanh(),
        Activation::Selu => x.selu(),
    }
}

/// How time enters the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum TimeEmbedding {
    /// t appended as one more input coordinate (the post's choice).
    Raw,
    /// [sin(2ᵏπt), cos(2ᵏπt)] for k = 0 … frequencies−1 appended instead of t.
    Sinusoidal { frequencies: usize },
}

impl flow_options::NamedOption for TimeEmbedding {
    const WHAT: &'static str = "time embedding";

    fn forms() -> Vec<&'static str> {
        vec!["raw", "sinusoidal:K"]
    }

    /// `raw` or `sinusoidal:K` with K ≥ 1.
    fn from_form(text: &str) -> Option<TimeEmbedding> {
        match text {
            "raw" => Some(TimeEmbedding::Raw),
            other => other
                .strip_prefix("sinusoidal:")
                .and_then(|k| k.parse().ok())
                .filter(|&k: &usize| k > 0)
                .map(|frequencies| TimeEmbedding::Sinusoidal { frequencies }),
        }
    }
}

impl TimeEmbedding {
    fn width(self) -> usize {
        match self {
            TimeEmbedding::Raw => 1,
            TimeEmbedding::Sinusoidal { frequencies } => 2 * frequencies,
        }
    }
}

flow_options::from_str_by_forms!(TimeEmbedding);

impl std::fmt::Display for TimeEmbedding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TimeEmbedding::Raw => f.write_str("raw"),
            TimeEmbedding::Sinusoidal { frequencies } => write!(f, "sinusoidal:{frequencies}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    F32,
    F64,
}

impl Precision {
    pub fn kind(self) -> Kind {
        match self {
            Precision::F32 => Kind::Float,
            Precision::F64 => Kind::Double,
        }
    }

    /// Bytes of one value.
    pub fn bytes(self) -> u128 {
        match self {
            Precision::F32 => 4,
            Precision::F64 => 8,
        }
    }
}

/// 2¹²⁷·π is the largest scale f32 holds: more frequencies give infinite angles.
const MAX_FREQUENCIES: usize = 127;

/// A velocity network: what every architecture shares (the data's dimension, how time and
/// conditions enter, the precision) and the architecture itself — all a checkpoint needs to
/// rebuild it. Its JSON (the checkpoint header's `config`, run.json's `model`) is flat:
/// `architecture` names the kind and the kind's own fields stand beside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Data dimension (input position and output velocity).
    pub dim: usize,
    #[serde(flatten)]
    pub architecture: Architecture,
    pub time_embedding: TimeEmbedding,
    pub precision: Precision,
    /// The conditions the network takes, appended to its input as features
    /// (absent from an unconditional network's header, so those read as before).
    #[serde(default, skip_serializing_if = "ConditionShape::is_none")]
    pub condition: ConditionShape,
}

/// The network's architecture, one value per kind. A new kind is a variant here with its
/// shapes, sizes and forward pass beside the MLP's; the header names it (`architecture`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "architecture", rename_all = "lowercase")]
pub enum Architecture {
    /// The post's multilayer perceptron on [x ⊕ time ⊕ condition features].
    Mlp(Mlp),
}

/// A multilayer perceptron: `layers` hidden layers of `hidden` units and an activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mlp {
    pub hidden: usize,
    /// Number of hidden layers; the network has `layers + 1` linear maps.
    pub layers: usize,
    pub activation: Activation,
}

impl Default for Mlp {
    /// The post's: 3 hidden layers of 64 with GELU.
    fn default() -> Mlp {
        Mlp { hidden: 64, layers: 3, activation: Activation::Gelu }
    }
}

impl Architecture {
    /// An MLP of `layers` hidden layers of `hidden` units, GELU.
    pub fn mlp(hidden: usize, layers: usize) -> Architecture {
        Architecture::Mlp(Mlp { hidden, layers, ..Mlp::default() })
    }

    /// Its name in headers and messages.
    pub fn name(&self) -> &'static str {
        match self {
            Architecture::Mlp(_) => "mlp",
        }
    }

    /// The MLP's settings (every architecture is one, for now).
    pub fn as_mlp(&self) -> &Mlp {
        match self {
            Architecture::Mlp(mlp) => mlp,
        }
    }
}

impl Default for ModelConfig {
    /// The post's network for 2-D data: 3 hidden layers of 64 with GELU.
    fn default() -> ModelConfig {
        ModelConfig {
            dim: 2,
            architecture: Architecture::Mlp(Mlp::default()),
            time_embedding: TimeEmbedding::Raw,
            precision: Precision::F32,
            condition: ConditionShape::NONE,
        }
    }
}

impl ModelConfig {
    /// A config from its JSON, of either format: one without `architecture` (checkpoints of
    /// format 1, run records from before the architecture had a name) is an MLP's.
    pub fn from_json(mut value: serde_json::Value) -> std::result::Result<ModelConfig, serde_json::Error> {
        if let Some(entries) = value.as_object_mut() {
            entries.entry("architecture").or_insert_with(|| "mlp".into());
        }
        serde_json::from_value(value)
    }

    /// The post's network, with `mlp` for its hidden layers.
    pub fn with_mlp(mlp: Mlp) -> ModelConfig {
        ModelConfig { architecture: Architecture::Mlp(mlp), ..ModelConfig::default() }
    }

    pub fn validate(&self) -> Result<()> {
        let Architecture::Mlp(mlp) = self.architecture;
        let problem = if self.dim == 0 {
            "dimension must be at least 1"
        } else if mlp.hidden == 0 {
            "hidden width must be at least 1"
        } else if mlp.layers == 0 {
            "there must be at least one hidden layer"
        } else if matches!(self.time_embedding, TimeEmbedding::Sinusoidal { frequencies: 0 }) {
            "a sinusoidal time embedding needs at least one frequency"
        } else if matches!(self.time_embedding, TimeEmbedding::Sinusoidal { frequencies } if frequencies > MAX_FREQUENCIES)
        {
            "a sinusoidal time embedding has at most 127 frequencies (2^k·π overflows f32 beyond)"
        } else {
            return self.check_size();
        };
        Err(ModelError::Config(problem.to_owned()))
    }

    /// Parameters of the network, counted without building its shape list (`layers` may be absurd).
    pub fn parameter_count(&self) -> u128 {
        let Architecture::Mlp(mlp) = self.architecture;
        let (dim, hidden, layers) = (self.dim as u128, mlp.hidden as u128, mlp.layers as u128);
        let input = self.input_width() as u128;
        (input + 1) * hidden + layers.saturating_sub(1) * (hidden + 1) * hidden + (hidden + 1) * dim
    }

    /// Values a training step keeps per batch row: inputs and targets, and the forward values,
    /// slopes and errors of every hidden unit (as libtorch and the native kernels keep them).
    pub fn training_values_per_row(&self) -> u128 {
        let Architecture::Mlp(mlp) = self.architecture;
        (self.dim as u128 + 1) * 4 + (mlp.hidden as u128) * (mlp.layers as u128) * 4
    }

    /// Tensors a checkpoint of this network holds.
    pub fn tensor_count(&self) -> u128 {
        let Architecture::Mlp(mlp) = self.architecture;
        2 * (mlp.layers as u128 + 1)
    }

    /// Refuses a network whose parameters, gradient and optimiser moments
    /// would not fit in memory (before anything is allocated).
    fn check_size(&self) -> Result<()> {
        let count = self.parameter_count();
        let bytes = self.precision.bytes();
        let what = format!("a network of {count} parameters (with its gradient and optimiser moments)");
        Ok(flow_data::budget::check_allocation(&what, count * 4, bytes)?)
    }

    /// `(in, out)` of each linear map, first to last.
    pub fn linear_shapes(&self) -> Vec<(usize, usize)> {
        let Architecture::Mlp(mlp) = self.architecture;
        let input = self.input_width();
        let mut shapes = vec![(input, mlp.hidden)];
        shapes.extend((1..mlp.layers).map(|_| (mlp.hidden, mlp.hidden)));
        shapes.push((mlp.hidden, self.dim));
        shapes
    }

    /// Inputs of the first layer: position, time features, condition features.
    pub fn input_width(&self) -> usize {
        self.dim + self.time_embedding.width() + self.condition.features()
    }

    /// Parameter names as PyTorch's `nn.Sequential` numbers them: linear maps sit
    /// at even indices, activations (which have no parameters) at odd ones.
    pub fn parameter_names(&self) -> Vec<(String, Vec<i64>)> {
        self.linear_shapes()
            .iter()
            .enumerate()
            .flat_map(|(i, &(inputs, outputs))| {
                [
                    (format!("{}.weight", 2 * i), vec![outputs as i64, inputs as i64]),
                    (format!("{}.bias", 2 * i), vec![outputs as i64]),
                ]
            })
            .collect()
    }

    /// One line, for error messages and reports.
    pub fn describe(&self) -> String {
        let time = match self.time_embedding {
            TimeEmbedding::Raw => "raw time".to_owned(),
            TimeEmbedding::Sinusoidal { frequencies } => format!("{frequencies}-frequency time embedding"),
        };
        let condition = if self.condition.is_none() {
            String::new()
        } else {
            format!(", conditioned on {}", self.condition.describe())
        };
        let Architecture::Mlp(mlp) = self.architecture;
        format!(
            "dim {}, {} hidden layers of {}, {:?}, {time}{condition}",
            self.dim, mlp.layers, mlp.hidden, mlp.activation
        )
        .to_lowercase()
    }
}

/// Where one linear map's weight and bias sit in the flat parameter vector.
#[derive(Clone, Copy, Debug)]
struct LinearSlot {
    offset: i64,
    inputs: i64,
    outputs: i64,
}

impl LinearSlot {
    fn weight(&self, flat: &Tensor) -> Tensor {
        flat.narrow(0, self.offset, self.inputs * self.outputs).view([self.outputs, self.inputs])
    }

    fn bias(&self, flat: &Tensor) -> Tensor {
        flat.narrow(0, self.offset + self.inputs * self.outputs, self.outputs)
    }

    fn len(&self) -> i64 {
        (self.inputs + 1) * self.outputs
    }
}

/// The velocity network.
///
/// All parameters live in one flat leaf tensor and the layers are views into
/// it: the optimiser then updates the whole network with a handful of tensor
/// operations instead of a handful per parameter (at batch 2048 on a CPU,
/// per-operation overhead is a large share of a training step).
pub struct VelocityNet {
    config: ModelConfig,
    flat: Tensor,
    slots: Vec<LinearSlot>,
}

impl VelocityNet {
    /// A freshly initialised network, with PyTorch's `nn.Linear` initialisation
    /// (weight and bias both U(−1/√fan_in, 1/√fan_in), which is what
    /// kaiming_uniform with a = √5 works out to), drawn from libtorch's
    /// generator: call `tch::manual_seed` first for reproducible weights.
    pub fn new(config: ModelConfig, device: Device) -> Result<VelocityNet> {
        config.validate()?;
        let mut offset = 0;
        let slots: Vec<LinearSlot> = config
            .linear_shapes()
            .iter()
            .map(|&(inputs, outputs)| {
                let slot = LinearSlot { offset, inputs: inputs as i64, outputs: outputs as i64 };
                offset += slot.len();
                slot
            })
            .collect();
        let kind = config.precision.kind();
        let flat = Tensor::empty([offset], (kind, device));
        tch::no_grad(|| {
            for slot in &slots {
                let bound = 1.0 / (slot.inputs as f64).sqrt();
                let _ = slot.weight(&flat).uniform_(-bound, bound);
                let _ = slot.bias(&flat).uniform_(-bound, bound);
            }
        });
        let flat = flat.set_requires_grad(true);
        Ok(VelocityNet { config, flat, slots })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn device(&self) -> Device {
        self.flat.device()
    }

    pub fn kind(&self) -> Kind {
        self.config.precision.kind()
    }

    /// Every parameter in one 1-D leaf tensor (what the optimiser updates).
    pub fn flat_parameters(&self) -> &Tensor {
        &self.flat
    }

    /// Views of the parameters in `nn.Sequential` order (weight, bias, weight, …).
    pub fn parameters(&self) -> Vec<Tensor> {
        self.slots.iter().flat_map(|s| [s.weight(&self.flat), s.bias(&self.flat)]).collect()
    }

    /// A network of the same architecture holding `flat` as its parameters
    /// (e.g. an average of this one's weights).
    pub fn with_parameters(&self, flat: &Tensor) -> Result<VelocityNet> {
        if flat.size() != self.flat.size() {
            return Err(ModelError::Internal(format!(
                "parameter vector of {:?} elements for a network of {:?}",
                flat.size(),
                self.flat.size()
            )));
        }
        let flat = flat.detach().copy().set_requires_grad(true);
        Ok(VelocityNet { config: self.config, flat, slots: self.slots.clone() })
    }

    /// An independent copy on the same device (a reflow teacher, a student's start).
    pub fn try_clone(&self) -> Result<VelocityNet> {
        self.with_parameters(&self.flat)
    }

    /// Copies every parameter from `other` (same architecture), e.g. a reflow
    /// student starting from its teacher.
    pub fn copy_weights_from(&mut self, other: &VelocityNet) -> Result<()> {
        if other.config != self.config {
            return Err(ModelError::Internal(format!(
                "cannot copy weights from a network of another architecture ({} vs {})",
                other.config.describe(),
                self.config.describe()
            )));
        }
        tch::no_grad(|| self.flat.copy_(&other.flat.to_device(self.device())));
        Ok(())
    }

    /// The same network for [`flow_native`]'s CPU kernels, or why it cannot be:
    /// they work in `f32` on the raw-time input, host memory only.
    pub fn to_native(&self) -> Result<flow_native::Mlp> {
        let unsupported = if self.config.precision != Precision::F32 {
            Some("it is f64 (native kernels are f32)")
        } else if self.config.time_embedding != TimeEmbedding::Raw {
            Some("it has a sinusoidal time embedding")
        } else if self.device() != Device::Cpu {
            Some("it lives on a GPU")
        } else {
            None
        };
        if let Some(reason) = unsupported {
            return Err(ModelError::Config(format!(
                "this network cannot run on the native CPU kernels: {reason}"
            )));
        }
        let parameters = Vec::<f32>::try_from(self.flat.detach())?;
        let activation = self.config.architecture.as_mlp().activation;
        Ok(flow_native::Mlp::new(self.config.linear_shapes(), activation, parameters)?)
    }

    /// Overwrites the parameters with a flat host vector in this network's
    /// layout (what [`VelocityNet::to_native`] and the native trainer use).
    pub fn set_parameters(&mut self, flat: &[f32]) -> Result<()> {
        if flat.len() != self.flat.numel() {
            return Err(ModelError::Internal(format!(
                "{} parameter values for a network of {}",
                flat.len(),
                self.flat.numel()
            )));
        }
        let values = Tensor::from_slice(flat).to_kind(self.kind()).to_device(self.device());
        tch::no_grad(|| self.flat.copy_(&values));
        Ok(())
    }

    /// The time features for a column of times `t` (n × 1).
    fn time_features(&self, t: &Tensor) -> Tensor {
        match self.config.time_embedding {
            TimeEmbedding::Raw => t.shallow_clone(),
            TimeEmbedding::Sinusoidal { frequencies } => {
                let scales: Vec<f64> =
                    (0..frequencies).map(|k| std::f64::consts::PI * 2f64.powi(k as i32)).collect();
                let scales = Tensor::from_slice(&scales).to_kind(t.kind()).to_device(t.device());
                let angles = t * scales.unsqueeze(0);
                Tensor::cat(&[angles.sin(), angles.cos()], 1)
            }
        }
    }

    /// v(x, t) for positions `x` (n × d) and times `t` (n × 1), with autograd
    /// when the caller has it on (training). A conditional network sees the
    /// null condition: this is its unconditional velocity.
    pub fn forward(&self, x: &Tensor, t: &Tensor) -> Tensor {
        self.forward_input(&self.input_features(x, t, None))
    }

    /// v(x, t, c) for condition features `c` (n × features, see [`ConditionShape::encode`]).
    pub fn forward_conditioned(&self, x: &Tensor, t: &Tensor, features: &Tensor) -> Tensor {
        self.forward_input(&self.input_features(x, t, Some(features)))
    }

    /// The network on an already assembled input `x ⊕ time features`.
    pub fn forward_input(&self, input: &Tensor) -> Tensor {
        let last = self.slots.len() - 1;
        let mut h = input.shallow_clone();
        for (i, slot) in self.slots.iter().enumerate() {
            h = h.linear(&slot.weight(&self.flat), Some(&slot.bias(&self.flat)));
            if i < last {
                h = activate(self.config.architecture.as_mlp().activation, &h);
            }
        }
        h
    }

    /// Network input for positions `x` (n × d) and times `t` (n × 1):
    /// x ⊕ time features ⊕ condition features (the null condition's when `None`).
    pub fn input_features(&self, x: &Tensor, t: &Tensor, features: Option<&Tensor>) -> Tensor {
        let shape = self.config.condition;
        if shape.is_none() {
            return Tensor::cat(&[x.shallow_clone(), self.time_features(t)], 1);
        }
        let features = match features {
            Some(features) => features.shallow_clone(),
            None => {
                let rows = x.size()[0];
                Tensor::from_slice(&shape.null_features(rows as usize))
                    .view([rows, shape.features() as i64])
                    .to_kind(x.kind())
                    .to_device(x.device())
            }
        };
        Tensor::cat(&[x.shallow_clone(), self.time_features(t), features], 1)
    }

    /// The rows [x ⊕ t ⊕ condition features] that [`VelocityNet::input_features`]
    /// builds on tensors, built on the host for the native kernels (raw time):
    /// row i of `x` at `time(i)` with `features` (rows × the condition's
    /// features, row-major; empty for an unconditional network) into `inputs`.
    pub fn host_inputs(
        x: &Array2<f32>,
        time: impl Fn(usize) -> f32,
        features: &[f32],
        inputs: &mut Vec<f32>,
    ) {
        let width = features.len() / x.nrows().max(1);
        inputs.clear();
        inputs.reserve(x.nrows() * (x.ncols() + 1 + width));
        for (i, row) in x.rows().into_iter().enumerate() {
            inputs.extend(row.iter().copied());
            inputs.push(time(i));
            inputs.extend_from_slice(&features[i * width..(i + 1) * width]);
        }
    }

    /// v(x, t) at one shared time, without autograd.
    pub fn velocity_at(&self, x: &Tensor, t: f64) -> Tensor {
        tch::no_grad(|| {
            let times = Tensor::full([x.size()[0], 1], t, (x.kind(), x.device()));
            self.forward(x, &times)
        })
    }
}
