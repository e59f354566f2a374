//! `keyledger protect` and `--code` (R13): the CLI's channel for operation protection. The
//! server holds the seeds and checks the codes; this only carries them.

use std::io::{BufRead, IsTerminal, Read};

use keyledger::core::event::{Action, FactorKind, Permission};
use keyledger::core::totp;
use serde_json::json;

use super::Ctx;
use super::args::ProtectCmd;
use super::error::CliError;
use super::output::{self, print, table};
use super::views::done;

fn read_code_line() -> Option<String> {
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::stdin().lock().take(64).read_line(&mut line).ok()?;
    Some(line.trim().to_owned())
}

fn check_code(code: &str) -> Result<(), CliError> {
    if totp::well_formed(code) {
        return Ok(());
    }
    Err(CliError::usage(
        "--code: a code is the 6 digits your authenticator app shows now (or `-` to read them from stdin)",
    ))
}

/// Hands `--code` (or, on a terminal, a prompt for one) to the server connection.
pub fn code_source(ctx: &Ctx, code: Option<String>) -> Result<(), CliError> {
    let code = match code.as_deref() {
        Some("-") => {
            Some(read_code_line().ok_or_else(|| CliError::usage("--code -: no code on stdin"))?)
        }
        _ => code,
    };
    if let Some(c) = &code {
        check_code(c)?;
    }
    let mut server = ctx.server.borrow_mut();
    let Some(remote) = server.as_mut() else {
        if code.is_some() {
            output::warn(
                "--code is checked by a keyledger server, which alone holds the seeds: without --server it is not used",
            );
        }
        return Ok(());
    };
    match code {
        Some(c) => remote.set_code(c),
        None if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() => remote
            .set_ask_code(Box::new(|name: &str| {
                eprint!("keyledger: operation protection: code from {name}'s authenticator: ");
                read_code_line().filter(|c| totp::well_formed(c))
            })),
        None => {}
    }
    Ok(())
}

pub fn protect(ctx: &Ctx, cmd: ProtectCmd) -> Result<(), CliError> {
    match cmd {
        ProtectCmd::Enable { name } => enable(ctx, &name),
        ProtectCmd::Confirm { name } => change(
            ctx,
            Action::ProtectionEnabled {
                principal: name.clone(),
                factor: FactorKind::Totp,
            },
            &format!("operation protection of {name} is on (totp)"),
        ),
        ProtectCmd::Disable { name } => change(
            ctx,
            Action::ProtectionDisabled {
                principal: name.clone(),
            },
            &format!("operation protection of {name} is off"),
        ),
        ProtectCmd::Status => status(ctx),
    }
}

fn change(ctx: &Ctx, action: Action, what: &str) -> Result<(), CliError> {
    if let Some(n) = action.subject() {
        super::views::check_name(n)?;
    }
    let (mut l, key) = ctx.open()?;
    let r = l.append(&key, action, ctx.now)?;
    done(ctx, what, &[r])
}

fn enable(ctx: &Ctx, name: &str) -> Result<(), CliError> {
    super::views::check_name(name)?;
    let key = ctx.signing_key()?;
    let mut server = ctx.server.borrow_mut();
    let Some(remote) = server.as_mut() else {
        return Err(CliError::usage(format!(
            "operation protection is kept by a keyledger server, which alone holds the seeds: run `keyledger --server URL protect enable {name}`"
        )));
    };
    let reply = remote.protect_enable(&key, name)?;
    if ctx.json {
        return output::json(&json!({"name": reply.name, "uri": reply.uri}));
    }
    output::message(&format!(
        "a new authenticator for {name}: add this URI to an authenticator app (it is shown once, and the server keeps the seed), then turn protection on with its first code: keyledger --server URL protect confirm {name} --code CODE"
    ));
    print(&format!("{}\n", reply.uri))
}

fn status(ctx: &Ctx) -> Result<(), CliError> {
    let (state, head) = ctx.state_at(None)?;
    let privileged =
        |n: &str| state.has(n, Permission::Admin) || state.has(n, Permission::ManageKeys);
    let live = state.principals.values().filter(|p| p.deleted.is_none());
    let rows: Vec<_> = live
        .map(|p| (p.name.as_str(), p.protection, privileged(&p.name)))
        .collect();
    if ctx.json {
        let list: Vec<_> = rows
            .iter()
            .map(|(n, p, privileged)| {
                json!({
                    "name": n,
                    "protected": p.is_some(),
                    "since_seq": p.map(|p| p.since.seq),
                    "since": p.map(|p| p.since.time.to_string()),
                    "factor": p.map(|p| p.factor.as_str()),
                    "privileged": privileged,
                })
            })
            .collect();
        return output::json(&json!({"as_of_seq": head.seq, "principals": list}));
    }
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(n, p, privileged)| {
            vec![
                n.to_string(),
                match p {
                    Some(p) => format!("on since {} (seq {})", p.since.time, p.since.seq),
                    None if *privileged => "OFF (admin or key manager)".into(),
                    None => "off".into(),
                },
            ]
        })
        .collect();
    print(&table(&["PRINCIPAL", "PROTECTION"], &table_rows))
}
