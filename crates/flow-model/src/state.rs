//! Points on a device as solver states and path rows, and conversions between host arrays and tensors.

use flow_ode::{State, VelocityField};
use ndarray::Array2;
use tch::{Device, Kind, Tensor};

use crate::{ModelError, Result, VelocityNet};

/// A batch of positions (n × d) living on a device: flow-ode's state type for
/// the network. Every operation stays on the tensor's device.
pub struct TensorState(pub Tensor);

impl Clone for TensorState {
    /// Solvers never mutate states in place, so sharing storage is safe.
    fn clone(&self) -> TensorState {
        TensorState(self.0.shallow_clone())
    }
}

impl State for TensorState {
    fn combine(&self, terms: &[(f64, &Self)]) -> Self {
        // Never `+=`: on a shallow clone that would write into `self`'s storage.
        let sum = terms.iter().fold(self.0.shallow_clone(), |acc, (c, term)| acc + &term.0 * *c);
        TensorState(sum)
    }

    fn scaled_rms(&self, a: &Self, b: &Self, rtol: f64, atol: f64) -> f64 {
        let scale = a.0.abs().maximum(&b.0.abs()) * rtol + atol;
        let ratio = (&self.0 / scale).square().mean(Kind::Double).sqrt();
        // One scalar read per adaptive step: the only host synchronisation in the loop.
        ratio.double_value(&[])
    }
}

impl flow_path::Rows for TensorState {
    /// An n × 1 tensor of the batch's kind on its device, broadcast over the columns.
    type Column = Tensor;

    fn rows(&self) -> usize {
        self.0.size()[0] as usize
    }

    fn column(&self, values: &[f32]) -> Tensor {
        Tensor::from_slice(values).view([-1, 1]).to_kind(self.0.kind()).to_device(self.0.device())
    }

    fn minus(&self, other: &TensorState) -> TensorState {
        TensorState(&self.0 - &other.0)
    }

    fn scaled(&self, c: &Tensor) -> TensorState {
        TensorState(c * &self.0)
    }

    fn plus_scaled(&self, c: &Tensor, other: &TensorState) -> TensorState {
        TensorState(&self.0 + c * &other.0)
    }
}

impl VelocityField<TensorState> for VelocityNet {
    type Error = ModelError;

    fn velocity(&self, x: &TensorState, t: f64) -> Result<TensorState> {
        Ok(TensorState(self.velocity_at(&x.0, t)))
    }
}

/// Host points to a tensor of `kind` on `device`.
pub fn array_to_tensor(points: &Array2<f32>, kind: Kind, device: Device) -> Tensor {
    let (rows, cols) = points.dim();
    let flat: Vec<f32> = points.iter().copied().collect();
    Tensor::from_slice(&flat).view([rows as i64, cols as i64]).to_kind(kind).to_device(device)
}

/// A 2-D tensor back to host `f32` points.
pub fn tensor_to_array(tensor: &Tensor) -> Result<Array2<f32>> {
    let size = tensor.size();
    let (rows, cols) = (size[0] as usize, size.get(1).copied().unwrap_or(1) as usize);
    let host = tensor.to_device(Device::Cpu).to_kind(Kind::Float).contiguous().view([-1]);
    let flat = Vec::<f32>::try_from(&host)?;
    Array2::from_shape_vec((rows, cols), flat)
        .map_err(|e| ModelError::Internal(format!("a {rows} × {cols} tensor read back wrongly: {e}")))
}
