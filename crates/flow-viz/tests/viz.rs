//! flow-viz's one test binary: the data behind figures pinned as text, and
//! the images checked for size and frame count (never for their bytes).

use flow_data::samplers::{gaussian, seeded_rng, spiral};
use flow_viz::{VizError, density_grid, save_gif, save_png, scatter, side_by_side, warp_frame};

#[test]
fn density_grids_of_the_posts_data_are_pinned() {
    let target = spiral(2000, 1.0, &mut seeded_rng(0));
    let source = gaussian(2000, 2, 1.0, &mut seeded_rng(1));
    let text = format!(
        "spiral:\n{}\n\ngaussian:\n{}\n",
        density_grid(&target, 16).expect("2-D"),
        density_grid(&source, 16).expect("2-D")
    );
    insta::assert_snapshot!(text);
}

#[test]
fn warp_curve_values_are_pinned() {
    let mut text = String::new();
    for s in [0.0, 0.5, 1.0, 1.5] {
        let values: Vec<String> =
            (0..=10).map(|i| format!("{:.4}", flow_ode::warp_time(i as f64 / 10.0, s))).collect();
        text.push_str(&format!("s = {s}: {}\n", values.join(" ")));
    }
    insta::assert_snapshot!(text);
}

#[test]
fn images_have_their_intended_sizes_and_frames() {
    let dir = std::env::temp_dir().join(format!("flow-viz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let points = spiral(200, 1.0, &mut seeded_rng(2));
    let plot = scatter(&points, "spiral").expect("2-D");
    let pair = side_by_side(&[&plot, &plot]);
    assert_eq!(pair.dimensions(), (2 * plot.width(), plot.height()));
    let png = dir.join("pair.png");
    save_png(&png, &pair).expect("png");
    assert_eq!(image::image_dimensions(&png).expect("decodes"), pair.dimensions());

    let curve: Vec<(f64, f64)> = (0..=20).map(|i| (i as f64 / 20.0, i as f64 / 20.0)).collect();
    let frames: Vec<_> = (0..4).map(|i| warp_frame(&curve, i as f64 * 0.5).expect("frame")).collect();
    let gif = dir.join("warp.gif");
    save_gif(&gif, &frames, 5).expect("gif");
    let decoder = image::codecs::gif::GifDecoder::new(std::io::BufReader::new(
        std::fs::File::open(&gif).expect("open"),
    ))
    .expect("gif");
    assert_eq!(image::AnimationDecoder::into_frames(decoder).count(), 4);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn animation_frames_come_back_in_order() {
    // Frames are quantised on several threads: each must land in its own place.
    let dir = std::env::temp_dir().join(format!("flow-viz-order-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let shade = |i: usize| image::Rgb([(i * 20) as u8, 255 - (i * 20) as u8, 128]);
    let frames: Vec<_> = (0..9).map(|i| image::RgbImage::from_pixel(8, 6, shade(i))).collect();
    let gif = dir.join("order.gif");
    save_gif(&gif, &frames, 5).expect("gif");
    let decoder = image::codecs::gif::GifDecoder::new(std::io::BufReader::new(
        std::fs::File::open(&gif).expect("open"),
    ))
    .expect("gif");
    let decoded: Vec<_> = image::AnimationDecoder::into_frames(decoder).map(|f| f.expect("frame")).collect();
    assert_eq!(decoded.len(), frames.len());
    for (i, frame) in decoded.iter().enumerate() {
        let pixel = frame.buffer().get_pixel(3, 2);
        assert_eq!(&pixel.0[..3], &shade(i).0, "frame {i}");
    }
    let sizes = [image::RgbImage::new(8, 6), image::RgbImage::new(8, 7)];
    assert!(save_gif(&dir.join("sizes.gif"), &sizes, 5).is_err());
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn plots_refuse_what_they_cannot_draw() {
    let cube = gaussian(10, 3, 1.0, &mut seeded_rng(3));
    assert!(matches!(scatter(&cube, "3-D"), Err(VizError::NotTwoDimensional(3))));
    assert!(matches!(density_grid(&cube, 4), Err(VizError::NotTwoDimensional(3))));
    assert!(save_gif(std::path::Path::new("/tmp/none.gif"), &[], 5).is_err());
    assert!(!std::path::Path::new("/tmp/none.gif").exists());
}

#[test]
fn a_plot_window_fits_the_data_it_shows() {
    use flow_viz::{PLOT_RANGE, fitting_range};
    // Data well inside the post's window keep it; the post's spiral (radius 3 plus noise) gets
    // a little more room than π.
    let small = gaussian(2000, 2, 0.5, &mut seeded_rng(3));
    assert_eq!(fitting_range(&[&small]), PLOT_RANGE);
    let post = spiral(2000, 1.0, &mut seeded_rng(1));
    assert!((PLOT_RANGE..3.6).contains(&fitting_range(&[&post])), "{}", fitting_range(&[&post]));
    // Data five times as wide widen it to their 99.5 % extent plus a margin.
    let wide = gaussian(4000, 2, 5.0, &mut seeded_rng(2));
    let range = fitting_range(&[&wide]);
    let outside = wide.rows().into_iter().filter(|r| r.iter().any(|v| f64::from(v.abs()) > range)).count();
    assert!(range > 12.0 && outside <= 20, "range {range}, {outside} of 4000 points outside");
    // A handful of far outliers do not decide the window.
    let mut stray = wide.clone();
    for i in 0..5 {
        stray[[i, 0]] = 1e6;
    }
    assert!(fitting_range(&[&stray]) < 30.0);
    // Several panels share one window: the widest decides.
    assert_eq!(fitting_range(&[&post, &wide]), fitting_range(&[&wide, &post]));
    assert!(fitting_range(&[&post, &wide]) > 0.9 * range);
}
