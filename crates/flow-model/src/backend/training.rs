//! What computes a training step: libtorch (any device, any precision) or
//! flow-native's fused CPU kernels (f32, raw time, CPU), behind one interface,
//! and the batches each wants.

use flow_path::{AffinePath, Objective};
use ndarray::Array2;
use tch::{Device, Kind, Tensor};

use super::flat_adam::FlatAdam;
use crate::{Backend, ModelError, Result, Runtime, TensorState, VelocityNet};

/// The form a training engine takes its batches in: host rows (the native
/// kernels) or tensors of a kind on a libtorch device (which may be the CPU).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Place {
    /// Host rows, for the native kernels.
    Rows,
    /// Tensors of this kind on this device, for libtorch.
    Tensors(Kind, Device),
}

/// A batch of pairs, `n × d` each, with the targets' condition features
/// (`n × features`, row-major; empty or `None` for an unconditional model).
#[allow(missing_docs)]
pub enum Batch {
    /// Host rows: sources, targets and the targets' condition features.
    Rows { x0: Array2<f32>, x1: Array2<f32>, features: Vec<f32> },
    /// Tensors on the training device: sources, targets and condition features.
    Tensors { x0: Tensor, x1: Tensor, features: Option<Tensor> },
}

/// A tensor's values as host `f32`s, in row-major order.
fn host_values(tensor: &Tensor) -> Result<Vec<f32>> {
    Ok(Vec::<f32>::try_from(tensor.to_device(Device::Cpu).to_kind(Kind::Float).contiguous().view(-1))?)
}

/// Weights, optimiser moments and step: what a resumable checkpoint holds.
pub struct OptimiserState {
    /// The raw (not averaged) weights, flat.
    pub parameters: Tensor,
    /// Adam's first moment.
    pub first: Tensor,
    /// Adam's second moment.
    pub second: Tensor,
    /// Updates taken.
    pub step: u64,
}

/// The training state of one run on the backend its [`Runtime`] resolved: the
/// optimiser (and, on the native kernels, the network's working copy), the
/// weight average and the losses not yet read back. Opaque: callers step it,
/// read its losses, save and restore it.
pub struct Engine(State);

enum State {
    Libtorch {
        adam: FlatAdam,
        average: Option<Tensor>,
        /// Losses still on the device, read back in groups (see LOSS_READBACK).
        pending: Vec<Tensor>,
    },
    Native {
        mlp: Box<flow_native::Mlp>,
        workspace: flow_native::Workspace,
        adam: flow_native::Adam,
        average: Option<Vec<f32>>,
        pending: Vec<f32>,
        inputs: Vec<f32>,
    },
}

impl Engine {
    /// An engine training `net` from its current weights with Adam (AdamW's decoupled
    /// `weight_decay` when above 0); `ema` keeps an average.
    pub fn new(net: &VelocityNet, runtime: Runtime, lr: f64, weight_decay: f64, ema: bool) -> Result<Engine> {
        Ok(Engine(match runtime.resolve(net)? {
            Backend::Native => {
                let mlp = net.to_native()?;
                let count = mlp.parameters().len();
                State::Native {
                    average: ema.then(|| mlp.parameters().to_vec()),
                    mlp: Box::new(mlp),
                    workspace: flow_native::Workspace::with_kernel(
                        tch::get_num_threads().max(1) as usize,
                        runtime.kernel,
                    )?,
                    adam: flow_native::Adam::new(count, lr).with_weight_decay(weight_decay),
                    pending: Vec::new(),
                    inputs: Vec::new(),
                }
            }
            _ => State::Libtorch {
                adam: FlatAdam::new(net.flat_parameters(), lr).with_weight_decay(weight_decay),
                average: ema.then(|| net.flat_parameters().detach().copy()),
                pending: Vec::new(),
            },
        }))
    }

    /// The backend computing the steps: `Native` or `Libtorch`.
    pub fn backend(&self) -> Backend {
        match &self.0 {
            State::Libtorch { .. } => Backend::Libtorch,
            State::Native { .. } => Backend::Native,
        }
    }

