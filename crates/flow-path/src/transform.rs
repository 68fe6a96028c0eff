//! Changing the scheduler of a trained model: the same end points, other paths between.

use crate::{PathError, Result, Scheduler};

/// A velocity trained on `trained`'s paths, followed on `sampled`'s: flow_matching's
/// `ScheduleTransformedModel` (Lipman et al., "Flow Matching Guide and Code", §4.8).
///
/// Two affine paths x_t = σ_t x₀ + α_t x₁ and x̄_r = σ̄_r x₀ + ᾱ_r x₁ are one path rescaled:
/// at the time t_r where the signal-to-noise ratios agree (α_t/σ_t = ᾱ_r/σ̄_r),
/// x̄_r = s_r x_{t_r} with s_r = σ̄_r/σ_{t_r}, for every pair (x₀, x₁) whatever the coupling.
/// So the new marginal velocity is ū(x, r) = (ṡ_r/s_r)·x + s_r ṫ_r·u(x/s_r, t_r), and the
/// marginals at r = 0 and 1 are the trained ones.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScheduleChange {
    /// The scheduler the velocity was trained on.
    pub trained: Scheduler,
    /// The scheduler to follow while sampling.
    pub sampled: Scheduler,
}

/// Where and how to ask the trained velocity at one sampling time r:
/// ū(x, r) = `x_rate`·x + `velocity_rate`·u(x/`scale`, `t`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reparametrisation {
    /// The trained model's time t_r.
    pub t: f64,
    /// s_r: the sampled point is the trained path's point times this.
    pub scale: f64,
    /// ṡ_r / s_r.
    pub x_rate: f64,
    /// s_r · ṫ_r.
    pub velocity_rate: f64,
}

/// Sampling times are taken at most this close to the data end, where both ratios are
/// infinite and s_r is 0/0: the limit is reached to far below f32 rounding.
const END_MARGIN: f64 = 1e-7;

impl ScheduleChange {
    /// The change from `trained` to `sampled`; `target` is refused on either side, since its
    /// data end keeps Lipman's blur σ_min and so its end marginal is not the other's.
    pub fn new(trained: Scheduler, sampled: Scheduler) -> Result<ScheduleChange> {
        for scheduler in [trained, sampled] {
            if let Scheduler::Target { .. } = scheduler {
                return Err(PathError::Reschedule(scheduler.to_string()));
            }
        }
        Ok(ScheduleChange { trained, sampled })
    }

    /// Whether the two schedulers are one (nothing to change).
    pub fn is_identity(&self) -> bool {
        self.trained == self.sampled
    }

    /// The trained time and scales for sampling time `r` ∈ [0, 1].
    pub fn at(&self, r: f64) -> Reparametrisation {
        let r = r.clamp(0.0, 1.0 - END_MARGIN);
        let new = self.sampled.at(r);
        let t = self.trained.snr_inverse(new.alpha / new.sigma);
        let old = self.trained.at(t);
        let scale = new.sigma / old.sigma;
        // dρ/dr on both sides of α_t/σ_t = ᾱ_r/σ̄_r, divided: ṫ_r.
        let d_t = old.sigma * old.sigma * (new.sigma * new.d_alpha - new.alpha * new.d_sigma)
            / (new.sigma * new.sigma * (old.sigma * old.d_alpha - old.alpha * old.d_sigma));
        let d_scale = (old.sigma * new.d_sigma - new.sigma * old.d_sigma * d_t) / (old.sigma * old.sigma);
        Reparametrisation { t, scale, x_rate: d_scale / scale, velocity_rate: scale * d_t }
    }
}

impl Scheduler {
    /// The time at which α_t/σ_t = `ratio` (the ratio grows with t on every scheduler):
    /// 0 below the ratio at t = 0 (`vp` starts just above 0), 1 above the one at t = 1.
    pub fn snr_inverse(&self, ratio: f64) -> f64 {
        let snr = |t: f64| {
            let c = self.at(t);
            c.alpha / c.sigma
        };
        if ratio.is_nan() || ratio <= snr(0.0) {
            return 0.0;
        }
        let (mut low, mut high) = (0.0f64, 1.0f64);
        // Bisection to f64 resolution: the ratio is monotone, some inverses have no closed form (vp).
        for _ in 0..64 {
            let middle = 0.5 * (low + high);
            if snr(middle) < ratio {
                low = middle;
            } else {
                high = middle;
            }
        }
        0.5 * (low + high)
    }
}
