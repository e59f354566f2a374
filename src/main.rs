//! The `keyledger` command: a thin layer over the library.
#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

/// Secrets and tokens are read from stdin, never from arguments or the environment, where
/// other users can read them (`ps`, shell history): refuse any that look like one, before
/// anything echoes them.
fn refuse_credentials_in_arguments() -> Result<(), String> {
    let looks = |s: &std::ffi::OsStr| {
        keyledger::core::credentials::looks_like_credential(&s.to_string_lossy())
    };
    if let Some(n) = std::env::args_os().skip(1).position(|a| looks(&a)) {
        return Err(format!(
            "argument {} looks like an access key secret or security token. Secrets never go on the command line, where others can see them: `auth` reads them from stdin. If one was exposed, treat it as leaked",
            n + 1
        ));
    }
    for var in [
        "KEYLEDGER_LEDGER",
        "KEYLEDGER_KEY",
        "KEYLEDGER_CACHE_DIR",
        "KEYLEDGER_NOW",
        // Paths made from these appear in messages.
        "XDG_CACHE_HOME",
        "HOME",
    ] {
        if std::env::var_os(var).is_some_and(|v| looks(&v)) {
            return Err(format!(
                "{var} looks like it holds an access key secret or security token; it never belongs there"
            ));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    if let Err(m) = refuse_credentials_in_arguments() {
        cli::output::message(&m);
        return ExitCode::from(cli::error::USAGE);
    }
    let args = match cli::args::parse() {
        Ok(a) => a,
        Err(e) => {
            // clap repeats what it could not parse; a secret pasted there is never repeated.
            let mut text = e.render().to_string();
            if e.kind() == clap::error::ErrorKind::UnknownArgument && text.contains("'--key'") {
                text.push_str(
                    "\nThe signing key (`--key FILE`, who acts) goes before the command: keyledger --key alice.key key create …\n",
                );
            }
            let text = keyledger::core::credentials::redact(&text);
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
