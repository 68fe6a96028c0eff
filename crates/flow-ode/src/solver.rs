//! The solvers (Euler, midpoint, Heun, RK4 from one Butcher tableau; Dopri5 with FSAL; the stochastic ones by name) and the integration loop.

use crate::{OdeError, Result, State, TimeGrid, VelocityField};

/// An integration method. The fixed-step ones follow the [`TimeGrid`];
/// Dopri5 chooses its own steps between the grid's first and last time.
/// The stochastic ones (see [`crate::integrate_with_noise`]) also follow the grid, and
/// take a noise scale: 0 makes each of them Euler, bit for bit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Solver {
    Euler,
    Midpoint,
    Heun,
    Rk4,
    Dopri5 {
        rtol: f64,
        atol: f64,
    },
    /// Euler–Maruyama on dx = [v + ½g(t)²∇log p_t] dt + g(t) dW, which keeps every marginal
    /// p_t, with g(t)² = noise²·σ̄_t ([`crate::stochastic`]).
    EulerMaruyama {
        noise: f64,
    },
    /// rectified-flow's `OverShootingSampler`: an Euler step past the next time by
    /// noise·dt·(1 − t_next), then back to it by the path's own blur.
    Overshoot {
        noise: f64,
    },
}

/// A solver by name, before its tolerances are known: what the command line parses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SolverKind {
    Euler,
    Midpoint,
    Heun,
    Rk4,
    Dopri5,
    EulerMaruyama,
    Overshoot,
}

impl SolverKind {
    pub const ALL: [SolverKind; 7] = [
        SolverKind::Euler,
        SolverKind::Midpoint,
        SolverKind::Heun,
        SolverKind::Rk4,
        SolverKind::Dopri5,
        SolverKind::EulerMaruyama,
        SolverKind::Overshoot,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SolverKind::Euler => "euler",
            SolverKind::Midpoint => "midpoint",
            SolverKind::Heun => "heun",
            SolverKind::Rk4 => "rk4",
            SolverKind::Dopri5 => "dopri5",
            SolverKind::EulerMaruyama => "euler-maruyama",
            SolverKind::Overshoot => "overshoot",
        }
    }

    /// Whether it draws noise (and so needs the path and a seed).
    pub fn is_stochastic(self) -> bool {
        matches!(self, SolverKind::EulerMaruyama | SolverKind::Overshoot)
    }

    /// A stochastic solver's default noise: Euler–Maruyama's G = 2, the best of 0.5 … 2.5 at
    /// 4 to 32 steps on the spiral and Tong et al.'s sets (README, "Stochastic sampling"; above
    /// G ≈ 2.8 its explicit steps go unstable near the data); overshoot's c = 1,
    /// rectified-flow's default.
    pub fn default_noise(self) -> Option<f64> {
        match self {
            SolverKind::EulerMaruyama => Some(EULER_MARUYAMA_NOISE),
            SolverKind::Overshoot => Some(OVERSHOOT_NOISE),
            _ => None,
        }
    }
}

flow_options::named_value!(SolverKind, "solver");

/// The stochastic solvers' defaults (see [`SolverKind::default_noise`]).
const EULER_MARUYAMA_NOISE: f64 = 2.0;
const OVERSHOOT_NOISE: f64 = 1.0;

impl Solver {
    /// dopri5's default tolerances (the command line's, and the reflow teacher's).
    pub const DEFAULT_RTOL: f64 = 1e-5;
    pub const DEFAULT_ATOL: f64 = 1e-5;
    /// The smallest tolerance dopri5 takes.
    pub const MIN_TOLERANCE: f64 = 1e-12;

