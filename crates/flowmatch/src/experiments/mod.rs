//! Experiments: commands that train, measure and write a report, each in a module of its own.
//!
//! An experiment's `run` does the work; its report or table is rendered by a
//! function of plain data (pinned by snapshot tests), so what a report says
//! can be checked without training anything.

pub mod bench;
pub mod c2ot;
pub mod gpu_bench;
pub mod reproduce;
pub mod torchcfm;

/// Writes a rendered table (atomically) and says where, and how long the run took.
pub(crate) fn write_table(
    path: &std::path::Path,
    text: &str,
    label: &str,
    started: std::time::Instant,
) -> crate::error::Result<()> {
    flow_data::files::write_atomically(path, |file| file.write_all(text.as_bytes()))?;
    eprintln!("{label}: done in {:.1} s; table in {}", started.elapsed().as_secs_f64(), path.display());
    Ok(())
}
