//! Time grids: uniform, the post's warp, reversed.

use crate::{OdeError, Result};

/// The post's time-warp polynomial (from Hawley's tutorial):
/// warp(t, s) = 4(1 − s)t³ + 6(s − 1)t² + (3 − 2s)t.
///
/// It fixes 0, ½ and 1 and has slope `s` at t = ½; for s in [0, 1.5] it maps
/// [0, 1] monotonically onto itself. s = 1 is the identity; s < 1 bunches
/// points around the middle, s = 1.5 approaches a cosine schedule.
pub fn warp_time(t: f64, s: f64) -> f64 {
    4.0 * (1.0 - s) * t.powi(3) + 6.0 * (s - 1.0) * t.powi(2) + (3.0 - 2.0 * s) * t
}

/// Checks that `s` keeps [`warp_time`] monotone on [0, 1].
pub fn check_warp(s: f64) -> Result<f64> {
    if (0.0..=1.5).contains(&s) { Ok(s) } else { Err(OdeError::WarpOutOfRange(s)) }
}

/// The times at which a fixed-step solver stops, first to last.
/// For Dopri5 only the first and last matter.
#[derive(Clone, Debug, PartialEq)]
pub struct TimeGrid {
    times: Vec<f64>,
}

impl TimeGrid {
    /// `steps` equal steps from 0 to 1.
    pub fn uniform(steps: usize) -> Result<TimeGrid> {
        if steps == 0 {
            return Err(OdeError::NoSteps);
        }
        let times = (0..=steps).map(|i| i as f64 / steps as f64).collect();
        Ok(TimeGrid { times })
    }

    /// `steps` steps from 0 to 1 placed by [`warp_time`]: with s < 1 they are
    /// longest at the ends and shortest in the middle.
    pub fn warped(steps: usize, s: f64) -> Result<TimeGrid> {
        let s = check_warp(s)?;
        let mut grid = TimeGrid::uniform(steps)?;
        for t in &mut grid.times {
            *t = warp_time(*t, s);
        }
        Ok(grid)
    }

    /// The same stops in the opposite order: integrates from 1 back to 0.
    pub fn reversed(mut self) -> TimeGrid {
        self.times.reverse();
        self
    }

    pub fn times(&self) -> &[f64] {
        &self.times
    }

    pub fn steps(&self) -> usize {
        self.times.len() - 1
    }

    pub fn start(&self) -> f64 {
        self.times[0]
    }

    pub fn end(&self) -> f64 {
        self.times[self.times.len() - 1]
    }
}
