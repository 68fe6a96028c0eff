//! Minimum-cost perfect matching on a dense square cost matrix.
//!
//! Shortest augmenting paths with dual variables (Jonker–Volgenant style, as
//! in Crouse 2016 and SciPy's `linear_sum_assignment`): one Dijkstra-like
//! search per row, O(n³) in the worst case and far less on point clouds; a
//! 2 000-point problem takes about a second.

/// No row or column: the mark of a free one.
pub(crate) const NONE: usize = usize::MAX;

/// Returns `col_of_row`: the column matched to each row, minimising the total cost.
/// `cost` is row-major `n × n`.
pub fn assign_min_cost(cost: &[f64], n: usize) -> Vec<usize> {
    assign_with_duals(cost, n).0
}

/// [`assign_min_cost`] with its column duals v at the optimum: with
/// uᵢ = minⱼ (cᵢⱼ − vⱼ), every cost satisfies cᵢⱼ ≥ uᵢ + vⱼ, equal on the matching.
pub(crate) fn assign_with_duals(cost: &[f64], n: usize) -> (Vec<usize>, Vec<f64>) {
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

    let mut search = Search::new(n);
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
    (col_of_row, v)
}

/// Buffers of one shortest-augmenting-path search, reused across rows.
/// `columns` is a permutation of the columns: `[..scanned]` are final,
/// `[scanned..frontier]` sit at the current minimum distance, `[frontier..]`
/// are not reached yet. Distances and duals are kept in the same order, so
/// the hot scan reads them contiguously and only the cost row is gathered.
struct Search {
    distance: Vec<f64>,
    dual: Vec<f64>,
    previous_row: Vec<usize>,
    columns: Vec<usize>,
}

impl Search {
    fn new(n: usize) -> Search {
        Search { distance: vec![0.0; n], dual: vec![0.0; n], previous_row: vec![0; n], columns: vec![0; n] }
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.columns.swap(a, b);
        self.distance.swap(a, b);
        self.dual.swap(a, b);
    }

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
        let start_costs = &cost[start * n..(start + 1) * n];
        for col in 0..n {
            self.distance[col] = start_costs[col] - v[col];
            self.dual[col] = v[col];
            self.previous_row[col] = start;
            self.columns[col] = col;
        }
        let (mut scanned, mut frontier) = (0, 0);
        let mut minimum = 0.0;
        let sink = 'search: loop {
            if scanned == frontier {
                // Every column at the lowest distance joins the frontier at once.
                minimum = self.distance[frontier..].iter().copied().fold(f64::INFINITY, f64::min);
                // `frontier` grows inside; the range keeps its first value, as intended.
                let unreached = frontier;
                for k in unreached..n {
                    if self.distance[k] == minimum {
                        let col = self.columns[k];
                        if row_of_col[col] == NONE {
                            break 'search col;
                        }
                        self.swap(k, frontier);
                        frontier += 1;
                    }
                }
            }
            let col = self.columns[scanned];
            let row = row_of_col[col];
            let costs = &cost[row * n..(row + 1) * n];
            let offset = costs[col] - self.dual[scanned] - minimum;
            scanned += 1;
            let unreached = frontier;
            for k in unreached..n {
                let next = self.columns[k];
                let reduced = costs[next] - self.dual[k] - offset;
                if reduced < self.distance[k] {
                    self.distance[k] = reduced;
                    self.previous_row[next] = row;
                    if reduced == minimum {
                        if row_of_col[next] == NONE {
                            break 'search next;
                        }
                        self.swap(k, frontier);
                        frontier += 1;
                    }
                }
            }
        };
        for k in 0..scanned {
            v[self.columns[k]] += self.distance[k] - minimum;
        }
        sink
    }
}
