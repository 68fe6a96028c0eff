//! Minimum-cost perfect matching on a dense square cost matrix.
//!
//! Shortest augmenting paths with dual variables (Jonker–Volgenant style, as
//! in Crouse 2016 and SciPy's `linear_sum_assignment`): one Dijkstra-like
//! search per row, O(n³) in the worst case and far less on point clouds; a
//! 2 000-point problem takes about a second.

const NONE: usize = usize::MAX;

/// Returns `col_of_row`: the column matched to each row, minimising the total cost.
/// `cost` is row-major `n × n`.
pub fn assign_min_cost(cost: &[f64], n: usize) -> Vec<usize> {
    let mut v = vec![0.0f64; n];
    let mut col_of_row = vec![NONE; n];
    let mut row_of_col = vec![NONE; n];

    // Column reduction (Jonker & Volgenant 1987): each column's dual is its
    // cheapest cost, and a column joins its cheapest row when that row is still
    // free. The duals stay feasible and matched edges tight, so the searches
    // below need only run for the rows left free, typically about a third.
    for col in (0..n).rev() {
        let (mut best_row, mut best) = (0, f64::INFINITY);
        for row in 0..n {
            let c = cost[row * n + col];
            if c < best {
                (best_row, best) = (row, c);
            }
        }
        v[col] = best;
        if col_of_row[best_row] == NONE {
            col_of_row[best_row] = col;
            row_of_col[col] = best_row;
        }
    }

    let mut search = Search { distance: vec![0.0; n], previous_row: vec![0; n], columns: vec![0; n] };
    for start_row in 0..n {
        if col_of_row[start_row] != NONE {
            continue;
        }
        let sink = search.shortest_path(cost, n, start_row, &mut v, &row_of_col);
        // Flip the matching along the path back to `start_row`.
        let mut col = sink;
        loop {
            let row = search.previous_row[col];
            row_of_col[col] = row;
            let previous = std::mem::replace(&mut col_of_row[row], col);
            if row == start_row {
                break;
            }
            col = previous;
        }
    }
    col_of_row
}

/// Buffers of one shortest-augmenting-path search, reused across rows.
struct Search {
    distance: Vec<f64>,
    previous_row: Vec<usize>,
    /// A permutation of the columns: `[..scanned]` are final, `[scanned..frontier]`
    /// sit at the current minimum distance, `[frontier..]` are not reached yet.
    columns: Vec<usize>,
}

impl Search {
    /// Dijkstra over reduced costs c − v (row duals implicit, as in LAPJV)
    /// from a free row to the nearest free column, which it returns; updates
    /// the column duals so the augmented matching stays tight.
    fn shortest_path(
        &mut self,
        cost: &[f64],
        n: usize,
        start: usize,
        v: &mut [f64],
        row_of_col: &[usize],
    ) -> usize {
        let Search { distance, previous_row, columns } = self;
        let start_costs = &cost[start * n..(start + 1) * n];
        for col in 0..n {
            distance[col] = start_costs[col] - v[col];
            previous_row[col] = start;
            columns[col] = col;
        }
        let (mut scanned, mut frontier) = (0, 0);
        let mut minimum = 0.0;
        let sink = 'search: loop {
            if scanned == frontier {
                // Every column at the lowest distance joins the frontier at once.
                minimum = columns[frontier..].iter().map(|&c| distance[c]).fold(f64::INFINITY, f64::min);
                // `frontier` grows inside; the range keeps its first value, as intended.
                let unreached = frontier;
                for k in unreached..n {
                    let col = columns[k];
                    if distance[col] == minimum {
                        if row_of_col[col] == NONE {
                            break 'search col;
                        }
                        columns.swap(k, frontier);
                        frontier += 1;
                    }
                }
            }
            let col = columns[scanned];
            scanned += 1;
            let row = row_of_col[col];
            let costs = &cost[row * n..(row + 1) * n];
            let offset = costs[col] - v[col] - minimum;
            let unreached = frontier;
            for k in unreached..n {
                let next = columns[k];
                let reduced = costs[next] - v[next] - offset;
                if reduced < distance[next] {
                    distance[next] = reduced;
                    previous_row[next] = row;
                    if reduced == minimum {
                        if row_of_col[next] == NONE {
                            break 'search next;
                        }
                        columns.swap(k, frontier);
                        frontier += 1;
                    }
                }
            }
        };
        for &col in &columns[..scanned] {
            v[col] += distance[col] - minimum;
        }
        sink
    }
}
