//! The one error type of flow-ode.

pub type Result<T> = std::result::Result<T, OdeError>;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OdeError {
    #[error(transparent)]
    UnknownName(#[from] flow_options::UnknownName),
    #[error("the number of steps must be at least 1")]
    NoSteps,
    #[error("warp parameter s = {0} is outside [0, 1.5]")]
    WarpOutOfRange(f64),
    #[error(
        "tolerances must be finite and at least 1e-12, which floating point can still meet (rtol = {rtol}, atol = {atol})"
    )]
    Tolerance { rtol: f64, atol: f64 },
    #[error(
        "dopri5 gave up after {steps} steps at t = {t}: the field may be stiff or non-finite, or the tolerances tighter than the points' precision allows"
    )]
    TooManySteps { steps: usize, t: f64 },
    #[error("{solver} is a stochastic sampler: it needs the model's path and a source of noise")]
    NeedsNoise { solver: &'static str },
    #[error("{solver} samples from the source (t = 0) to the data (t = 1) only, not backwards")]
    StochasticBackward { solver: &'static str },
    #[error(
        "overshoot steps along the path's closed form; a learned score (--score) drives euler-maruyama only"
    )]
    OvershootWithoutPath,
    #[error("--noise must be finite and at least 0, not {0}")]
    Noise(f64),
    #[error(
        "--noise sets a stochastic sampler's noise; {solver} is deterministic (use euler-maruyama or overshoot)"
    )]
    NoiseForDeterministic { solver: &'static str },
}
