//! Exact optimal assignment between two point clouds under squared distance, without the dense matrix.
//!
//! 1. An evenly spread half of the points is solved first (the same way,
//!    down to a size the dense solver takes), and its optimal duals, extended
//!    to every point by c-transforms, are feasible duals for the full problem
//!    (cᵢⱼ ≥ uᵢ + vⱼ for every pair) and close to its optimal ones.
//! 2. Each row keeps as candidate edges its columns of least reduced cost and
//!    its nearest columns, each column its rows of least reduced cost: where
//!    the duals are good, the optimal pairs are among them, however far the
//!    points travel.
//! 3. Shortest augmenting paths (as in [`crate::assign_min_cost`]) match every
//!    row on this sparse graph, keeping the duals feasible on its edges.
//! 4. The duals are checked against every pair whose row dual rose or column
//!    dual fell since the last check; a row with a violated pair gains its
//!    worst pairs as edges and is matched again.
//!
//! The loop ends only when the duals hold for every pair and every matched pair
//! is tight, which certifies the matching optimal for the full problem (LP
//! duality): the answer is the dense solver's, for a few O(n² d) passes instead
//! of O(n³) time and n² memory. Everything before the check only decides how
//! fast it passes.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::assignment::{NONE, assign_with_duals};

/// The sizes that trade the dense solver's work against the sparse graph's.
/// Only speed depends on them, never the answer: tests shrink them to make
/// small problems take every path (coarse levels, repairs) that large ones do.
#[derive(Clone, Copy, Debug)]
pub struct SparseSettings {
    /// Up to this many points the dense solver is used as it is.
    pub dense_up_to: usize,
    /// Each row's columns (and each column's rows) of least reduced cost kept as edges at the start.
    pub candidates: usize,
    /// Each row's nearest columns kept as edges at the start.
    pub nearest: usize,
}

impl Default for SparseSettings {
    /// Measured at 10 000 points: far transport (8gaussians → moons) wants
    /// candidates by reduced cost, two samples of one distribution the nearest;
    /// at 1 000–10 000 points halving levels down to 400 dense ones beat
    /// quartering down to 800 (PERF.md §24).
    fn default() -> SparseSettings {
        SparseSettings { dense_up_to: 400, candidates: 32, nearest: 24 }
    }
}

/// Each coarser level keeps one point in this many: halving gives duals close
/// enough that the first check finds far fewer violated pairs than quartering.
const COARSENING: usize = 2;
/// Violating pairs added per row and check: the worst ones, so a row needs few rounds.
const ADDED_PER_CHECK: usize = 32;

/// Row-major points: `n` rows of `dim` coordinates.
struct Cloud<'a> {
    coordinates: &'a [f64],
    dim: usize,
}

impl Cloud<'_> {
    fn point(&self, i: usize) -> &[f64] {
        &self.coordinates[i * self.dim..(i + 1) * self.dim]
    }

    fn len(&self) -> usize {
        self.coordinates.len() / self.dim
    }
}

fn squared_distance(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(p, q)| (p - q) * (p - q)).sum()
}

/// The columns one axis at a time, so that a row's n costs are computed in
/// loops the compiler vectorises (the passes over all n² pairs dominate).
struct Axes(Vec<Vec<f64>>);

impl Axes {
    fn new(cloud: &Cloud) -> Axes {
        Axes((0..cloud.dim).map(|d| (0..cloud.len()).map(|j| cloud.point(j)[d]).collect()).collect())
    }

    /// ‖x − column j‖², summed in the order [`Axes::costs_from`] sums it.
    fn cost_to(&self, x: &[f64], j: usize) -> f64 {
        self.0.iter().zip(x).map(|(axis, &p)| (p - axis[j]) * (p - axis[j])).sum()
    }

    /// `out[j]` = ‖x − column j‖².
    fn costs_from(&self, x: &[f64], out: &mut [f64]) {
        out.fill(0.0);
        for (axis, &coordinate) in self.0.iter().zip(x) {
            for (cost, &y) in out.iter_mut().zip(axis) {
                *cost += (coordinate - y) * (coordinate - y);
            }
        }
    }
}