    /// One regression step of v(xₜ, t) onto the path's target velocity (or, for the score
    /// objective, its weighted score target) at rate `lr` (xₜ and the target from `path`, with
    /// `noise` rows when its σ > 0); `meanwhile` runs on this thread while the native kernels
    /// compute (after the step on libtorch), and its result is returned.
    pub fn step<T>(
        &mut self,
        net: &mut VelocityNet,
        (batch, times, noise): (&Batch, &[f32], Option<&Array2<f32>>),
        (path, objective): (&AffinePath, Objective),
        (lr, ema): (f64, Option<f64>),
        meanwhile: impl FnOnce() -> T,
    ) -> Result<T> {
        let side = match (&mut self.0, batch) {
            (State::Libtorch { adam, average, pending }, Batch::Tensors { x0, x1, features }) => {
                let kind = net.kind();
                let t = Tensor::from_slice(times).view([-1, 1]).to_kind(kind).to_device(net.device());
                let noise = noise.map(|noise| TensorState(crate::array_to_tensor(noise, kind, net.device())));
                let (x0, x1) = (TensorState(x0.shallow_clone()), TensorState(x1.shallow_clone()));
                let sample = path.sample_for(objective, &x0, &x1, times, noise.as_ref())?;
                let (position, velocity) = (sample.x_t.0, sample.target.0);
                let predicted = match features {
                    Some(features) => net.forward_conditioned(&position, &t, features),
                    None => net.forward(&position, &t),
                };
                let loss = match &sample.weights {
                    // One fused operation (and one backward node), as `nn.functional.mse_loss`.
                    None => predicted.mse_loss(&velocity, tch::Reduction::Mean),
                    Some(weights) => {
                        let weights =
                            Tensor::from_slice(weights).view([-1, 1]).to_kind(kind).to_device(net.device());
                        ((predicted - velocity).square() * weights).mean(kind)
                    }
                };
                loss.backward();
                adam.lr = lr;
                let mut parameters = net.flat_parameters().shallow_clone();
                adam.step(&mut parameters);
                if let (Some(average), Some(decay)) = (average, ema) {
                    tch::no_grad(|| {
                        let _ = average.lerp_(&parameters, 1.0 - decay);
                    });
                }
                pending.push(loss.detach());
                meanwhile()
            }
            (
                State::Native { mlp, workspace, adam, average, pending, inputs },
                Batch::Rows { x0, x1, features },
            ) => {
                let sample = path.sample_for(objective, x0, x1, times, noise)?;
                VelocityNet::host_inputs(&sample.x_t, |i| times[i], features, inputs);
                // Arrays the path computes are in standard layout: the targets as they lie.
                let targets = sample
                    .target
                    .as_slice()
                    .ok_or_else(|| ModelError::Internal("path targets out of row order".into()))?;
                let weights = sample.weights.as_deref();
                let ((loss, gradient), side) =
                    workspace.weighted_loss_and_gradient_while(mlp, (inputs, targets, weights), meanwhile)?;
                adam.lr = lr;
                adam.update(mlp.parameters_mut(), gradient);
                if let (Some(average), Some(decay)) = (average, ema) {
                    let weight = (1.0 - decay) as f32;
                    for (a, &p) in average.iter_mut().zip(mlp.parameters()) {
                        *a += weight * (p - *a);
                    }
                }
                pending.push(loss);
                side
            }
            _ => {
                return Err(ModelError::Internal(
                    "a batch in the wrong place for the training engine".into(),
                ));
            }
        };
        Ok(side)
    }

    /// The native kernel computing the steps, if this engine is native.
    pub fn kernel(&self) -> Option<flow_native::Kernel> {
        match &self.0 {
            State::Libtorch { .. } => None,
            State::Native { workspace, .. } => Some(workspace.kernel()),
        }
    }

    /// Where this engine wants its batches.
    pub fn place(&self, net: &VelocityNet) -> Place {
        match &self.0 {
            State::Libtorch { .. } => Place::Tensors(net.kind(), net.device()),
            State::Native { .. } => Place::Rows,
        }
    }

