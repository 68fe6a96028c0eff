//! Integrating host points through a network, on the backend chosen once for it.

use flow_data::ConditionShape;
use std::sync::Mutex;

use flow_ode::{Fallible, VelocityField};
use flow_path::{AffinePath, ScheduleChange};
use ndarray::Array2;
use tch::Tensor;

use crate::backend::native::NativeField;
use crate::state::{TensorState, array_to_tensor, tensor_to_array};
use crate::{Backend, ModelError, Result, Runtime, VelocityNet};

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
    /// Follow another scheduler's paths than the one the network was trained on.
    schedule: Option<ScheduleChange>,
    /// What the stochastic solvers draw from: the network's path and the seeded noise.
    noise: Option<SamplingNoise>,
}

/// The path a network was trained on and the stream its stochastic samplers draw from.
/// Every draw is made on the host (ChaCha8), so both backends and every device see the
/// same noise; successive integrations continue the stream.
struct SamplingNoise {
    path: AffinePath,
    /// \[SF\]2M's learned score, when the SDE's drift adds it to the flow.
    score: Option<LearnedScore>,
    rng: Mutex<flow_data::SeededRng>,
}

/// A network trained with the score objective (it predicts (σ²/2)·∇log p_t) on the flow's
/// path of noise scale `sigma`, made ready as the flow is.
struct LearnedScore {
    net: VelocityNet,
    native: Option<NativeField>,
    sigma: f64,
}

/// The \[SF\]2M SDE's drift: the flow plus `weight` times the learned score.
struct Drift<'a, A, B> {
    flow: &'a A,
    score: &'a B,
    weight: f64,
}

impl<S, A, B> VelocityField<S> for Drift<'_, A, B>
where
    S: flow_ode::State,
    A: VelocityField<S>,
    B: VelocityField<S>,
    ModelError: From<A::Error> + From<B::Error>,
{
    type Error = ModelError;

    fn velocity(&self, x: &S, t: f64) -> Result<S> {
        let v = self.flow.velocity(x, t)?;
        let s = self.score.velocity(x, t)?;
        Ok(v.combine(&[(self.weight, &s)]))
    }
}

impl SamplingNoise {
    fn draw(&self, rows: usize, dim: usize) -> Array2<f32> {
        let mut rng = self.rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        flow_data::samplers::gaussian(rows, dim, 1.0, &mut *rng)
    }
}

/// A field followed along another scheduler's paths: ū(x, r) = (ṡ/s)·x + sṫ·u(x/s, t_r)
/// (see [`ScheduleChange`]); with no change, the field itself.
struct Rescheduled<'a, F> {
    field: &'a F,
    change: Option<ScheduleChange>,
}

impl<S: flow_ode::State, F: VelocityField<S>> VelocityField<S> for Rescheduled<'_, F> {
    type Error = F::Error;

    fn velocity(&self, x: &S, r: f64) -> std::result::Result<S, F::Error> {
        let Some(change) = self.change else {
            return self.field.velocity(x, r);
        };
        let at = change.at(r);
        let on_trained_path = x.combine(&[(1.0 / at.scale - 1.0, x)]);
        let u = self.field.velocity(&on_trained_path, at.t)?;
        Ok(u.combine(&[(at.velocity_rate - 1.0, &u), (at.x_rate, x)]))
    }
}

impl Integrator {
    /// `net` on the backend `runtime` resolves for it (see [`Backend::resolve`]):
    /// with `auto`, the native kernels when the network fits them (CPU, f32, raw
    /// time) and the kernel is a SIMD one, else libtorch.
    pub fn new(net: &VelocityNet, runtime: Runtime) -> Result<Integrator> {
        let native = match runtime.resolve(net)? {
            Backend::Native => Some(NativeField::with_kernel(net, runtime.kernel)?),
            _ => None,
        };
        Ok(Integrator { net: net.try_clone()?, native, schedule: None, noise: None })
    }

    /// The same network ready for the stochastic solvers: `path` is the one it was trained on
    /// (the caller has checked that its velocity gives the score: a standard Gaussian source
    /// and independent pairs); the noise is stream 5 of `seed`.
    pub fn with_noise(self, path: AffinePath, seed: u64) -> Integrator {
        let mut rng = flow_data::seeded_rng(seed);
        rng.set_stream(5);
        let noise = SamplingNoise { path, score: None, rng: Mutex::new(rng) };
        Integrator { noise: Some(noise), ..self }
    }

