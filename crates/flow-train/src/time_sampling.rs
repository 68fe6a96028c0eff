//! How training times t are drawn: uniform, the post's warp, logit-normal.

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::{Result, TrainError};

/// How training times t ∈ [0, 1] are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TimeSampling {
    /// U[0, 1]: the post's flow matching.
    Uniform,
    /// warp_time(U[0, 1], s): the post's reflow with s = 0.5 puts more times mid-path.
    Warp(f64),
    /// sigmoid(N(0, 1)), as in SD3 / FLUX training.
    LogitNormal,
}

impl TimeSampling {
    /// The forms the command line accepts (`logitnormal` is also taken).
    pub const FORMS: [&'static str; 4] = ["uniform", "warp", "warp:S with S in [0, 1.5]", "logit-normal"];

    /// `uniform`, `warp` (s = 0.5), `warp:S` (S in [0, 1.5], else the warp's own error), or `logit-normal`.
    pub fn parse(text: &str) -> Result<TimeSampling> {
        match flow_options::NamedOption::parse_option(text)? {
            TimeSampling::Warp(s) => Ok(TimeSampling::Warp(flow_ode::check_warp(s)?)),
            other => Ok(other),
        }
    }

    pub fn describe(&self) -> String {
        self.to_string()
    }

    pub fn draw<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match self {
            TimeSampling::Uniform => rng.random(),
            TimeSampling::Warp(s) => flow_ode::warp_time(rng.random(), *s),
            TimeSampling::LogitNormal => {
                let z: f64 = StandardNormal.sample(rng);
                1.0 / (1.0 + (-z).exp())
            }
        }
    }
}

impl flow_options::NamedOption for TimeSampling {
    const WHAT: &'static str = "time sampling";

    fn forms() -> Vec<&'static str> {
        TimeSampling::FORMS.to_vec()
    }

    /// Any `warp:S` with a number S: [`TimeSampling::parse`] checks its range.
    fn from_form(text: &str) -> Option<TimeSampling> {
        match text {
            "uniform" => Some(TimeSampling::Uniform),
            "warp" => Some(TimeSampling::Warp(0.5)),
            "logit-normal" | "logitnormal" => Some(TimeSampling::LogitNormal),
            other => other.strip_prefix("warp:").and_then(|s| s.parse().ok()).map(TimeSampling::Warp),
        }
    }
}

impl std::str::FromStr for TimeSampling {
    type Err = TrainError;
    fn from_str(text: &str) -> Result<TimeSampling> {
        TimeSampling::parse(text)
    }
}

impl std::fmt::Display for TimeSampling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TimeSampling::Uniform => f.write_str("uniform"),
            TimeSampling::Warp(s) => write!(f, "warp:{s}"),
            TimeSampling::LogitNormal => f.write_str("logit-normal"),
        }
    }
}