    /// The solver of `kind`; Dopri5 gets the given tolerances, the stochastic ones their
    /// [`SolverKind::default_noise`] (see [`Solver::with_noise`]).
    pub fn new(kind: SolverKind, rtol: f64, atol: f64) -> Result<Solver> {
        Ok(match kind {
            SolverKind::Euler => Solver::Euler,
            SolverKind::Midpoint => Solver::Midpoint,
            SolverKind::Heun => Solver::Heun,
            SolverKind::Rk4 => Solver::Rk4,
            SolverKind::Dopri5 => {
                // Below this no f64 (let alone f32) state can meet the tolerance: dopri5 would
                // shrink its steps until it gave up, and the failure would look like the model's.
                let valid = |x: f64| x.is_finite() && x >= Solver::MIN_TOLERANCE;
                if !valid(rtol) || !valid(atol) {
                    return Err(OdeError::Tolerance { rtol, atol });
                }
                Solver::Dopri5 { rtol, atol }
            }
            SolverKind::EulerMaruyama => Solver::EulerMaruyama { noise: EULER_MARUYAMA_NOISE },
            SolverKind::Overshoot => Solver::Overshoot { noise: OVERSHOOT_NOISE },
        })
    }

    /// A stochastic solver with noise scale `noise` (finite, ≥ 0); an error for a
    /// deterministic one, which has none.
    pub fn with_noise(self, noise: f64) -> Result<Solver> {
        if !(noise.is_finite() && noise >= 0.0) {
            return Err(OdeError::Noise(noise));
        }
        match self {
            Solver::EulerMaruyama { .. } => Ok(Solver::EulerMaruyama { noise }),
            Solver::Overshoot { .. } => Ok(Solver::Overshoot { noise }),
            deterministic => Err(OdeError::NoiseForDeterministic { solver: deterministic.name() }),
        }
    }

    /// Parses a solver name; Dopri5 gets the given tolerances.
    pub fn from_name(name: &str, rtol: f64, atol: f64) -> Result<Solver> {
        Solver::new(name.parse()?, rtol, atol)
    }

    pub fn kind(&self) -> SolverKind {
        match self {
            Solver::Euler => SolverKind::Euler,
            Solver::Midpoint => SolverKind::Midpoint,
            Solver::Heun => SolverKind::Heun,
            Solver::Rk4 => SolverKind::Rk4,
            Solver::Dopri5 { .. } => SolverKind::Dopri5,
            Solver::EulerMaruyama { .. } => SolverKind::EulerMaruyama,
            Solver::Overshoot { .. } => SolverKind::Overshoot,
        }
    }

    /// A stochastic solver's noise scale.
    pub fn noise(&self) -> Option<f64> {
        match *self {
            Solver::EulerMaruyama { noise } | Solver::Overshoot { noise } => Some(noise),
            _ => None,
        }
    }

    /// Whether it draws noise: [`integrate`] refuses it, [`crate::integrate_with_noise`] runs it.
    pub fn is_stochastic(&self) -> bool {
        self.kind().is_stochastic()
    }

    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// Velocity evaluations per step of a fixed-step method.
    pub fn stages(&self) -> usize {
        match self {
            Solver::Euler | Solver::EulerMaruyama { .. } | Solver::Overshoot { .. } => 1,
            Solver::Midpoint | Solver::Heun => 2,
            Solver::Rk4 => 4,
            Solver::Dopri5 { .. } => 6,
        }
    }
}

/// Which intermediate states to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    Nothing,
    /// The start, every k-th step, and the end.
    Every(usize),
}

/// The end state, the cost in velocity evaluations, and any recorded path.
#[derive(Clone, Debug)]
pub struct Solution<S> {
    pub state: S,
    pub nfe: usize,
    pub steps: usize,
    /// `(t, x(t))`, first to last, when recording was asked for.
    pub trajectory: Vec<(f64, S)>,
}

/// Butcher tableau of an explicit Runge–Kutta method (strictly lower-triangular `a`).
pub(crate) struct Tableau {
    a: &'static [&'static [f64]],
    b: &'static [f64],
    c: &'static [f64],
}

