//! flow-data's one test binary: samplers pinned by snapshot and checked by their statistics,
//! and point files checked on good and bad input.

use std::f64::consts::PI;
use std::path::Path;

use flow_data::files::{parse_csv, read_points, write_points};
use flow_data::samplers::{self, seeded_rng};
use flow_data::{DataError, Dataset};
use ndarray::{Array2, Axis};

fn first_rows(points: &Array2<f32>, count: usize) -> String {
    points
        .rows()
        .into_iter()
        .take(count)
        .map(|row| row.iter().map(|x| format!("{x:+.4}")).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_dataset_is_pinned_for_seed_zero() {
    let snapshot: String = Dataset::ALL
        .iter()
        .map(|d| {
            let points = d.sample(4, 2, &mut seeded_rng(0)).expect("2-D sample");
            format!("{}:\n{}\n", d.name(), first_rows(&points, 4))
        })
        .collect();
    insta::assert_snapshot!(snapshot);
}

#[test]
fn same_seed_same_points_other_seed_other_points() {
    let a = samplers::spiral(100, 1.0, &mut seeded_rng(7));
    let b = samplers::spiral(100, 1.0, &mut seeded_rng(7));
    let c = samplers::spiral(100, 1.0, &mut seeded_rng(8));
    assert_eq!(a, b);
    assert_ne!(a, c);
}

fn mean_and_std(points: &Array2<f32>) -> (Vec<f64>, Vec<f64>) {
    let p = points.mapv(f64::from);
    let mean = p.mean_axis(Axis(0)).expect("non-empty").to_vec();
    let std = p.std_axis(Axis(0), 0.0).to_vec();
    (mean, std)
}

#[test]
fn gaussian_has_unit_spread_in_any_dimension() {
    let points = samplers::gaussian(20_000, 5, 2.0, &mut seeded_rng(1));
    assert_eq!(points.dim(), (20_000, 5));
    let (mean, std) = mean_and_std(&points);
    for j in 0..5 {
        assert!(mean[j].abs() < 0.05, "mean {mean:?}");
        assert!((std[j] - 2.0).abs() < 0.05, "std {std:?}");
    }
}

#[test]
fn spiral_radius_follows_the_angle() {
    // Without noise the radius is θ/2π ∈ [0, 3]; noise of 0.1 per coordinate blurs it slightly.
    let points = samplers::spiral(20_000, 1.0, &mut seeded_rng(2));
    let radii: Vec<f64> = points.rows().into_iter().map(|r| f64::from(r[0]).hypot(f64::from(r[1]))).collect();
    let max = radii.iter().cloned().fold(0.0, f64::max);
    let mean = radii.iter().sum::<f64>() / radii.len() as f64;
    assert!(max > 2.9 && max < 3.5, "max radius {max}");
    // E[θ/2π] = 1.5 for θ ~ U[0, 6π].
    assert!((mean - 1.5).abs() < 0.05, "mean radius {mean}");
    // Points on the outer arm sit where the angle says: at θ = 6π the spiral is at (3, 0).
    let outer_x: Vec<f64> = points
        .rows()
        .into_iter()
        .filter(|r| f64::from(r[0]).hypot(f64::from(r[1])) > 2.9)
        .map(|r| f64::from(r[0]))
        .collect();
    let mean_outer_x = outer_x.iter().sum::<f64>() / outer_x.len() as f64;
    assert!(mean_outer_x > 2.0, "outer arm centred at x = {mean_outer_x}, not near 3");
}

#[test]
fn eight_gaussians_form_eight_clusters_at_radius_five() {
    let points = samplers::eight_gaussians(8_000, &mut seeded_rng(3));
    let mut counts = [0usize; 8];
    for row in points.rows() {
        let (x, y) = (f64::from(row[0]), f64::from(row[1]));
        let sector = ((y.atan2(x) / (PI / 4.0)).round() as i64).rem_euclid(8) as usize;
        let (sin, cos) = (sector as f64 * PI / 4.0).sin_cos();
        let distance = (x - 5.0 * cos).hypot(y - 5.0 * sin);
        assert!(distance < 3.0, "point ({x}, {y}) far from its centre");
        counts[sector] += 1;
    }
    for count in counts {
        assert!((800..1200).contains(&count), "cluster sizes {counts:?}");
    }
    let (_, std) = mean_and_std(&points);
    // Spread² = 25/2 from the ring plus √0.1 from each cluster's covariance.
    assert!((std[0] - (12.5f64 + 0.1f64.sqrt()).sqrt()).abs() < 0.15, "{std:?}");
}

#[test]
fn moons_checkerboard_circles_and_uniform_have_their_shapes() {
    let moons = samplers::moons(10_000, &mut seeded_rng(4));
    let (mean, _) = mean_and_std(&moons);
    // make_moons has mean (0.5, 0.25); ×3 − 1 gives (0.5, −0.25).
    assert!((mean[0] - 0.5).abs() < 0.05 && (mean[1] + 0.25).abs() < 0.05, "{mean:?}");

    let board = samplers::checkerboard(10_000, &mut seeded_rng(5));
    for row in board.rows() {
        let (cx, cy) = ((row[0] / 2.0).floor() as i64, (row[1] / 2.0).floor() as i64);
        assert!((-2..2).contains(&cx) && (-2..2).contains(&cy));
        assert_eq!((cx + cy).rem_euclid(2), 0, "point in an empty square: {row}");
    }

    let circles = samplers::circles(10_000, &mut seeded_rng(6));
    let near = |r: f64| {
        circles
            .rows()
            .into_iter()
            .filter(|p| (f64::from(p[0]).hypot(f64::from(p[1])) - r).abs() < 0.6)
            .count()
    };
    assert!(near(3.0) > 4_500 && near(1.5) > 4_500);

    let square = samplers::uniform_square(10_000, 1.0, &mut seeded_rng(7));
    assert!(square.iter().all(|x| x.abs() <= 1.0));
    let (_, std) = mean_and_std(&square);
    assert!((std[0] - 1.0 / 3f64.sqrt()).abs() < 0.02);
}

#[test]
fn torchdyn_moons_are_ordered_arcs_shifted_along_the_diagonal() {
    // torchdyn: n/2 outer points at angles πi/(n/2 − 1), then the inner arc,
    // each moved by one u ~ U[0, 0.2) on both coordinates, then ×3 − 1.
    let n = 9;
    let points = samplers::torchdyn_moons(n, &mut seeded_rng(8));
    let mut shifts = Vec::new();
    for (i, row) in points.rows().into_iter().enumerate() {
        let (x, y) = ((f64::from(row[0]) + 1.0) / 3.0, (f64::from(row[1]) + 1.0) / 3.0);
        let (arc_x, arc_y) = if i < n / 2 {
            let a = std::f64::consts::PI * i as f64 / 3.0;
            (a.cos(), a.sin())
        } else {
            let a = std::f64::consts::PI * (i - n / 2) as f64 / 4.0;
            (1.0 - a.cos(), 0.5 - a.sin())
        };
        let (dx, dy) = (x - arc_x, y - arc_y);
        assert!((dx - dy).abs() < 1e-6, "point {i}: shifts {dx} and {dy} differ");
        assert!((-1e-6..0.2).contains(&dx), "point {i}: shift {dx}");
        shifts.push(dx);
    }
    // Uniform on [0, 0.2): over many points the mean is 0.1 and the spread 0.2/√12.
    let many = samplers::torchdyn_moons(20_000, &mut seeded_rng(9));
    let (mean, std) = mean_and_std(&many);
    // The arcs' means are (0, 2/π) and (1, 0.5 − 2/π): together (0.5, 0.25), plus 0.1, ×3 − 1.
    assert!((mean[0] - 0.8).abs() < 0.01 && (mean[1] - 0.05).abs() < 0.01, "{mean:?} {std:?}");
    assert!(shifts.iter().any(|&s| s > 0.02), "{shifts:?}");
}

#[test]
fn dataset_lookup_names_the_valid_choices() {
    assert_eq!(Dataset::from_name("8gaussians").ok(), Some(Dataset::EightGaussians));
    let message = Dataset::from_name("spirals").unwrap_err().to_string();
    assert_eq!(
        message,
        "unknown dataset `spirals` (valid: gaussian, spiral, moons, moons-torchdyn, 8gaussians, checkerboard, circles, uniform, moons-cfm, scurve, 8gaussians-torchdyn, moons-dsb, 8gaussians-dsb)"
    );
    assert!(matches!(Dataset::Spiral.sample(3, 3, &mut seeded_rng(0)), Err(DataError::Dimension { .. })));
    assert_eq!(Dataset::Gaussian.sample(3, 7, &mut seeded_rng(0)).map(|p| p.dim()).ok(), Some((3, 7)));
}

fn csv_error(text: &str) -> String {
    parse_csv(Path::new("in.csv"), text).unwrap_err().to_string()
}

#[test]
fn csv_reports_the_line_and_column_of_bad_cells() {
    let good = parse_csv(Path::new("in.csv"), "a,b,c\n1,2,3\n4,5,6e-1\n").expect("valid csv");
    assert_eq!(good, ndarray::array![[1.0, 2.0, 3.0], [4.0, 5.0, 0.6]]);
    let headless = parse_csv(Path::new("in.csv"), "1,2\n3,4\n").expect("valid csv");
    assert_eq!(headless.dim(), (2, 2));
    assert_eq!(csv_error("x,y\n1,2\n3,oops\n"), "in.csv: line 3, column 2: `oops` is not a number");
    assert_eq!(csv_error("1,2\n3\n"), "in.csv: line 2 has 1 columns, expected 2");
    assert_eq!(csv_error("1,2\nNaN,4\n"), "in.csv: line 2, column 1: NaN is not finite");
    assert_eq!(csv_error("1,inf\n"), "in.csv: line 1, column 2: inf is not finite");
    assert_eq!(csv_error("x,y\n"), "in.csv: no data points");
    assert_eq!(csv_error(""), "in.csv: no data points");
    // A byte-order mark before header-less numbers is not part of the first number.
    let marked = parse_csv(Path::new("in.csv"), "\u{feff}1,2\n3,4\n").expect("BOM skipped");
    assert_eq!(marked, ndarray::array![[1.0, 2.0], [3.0, 4.0]]);
    assert_eq!(
        csv_error("1,-3.77e38\n"),
        "in.csv: line 1, column 2: -3.77e38 is outside the range of 32-bit floats (±3.4e38)"
    );
    let device = flow_data::files::read_points(Path::new("/dev/zero")).map(|_| ()).unwrap_err().to_string();
    assert!(device.contains("unsupported extension") || device.contains("not a regular file"), "{device}");
}

#[cfg(unix)]
#[test]
fn a_device_named_like_a_csv_is_refused_not_read_forever() {
    let dir = std::env::temp_dir().join(format!("flow-data-dev-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let link = dir.join("zero.csv");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink("/dev/zero", &link).expect("symlink");
    let message = flow_data::files::read_points(&link).unwrap_err().to_string();
    assert!(message.ends_with("zero.csv: not a regular file"), "{message}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn point_files_round_trip_and_reject_bad_npy() {
    let dir = std::env::temp_dir().join(format!("flow-data-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let points = samplers::spiral(50, 1.0, &mut seeded_rng(9));
    for name in ["p.csv", "p.npy"] {
        let path = dir.join(name);
        write_points(&path, &points).expect("write");
        assert_eq!(read_points(&path).expect("read"), points, "{name}");
    }
    // Names up to the 255-byte limit write (the temp file's name is cut to fit), multi-byte
    // characters included.
    for stem in ["p".repeat(251), "é".repeat(125) + "x"] {
        let path = dir.join(format!("{stem}.csv"));
        assert_eq!(path.file_name().expect("a name").len(), 255, "{stem}");
        write_points(&path, &points).expect("a 255-byte name");
        assert_eq!(read_points(&path).expect("read"), points);
    }
    let cube = ndarray::Array3::<f32>::zeros((2, 2, 2));
    let rank3 = dir.join("rank3.npy");
    ndarray_npy::write_npy(&rank3, &cube).expect("write rank 3");
    assert!(read_points(&rank3).unwrap_err().to_string().contains("expected a 2-D array"));
    let ints = dir.join("ints.npy");
    ndarray_npy::write_npy(&ints, &Array2::<i32>::zeros((2, 2))).expect("write ints");
    assert!(read_points(&ints).unwrap_err().to_string().contains("float32 or float64"));

    // Writing onto a directory fails and leaves nothing behind.
    let as_dir = dir.join("out.csv");
    std::fs::create_dir_all(&as_dir).expect("dir");
    let error = write_points(&as_dir, &points).unwrap_err().to_string();
    assert!(error.ends_with("is a directory, expected a file"), "{error}");
    let leftovers = std::fs::read_dir(&dir).expect("list").filter_map(|e| e.ok());
    assert!(leftovers.into_iter().all(|e| !e.file_name().to_string_lossy().ends_with(".tmp")));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn outputs_are_checked_before_any_work_is_done() {
    use flow_data::files::{check_output_path, check_writable};
    let dir = std::env::temp_dir().join(format!("flow-data-outputs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch");
    assert!(check_output_path(&dir.join("points.csv")).is_ok());
    // A bare file name is written in the current directory, which exists.
    assert!(check_output_path(Path::new("points.npy")).is_ok());
    assert!(matches!(check_output_path(&dir.join("points.txt")), Err(DataError::Extension { .. })));
    assert!(matches!(check_writable(&dir), Err(DataError::IsDirectory { .. })));
    assert!(matches!(check_output_path(&dir.join("missing/points.csv")), Err(DataError::Io { .. })));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn files_with_a_header_and_no_points_are_empty_not_a_zero_row_set() {
    let dir = std::env::temp_dir().join(format!("flow-data-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch");
    let header_only = dir.join("header.csv");
    std::fs::write(&header_only, "coord0,coord1\n").expect("write");
    assert!(matches!(read_points(&header_only), Err(DataError::Empty { .. })));
    let no_rows = dir.join("none.npy");
    write_points(&no_rows, &Array2::zeros((0, 2))).expect("write");
    assert!(matches!(read_points(&no_rows), Err(DataError::Empty { .. })));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn npy_headers_sizes_and_values_are_checked_and_named() {
    let dir = std::env::temp_dir().join(format!("flow-data-npy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch");
    // float64 files are read as their values, not as reinterpreted bits.
    let doubles = ndarray::array![[0.5f64, -1.25], [3.0, 1e-3]];
    let f64_path = dir.join("doubles.npy");
    ndarray_npy::write_npy(&f64_path, &doubles).expect("write");
    assert_eq!(read_points(&f64_path).expect("read"), doubles.mapv(|x| x as f32));

    // A truncated file: the header claims more values than the file holds.
    let bytes = std::fs::read(&f64_path).expect("bytes");
    let truncated = dir.join("truncated.npy");
    std::fs::write(&truncated, &bytes[..bytes.len() - 8]).expect("write");
    let message = read_points(&truncated).unwrap_err().to_string();
    assert!(message.contains("claims 2 × 2 values (32 bytes) but the file holds 24 bytes"), "{message}");
    // A header length reaching past the end of the file.
    let mut long_header = bytes.clone();
    long_header[8] = 0xff;
    long_header[9] = 0xff;
    let past = dir.join("past.npy");
    std::fs::write(&past, &long_header).expect("write");
    let message = read_points(&past).unwrap_err().to_string();
    assert!(message.contains("past the end of the file"), "{message}");
    // Version 2 headers have a four-byte length: the same file in that layout still reads.
    let header_len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
    let mut version2 = bytes[..6].to_vec();
    version2.extend([2, 0]);
    version2.extend((header_len as u32 + 2).to_le_bytes());
    // Two more spaces of padding before the header's closing newline.
    version2.extend(&bytes[10..10 + header_len - 1]);
    version2.extend(*b"  \n");
    version2.extend(&bytes[10 + header_len..]);
    let v2 = dir.join("v2.npy");
    std::fs::write(&v2, &version2).expect("write");
    assert_eq!(read_points(&v2).expect("version 2"), doubles.mapv(|x| x as f32));
    // Not a .npy at all: the reader's own message, not a size claim read from text.
    let text = dir.join("text.npy");
    std::fs::write(&text, "this is not an array at all").expect("write");
    let message = read_points(&text).unwrap_err().to_string();
    assert!(message.contains("expected a 2-D array of float32 or float64"), "{message}");

    // float16 and bool arrays are named by their element type, not taken for truncated files.
    for (descr, item) in [("<f2", 2usize), ("|b1", 1)] {
        let header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (2, 2), }}");
        let padded = format!("{header:<117}\n");
        let mut npy = b"\x93NUMPY\x01\x00".to_vec();
        npy.extend((padded.len() as u16).to_le_bytes());
        npy.extend(padded.as_bytes());
        npy.extend(vec![0u8; 4 * item]);
        let odd = dir.join("odd.npy");
        std::fs::write(&odd, &npy).expect("write");
        let message = read_points(&odd).unwrap_err().to_string();
        assert!(message.contains(&format!("unsupported element type `{descr}`")), "{message}");
    }

    // A NaN is named by its row (as the line) and column, both 1-based.
    let mut with_nan = Array2::<f32>::zeros((3, 2));
    with_nan[[1, 1]] = f32::NAN;
    let nan_path = dir.join("nan.npy");
    ndarray_npy::write_npy(&nan_path, &with_nan).expect("write");
    let message = read_points(&nan_path).unwrap_err().to_string();
    assert!(message.contains("line 2, column 2"), "{message}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn scales_and_small_counts_give_the_sets_they_promise() {
    // Radius and noise both scale: the spiral at scale 2 is twice the one at scale 1, draw for draw.
    let one = samplers::spiral(500, 1.0, &mut seeded_rng(4));
    let two = samplers::spiral(500, 2.0, &mut seeded_rng(4));
    let worst = (&two - &(&one * 2.0)).mapv(f32::abs).fold(0.0f32, |a, &b| a.max(b));
    assert!(worst < 1e-5, "scale 2 differs from twice scale 1 by {worst}");
    // One point per arc has no spacing to divide by, and must still be a point.
    for n in 1..=3 {
        let moons = samplers::moons(n, &mut seeded_rng(5));
        assert!(moons.iter().all(|v| v.is_finite()), "{n} moons points: {moons:?}");
    }
    // Ten points: five per arc at evenly spaced angles (pinned, noise included).
    insta::assert_snapshot!(first_rows(&samplers::moons(10, &mut seeded_rng(6)), 10));
}

#[test]
fn log_densities_are_the_closed_forms() {
    let ln_2pi = (2.0 * PI).ln();
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    let gaussian =
        Dataset::Gaussian.log_density(&ndarray::array![[0.0f32, 0.0], [1.0, -2.0]]).expect("known");
    assert!(close(gaussian[0], -ln_2pi) && close(gaussian[1], -2.5 - ln_2pi), "{gaussian:?}");
    let three = Dataset::Gaussian.log_density(&ndarray::array![[0.0f32, 0.0, 1.0]]).expect("known");
    assert!(close(three[0], -0.5 - 1.5 * ln_2pi), "{three:?}");
    // At a centre of 8gaussians the other seven components add nothing measurable:
    // log(1/8 · 1/(2π√0.1)); halfway between two neighbours, two components count equally.
    let variance = 0.1f64.sqrt();
    let eight = Dataset::EightGaussians.log_density(&ndarray::array![[5.0f32, 0.0]]).expect("known");
    assert!(close(eight[0], -(8f64.ln()) - (2.0 * PI * variance).ln()), "{eight:?}");
    let (x, y) = (2.5 * (1.0 + (PI / 4.0).cos()), 2.5 * (PI / 4.0).sin());
    let halfway = Dataset::EightGaussians.log_density(&ndarray::array![[x as f32, y as f32]]).expect("known");
    let d2 = (x - 5.0).powi(2) + y.powi(2);
    let expected = (2.0 / 8.0f64).ln() - (2.0 * PI * variance).ln() - d2 / (2.0 * variance);
    assert!((halfway[0] - expected).abs() < 1e-6, "{halfway:?} against {expected}");
    let uniform = Dataset::Uniform.log_density(&ndarray::array![[0.5f32, -0.9], [1.5, 0.0]]).expect("known");
    assert!(close(uniform[0], -(4f64.ln())) && uniform[1] == f64::NEG_INFINITY, "{uniform:?}");
    assert!(Dataset::Spiral.log_density(&ndarray::array![[0.0f32, 0.0]]).is_none());
    // The 2-D sets have no density in three dimensions.
    let three_d = ndarray::array![[0.0f32, 0.0, 0.0]];
    assert!(
        Dataset::EightGaussians.log_density(&three_d).is_none()
            && Dataset::Uniform.log_density(&three_d).is_none()
    );
}

#[test]
fn point_sources_report_and_draw_what_they_hold() {
    use flow_data::PointSource;
    use flow_data::tables::{coordinate_names, trajectory_names, trajectory_table};
    let spiral = PointSource::builtin(Dataset::Spiral, 2).expect("2-D");
    assert_eq!((spiral.dim(), spiral.describe()), (2, "spiral (2-D)".to_owned()));
    assert_eq!(Dataset::EightGaussians.to_string(), "8gaussians");
    assert!(PointSource::builtin(Dataset::Moons, 3).is_err());
    // Made by hand in a dimension the set lacks, it refuses to draw: no placeholder points.
    let unchecked = PointSource::Builtin { dataset: Dataset::Spiral, dim: 3 };
    assert!(matches!(unchecked.draw(5, &mut seeded_rng(0)), Err(DataError::Dimension { .. })));
    // A data set is resampled row by row: every drawn row is one of its rows.
    let data = ndarray::array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]];
    let source = PointSource::Data(std::sync::Arc::new(data.clone()));
    assert_eq!((source.dim(), source.describe()), (3, "data (2 points, 3-D)".to_owned()));
    let drawn = source.draw(50, &mut seeded_rng(3)).expect("draws");
    assert_eq!(drawn.dim(), (50, 3));
    assert!(drawn.rows().into_iter().all(|row| data.rows().into_iter().any(|d| d == row)));
    assert!(
        drawn.rows().into_iter().any(|row| row == data.row(0))
            && drawn.rows().into_iter().any(|row| row == data.row(1))
    );
    let empty = PointSource::Data(std::sync::Arc::new(Array2::zeros((0, 2))));
    assert_eq!(empty.draw(4, &mut seeded_rng(3)).expect("draws").dim(), (0, 2));
    // Sizes are checked before the points are allocated.
    assert!(matches!(
        Dataset::Gaussian.sample(usize::MAX / 4, 8, &mut seeded_rng(0)),
        Err(DataError::TooLarge { .. })
    ));
    // n·d f32 values, and for labelled points two coordinates and a label each: 12.0 TB both.
    let huge = Dataset::Gaussian.sample(1_000_000_000_000, 3, &mut seeded_rng(0)).expect_err("too large");
    assert!(huge.to_string().starts_with("1000000000000 points of dimension 3 needs 12.0 TB"), "{huge}");
    let labeled =
        Dataset::Moons.sample_labeled(1_000_000_000_000, 2, &mut seeded_rng(0)).expect_err("too large");
    assert!(
        labeled.to_string().starts_with("1000000000000 labeled points of dimension 2 needs 12.0 TB"),
        "{labeled}"
    );

    // Paths as tables: a row per (time, particle).
    let path = vec![
        (0.0, ndarray::array![[1.0f32, 2.0], [3.0, 4.0]]),
        (0.5, ndarray::array![[5.0f32, 6.0], [7.0, 8.0]]),
    ];
    let table = trajectory_table(&path);
    assert_eq!(
        table,
        ndarray::array![
            [0.0, 0.0, 1.0, 2.0],
            [0.0, 1.0, 3.0, 4.0],
            [0.5, 0.0, 5.0, 6.0],
            [0.5, 1.0, 7.0, 8.0]
        ]
    );
    assert_eq!(trajectory_names(2), ["t", "particle", "coord0", "coord1"]);
    assert_eq!(coordinate_names(3), ["coord0", "coord1", "coord2"]);
    assert_eq!(trajectory_table(&[]).dim(), (0, 2));
}

mod conditions {
    use std::f64::consts::PI;

    use flow_data::samplers::{self, seeded_rng};
    use flow_data::{ConditionShape, ConditionSpec, ConditionedTarget, DataError, Dataset, PointSource};
    use ndarray::{Array2, array};

    #[test]
    fn labelled_draws_are_the_unlabelled_points_with_each_points_own_label() {
        for dataset in Dataset::ALL.into_iter().filter(|d| d.classes() > 0) {
            let plain = dataset.sample(500, 2, &mut seeded_rng(5)).expect("2-D");
            let (points, labels) =
                dataset.sample_labeled(500, 2, &mut seeded_rng(5)).expect("2-D").expect("labels");
            assert_eq!(plain, points, "{dataset}: labels must not change the draws");
            assert!(labels.iter().all(|&l| (l as usize) < dataset.classes()), "{dataset}");
            let used: std::collections::BTreeSet<u32> = labels.iter().copied().collect();
            assert_eq!(used.len(), dataset.classes(), "{dataset}: every class appears in 500 draws");
        }
        assert!(Dataset::Spiral.sample_labeled(10, 2, &mut seeded_rng(0)).expect("2-D").is_none());
    }

    #[test]
    fn labels_name_the_part_of_the_set_a_point_came_from() {
        let (points, labels) = samplers::eight_gaussians_labeled(4000, &mut seeded_rng(1));
        for (row, &k) in points.rows().into_iter().zip(&labels) {
            let angle = f64::from(k) * PI / 4.0;
            let (dx, dy) = (f64::from(row[0]) - 5.0 * angle.cos(), f64::from(row[1]) - 5.0 * angle.sin());
            // Standard deviation 0.1^¼ ≈ 0.56: six of them is far beyond any of 4 000 draws.
            assert!((dx * dx + dy * dy).sqrt() < 6.0 * 0.1f64.powf(0.25), "component {k} at {row}");
        }
        // The checkerboard's square, recomputed from the point (2 × the unit board).
        let (points, labels) = samplers::checkerboard_labeled(4000, &mut seeded_rng(2));
        for (row, &square) in points.rows().into_iter().zip(&labels) {
            let column = (f64::from(row[0]) / 2.0).floor() + 2.0;
            let upper = f64::from(u8::from(row[1] >= 0.0));
            assert_eq!(f64::from(square), 2.0 * column + upper, "{row}");
        }
        // The inner ring is half the outer one's radius (3 and 1.5, noise 0.24).
        let (points, labels) = samplers::circles_labeled(2000, &mut seeded_rng(3));
        for (row, &ring) in points.rows().into_iter().zip(&labels) {
            let radius = f64::from(row[0]).hypot(f64::from(row[1]));
            assert!(
                (radius - if ring == 0 { 3.0 } else { 1.5 }).abs() < 1.2,
                "ring {ring} at radius {radius}"
            );
        }
        // torchdyn's moons come outer arc first; sklearn's are shuffled but keep each point's arc:
        // the outer arc's noise-free points have y ≥ 0, the inner's y ≤ 0.5 (before ·3 − 1).
        let (points, labels) = samplers::torchdyn_moons_labeled(100, &mut seeded_rng(4));
        assert_eq!(labels, [vec![0; 50], vec![1; 50]].concat());
        // The top of the outer arc (y = 1 + shift) lies above the bottom of the inner one (y = −0.5 + shift).
        assert!(points.row(25)[1] > points.row(75)[1]);
        let (points, labels) = samplers::moons_labeled(4000, &mut seeded_rng(4));
        let mean_y = |arc: u32| {
            let ys: Vec<f64> = points
                .rows()
                .into_iter()
                .zip(&labels)
                .filter(|(_, l)| **l == arc)
                .map(|(r, _)| f64::from(r[1]))
                .collect();
            ys.iter().sum::<f64>() / ys.len() as f64
        };
        // Outer arc: mean of sin over [0, π] is 2/π, so y ≈ 3·0.64 − 1; inner: 3·(0.5 − 0.64) − 1.
        assert!((mean_y(0) - (3.0 * 2.0 / PI - 1.0)).abs() < 0.1, "{}", mean_y(0));
        assert!((mean_y(1) - (3.0 * (0.5 - 2.0 / PI) - 1.0)).abs() < 0.1, "{}", mean_y(1));
    }

    #[test]
    fn features_are_a_one_hot_with_a_null_slot_then_values_and_a_presence_flag() {
        let shape = ConditionShape { classes: 3, values: 2 };
        assert_eq!((shape.columns(), shape.features()), (3, 7));
        let rows = array![[2.0f32, 0.5, -1.0], [0.0, 4.0, 8.0], [1.0, -2.0, 3.0]];
        let features = shape.encode(&rows, |i| i == 1);
        assert_eq!(
            features,
            [
                0.0, 0.0, 1.0, 0.0, 0.5, -1.0, 1.0, // row 0
                0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, // row 1, dropped
                0.0, 1.0, 0.0, 0.0, -2.0, 3.0, 1.0, // row 2
            ]
        );
        assert_eq!(shape.null_features(1), [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
        assert_eq!(
            ConditionShape { classes: 2, values: 0 }.encode(&array![[1.0f32]], |_| false),
            [0.0, 1.0, 0.0]
        );
        assert!(ConditionShape::NONE.encode(&Array2::zeros((4, 0)), |_| false).is_empty());
        assert!(ConditionShape::NONE.null_features(4).is_empty());
    }

    #[test]
    fn shapes_count_their_columns_and_features_and_say_what_they_take() {
        let label = ConditionShape { classes: 4, values: 0 };
        let values = ConditionShape { classes: 0, values: 2 };
        let both = ConditionShape { classes: 4, values: 1 };
        assert!(ConditionShape::NONE.is_none() && !label.is_none() && !values.is_none());
        assert_eq!(
            [ConditionShape::NONE.columns(), label.columns(), values.columns(), both.columns()],
            [0, 1, 2, 2]
        );
        assert_eq!(
            [ConditionShape::NONE.features(), label.features(), values.features(), both.features()],
            [0, 5, 3, 7]
        );
        assert_eq!(ConditionShape::NONE.describe(), "unconditional");
        assert_eq!(label.describe(), "a label of 4 classes");
        assert_eq!(values.describe(), "2 continuous values");
        assert_eq!(both.describe(), "a label of 4 classes and 1 continuous value");
        // Values alone: no one-hot, the first value is not a label.
        assert_eq!(values.encode(&array![[0.5f32, -1.0]], |_| false), [0.5, -1.0, 1.0]);
        assert_eq!(values.parse("-3.5, 2").expect("two values"), [-3.5, 2.0]);
        assert!(values.parse("nan,1").is_err() && values.parse("1,inf").is_err());
        assert_eq!(label.parse("0").expect("the first class"), [0.0]);
        assert!(
            label.check(&array![[1.0f32], [4.0]]).is_err() && label.check(&array![[0.0f32], [3.0]]).is_ok()
        );
        for text in ["label", "coord3", "kind", "kind:label", "/data/c.npy:label"] {
            assert_eq!(ConditionSpec::parse(text).expect("form").to_string(), text);
        }
    }

    #[test]
    fn bad_conditions_are_named() {
        let shape = ConditionShape { classes: 8, values: 1 };
        assert_eq!(shape.parse("3, 0.25").expect("valid"), [3.0, 0.25]);
        let message = |text: &str| shape.parse(text).expect_err(text).to_string();
        assert!(message("8,0").contains("label 8 is not one of 0 … 7"), "{}", message("8,0"));
        assert!(message("2.5,0").contains("label 2.5"));
        assert!(message("-1,0").contains("label -1"));
        assert!(message("1,nan").contains("not finite"));
        assert!(message("1,inf").contains("not finite"));
        assert!(message("1").contains("1 condition values given"));
        assert!(message("one,2").contains("`one` is not a number"));
        let spec_error = |text: &str| ConditionSpec::parse(text).expect_err(text).to_string();
        assert!(spec_error(":label").contains("empty condition"));
        assert_eq!(ConditionSpec::parse("coord1").expect("valid"), ConditionSpec::Coordinate(1));
        assert_eq!(
            ConditionSpec::parse("kind:label").expect("valid"),
            ConditionSpec::Column { name: "kind".into(), label: true }
        );
        let refused = |dataset, spec: &str| {
            ConditionedTarget::builtin(dataset, 2, &[ConditionSpec::parse(spec).expect("form")])
                .expect_err(spec)
                .to_string()
        };
        assert!(refused(Dataset::Spiral, "label").ends_with(
            "no natural label (labelled sets: moons, moons-torchdyn, 8gaussians, checkerboard, circles)"
        ));
        assert!(refused(Dataset::Moons, "coord2").contains("coord2 is not a coordinate"));
        assert!(refused(Dataset::Moons, "kind").contains("names a data column"));
        let two_labels = [ConditionSpec::Label, ConditionSpec::Label];
        assert!(ConditionedTarget::builtin(Dataset::Moons, 2, &two_labels).is_err());
    }

    #[test]
    fn a_conditioned_target_draws_the_points_of_its_source_with_their_conditions() {
        let specs = [ConditionSpec::Coordinate(1), ConditionSpec::Label];
        let target = ConditionedTarget::builtin(Dataset::EightGaussians, 2, &specs).expect("valid");
        // The label goes first whatever the order given.
        assert_eq!(target.shape(), ConditionShape { classes: 8, values: 1 });
        let (points, conditions) = target.draw(300, &mut seeded_rng(9)).expect("draws");
        let (plain, labels) = samplers::eight_gaussians_labeled(300, &mut seeded_rng(9));
        assert_eq!(points, plain);
        for i in 0..300 {
            assert_eq!(conditions[[i, 0]], labels[i] as f32);
            assert_eq!(conditions[[i, 1]], points[[i, 1]]);
        }
        let plain_target =
            ConditionedTarget::unconditional(PointSource::builtin(Dataset::Moons, 2).expect("2-D"));
        let (points, conditions) = plain_target.draw(50, &mut seeded_rng(1)).expect("draws");
        assert_eq!(
            points,
            PointSource::builtin(Dataset::Moons, 2)
                .expect("2-D")
                .draw(50, &mut seeded_rng(1))
                .expect("draws")
        );
        assert_eq!(conditions.dim(), (50, 0));
    }

    #[test]
    fn data_files_give_their_condition_columns_and_keep_the_rest_as_points() {
        let dir = std::env::temp_dir().join(format!("flow-data-conditions-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch");
        let csv = dir.join("labelled.csv");
        std::fs::write(&csv, "x,kind,y,size\n1,0,10,0.5\n2,2,20,0.25\n3,1,30,0.125\n").expect("write");
        let specs: Vec<ConditionSpec> =
            ["size", "kind:label"].iter().map(|s| s.parse().expect("form")).collect();
        let target = ConditionedTarget::from_file(&csv, &specs).expect("valid");
        assert_eq!(target.shape(), ConditionShape { classes: 3, values: 1 });
        let (points, conditions) = target.draw(40, &mut seeded_rng(0)).expect("draws");
        assert_eq!(points.ncols(), 2);
        for (point, condition) in points.rows().into_iter().zip(conditions.rows()) {
            // Row r holds x = r + 1, y = 10 (r + 1), size 0.5^(r + 1) and kind [0, 2, 1][r].
            let r = point[0] as usize - 1;
            assert_eq!(point[1], 10.0 * point[0]);
            assert_eq!(condition.to_vec(), [[0.0, 2.0, 1.0][r], 0.5f32.powi(r as i32 + 1)]);
        }
        let refused = |specs: &[&str]| {
            let specs: Vec<ConditionSpec> = specs.iter().map(|s| s.parse().expect("form")).collect();
            ConditionedTarget::from_file(&csv, &specs).expect_err("refused").to_string()
        };
        assert!(refused(&["colour"]).contains("no column `colour` (columns: x, kind, y, size)"));
        // A name the header gives twice is ambiguous: refused, not resolved to the first.
        let twice = dir.join("twice.csv");
        std::fs::write(&twice, "x,x,y\n1,2,3\n4,5,6\n").expect("write");
        let message = ConditionedTarget::from_file(&twice, &[ConditionSpec::parse("x").expect("form")])
            .expect_err("ambiguous")
            .to_string();
        assert!(message.contains("names column `x` 2 times (columns 1, 2)"), "{message}");
        assert!(refused(&["size:label"]).contains("label `size`, row 1: 0.5 is not a whole number"));
        let odd = dir.join("odd.csv");
        for (cells, bad) in [("0\n-1", "row 2: -1"), ("70000\n1", "row 1: 70000"), ("65535\n0", "")] {
            std::fs::write(&odd, format!("x,kind\n1,{}\n", cells.replace('\n', "\n2,"))).expect("write");
            let target =
                ConditionedTarget::from_file(&odd, &[ConditionSpec::parse("kind:label").expect("form")]);
            match target {
                Ok(target) => assert!(bad.is_empty() && target.shape().classes == 65_536),
                Err(error) => assert!(!bad.is_empty() && error.to_string().contains(bad), "{error}"),
            }
        }
        let nan = dir.join("nan.npy");
        ndarray_npy::write_npy(&nan, &ndarray::arr1(&[1.0f32, f32::NAN, 3.0])).expect("npy");
        let error = flow_data::files::read_vector(&nan).expect_err("NaN");
        assert!(error.to_string().contains("line 2, column 1: NaN is not finite"), "{error}");
        assert!(refused(&["label"]).contains("name its column"));
        let values = dir.join("values.npy");
        ndarray_npy::write_npy(&values, &ndarray::arr1(&[1.0f32, 2.0, 3.0])).expect("npy");
        let from_npy = ConditionedTarget::from_file(
            &csv,
            &[ConditionSpec::Column { name: values.display().to_string(), label: false }],
        )
        .expect("valid");
        assert_eq!(from_npy.shape(), ConditionShape { classes: 0, values: 1 });
        let (points, conditions) = from_npy.draw(10, &mut seeded_rng(1)).expect("draws");
        assert_eq!(points.ncols(), 4);
        assert!(points.column(0).iter().zip(conditions.column(0)).all(|(p, c)| p == c));
        let short = dir.join("short.npy");
        ndarray_npy::write_npy(&short, &ndarray::arr1(&[1.0f32])).expect("npy");
        let wrong = ConditionedTarget::from_file(
            &csv,
            &[ConditionSpec::Column { name: short.display().to_string(), label: false }],
        );
        // A file that does not fit the data is a fault of the file (run time), not of the flags.
        assert!(
            matches!(wrong, Err(DataError::Npy { message, .. }) if message.contains("expected one per point (3)"))
        );
        // A NaN in a condition file is named as one, not as a shape or type mistake.
        let nan_condition = ConditionedTarget::from_file(
            &csv,
            &[ConditionSpec::Column { name: nan.display().to_string(), label: false }],
        );
        let message = nan_condition.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("line 2, column 1: NaN is not finite"), "{message}");
        // Integer labels, as NumPy writes them by default, are read.
        let labels = dir.join("labels.npy");
        ndarray_npy::write_npy(&labels, &ndarray::arr1(&[2i64, 0, 1])).expect("npy");
        let labelled = ConditionedTarget::from_file(
            &csv,
            &[ConditionSpec::Column { name: labels.display().to_string(), label: true }],
        )
        .expect("int64 labels");
        assert_eq!(labelled.shape(), ConditionShape { classes: 3, values: 0 });
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The sets of Tong et al.'s benchmark, by their moments: each construction's scale and shift
/// (a ×3 for ×2, a missing −1, an unstandardised moon) moves one of them far out of tolerance.
#[test]
fn the_benchmark_sets_have_their_constructions_moments() {
    use flow_data::samplers::seeded_rng;

    let moments = |dataset: Dataset| {
        let points = dataset.sample(200_000, 2, &mut seeded_rng(5)).expect("2-D");
        let n = points.nrows() as f64;
        let mean = [0, 1].map(|j| points.column(j).iter().map(|&v| f64::from(v)).sum::<f64>() / n);
        let second = [0, 1].map(|j| points.column(j).iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / n);
        (mean, second)
    };
    let close = |found: f64, expected: f64, what: &str| {
        assert!((found - expected).abs() < 0.02 * (1.0 + expected.abs()), "{what}: {found} vs {expected}");
    };
    // make_moons ×2, x − 1: x averages (0 + 1)/2·2 − 1 = 0, y (2/π + ½ − 2/π)/2·2 = ½.
    let (mean, _) = moments(Dataset::MoonsCfm);
    close(mean[0], 0.0, "moons-cfm x");
    close(mean[1], 0.5, "moons-cfm y");
    // The S-curve ×1.5 over t ~ U(−3π/2, 3π/2): x = 1.5 sin t and z = 1.5 sign(t)(cos t − 1) are
    // odd (mean 0); E[sin² t] = ½ and E[(cos t − 1)²] = 3/2 + 4/(3π), as E[cos t] = −2/(3π).
    let (mean, second) = moments(Dataset::SCurve);
    close(mean[0], 0.0, "scurve x");
    close(mean[1], 0.0, "scurve z");
    close(second[0], 2.25 * (0.5 + 0.0025), "scurve x²");
    close(second[1], 2.25 * (1.5 + 4.0 / (3.0 * std::f64::consts::PI) + 0.0025), "scurve z²");
    // Eight unit Gaussians at radius 5: E‖x‖² = 25 + 2.
    let (_, second) = moments(Dataset::EightGaussiansTorchdyn);
    close(second[0] + second[1], 27.0, "8gaussians-torchdyn ‖x‖²");
    // DSB's moon standardised ×7: mean 0 and second moment 49, over both coordinates together.
    let (mean, second) = moments(Dataset::MoonsDsb);
    close((mean[0] + mean[1]) / 2.0, 0.0, "moons-dsb mean");
    close((second[0] + second[1]) / 2.0, 49.0, "moons-dsb second moment");
    // DSB's eight Gaussians ×3: radius 12, deviation 1.5, so E‖x‖² = 144 + 2·2.25.
    let (_, second) = moments(Dataset::EightGaussiansDsb);
    close(second[0] + second[1], 148.5, "8gaussians-dsb ‖x‖²");
}