/// Runs `work` on contiguous ranges of `0..n`, one per core, and returns their results in order.
fn in_parallel<T: Send>(n: usize, work: impl Fn(std::ops::Range<usize>) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).min(n.max(1));
    let chunk = n.div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let work = &work;
                scope.spawn(move || work(t * chunk..((t + 1) * chunk).min(n)))
            })
            .collect();
        // A worker's panic is a bug: pass it on.
        handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    })
}

/// Returns `col_of_row`: the point of `b` matched to each point of `a`,
/// minimising the total squared distance. `a` and `b` hold the same number of
/// points of `dim` coordinates each, row-major.
pub fn assign_points(a: &[f64], b: &[f64], dim: usize) -> Vec<usize> {
    assign_points_with(a, b, dim, SparseSettings::default())
}

/// [`assign_points`] with other sizes for its stages (the same answer, at another speed).
pub fn assign_points_with(a: &[f64], b: &[f64], dim: usize, settings: SparseSettings) -> Vec<usize> {
    assign_points_from(a, b, dim, None, settings).0
}

/// [`assign_points_with`] starting from column duals for `b` (an earlier
/// solution's, for a sample like `a`) instead of a coarse level, and returning
/// the optimal column duals for the next start. Whatever the duals (wrong
/// length or not finite ones are ignored), the answer is the same: they are
/// made feasible by c-transforms and the result is certified as always; close
/// ones only make it sooner.
pub fn assign_points_from(
    a: &[f64],
    b: &[f64],
    dim: usize,
    column_duals: Option<&[f64]>,
    settings: SparseSettings,
) -> (Vec<usize>, Vec<f64>) {
    assert_eq!(a.len(), b.len(), "two clouds of the same size");
    if a.is_empty() {
        return (Vec::new(), Vec::new());
    }
    assert!(dim > 0 && a.len().is_multiple_of(dim), "whole points of a positive dimension");
    let settings = SparseSettings { dense_up_to: settings.dense_up_to.max(1), ..settings };
    let n = a.len() / dim;
    let start = column_duals.filter(|v| v.len() == n && v.iter().all(|v| v.is_finite()));
    solve(&Cloud { coordinates: a, dim }, &Cloud { coordinates: b, dim }, &settings, start)
}

/// An optimal matching and its column duals v (with uᵢ = minⱼ cᵢⱼ − vⱼ, feasible
/// for every pair), from column duals `start` when given, else from a coarse level.
fn solve(
    rows: &Cloud,
    columns: &Cloud,
    settings: &SparseSettings,
    start: Option<&[f64]>,
) -> (Vec<usize>, Vec<f64>) {
    let n = rows.len();
    if n <= settings.dense_up_to {
        let cost: Vec<f64> = (0..n)
            .flat_map(|i| (0..n).map(move |j| (i, j)))
            .map(|(i, j)| squared_distance(rows.point(i), columns.point(j)))
            .collect();
        return assign_with_duals(&cost, n);
    }
    let axes = Axes::new(columns);
    let (u, v) = match start {
        Some(start) => {
            // Duals are defined up to a shift; with the largest at zero, u and v stay
            // within the costs' range whatever offset `start` carries, so round-off
            // stays at the costs' scale, which the certificate's tolerance assumes.
            let top = start.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let shifted: Vec<f64> = start.iter().map(|v| v - top).collect();
            extended_duals(rows, (&axes, &shifted), &axes)
        }
        None => coarse_potentials(rows, columns, &axes, settings),
    };
    let (mut graph, mut state) = candidates(rows, columns, &axes, (u, v), settings);
    let mut search = Search::new(n);
    loop {
        for start in 0..n {
            if state.col_of_row[start] == NONE {
                state.augment(&mut graph, &mut search, start, rows, columns);
            }
        }
        if !state.repair_violations(&mut graph, rows, &axes) {
            return (state.col_of_row, state.v);
        }
    }
}

