//! `recspec lsp`: the language server on stdin and stdout, for editors.

use super::Exit;
use recspec::app::AppError;

#[derive(clap::Args)]
pub struct Args {}

/// Exit code 0 after `shutdown` then `exit`, 1 when the client exits without `shutdown` (as the
/// protocol asks), 2 when the connection fails.
pub fn run(_args: Args) -> Result<Exit, AppError> {
    match recspec::lsp::run_stdio() {
        Ok(true) => Ok(Exit::Ok),
        Ok(false) => Ok(Exit::Findings),
        Err(e) => Err(AppError::Lsp(e)),
    }
}
