//! The native backend: flow-native's fused CPU kernels running a network, for inference (a
//! velocity field over host points) and for training (weights, workspace and Adam on the host).

use std::cell::RefCell;

use flow_data::ConditionShape;
use flow_ode::VelocityField;
use ndarray::Array2;

use crate::{ModelError, Result, VelocityNet};

/// A network on flow-native's kernels, as a velocity field over host points.
pub struct NativeField {
    mlp: flow_native::Mlp,
    workspace: RefCell<flow_native::Workspace>,
    condition: ConditionShape,
}

impl NativeField {
    /// `net` on native `kernel`; an error when the network does not fit the
    /// kernels or the CPU lacks the kernel.
    pub fn with_kernel(net: &VelocityNet, kernel: flow_native::Kernel) -> Result<NativeField> {
        let mlp = net.to_native()?;
        let workspace = flow_native::Workspace::with_kernel(tch::get_num_threads().max(1) as usize, kernel)?;
        Ok(NativeField { mlp, workspace: RefCell::new(workspace), condition: net.config().condition })
    }
}

impl NativeField {
    /// Rows `[x, t, features]`, with the null condition's features when `features` is `None`.
    fn inputs(&self, x: &Array2<f32>, t: f64, features: Option<&[f32]>) -> Vec<f32> {
        let null;
        let features = match features {
            Some(features) => features,
            None => {
                null = self.condition.null_features(x.nrows());
                &null
            }
        };
        let mut inputs = Vec::new();
        VelocityNet::host_inputs(x, |_| t as f32, features, &mut inputs);
        inputs
    }

    fn forward(&self, inputs: &[f32], rows: usize, dim: usize) -> Result<Array2<f32>> {
        let outputs = self.workspace.borrow_mut().forward(&self.mlp, inputs)?;
        Array2::from_shape_vec((rows, dim), outputs).map_err(|e| {
            ModelError::Internal(format!("the native network gave {rows} × {dim} velocities wrongly: {e}"))
        })
    }

    /// The guided velocity (see [`Guide`]); both halves in one pass when both are needed.
    pub(crate) fn guided_velocity(
        &self,
        x: &Array2<f32>,
        t: f64,
        features: &[f32],
        weight: f64,
    ) -> Result<Array2<f32>> {
        let (rows, dim) = x.dim();
        if weight == 1.0 {
            return self.forward(&self.inputs(x, t, Some(features)), rows, dim);
        }
        if weight == 0.0 {
            return self.forward(&self.inputs(x, t, None), rows, dim);
        }
        let mut inputs = self.inputs(x, t, Some(features));
        inputs.extend(self.inputs(x, t, None));
        let both = self.forward(&inputs, 2 * rows, dim)?;
        let conditioned = both.slice(ndarray::s![..rows, ..]);
        let unconditioned = both.slice(ndarray::s![rows.., ..]);
        Ok(&unconditioned + &((&conditioned - &unconditioned) * weight as f32))
    }

    /// See [`Integrator::velocity_and_forms`]: J u by forward mode, then u · J u.
    pub(crate) fn velocity_and_forms(
        &self,
        x: &Array2<f32>,
        t: f64,
        (vectors, directions): (&[f32], usize),
    ) -> Result<(Array2<f32>, Array2<f32>)> {
        let (rows, dim) = x.dim();
        let (values, products) = self.workspace.borrow_mut().forward_with_jvps(
            &self.mlp,
            &self.inputs(x, t, None),
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
    type Error = ModelError;

    fn velocity(&self, x: &Array2<f32>, t: f64) -> Result<Array2<f32>> {
        let (rows, dim) = x.dim();
        self.forward(&self.inputs(x, t, None), rows, dim)
    }
}