/// The optimal duals of an evenly spread half of the points (solved the
/// same way, down to the dense solver), extended to every row by a c-transform
/// over the half's columns and to every column by a c-transform over all
/// rows: cᵢⱼ ≥ uᵢ + vⱼ for every pair.
fn coarse_potentials(
    rows: &Cloud,
    columns: &Cloud,
    axes: &Axes,
    settings: &SparseSettings,
) -> (Vec<f64>, Vec<f64>) {
    let n = rows.len();
    let m = (n / COARSENING).max(settings.dense_up_to.min(n));
    let picked: Vec<usize> = (0..m).map(|k| k * n / m).collect();
    let gather =
        |cloud: &Cloud| -> Vec<f64> { picked.iter().flat_map(|&i| cloud.point(i).to_vec()).collect() };
    let (coarse_rows, coarse_columns) = (gather(rows), gather(columns));
    let dim = rows.dim;
    let coarse_columns = Cloud { coordinates: &coarse_columns, dim };
    let (_, coarse_v) = solve(&Cloud { coordinates: &coarse_rows, dim }, &coarse_columns, settings, None);
    extended_duals(rows, (&Axes::new(&coarse_columns), &coarse_v), axes)
}

/// Duals for every pair from column duals `v` of the columns `axes_of_v`
/// holds (some or all of them): u by a c-transform over those, then v by one
/// over every row, on the columns `axes` holds: cᵢⱼ ≥ uᵢ + vⱼ for every pair.
fn extended_duals(rows: &Cloud, (axes_of_v, v): (&Axes, &[f64]), axes: &Axes) -> (Vec<f64>, Vec<f64>) {
    let u = row_duals(rows, axes_of_v, v);
    let v = column_duals(rows, axes, &u);
    (u, v)
}

/// uᵢ = minⱼ cᵢⱼ − vⱼ over the columns `axes` holds: the c-transform.
fn row_duals(rows: &Cloud, axes: &Axes, v: &[f64]) -> Vec<f64> {
    let m = v.len();
    let parts = in_parallel(rows.len(), |range| {
        let mut costs = vec![0.0; m];
        range
            .map(|i| {
                axes.costs_from(rows.point(i), &mut costs);
                costs.iter().zip(v).map(|(c, v)| c - v).fold(f64::INFINITY, f64::min)
            })
            .collect::<Vec<f64>>()
    });
    parts.into_iter().flatten().collect()
}

/// vⱼ = minᵢ cᵢⱼ − uᵢ over every row: with [`row_duals`] first, feasible for every pair.
fn column_duals(rows: &Cloud, axes: &Axes, u: &[f64]) -> Vec<f64> {
    let n = rows.len();
    // Gathered row by row (each thread over its rows, then merged).
    let partial = in_parallel(n, |range| {
        let mut v = vec![f64::INFINITY; n];
        let mut costs = vec![0.0; n];
        for i in range {
            axes.costs_from(rows.point(i), &mut costs);
            for (vj, &c) in v.iter_mut().zip(&costs) {
                *vj = vj.min(c - u[i]);
            }
        }
        v
    });
    (0..n).map(|j| partial.iter().map(|p| p[j]).fold(f64::INFINITY, f64::min)).collect()
}

/// One row's share of the candidate graph.
struct RowCandidates {
    /// Its columns of least c − v and its nearest columns, with their costs.
    edges: Vec<(usize, f64)>,
    /// Its least c − v: its dual, which makes its first edge tight.
    dual: f64,
}