pub(crate) const EULER: Tableau = Tableau { a: &[&[]], b: &[1.0], c: &[0.0] };
const MIDPOINT: Tableau = Tableau { a: &[&[], &[0.5]], b: &[0.0, 1.0], c: &[0.0, 0.5] };
const HEUN: Tableau = Tableau { a: &[&[], &[1.0]], b: &[0.5, 0.5], c: &[0.0, 1.0] };
const RK4: Tableau = Tableau {
    a: &[&[], &[0.5], &[0.0, 0.5], &[0.0, 0.0, 1.0]],
    b: &[1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0],
    c: &[0.0, 0.5, 0.5, 1.0],
};

// Dormand–Prince 5(4) (Hairer, Nørsett & Wanner, Solving ODEs I, table 5.2).
// The seventh stage is evaluated at the new 5th-order state, so it is the next
// step's first stage (FSAL).
const DOPRI_A: [&[f64]; 7] = [
    &[],
    &[1.0 / 5.0],
    &[3.0 / 40.0, 9.0 / 40.0],
    &[44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0],
    &[19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0],
    &[9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0],
    &[35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0],
];
const DOPRI_C: [f64; 7] = [0.0, 0.2, 0.3, 0.8, 8.0 / 9.0, 1.0, 1.0];
/// 5th-order weights minus the embedded 4th-order ones: the local error estimate.
const DOPRI_ERROR: [f64; 7] = [
    35.0 / 384.0 - 5179.0 / 57600.0,
    0.0,
    500.0 / 1113.0 - 7571.0 / 16695.0,
    125.0 / 192.0 - 393.0 / 640.0,
    -2187.0 / 6784.0 + 92097.0 / 339200.0,
    11.0 / 84.0 - 187.0 / 2100.0,
    -1.0 / 40.0,
];
const DOPRI_MAX_STEPS: usize = 100_000;

/// Integrates `field` from `x0` over `grid` with a deterministic `solver` (a stochastic one
/// is an error: it needs [`crate::integrate_with_noise`]); the first failed evaluation of the
/// field ends it with that error.
pub fn integrate<S, F>(
    field: &F,
    x0: S,
    grid: &TimeGrid,
    solver: Solver,
    record: Record,
) -> std::result::Result<Solution<S>, F::Error>
where
    S: State,
    F: VelocityField<S> + ?Sized,
{
    if let Record::Every(0) = record {
        return Err(OdeError::NoSteps.into());
    }
    let tableau = match solver {
        Solver::Euler => &EULER,
        Solver::Midpoint => &MIDPOINT,
        Solver::Heun => &HEUN,
        Solver::Rk4 => &RK4,
        Solver::Dopri5 { rtol, atol } => return dopri5(field, x0, grid, rtol, atol, record),
        Solver::EulerMaruyama { .. } | Solver::Overshoot { .. } => {
            return Err(OdeError::NeedsNoise { solver: solver.name() }.into());
        }
    };
    let mut recorder = Recorder::new(record, grid.start(), &x0);
    let mut x = x0;
    for (step, pair) in grid.times().windows(2).enumerate() {
        let (t, dt) = (pair[0], pair[1] - pair[0]);
        x = explicit_step(field, &x, t, dt, tableau)?;
        recorder.after_step(step + 1, pair[1], &x);
    }
    let steps = grid.steps();
    Ok(Solution {
        trajectory: recorder.finish(steps, grid.end(), &x),
        nfe: steps * tableau.b.len(),
        steps,
        state: x,
    })
}

pub(crate) fn explicit_step<S, F>(
    field: &F,
    x: &S,
    t: f64,
    dt: f64,
    tableau: &Tableau,
) -> std::result::Result<S, F::Error>
where
    S: State,
    F: VelocityField<S> + ?Sized,
{
    let mut stages: Vec<S> = Vec::with_capacity(tableau.b.len());
    for (row, c) in tableau.a.iter().zip(tableau.c) {
        let k = if row.is_empty() {
            field.velocity(x, t)?
        } else {
            field.velocity(&x.combine(&weighted(row, &stages, dt)), t + c * dt)?
        };
        stages.push(k);
    }
    Ok(x.combine(&weighted(tableau.b, &stages, dt)))
}

