//! The table `bench` writes, rendered from plain data.

use std::fmt::Write as _;

/// One measured quantity, ours beside PyTorch's.
pub struct Row {
    pub measure: String,
    pub ours: f64,
    pub theirs: f64,
    /// Rates: higher is better; seconds: lower is.
    pub higher_is_better: bool,
}

/// W₂ reached by one model, three ways.
pub struct QualityRow {
    pub model: &'static str,
    pub ours_post: f64,
    pub ours_tuned: f64,
    pub pytorch: f64,
}

/// Everything the table says.
pub struct BenchTable {
    pub threads: i32,
    pub device: String,
    pub torch: String,
    pub timed_steps: usize,
    pub rows: Vec<Row>,
    pub floor: f64,
    pub quality: Vec<QualityRow>,
}

pub fn render(table: &BenchTable) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "# Benchmark: flowmatch against PyTorch eager\n");
    let _ = writeln!(
        text,
        "Same machine, one run, {} threads each; ours on {}; PyTorch {}. `speed-up` is how many times faster ours is. Training rates are the best of three windows of {} steps on each side; PyTorch's flow-matching rate is its best over three runs of the script (the full one, one just before ours and one just after).\n",
        table.threads, table.device, table.torch, table.timed_steps
    );
    let _ = writeln!(text, "| measure | ours | PyTorch | speed-up |\n|---|---:|---:|---:|");
    for row in &table.rows {
        let speedup = if row.higher_is_better { row.ours / row.theirs } else { row.theirs / row.ours };
        let _ = writeln!(text, "| {} | {:.2} | {:.2} | {speedup:.2}× |", row.measure, row.ours, row.theirs);
    }
    let _ = writeln!(text, "\nQuality reached (2 000 samples, exact W2; noise floor {:.4}):\n", table.floor);
    let _ = writeln!(
        text,
        "| model | ours, post's recipe | ours, tuned recipe | PyTorch, post's recipe |\n|---|---:|---:|---:|"
    );
    let ratio = |w: f64| format!("{w:.4} ({:.3})", w / table.floor);
    for row in &table.quality {
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} |",
            row.model,
            ratio(row.ours_post),
            ratio(row.ours_tuned),
            ratio(row.pytorch)
        );
    }
    let _ = writeln!(
        text,
        "\nThe post's recipe is Adam at a constant 1e-3; the tuned one (`--recipe tuned`) spends the same budget at 8e-3 with cosine decay (flow matching) and a constant 5e-3 (reflow). Timings above use the post's recipe, whose steps cost the same."
    );
    text
}