    /// The same flow ready for \[SF\]2M's SDE dx = [v + G²·s] dt + G·σ dW (G the solver's
    /// noise): `score` was trained with the score objective on the flow's path, whose noise
    /// scale is `sigma`, and runs on the backend `runtime` resolves for it, which must be the
    /// flow's; the noise is stream 5 of `seed`.
    pub fn with_learned_score(
        self,
        score: &VelocityNet,
        runtime: Runtime,
        (path, seed): (AffinePath, u64),
    ) -> Result<Integrator> {
        let native = match runtime.resolve(score)? {
            Backend::Native => Some(NativeField::with_kernel(score, runtime.kernel)?),
            _ => None,
        };
        if native.is_some() != self.native.is_some() {
            return Err(ModelError::Config(
                "the flow and the score networks would run on different backends; give --backend".into(),
            ));
        }
        if score.config().dim != self.net.config().dim {
            return Err(ModelError::Config(format!(
                "the score network is {}-dimensional, the flow {}-dimensional",
                score.config().dim,
                self.net.config().dim
            )));
        }
        let learned = LearnedScore { net: score.try_clone()?, native, sigma: path.sigma };
        let mut integrator = self.with_noise(path, seed);
        if let Some(noise) = &mut integrator.noise {
            noise.score = Some(learned);
        }
        Ok(integrator)
    }