/// `(dt·wᵢ, kᵢ)` for the non-zero weights.
fn weighted<'a, S>(weights: &[f64], stages: &'a [S], dt: f64) -> Vec<(f64, &'a S)> {
    weights.iter().zip(stages).filter(|(w, _)| **w != 0.0).map(|(w, k)| (dt * w, k)).collect()
}

fn dopri5<S, F>(
    field: &F,
    x0: S,
    grid: &TimeGrid,
    rtol: f64,
    atol: f64,
    record: Record,
) -> std::result::Result<Solution<S>, F::Error>
where
    S: State,
    F: VelocityField<S> + ?Sized,
{
    let (start, end) = (grid.start(), grid.end());
    let span = end - start;
    let direction = span.signum();
    let mut recorder = Recorder::new(record, start, &x0);
    let mut x = x0;
    let mut t = start;
    // A cautious first step; the controller grows it within a few steps.
    let mut dt = span / grid.steps().max(10) as f64;
    let mut first_stage = field.velocity(&x, t)?;
    let mut nfe = 1;
    let mut accepted = 0;
    let mut attempts = 0;
    while (end - t) * direction > 1e-12 * span.abs() {
        attempts += 1;
        if attempts > DOPRI_MAX_STEPS {
            return Err(OdeError::TooManySteps { steps: attempts, t }.into());
        }
        if (t + dt - end) * direction > 0.0 {
            dt = end - t;
        }
        let mut stages = vec![first_stage.clone()];
        for (row, c) in DOPRI_A.iter().zip(DOPRI_C).skip(1) {
            let xi = x.combine(&weighted(row, &stages, dt));
            stages.push(field.velocity(&xi, t + c * dt)?);
            nfe += 1;
        }
        let x_new = x.combine(&weighted(DOPRI_A[6], &stages, dt));
        let error = stages[0].combine(&[(-1.0, &stages[0])]).combine(&weighted(&DOPRI_ERROR, &stages, dt));
        let ratio = error.scaled_rms(&x, &x_new, rtol, atol);
        if !ratio.is_finite() {
            return Err(OdeError::TooManySteps { steps: attempts, t }.into());
        }
        if ratio <= 1.0 {
            t += dt;
            accepted += 1;
            first_stage = stages.swap_remove(6);
            x = x_new;
            recorder.after_step(accepted, t, &x);
        }
        // Standard controller: safety 0.9, growth limited to [0.2, 10].
        let factor = if ratio == 0.0 { 10.0 } else { (0.9 * ratio.powf(-0.2)).clamp(0.2, 10.0) };
        dt *= factor;
    }
    Ok(Solution { trajectory: recorder.finish(accepted, end, &x), nfe, steps: accepted, state: x })
}

pub(crate) struct Recorder<S> {
    every: Option<usize>,
    last_recorded: usize,
    path: Vec<(f64, S)>,
}

impl<S: Clone> Recorder<S> {
    pub(crate) fn new(record: Record, t: f64, x: &S) -> Recorder<S> {
        let every = match record {
            Record::Nothing => None,
            Record::Every(k) => Some(k),
        };
        let path = if every.is_some() { vec![(t, x.clone())] } else { Vec::new() };
        Recorder { every, last_recorded: 0, path }
    }

    pub(crate) fn after_step(&mut self, step: usize, t: f64, x: &S) {
        if let Some(k) = self.every
            && step.is_multiple_of(k)
        {
            self.path.push((t, x.clone()));
            self.last_recorded = step;
        }
    }

    pub(crate) fn finish(mut self, steps: usize, t: f64, x: &S) -> Vec<(f64, S)> {
        if self.every.is_some() && self.last_recorded != steps {
            self.path.push((t, x.clone()));
        }
        self.path
    }
}
