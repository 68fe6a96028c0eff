//! PNG and GIF encoding and side-by-side frames, saved atomically.

use std::path::Path;

use image::{GenericImage, RgbImage};

use crate::{Result, VizError};

/// Writes a PNG atomically.
pub fn save_png(path: &Path, image: &RgbImage) -> Result<()> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .map_err(|e| VizError::Encode(e.to_string()))?;
    flow_data::files::write_atomically(path, |out| out.write_all(&bytes))?;
    Ok(())
}

/// Writes an animated GIF atomically; `delay_cs` is the frame time in 1/100 s.
/// Frames are quantised to 256 colours each (NeuQuant); the plots use few colours.
pub fn save_gif(path: &Path, frames: &[RgbImage], delay_cs: u16) -> Result<()> {
    let first = frames.first().ok_or(VizError::Empty("an animation needs at least one frame"))?;
    let (width, height) = (first.width() as u16, first.height() as u16);
    let mut bytes = Vec::new();
    {
        let mut encoder =
            gif::Encoder::new(&mut bytes, width, height, &[]).map_err(|e| VizError::Encode(e.to_string()))?;
        encoder.set_repeat(gif::Repeat::Infinite).map_err(|e| VizError::Encode(e.to_string()))?;
        if frames.iter().any(|image| image.dimensions() != first.dimensions()) {
            return Err(VizError::Encode("animation frames differ in size".into()));
        }
        for mut frame in quantised(frames, (width, height)) {
            frame.delay = delay_cs;
            encoder.write_lzw_pre_encoded_frame(&frame).map_err(|e| VizError::Encode(e.to_string()))?;
        }
    }
    flow_data::files::write_atomically(path, |out| out.write_all(&bytes))?;
    Ok(())
}

/// Each frame's palette and compressed indices, frames shared out over the
/// cores in contiguous runs: quantising and compressing are nearly all of an
/// animation's encoding time, and each frame's result depends on that frame
/// alone, so the file is byte for byte what one thread writes.
fn quantised(frames: &[RgbImage], (width, height): (u16, u16)) -> Vec<gif::Frame<'static>> {
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).min(frames.len()).max(1);
    let run = frames.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = frames
            .chunks(run)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|image| {
                            let mut frame = gif::Frame::from_rgb_speed(width, height, image.as_raw(), 20);
                            frame.make_lzw_pre_encoded();
                            frame
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        // A worker's panic is a bug: pass it on.
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    })
}

/// Places images left to right on a white background (heights may differ).
pub fn side_by_side(images: &[&RgbImage]) -> RgbImage {
    paste(images, true)
}

/// Places images top to bottom on a white background (widths may differ).
pub fn stacked(images: &[&RgbImage]) -> RgbImage {
    paste(images, false)
}

/// One image after another, along x when `across`, else along y.
fn paste(images: &[&RgbImage], across: bool) -> RgbImage {
    let along = |i: &RgbImage| if across { i.width() } else { i.height() };
    let beside = |i: &RgbImage| if across { i.height() } else { i.width() };
    let length = images.iter().map(|i| along(i)).sum();
    let breadth = images.iter().map(|i| beside(i)).max().unwrap_or(0);
    let (width, height) = if across { (length, breadth) } else { (breadth, length) };
    let mut out = RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255]));
    let mut offset = 0;
    for image in images {
        let (x, y) = if across { (offset, 0) } else { (0, offset) };
        // The canvas was sized to hold every image, so the copy is in bounds.
        let _ = out.copy_from(*image, x, y);
        offset += along(image);
    }
    out
}