    /// Moves finished losses into `losses`, stopping at the first non-finite
    /// one, which is returned (the step after the last one in `losses`).
    pub fn drain_losses(&mut self, losses: &mut Vec<f32>) -> Result<Option<f32>> {
        let values = match &mut self.0 {
            State::Libtorch { pending, .. } if !pending.is_empty() => {
                let values = Vec::<f32>::try_from(
                    Tensor::stack(pending, 0).to_device(Device::Cpu).to_kind(Kind::Float),
                )?;
                pending.clear();
                values
            }
            State::Native { pending, .. } => std::mem::take(pending),
            _ => return Ok(None),
        };
        for value in values {
            if !value.is_finite() {
                return Ok(Some(value));
            }
            losses.push(value);
        }
        Ok(None)
    }

    /// The raw (not averaged) weights.
    pub fn raw(&self, net: &VelocityNet) -> Tensor {
        match &self.0 {
            State::Libtorch { .. } => net.flat_parameters().detach(),
            State::Native { mlp, .. } => Tensor::from_slice(mlp.parameters()),
        }
    }

    /// The weights the run publishes now: the average when one is kept, else the raw weights.
    pub fn published(&self, net: &VelocityNet) -> Tensor {
        self.average(net).unwrap_or_else(|| self.raw(net))
    }

    /// Leaves in `net` what the run publishes (see [`Engine::published`]); until
    /// then the engine owns the weights (on the native kernels `net` keeps the
    /// weights it started from).
    pub fn publish(&self, net: &mut VelocityNet) -> Result<()> {
        match &self.0 {
            State::Libtorch { average: Some(average), .. } => {
                tch::no_grad(|| net.flat_parameters().shallow_clone().copy_(average));
            }
            State::Libtorch { average: None, .. } => {}
            State::Native { average: Some(average), .. } => net.set_parameters(average)?,
            State::Native { mlp, average: None, .. } => net.set_parameters(mlp.parameters())?,
        }
        Ok(())
    }

    /// The averaged weights, if an average is kept.
    pub fn average(&self, net: &VelocityNet) -> Option<Tensor> {
        match &self.0 {
            State::Libtorch { average, .. } => average.as_ref().map(Tensor::shallow_clone),
            State::Native { average, .. } => {
                average.as_ref().map(|a| Tensor::from_slice(a).to_kind(net.kind()).to_device(net.device()))
            }
        }
    }

    /// Weights (raw), moments and step, as tensors for the state file.
    pub fn state(&self, net: &VelocityNet) -> OptimiserState {
        match &self.0 {
            State::Libtorch { adam, .. } => {
                let (first, second) = adam.moments();
                OptimiserState {
                    parameters: net.flat_parameters().detach(),
                    first: first.shallow_clone(),
                    second: second.shallow_clone(),
                    step: adam.step,
                }
            }
            State::Native { mlp, adam, .. } => {
                let (first, second) = adam.moments();
                OptimiserState {
                    parameters: Tensor::from_slice(mlp.parameters()),
                    first: Tensor::from_slice(first),
                    second: Tensor::from_slice(second),
                    step: adam.step,
                }
            }
        }
    }

    /// Continues from a saved state: raw weights and moments from `state`, the
    /// average (when one is kept) from `published`, what the run had published.
    pub fn restore(
        &mut self,
        net: &mut VelocityNet,
        state: &OptimiserState,
        published: &Tensor,
    ) -> Result<()> {
        match &mut self.0 {
            State::Libtorch { adam, average, .. } => {
                if let Some(average) = average {
                    tch::no_grad(|| average.copy_(published));
                }
                adam.restore(&state.first, &state.second, state.step);
                tch::no_grad(|| net.flat_parameters().shallow_clone().copy_(&state.parameters));
            }
            State::Native { mlp, adam, average, .. } => {
                if let Some(average) = average {
                    *average = host_values(published)?;
                }
                adam.restore(host_values(&state.first)?, host_values(&state.second)?, state.step)?;
                mlp.parameters_mut().copy_from_slice(&host_values(&state.parameters)?);
            }
        }
        Ok(())
    }
}
