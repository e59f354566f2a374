//! The `keyledger` command: a thin layer over the library.
#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = match cli::args::Cli::try_parse() {
        Ok(a) => a,
        Err(e) => {
            // clap repeats what it could not parse; a secret pasted there is never repeated.
            let text = e.render().to_string();
            let text = keyledger::credentials::redact(&text);
            if e.use_stderr() {
                eprint!("{}", cli::output::escape(&text, &['\n', '\t']));
                return ExitCode::from(cli::error::USAGE);
            }
            let _ = cli::output::print(&text);
            return ExitCode::SUCCESS;
        }
    };
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !e.message.is_empty() {
                cli::output::message(&e.message);
            }
            ExitCode::from(e.code)
        }
    }
}
