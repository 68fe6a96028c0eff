//! The stochastic samplers: Euler–Maruyama on the marginal-preserving SDE, and rectified-flow's overshooting.
//!
//! Both need what a velocity alone does not say: the probability path the field was trained
//! on (for the score, which an affine path from the standard Gaussian gives in closed form
//! from the velocity, and for the blur σ̄_t of its marginals) and standard normal draws.
//! Both assume the field is the marginal velocity of independent pairs from N(0, I) (not a
//! reflow or an OT-coupled model, whose x₀ depends on x₁): the caller checks.

use flow_path::{AffinePath, Prediction};

use crate::solver::{EULER, Recorder, explicit_step};
use crate::{OdeError, Record, Solution, Solver, State, TimeGrid, VelocityField};

/// What a stochastic solver needs besides the field.
pub struct Noise<'a, S> {
    /// Where the score and the diffusion come from.
    pub diffusion: Diffusion,
    /// Standard normal draws shaped like the state given (one call per noisy step).
    pub draw: &'a mut dyn FnMut(&S) -> S,
}

/// Where a stochastic solver's score and diffusion come from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Diffusion {
    /// The field is a velocity trained on this path from the standard Gaussian with
    /// independent pairs: the score follows from it, and g(t)² = noise²·σ̄_t.
    FromPath(AffinePath),
    /// The field is already the SDE's whole drift (\[SF\]2M: the flow plus its learned
    /// score) and the diffusion this constant g: Euler–Maruyama on every step, the last
    /// included, as torchsde's Euler integrates it.
    Constant(f64),
}

/// The diffusion g(t)² = noise²·σ̄_t of [`Solver::EulerMaruyama`], where σ̄_t is the blur of the
/// path's marginal (x_t = α_t x₁ + σ̄_t z; `AffinePath::marginal_coefficients`).
///
/// The shape is SiT's w_t = σ_t (Ma et al. 2024): ½g²·∇log p_t = −½noise²·E[z | x_t] stays
/// bounded as σ̄_t → 0 at the data end, where the score itself is singular, and the noise
/// fades as √σ̄_t, so the last steps refine rather than blur. Where the velocity does not
/// determine the score (t = 1 on a path that ends without noise; t = 0 on `polynomial:N`,
/// whose velocity vanishes there) g is 0 and the step is Euler's.
pub fn diffusion_squared(path: &AffinePath, noise: f64, t: f64) -> f64 {
    noise * noise * path.marginal_coefficients(t).sigma
}

/// Integrates `field` from `x0` over `grid` with `solver`, drawing the stochastic solvers'
/// noise from `noise`; a deterministic solver ignores it. The stochastic ones run forward
/// only (t from 0 towards 1), take one velocity evaluation per step, and make their last
/// step Euler's: noise added there would stay in the samples.
pub fn integrate_with_noise<S, F>(
    field: &F,
    x0: S,
    grid: &TimeGrid,
    solver: Solver,
    record: Record,
    noise: Noise<'_, S>,
) -> std::result::Result<Solution<S>, F::Error>
where
    S: State,
    F: VelocityField<S> + ?Sized,
{
    let scale = match solver {
        Solver::EulerMaruyama { noise } | Solver::Overshoot { noise } => noise,
        deterministic => return crate::integrate(field, x0, grid, deterministic, record),
    };
    if let Record::Every(0) = record {
        return Err(OdeError::NoSteps.into());
    }
    if grid.end() < grid.start() {
        return Err(OdeError::StochasticBackward { solver: solver.name() }.into());
    }
    let Noise { diffusion, draw } = noise;
    if let (Diffusion::Constant(_), Solver::Overshoot { .. }) = (diffusion, solver) {
        return Err(OdeError::OvershootWithoutPath.into());
    }
    let mut recorder = Recorder::new(record, grid.start(), &x0);
    let mut x = x0;
    let steps = grid.steps();
    for (step, pair) in grid.times().windows(2).enumerate() {
        let (t, next) = (pair[0], pair[1]);
        x = match (diffusion, solver) {
            (Diffusion::Constant(g), _) if g > 0.0 => {
                let v = field.velocity(&x, t)?;
                let xi = draw(&x);
                let dt = next - t;
                x.combine(&[(dt, &v), (g * dt.sqrt(), &xi)])
            }
            (Diffusion::FromPath(path), _) if scale > 0.0 && step + 1 < steps => match solver {
                Solver::EulerMaruyama { .. } => {
                    euler_maruyama_step(field, &x, (t, next), &path, scale, draw)?
                }
                _ => overshoot_step(field, &x, (t, next), &path, scale, draw)?,
            },
            _ => explicit_step(field, &x, t, next - t, &EULER)?,
        };
        recorder.after_step(step + 1, next, &x);
    }
    Ok(Solution { trajectory: recorder.finish(steps, grid.end(), &x), nfe: steps, steps, state: x })
}

/// x + dt·[(1 + ½g²b)·v + ½g²a·x] + g√dt·ξ, where ∇log p_t = a·x + b·v.
fn euler_maruyama_step<S, F>(
    field: &F,
    x: &S,
    (t, next): (f64, f64),
    path: &AffinePath,
    scale: f64,
    draw: &mut dyn FnMut(&S) -> S,
) -> std::result::Result<S, F::Error>
where
    S: State,
    F: VelocityField<S> + ?Sized,
{
    let dt = next - t;
    let g2 = diffusion_squared(path, scale, t);
    let score = path.conversion(Prediction::Velocity, Prediction::Score, t);
    let (Ok(score), true) = (score, g2 > 0.0) else {
        return explicit_step(field, x, t, dt, &EULER);
    };
    let v = field.velocity(x, t)?;
    let xi = draw(x);
    let half = 0.5 * g2;
    Ok(x.combine(&[(dt * (1.0 + half * score.given), &v), (dt * half * score.x, x), ((g2 * dt).sqrt(), &xi)]))
}

/// rectified-flow's overshooting: Euler from t to t_o = t_next + c·dt·(1 − t_next), then
/// x_{t_next} = (α_{t_next}/α_{t_o})·x_{t_o} + √(σ̄²_{t_next} − (α_{t_next}σ̄_{t_o}/α_{t_o})²)·ξ,
/// which takes the marginal at t_o to the one at t_next (the blur grows back to σ̄_{t_next}).
fn overshoot_step<S, F>(
    field: &F,
    x: &S,
    (t, next): (f64, f64),
    path: &AffinePath,
    c: f64,
    draw: &mut dyn FnMut(&S) -> S,
) -> std::result::Result<S, F::Error>
where
    S: State,
    F: VelocityField<S> + ?Sized,
{
    let beyond = (next + c * (next - t) * (1.0 - next)).min(1.0);
    let (at_next, at_beyond) = (path.marginal_coefficients(next), path.marginal_coefficients(beyond));
    let shrink = at_next.alpha / at_beyond.alpha;
    let spread = at_next.sigma.powi(2) - (shrink * at_beyond.sigma).powi(2);
    if beyond <= next || !shrink.is_finite() || !spread.is_finite() || spread <= 0.0 {
        return explicit_step(field, x, t, next - t, &EULER);
    }
    let v = field.velocity(x, t)?;
    let xi = draw(x);
    // shrink·(x + (t_o − t)·v) + √spread·ξ, as one combination.
    Ok(x.combine(&[(shrink - 1.0, x), (shrink * (beyond - t), &v), (spread.sqrt(), &xi)]))
}
