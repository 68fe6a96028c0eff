//! Integrating host points through a network, on the backend chosen once for it.

use std::cell::RefCell;

use flow_ode::VelocityField;
use ndarray::Array2;
use tch::Tensor;

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

impl Integrator {
    /// The velocity at `(x, t)` (n × d) and, for each of `directions` vectors
    /// u per point (`vectors`: n × directions × d), the quadratic form uᵀ J u
    /// of the velocity's Jacobian J = ∂v/∂x (n × directions). With the unit
    /// vectors the forms sum to the divergence; with random signs they are
    /// Hutchinson's estimates of it. Native kernels compute J u by forward
    /// mode, libtorch uᵀ J by autograd: the same numbers to rounding.
    pub fn velocity_and_forms(
        &self,
        x: &Array2<f32>,
        t: f64,
        (vectors, directions): (&[f32], usize),
    ) -> Result<(Array2<f32>, Array2<f32>)> {
        let (rows, dim) = x.dim();
        if dim != self.net.config().dim || vectors.len() != rows * directions * dim {
            return Err(ModelError::Internal(format!(
                "{} direction values for {rows} points of dimension {dim} and a {}-dimensional network",
                vectors.len(),
                self.net.config().dim
            )));
        }
        match &self.native {
            Some(field) => field.velocity_and_forms(x, t, (vectors, directions)),
            None => self.torch_velocity_and_forms(x, t, (vectors, directions)),
        }
    }

    fn torch_velocity_and_forms(
        &self,
        x: &Array2<f32>,
        t: f64,
        (vectors, directions): (&[f32], usize),
    ) -> Result<(Array2<f32>, Array2<f32>)> {
        let net = &self.net;
        let (rows, dim) = x.dim();
        let (kind, device) = (net.kind(), net.device());
        let all = Tensor::from_slice(vectors)
            .view([rows as i64, directions as i64, dim as i64])
            .to_kind(kind)
            .to_device(device);
        tch::with_grad(|| {
            let position = array_to_tensor(x, kind, device).set_requires_grad(true);
            let times = Tensor::full([rows as i64, 1], t, (kind, device));
            let velocity = net.forward(&position, &times);
            let mut forms = Vec::with_capacity(directions);
            for direction in 0..directions {
                let u = all.select(1, direction as i64);
                let projected = (&velocity * &u).sum(kind);
                let keep = direction + 1 < directions;
                let gradient = Tensor::f_run_backward(&[&projected], &[&position], keep, false)?;
                forms.push((&gradient[0] * &u).sum_dim_intlist(1, false, kind));
            }
            let forms = if forms.is_empty() {
                Tensor::zeros([rows as i64, 0], (kind, device))
            } else {
                Tensor::stack(&forms, 1)
            };
            Ok((tensor_to_array(&velocity.detach())?, tensor_to_array(&forms)?))
        })
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

impl NativeField {
    fn inputs(x: &Array2<f32>, t: f64) -> Vec<f32> {
        let mut inputs = Vec::with_capacity(x.nrows() * (x.ncols() + 1));
        for row in x.rows() {
            inputs.extend(row.iter().copied());
            inputs.push(t as f32);
        }
        inputs
    }

    /// See [`Integrator::velocity_and_forms`]: J u by forward mode, then u · J u.
    fn velocity_and_forms(
        &self,
        x: &Array2<f32>,
        t: f64,
        (vectors, directions): (&[f32], usize),
    ) -> Result<(Array2<f32>, Array2<f32>)> {
        let (rows, dim) = x.dim();
        let (values, products) = self.workspace.borrow_mut().forward_with_jvps(
            &self.mlp,
            &NativeField::inputs(x, t),
            (vectors, directions, dim),
        )?;
        let forms: Vec<f32> = vectors
            .chunks_exact(dim)
            .zip(products.chunks_exact(dim))
            .map(|(u, ju)| u.iter().zip(ju).map(|(a, b)| a * b).sum())
            .collect();
        let shape = |e: ndarray::ShapeError| ModelError::Internal(e.to_string());
        Ok((
            Array2::from_shape_vec((rows, dim), values).map_err(shape)?,
            Array2::from_shape_vec((rows, directions), forms).map_err(shape)?,
        ))
    }
}

impl VelocityField<Array2<f32>> for NativeField {
    fn velocity(&self, x: &Array2<f32>, t: f64) -> Array2<f32> {
        let (rows, dim) = x.dim();
        let outputs = self
            .workspace
            .borrow_mut()
            .forward(&self.mlp, &NativeField::inputs(x, t))
            .expect("Integrator::integrate matched the network's dimension to the points'");
        Array2::from_shape_vec((rows, dim), outputs).expect("the network outputs one velocity per point")
    }
}
