//! Experiments: commands that train, measure and write a report, each in a module of its own.
//!
//! An experiment's `run` does the work; its report or table is rendered by a
//! function of plain data (pinned by snapshot tests), so what a report says
//! can be checked without training anything.

pub mod bench;
pub mod c2ot;
pub mod gpu_bench;
pub mod reproduce;
