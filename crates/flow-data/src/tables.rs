//! Point sets and recorded paths as tables with named columns, for CSV files.

use ndarray::Array2;

/// Column names of a point's coordinates: `coord0, coord1, …`. Not `x0, x1`,
/// which in flow matching read as "source, target"; readers skip any header.
pub fn coordinate_names(dim: usize) -> Vec<String> {
    (0..dim).map(|j| format!("coord{j}")).collect()
}

/// Column names of [`trajectory_table`]: `t, particle, coord0, …`.
pub fn trajectory_names(dim: usize) -> Vec<String> {
    let mut names = vec!["t".to_owned(), "particle".to_owned()];
    names.extend(coordinate_names(dim));
    names
}

/// A recorded path as one table: a row per (time, particle), with columns
/// t, particle and the coordinates.
pub fn trajectory_table(path: &[(f64, Array2<f32>)]) -> Array2<f32> {
    let dim = path.first().map_or(0, |(_, x)| x.ncols());
    let mut table = Array2::zeros((0, dim + 2));
    for (t, x) in path {
        for (i, point) in x.rows().into_iter().enumerate() {
            let mut row = Vec::with_capacity(dim + 2);
            row.push(*t as f32);
            row.push(i as f32);
            row.extend(point.iter().copied());
            // Every state of a path has the same width, so the row always fits.
            let _ = table.push_row(ndarray::ArrayView1::from(&row));
        }
    }
    table
}
