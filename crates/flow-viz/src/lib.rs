//! flow-viz: the figures of flows, drawn into RGB images and saved atomically.
//!
//! Every chart is drawn by plotters into an in-memory [`image::RgbImage`]
//! with an embedded DejaVu font (so text renders on machines without system
//! fonts); frames are composed side by side with `image` and encoded as PNG or
//! GIF here, through flow-data's atomic write.
//!
//! Invariants: drawing functions are pure (data in, image out); the data behind
//! a figure can be summarised as text ([`density_grid`]) for snapshot tests,
//! since PNG bytes are not stable across library versions. No libtorch here.

mod charts;
mod encode;
mod error;
mod scatter;

pub use charts::{QualitySeries, loss_curve, quality_chart, warp_frame};
pub use encode::{save_gif, save_png, side_by_side, stacked};
pub use error::{Result, VizError};
pub use scatter::{
    PLOT_RANGE, PLOT_SIZE, density_cells, density_grid, density_map, fitting_range, scatter, scatter_shaded,
    scatter_within, square_canvas_size, trajectories, trajectories_within, vector_field,
};

pub use image::RgbImage;

/// Registers the embedded font once; every chart calls it before drawing text.
fn ensure_font() {
    static FONT: std::sync::Once = std::sync::Once::new();
    FONT.call_once(|| {
        // The bytes are a valid TTF shipped by the dejavu crate; if registration
        // ever failed, text would be missing but plots would still draw.
        let _ = plotters::style::register_font(
            "sans-serif",
            plotters::style::FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}