/// The candidate graph and a first matching. Each row keeps its columns of
/// least c − v and its nearest columns, each column its rows of least reduced
/// cost; rows take their tight column while it is free.
fn candidates(
    rows: &Cloud,
    columns: &Cloud,
    axes: &Axes,
    (mut u, v): (Vec<f64>, Vec<f64>),
    settings: &SparseSettings,
) -> (Graph, Matching) {
    let keep = settings.candidates.max(1);
    let n = rows.len();
    let parts = in_parallel(n, |range| {
        // Each column's rows of least reduced cost among this thread's rows.
        let mut column_best: Vec<Smallest> = (0..n).map(|_| Smallest::new(keep)).collect();
        // Each column's admission limit side by side: most pairs are turned away by one
        // comparison in contiguous memory, without visiting the column's list.
        let mut column_limit = vec![f64::INFINITY; n];
        let mut costs = vec![0.0; n];
        let mut found = Vec::with_capacity(range.len());
        for i in range {
            axes.costs_from(rows.point(i), &mut costs);
            let mut best = Smallest::new(keep);
            let mut near = Smallest::new(settings.nearest);
            for (j, &c) in costs.iter().enumerate() {
                let reduced = c - v[j];
                // Against the row's dual as it came: it only rises, so these stay feasible.
                if reduced - u[i] < column_limit[j] {
                    column_limit[j] = column_best[j].offer(reduced - u[i], i);
                }
                best.offer(reduced, j);
                near.offer(c, j);
            }
            let dual = best.0[0].0;
            let mut edges: Vec<(usize, f64)> = best.0.iter().map(|&(_, j)| (j, costs[j])).collect();
            for &(c, j) in &near.0 {
                if !has_edge(&edges, j) {
                    edges.push((j, c));
                }
            }
            found.push(RowCandidates { edges, dual });
        }
        (found, column_best)
    });
    let mut edges: Vec<Vec<(usize, f64)>> = Vec::with_capacity(n);
    let mut column_best: Vec<Vec<(f64, usize)>> = vec![Vec::new(); n];
    for (found, best) in parts {
        for row in found {
            u[edges.len()] = row.dual;
            edges.push(row.edges);
        }
        for (merged, part) in column_best.iter_mut().zip(best) {
            merged.extend(part.0);
        }
    }
    for (j, best_rows) in column_best.iter_mut().enumerate() {
        // The same rows whatever the threads' shares: least reduced cost, then least index.
        best_rows.sort_by(|p, q| p.0.total_cmp(&q.0).then(p.1.cmp(&q.1)));
        for &(_, i) in best_rows.iter().take(keep) {
            if !has_edge(&edges[i], j) {
                edges[i].push((j, squared_distance(rows.point(i), columns.point(j))));
            }
        }
    }
    let mut state = Matching {
        u,
        v,
        col_of_row: vec![NONE; n],
        row_of_col: vec![NONE; n],
        // The first check looks at every pair: the certificate does not rest on how the duals began.
        u_raised: vec![true; n],
        v_lowered: vec![false; n],
    };
    for (i, row) in edges.iter().enumerate() {
        let j = row[0].0;
        if state.row_of_col[j] == NONE {
            state.col_of_row[i] = j;
            state.row_of_col[j] = i;
        }
    }
    (Graph { edges }, state)
}

/// The `k` smallest values offered, with their indices, in ascending order.
struct Smallest(Vec<(f64, usize)>, usize);

impl Smallest {
    fn new(k: usize) -> Smallest {
        Smallest(Vec::with_capacity(k + 1), k)
    }

    /// Keeps `value` if it is among the `k` smallest so far; returns the new [`Smallest::limit`].
    fn offer(&mut self, value: f64, index: usize) -> f64 {
        if value < self.limit() {
            let Smallest(kept, k) = self;
            let at = kept.partition_point(|e| e.0 <= value);
            kept.insert(at, (value, index));
            kept.truncate(*k);
        }
        self.limit()
    }

    /// What a value must be below to be kept: the k-th smallest, or ∞ while fewer are kept.
    fn limit(&self) -> f64 {
        let Smallest(kept, k) = self;
        match kept.last() {
            _ if kept.len() < *k => f64::INFINITY,
            Some(last) => last.0,
            None => f64::NEG_INFINITY,
        }
    }
}

/// Whether `row` already has an edge to column `col`.
fn has_edge(row: &[(usize, f64)], col: usize) -> bool {
    row.iter().any(|&(j, _)| j == col)
}

/// Each row's candidate columns with their costs.
struct Graph {
    edges: Vec<Vec<(usize, f64)>>,
}

impl Graph {
    /// Joins row `i` to the free columns of least c − v (when no augmenting
    /// path exists in the graph, so at least one is free).
    fn connect_to_free(&mut self, i: usize, rows: &Cloud, columns: &Cloud, state: &Matching) {
        let x = rows.point(i);
        let mut free: Vec<(f64, usize)> = (0..columns.len())
            .filter(|&j| state.row_of_col[j] == NONE)
            .map(|j| (squared_distance(x, columns.point(j)) - state.v[j], j))
            .collect();
        let keep = ADDED_PER_CHECK.min(free.len());
        free.select_nth_unstable_by(keep - 1, |p, q| p.0.total_cmp(&q.0));
        for &(_, j) in &free[..keep] {
            if !has_edge(&self.edges[i], j) {
                self.edges[i].push((j, squared_distance(x, columns.point(j))));
            }
        }
    }
}

