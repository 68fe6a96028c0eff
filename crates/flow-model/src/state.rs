//! Points on a device as solver states, and integrating host points through a network.

use std::cell::RefCell;

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

impl VelocityField<TensorState> for VelocityNet {
    fn velocity(&self, x: &TensorState, t: f64) -> TensorState {
        TensorState(self.velocity_at(&x.0, t))
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

/// The end points, cost and (optionally) path of integrating host points through a network.
pub struct PointsSolution {
    pub points: Array2<f32>,
    pub nfe: usize,
    pub trajectory: Vec<(f64, Array2<f32>)>,
}

/// Integrates host points through `net`: on flow-native's CPU kernels when
/// the network fits them (CPU, f32, raw time) and a SIMD kernel is there,
/// else on its libtorch device, copying to and from the device once (and
/// once per recorded state).
pub fn integrate_points(
    net: &VelocityNet,
    start: &Array2<f32>,
    grid: &flow_ode::TimeGrid,
    solver: flow_ode::Solver,
    record: flow_ode::Record,
) -> Result<PointsSolution> {
    let solution = if let Some(field) = NativeField::new(net, start.ncols())? {
        let solution = flow_ode::integrate(&field, start.clone(), grid, solver, record)?;
        PointsSolution { points: solution.state, nfe: solution.nfe, trajectory: solution.trajectory }
    } else {
        let x0 = TensorState(array_to_tensor(start, net.kind(), net.device()));
        let solution = flow_ode::integrate(net, x0, grid, solver, record)?;
        let trajectory = solution
            .trajectory
            .iter()
            .map(|(t, x)| Ok((*t, tensor_to_array(&x.0)?)))
            .collect::<Result<_>>()?;
        PointsSolution { points: tensor_to_array(&solution.state.0)?, nfe: solution.nfe, trajectory }
    };
    // NaN or infinite end points are never a sample: say so instead of writing them.
    let rows = solution.points.rows().into_iter().filter(|row| row.iter().any(|v| !v.is_finite())).count();
    if rows > 0 {
        return Err(ModelError::NonFinite { rows, total: solution.points.nrows() });
    }
    Ok(solution)
}

/// A network on flow-native's kernels, as a velocity field over host points.
pub struct NativeField {
    mlp: flow_native::Mlp,
    workspace: RefCell<flow_native::Workspace>,
}

impl NativeField {
    /// `None` when the network does not fit the native kernels, only the
    /// portable kernel is there (libtorch is faster), or its dimension is not
    /// `dim` (callers then use libtorch, which reports it); an error when
    /// `FLOWMATCH_KERNEL` names a kernel this CPU cannot run.
    pub fn new(net: &VelocityNet, dim: usize) -> Result<Option<NativeField>> {
        let kernel = flow_native::Kernel::requested()?;
        if net.config().dim != dim || !kernel.is_fast() {
            return Ok(None);
        }
        let Ok(mlp) = net.to_native() else { return Ok(None) };
        let workspace = flow_native::Workspace::with_kernel(tch::get_num_threads().max(1) as usize, kernel)?;
        Ok(Some(NativeField { mlp, workspace: RefCell::new(workspace) }))
    }
}

impl VelocityField<Array2<f32>> for NativeField {
    fn velocity(&self, x: &Array2<f32>, t: f64) -> Array2<f32> {
        let (rows, dim) = x.dim();
        let mut inputs = Vec::with_capacity(rows * (dim + 1));
        for row in x.rows() {
            inputs.extend(row.iter().copied());
            inputs.push(t as f32);
        }
        let outputs = self
            .workspace
            .borrow_mut()
            .forward(&self.mlp, &inputs)
            .expect("NativeField::new matched the network's dimension to the points'");
        Array2::from_shape_vec((rows, dim), outputs).expect("the network outputs one velocity per point")
    }
}
