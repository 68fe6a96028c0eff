//! Integrating host points through a network, on the backend chosen once for it.

use std::cell::RefCell;

use flow_ode::VelocityField;
use ndarray::Array2;

use crate::state::{TensorState, array_to_tensor, tensor_to_array};
use crate::{Backend, ModelError, Result, VelocityNet};

/// The end points, cost and (optionally) path of integrating host points through a network.
pub struct PointsSolution {
    pub points: Array2<f32>,
    pub nfe: usize,
    pub trajectory: Vec<(f64, Array2<f32>)>,
}

/// A network made ready to integrate host points: its copy for flow-native's
/// CPU kernels (with their thread pool) built once, or the network on its
/// libtorch device. Build one per network and reuse it: online reflow pairs,
/// quality probes and sampling each integrate many batches.
pub struct Integrator {
    net: VelocityNet,
    native: Option<NativeField>,
}

impl Integrator {
    /// `net` on `backend` (resolved with native `kernel`, see [`Backend::resolve`]).
    pub fn new(net: &VelocityNet, backend: Backend, kernel: flow_native::Kernel) -> Result<Integrator> {
        let native = match backend.resolve(net, kernel)? {
            Backend::Native => Some(NativeField::with_kernel(net, kernel)?),
            _ => None,
        };
        Ok(Integrator { net: net.try_clone()?, native })
    }

    /// `net` on the fastest backend for it: the native kernels when it fits them
    /// (CPU, f32, raw time) and a SIMD kernel is there (or `FLOWMATCH_KERNEL`
    /// names one), else libtorch.
    pub fn auto(net: &VelocityNet) -> Result<Integrator> {
        Integrator::new(net, Backend::Auto, flow_native::Kernel::requested()?)
    }

    pub fn net(&self) -> &VelocityNet {
        &self.net
    }

    /// The backend that integrates: `Native` or `Libtorch`.
    pub fn backend(&self) -> Backend {
        if self.native.is_some() { Backend::Native } else { Backend::Libtorch }
    }

    /// Integrates `start` over `grid`, copying to and from the device once
    /// (and once per recorded state) on libtorch. Non-finite end points are an error.
    pub fn integrate(
        &self,
        start: &Array2<f32>,
        grid: &flow_ode::TimeGrid,
        solver: flow_ode::Solver,
        record: flow_ode::Record,
    ) -> Result<PointsSolution> {
        let solution = match &self.native {
            // Points of another dimension go to libtorch, which names the mismatch.
            Some(field) if start.ncols() == self.net.config().dim => {
                let solution = flow_ode::integrate(field, start.clone(), grid, solver, record)?;
                PointsSolution { points: solution.state, nfe: solution.nfe, trajectory: solution.trajectory }
            }
            _ => {
                let net = &self.net;
                let x0 = TensorState(array_to_tensor(start, net.kind(), net.device()));
                let solution = flow_ode::integrate(net, x0, grid, solver, record)?;
                let trajectory = solution
                    .trajectory
                    .iter()
                    .map(|(t, x)| Ok((*t, tensor_to_array(&x.0)?)))
                    .collect::<Result<_>>()?;
                PointsSolution { points: tensor_to_array(&solution.state.0)?, nfe: solution.nfe, trajectory }
            }
        };
        // NaN or infinite end points are never a sample: say so instead of writing them.
        let rows =
            solution.points.rows().into_iter().filter(|row| row.iter().any(|v| !v.is_finite())).count();
        if rows > 0 {
            return Err(ModelError::NonFinite { rows, total: solution.points.nrows() });
        }
        Ok(solution)
    }
}

/// Integrates host points through `net` once; see [`Integrator::auto`] and
/// [`Integrator::integrate`]. Build an [`Integrator`] to integrate many batches.
pub fn integrate_points(
    net: &VelocityNet,
    start: &Array2<f32>,
    grid: &flow_ode::TimeGrid,
    solver: flow_ode::Solver,
    record: flow_ode::Record,
) -> Result<PointsSolution> {
    Integrator::auto(net)?.integrate(start, grid, solver, record)
}

/// A network on flow-native's kernels, as a velocity field over host points.
pub struct NativeField {
    mlp: flow_native::Mlp,
    workspace: RefCell<flow_native::Workspace>,
}

impl NativeField {
    /// `net` on native `kernel`; an error when the network does not fit the
    /// kernels or the CPU lacks the kernel.
    pub fn with_kernel(net: &VelocityNet, kernel: flow_native::Kernel) -> Result<NativeField> {
        let mlp = net.to_native()?;
        let workspace = flow_native::Workspace::with_kernel(tch::get_num_threads().max(1) as usize, kernel)?;
        Ok(NativeField { mlp, workspace: RefCell::new(workspace) })
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
            .expect("Integrator::integrate matched the network's dimension to the points'");
        Array2::from_shape_vec((rows, dim), outputs).expect("the network outputs one velocity per point")
    }
}
