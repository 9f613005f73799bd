//! The `riptide` binary: parses the command line and hands over to [`riptide::cli::run`].

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = riptide::cli::Cli::parse();
    match riptide::cli::run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("riptide: {}", riptide::cli::error_chain(&error));
            std::process::ExitCode::FAILURE
        }
    }
}
