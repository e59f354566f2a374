//! Shell completions and man pages, generated from the argument definitions.

use std::io::Write;
use std::path::Path;

use super::args::{Shell, command};
use super::error::CliError;

pub fn completions(shell: Shell) -> Result<(), CliError> {
    let mut cmd = command();
    let mut out = Vec::new();
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
        Shell::Powershell => clap_complete::Shell::PowerShell,
    };
    clap_complete::generate(shell, &mut cmd, "keyledger", &mut out);
    super::output::print_raw(&String::from_utf8_lossy(&out))
}

/// Writes `keyledger.1` and one page per command and subcommand (`keyledger-key-create.1`).
/// Never overwrites: a page that exists already is an error naming it.
pub fn man(dir: &Path) -> Result<(), CliError> {
    if dir.exists() && !dir.is_dir() {
        return Err(CliError::usage(format!(
            "{} is not a directory; --out names the directory the man pages go into",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| CliError::usage(format!("{}: {e}", dir.display())))?;
    let mut cmd = command();
    cmd.build();
    let mut written = Vec::new();
    write_pages(&cmd, dir, &mut written)?;
    super::output::print(&format!(
        "wrote {} man pages into {}; read one with `man -l {}`\n",
        written.len(),
        dir.display(),
        dir.join("keyledger.1").display()
    ))
}

fn write_pages(
    cmd: &clap::Command,
    dir: &Path,
    written: &mut Vec<std::path::PathBuf>,
) -> Result<(), CliError> {
    let path = dir.join(format!("{}.1", cmd.get_name()));
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut page)
        .map_err(CliError::io)?;
    let mut f =
        keyledger::storage::files::create_new(&path, 0o644).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => CliError::usage(format!(
                "{} already exists; `man` never overwrites (choose an empty directory)",
                path.display()
            )),
            _ => CliError::usage(format!("{}: {e}", path.display())),
        })?;
    f.write_all(&page).map_err(CliError::io)?;
    written.push(path);
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let name = format!("{}-{}", cmd.get_name(), sub.get_name());
        write_pages(&sub.clone().name(name), dir, written)?;
    }
    Ok(())
}