    /// The same network followed along `change.sampled`'s paths (it was trained on
    /// `change.trained`'s): the same end marginals, other paths between.
    pub fn with_schedule(self, change: ScheduleChange) -> Integrator {
        Integrator { schedule: (!change.is_identity()).then_some(change), ..self }
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
    /// A conditional network integrates its unconditional (null-condition) velocity.
    pub fn integrate(
        &self,
        start: &Array2<f32>,
        grid: &flow_ode::TimeGrid,
        solver: flow_ode::Solver,
        record: flow_ode::Record,
    ) -> Result<PointsSolution> {
        self.integrate_fields(start, self.native.as_ref(), &self.net, (grid, solver, record))
    }

    /// Integrates `start` under `guide`: each point with its condition, at the
    /// guide's classifier-free guidance weight.
    pub fn integrate_guided(
        &self,
        start: &Array2<f32>,
        guide: &Guide,
        grid: &flow_ode::TimeGrid,
        solver: flow_ode::Solver,
        record: flow_ode::Record,
    ) -> Result<PointsSolution> {
        let shape = self.net.config().condition;
        if guide.shape != shape {
            return Err(ModelError::Config(format!(
                "conditions for {} given to a network conditioned on {}",
                guide.shape.describe(),
                shape.describe()
            )));
        }
        if solver.is_stochastic() && self.noise.as_ref().is_some_and(|n| n.score.is_some()) {
            return Err(ModelError::Config("a learned score samples unconditional flows only".into()));
        }
        if guide.rows != start.nrows() {
            return Err(ModelError::Internal(format!(
                "{} condition rows for {} points",
                guide.rows,
                start.nrows()
            )));
        }
        let native = self.native.as_ref().map(|field| {
            Fallible(move |x: &Array2<f32>, t: f64| {
                field.guided_velocity(x, t, &guide.features, guide.weight)
            })
        });
        let net = &self.net;
        let kind_device = (net.kind(), net.device());
        let width = shape.features() as i64;
        let rows = guide.rows as i64;
        let features = Tensor::from_slice(&guide.features)
            .view([rows, width])
            .to_kind(kind_device.0)
            .to_device(kind_device.1);
        let torch = move |x: &TensorState, t: f64| {
            TensorState(tch::no_grad(|| {
                let times = Tensor::full([rows, 1], t, kind_device);
                let conditioned = || net.forward_conditioned(&x.0, &times, &features);
                let unconditioned = || net.forward(&x.0, &times);
                guide.combine(conditioned, unconditioned, |c, u| &u + (c - &u) * guide.weight)
            }))
        };
        self.integrate_fields(start, native.as_ref(), &torch, (grid, solver, record))
    }

    fn integrate_fields<N, T>(
        &self,
        start: &Array2<f32>,
        native: Option<&N>,
        torch: &T,
        (grid, solver, record): (&flow_ode::TimeGrid, flow_ode::Solver, flow_ode::Record),
    ) -> Result<PointsSolution>
    where
        N: VelocityField<Array2<f32>>,
        T: VelocityField<TensorState>,
        ModelError: From<N::Error> + From<T::Error>,
    {
        let torch = &Rescheduled { field: torch, change: self.schedule };
        let noise = match (&self.noise, solver.is_stochastic()) {
            (Some(noise), true) => Some(noise),
            (None, true) => return Err(flow_ode::OdeError::NeedsNoise { solver: solver.name() }.into()),
            (_, false) => None,
        };
        // Followed along another scheduler, the field's marginals are that scheduler's.
        let path = match (self.schedule, noise) {
            (Some(change), Some(_)) => AffinePath::new(change.sampled, 0.0)?,
            (None, Some(noise)) => noise.path,
            (_, None) => AffinePath::LINE,
        };
        let learned = noise.and_then(|n| n.score.as_ref());
        let strength = solver.noise().unwrap_or(0.0);
        let diffusion = match learned {
            Some(score) => flow_ode::Diffusion::Constant(strength * score.sigma),
            None => flow_ode::Diffusion::FromPath(path),
        };
        let solution = match native {
            // Points of another dimension go to libtorch, which names the mismatch.
            Some(field) if start.ncols() == self.net.config().dim => {
                let field = &Rescheduled { field, change: self.schedule };
                let mut draw =
                    |x: &Array2<f32>| noise.map_or_else(|| x.clone(), |n| n.draw(x.nrows(), x.ncols()));
                let noise = flow_ode::Noise { diffusion, draw: &mut draw };
                let x0 = start.clone();
                let solution = match learned.map(|score| score.native.as_ref()) {
                    Some(Some(score)) => {
                        let drift = Drift { flow: field, score, weight: strength * strength };
                        flow_ode::integrate_with_noise(&drift, x0, grid, solver, record, noise)?
                    }
                    Some(None) => return Err(ModelError::Internal("the score network is not native".into())),
                    None => flow_ode::integrate_with_noise(field, x0, grid, solver, record, noise)?,
                };
                PointsSolution { points: solution.state, nfe: solution.nfe, trajectory: solution.trajectory }
            }
            _ => {
                let net = &self.net;
                let x0 = TensorState(array_to_tensor(start, net.kind(), net.device()));
                let mut draw = |x: &TensorState| match noise {
                    Some(n) => {
                        let size = x.0.size();
                        let rows = n.draw(size[0] as usize, size.get(1).map_or(1, |&d| d as usize));
                        TensorState(array_to_tensor(&rows, net.kind(), net.device()))
                    }
                    None => x.clone(),
                };
                let noise = flow_ode::Noise { diffusion, draw: &mut draw };
                let solution = match learned {
                    Some(score) => {
                        let drift = Drift { flow: torch, score: &score.net, weight: strength * strength };
                        flow_ode::integrate_with_noise(&drift, x0, grid, solver, record, noise)?
                    }
                    None => flow_ode::integrate_with_noise(torch, x0, grid, solver, record, noise)?,
                };
                let trajectory = solution
                    .trajectory
                    .iter()
                    .map(|(t, x)| Ok((*t, tensor_to_array(&x.0)?)))
                    .collect::<Result<_>>()?;
                PointsSolution { points: tensor_to_array(&solution.state.0)?, nfe: solution.nfe, trajectory }
            }
        };
        // Each drift evaluation of [SF]2M's SDE runs two networks: count both.
        let solution = match learned {
            Some(_) if solver.is_stochastic() => PointsSolution { nfe: 2 * solution.nfe, ..solution },
            _ => solution,
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

/// What a conditional network is sampled with: each point's condition (as
/// network features) and the classifier-free guidance weight w, for the velocity
/// v(x, t, ∅) + w·(v(x, t, c) − v(x, t, ∅)): w = 1 is the plain conditional
/// velocity, w = 0 the unconditional one, w > 1 pushes further towards the condition.
pub struct Guide {
    shape: ConditionShape,
    rows: usize,
    features: Vec<f32>,
    weight: f64,
}

impl Guide {
    /// `conditions` (rows × `shape.columns()`, checked here) at guidance `weight`.
    pub fn new(shape: ConditionShape, conditions: &Array2<f32>, weight: f64) -> Result<Guide> {
        if !weight.is_finite() {
            return Err(ModelError::Config(format!("guidance weight {weight} is not finite")));
        }
        shape.check(conditions)?;
        Ok(Guide { shape, rows: conditions.nrows(), features: shape.encode(conditions, |_| false), weight })
    }

    /// One condition row for all `rows` points.
    pub fn repeated(shape: ConditionShape, row: &[f32], rows: usize, weight: f64) -> Result<Guide> {
        let conditions = Array2::from_shape_fn((rows, row.len()), |(_, j)| row[j]);
        Guide::new(shape, &conditions, weight)
    }

    /// The guided velocity from the conditional and unconditional ones,
    /// evaluating only the one needed at w = 1 or w = 0.
    fn combine<V>(
        &self,
        conditioned: impl FnOnce() -> V,
        unconditioned: impl FnOnce() -> V,
        mix: impl FnOnce(V, V) -> V,
    ) -> V {
        if self.weight == 1.0 {
            conditioned()
        } else if self.weight == 0.0 {
            unconditioned()
        } else {
            mix(conditioned(), unconditioned())
        }
    }
}

/// Integrates host points through `net` once; see [`Integrator::new`] and
/// [`Integrator::integrate`]. Build an [`Integrator`] to integrate many batches.
pub fn integrate_points(
    net: &VelocityNet,
    runtime: Runtime,
    start: &Array2<f32>,
    grid: &flow_ode::TimeGrid,
    solver: flow_ode::Solver,
    record: flow_ode::Record,
) -> Result<PointsSolution> {
    Integrator::new(net, runtime)?.integrate(start, grid, solver, record)
}