/// A partial matching with duals u (rows) and v (columns): every graph edge
/// has reduced cost c − u − v ≥ 0, every matched edge exactly 0.
struct Matching {
    u: Vec<f64>,
    v: Vec<f64>,
    col_of_row: Vec<usize>,
    row_of_col: Vec<usize>,
    /// Which duals moved since the duals were last checked against every pair.
    u_raised: Vec<bool>,
    v_lowered: Vec<bool>,
}

impl Matching {
    /// Matches the free row `start` by a shortest augmenting path, connecting
    /// it to free columns first if the graph has no such path.
    fn augment(
        &mut self,
        graph: &mut Graph,
        search: &mut Search,
        start: usize,
        rows: &Cloud,
        columns: &Cloud,
    ) {
        let sink = match search.shortest_path(graph, self, start) {
            Some(sink) => sink,
            None => {
                graph.connect_to_free(start, rows, columns, self);
                self.u[start] = self.u[start].min(cheapest(&graph.edges[start], &self.v).1);
                search.shortest_path(graph, self, start).expect("a row joined to a free column reaches it")
            }
        };
        let mut col = sink;
        loop {
            let row = search.previous_row[col];
            self.row_of_col[col] = row;
            let previous = std::mem::replace(&mut self.col_of_row[row], col);
            if row == start {
                break;
            }
            col = previous;
        }
    }

    /// Checks the duals against every pair that may have become violated (all
    /// of them the first time). Rows with a violated pair gain their worst pairs
    /// as edges, lower their dual to the least c − v over their edges (which
    /// makes every pair of the row feasible, the worst one being an edge now),
    /// and are unmatched. Returns whether anything was violated.
    fn repair_violations(&mut self, graph: &mut Graph, rows: &Cloud, axes: &Axes) -> bool {
        let n = self.v.len();
        // Round-off in the dual updates is of the order of the largest cost times ε.
        let largest = graph.edges.iter().flatten().map(|e| e.1).fold(0.0, f64::max);
        let tolerance = 1e-12 * largest.max(f64::MIN_POSITIVE);
        // A pair can only have become violated since the last check if its row's
        // dual rose or its column's fell: other pairs are not looked at again.
        let lowered: Vec<usize> = (0..n).filter(|&j| self.v_lowered[j]).collect();
        let (state, edges) = (&*self, &graph.edges);
        let found: Vec<Vec<Violation>> = in_parallel(n, |range| {
            let mut costs = vec![0.0; n];
            let mut violations = Vec::new();
            for i in range {
                let mut worst: Vec<(f64, usize, f64)> = Vec::new();
                let mut look = |j: usize, c: f64| {
                    let reduced = c - state.u[i] - state.v[j];
                    if reduced < -tolerance {
                        worst.push((reduced, j, c));
                    }
                };
                if state.u_raised[i] {
                    axes.costs_from(rows.point(i), &mut costs);
                    costs.iter().enumerate().for_each(|(j, &c)| look(j, c));
                } else {
                    let x = rows.point(i);
                    for &j in &lowered {
                        look(j, axes.cost_to(x, j));
                    }
                }
                if !worst.is_empty() {
                    // The worst pairs not yet in the graph join it; a violated pair already
                    // there needs no edge, only the row's repair below.
                    worst.retain(|&(_, j, _)| !has_edge(&edges[i], j));
                    violations.push((i, worst_first(&mut worst, ADDED_PER_CHECK)));
                }
            }
            violations
        });
        let mut violated = false;
        for (i, added) in found.into_iter().flatten() {
            violated = true;
            graph.edges[i].extend(added);
            self.u[i] = self.u[i].min(cheapest(&graph.edges[i], &self.v).1);
            self.unmatch(i);
        }
        // The other half of the certificate: every matched pair tight (complementary slackness).
        for i in 0..n {
            let j = self.col_of_row[i];
            let cost = graph.edges[i].iter().find(|e| e.0 == j).map(|e| e.1);
            if cost.is_none_or(|c| c - self.u[i] - self.v[j] > tolerance) {
                violated = true;
                self.unmatch(i);
            }
        }
        self.u_raised.fill(false);
        self.v_lowered.fill(false);
        violated
    }

