//! Writes the manual pages of `qftp` and `qftp-server` (and of each of
//! their subcommands) into a directory:
//!
//! ```text
//! cargo run --example man -- ~/.local/share/man/man1
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: cargo run --example man -- OUT_DIR");
        return ExitCode::from(2);
    };
    if let Err(error) = std::fs::create_dir_all(&dir) {
        eprintln!("man: error: cannot create {}: {error}", dir.display());
        return ExitCode::FAILURE;
    }
    match qftp::man::write_pages(&dir) {
        Ok(pages) => {
            println!("wrote {} pages to {}", pages.len(), dir.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("man: error: writing into {}: {error}", dir.display());
            ExitCode::FAILURE
        }
    }
}
