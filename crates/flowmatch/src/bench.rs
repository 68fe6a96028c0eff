use crate::cli::BenchArgs;
use crate::error::{CliError, Result};

pub fn run(_args: BenchArgs) -> Result<()> {
    Err(CliError::runtime("bench is being written"))
}