    fn unmatch(&mut self, row: usize) {
        let col = std::mem::replace(&mut self.col_of_row[row], NONE);
        if col != NONE {
            self.row_of_col[col] = NONE;
        }
    }
}

/// The `k` pairs of least reduced cost (ties: least column) as edges, worst
/// first: a partial selection, as a row can break its duals on thousands of pairs.
fn worst_first(pairs: &mut [(f64, usize, f64)], k: usize) -> Vec<(usize, f64)> {
    let order = |p: &(f64, usize, f64), q: &(f64, usize, f64)| p.0.total_cmp(&q.0).then(p.1.cmp(&q.1));
    let k = k.min(pairs.len());
    if k < pairs.len() {
        pairs.select_nth_unstable_by(k, order);
    }
    let worst = &mut pairs[..k];
    worst.sort_by(order);
    worst.iter().map(|&(_, j, c)| (j, c)).collect()
}

/// A row whose duals some pair breaks, and the worst such pairs (column, cost).
type Violation = (usize, Vec<(usize, f64)>);

/// The edge of least c − v in `row`, and that value.
fn cheapest(row: &[(usize, f64)], v: &[f64]) -> (usize, f64) {
    row.iter().map(|&(j, c)| (j, c - v[j])).min_by(|p, q| p.1.total_cmp(&q.1)).expect("every row has edges")
}

/// A column on the heap, ordered by distance, least first.
#[derive(PartialEq)]
struct Entry(f64, usize);

impl Eq for Entry {}

impl Ord for Entry {
    fn cmp(&self, other: &Entry) -> Ordering {
        other.0.total_cmp(&self.0).then_with(|| other.1.cmp(&self.1))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Entry) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Buffers of one Dijkstra search, reset only where the last one wrote.
struct Search {
    distance: Vec<f64>,
    done: Vec<bool>,
    previous_row: Vec<usize>,
    touched: Vec<usize>,
    reached_rows: Vec<(usize, f64)>,
    heap: BinaryHeap<Entry>,
}

impl Search {
    fn new(n: usize) -> Search {
        Search {
            distance: vec![f64::INFINITY; n],
            done: vec![false; n],
            previous_row: vec![NONE; n],
            touched: Vec::new(),
            reached_rows: Vec::new(),
            heap: BinaryHeap::new(),
        }
    }

    /// Dijkstra over reduced costs from the free row `start` to the nearest
    /// free column, which it returns after updating the duals so that the
    /// path's edges are tight; `None` when no free column is reachable.
    fn shortest_path(&mut self, graph: &Graph, state: &mut Matching, start: usize) -> Option<usize> {
        for &j in &self.touched {
            self.distance[j] = f64::INFINITY;
            self.done[j] = false;
        }
        self.touched.clear();
        self.reached_rows.clear();
        self.heap.clear();
        let mut row = start;
        let mut base = 0.0;
        let (sink, length) = loop {
            self.reached_rows.push((row, base));
            for &(j, c) in &graph.edges[row] {
                // Round-off can leave a reduced cost a hair below zero.
                let d = base + (c - state.u[row] - state.v[j]).max(0.0);
                if d < self.distance[j] {
                    if self.distance[j] == f64::INFINITY {
                        self.touched.push(j);
                    }
                    self.distance[j] = d;
                    self.previous_row[j] = row;
                    self.heap.push(Entry(d, j));
                }
            }
            let (d, j) = loop {
                let Entry(d, j) = self.heap.pop()?;
                if !self.done[j] && d == self.distance[j] {
                    break (d, j);
                }
            };
            self.done[j] = true;
            match state.row_of_col[j] {
                NONE => break (j, d),
                matched => (row, base) = (matched, d),
            }
        };
        for &(i, d) in &self.reached_rows {
            if d < length {
                state.u[i] += length - d;
                state.u_raised[i] = true;
            }
        }
        for &j in &self.touched {
            if self.done[j] && self.distance[j] < length {
                state.v[j] -= length - self.distance[j];
                state.v_lowered[j] = true;
            }
        }
        Some(sink)
    }
}
