//! key create|disable|enable|delete|list|show, sts issue, auth.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use keyledger::core::credentials::{SecretText, looks_like_credential};
use keyledger::core::event::Action;
use keyledger::core::state::{AccessKey, MAX_TEXT};
use keyledger::core::types::parse_duration;
use keyledger::protocol::ops::{KeyRequest, NewKey};
use keyledger::protocol::reveal::{self, Channel, Credentials, Revealed};
use serde_json::json;

use super::args::{KeyCmd, RevealFormat, StsCmd};
use super::error::CliError;
use super::output::{clean, json, or_dash, print, print_raw, table};
use super::views::{
    KeyList, KeyView, check_key_id, check_name, done, key_history, read_secret_input, show_history,
};
use super::{Ctx, parse_as_of};

/// A CSV file created before the key exists, so a bad path never strands a key or a secret:
/// its channel (`csv:` and the absolute path, recorded in the ledger) is checked first.
struct CsvOut {
    path: PathBuf,
    channel: String,
    file: File,
}

impl CsvOut {
    fn create(path: &Path) -> Result<Self, CliError> {
        if path.to_str().is_none() {
            return Err(CliError::usage(
                "the --csv path must be UTF-8 text: it is recorded in the ledger",
            ));
        }
        let file =
            keyledger::storage::files::create_new(path, 0o600).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => CliError::usage(format!(
                    "{} already exists; keyledger never overwrites a file that may hold a secret",
                    path.display()
                )),
                _ => CliError::usage(format!("{}: {e}", path.display())),
            })?;
        // The channel names the file by an absolute path (ledger-format.md §5).
        let abs = path
            .canonicalize()
            .or_else(|_| std::path::absolute(path))
            .unwrap_or_else(|_| path.into());
        let channel = abs.to_str().map(|p| format!("csv:{p}"));
        match channel {
            Some(c) if c.len() <= MAX_TEXT && keyledger::core::policy::valid_channel(&c) => {
                Ok(CsvOut {
                    path: abs,
                    channel: c,
                    file,
                })
            }
            _ => {
                drop(file);
                let _ = std::fs::remove_file(path);
                Err(CliError::usage(format!(
                    "the --csv path, made absolute, must be UTF-8 text of at most {} bytes: it is recorded in the ledger",
                    MAX_TEXT - 4
                )))
            }
        }
    }
}

impl Channel for CsvOut {
    fn name(&self) -> &str {
        &self.channel
    }

    fn deliver(&mut self, c: &Credentials<'_>) -> Result<(), String> {
        let body = zeroize::Zeroizing::new(format!(
            "AccessKey ID,AccessKey Secret\n{},{}\n",
            c.key_id,
            c.secret.expose()
        ));
        (&self.file)
            .write_all(body.as_bytes())
            .and_then(|_| self.file.sync_all())
            .map_err(|e| {
                let _ = std::fs::remove_file(&self.path);
                format!("{}: {e}", self.path.display())
            })
    }

    fn retract(&mut self) -> String {
        let _ = std::fs::remove_file(&self.path);
        format!(
            "{} was removed, so no copy of its secret remains",
            self.path.display()
        )
    }

    fn abandon(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The secret on stdout, as text, env lines or JSON.
struct Stdout {
    format: RevealFormat,
    channel: &'static str,
}

impl Stdout {
    fn new(ctx: &Ctx, format: RevealFormat) -> Self {
        let format = if ctx.json { RevealFormat::Json } else { format };
        let channel = match format {
            RevealFormat::Text => "stdout:text",
            RevealFormat::Json => "stdout:json",
            RevealFormat::Env => "stdout:env",
        };
        Stdout { format, channel }
    }
}

impl Channel for Stdout {
    fn name(&self) -> &str {
        self.channel
    }

    fn deliver(&mut self, c: &Credentials<'_>) -> Result<(), String> {
        let expires = c.expires.map(|e| e.to_string());
        // (text label, env name, JSON name, value), in the order shown.
        let mut fields = vec![
            (
                "AccessKey ID:",
                "KEYLEDGER_ACCESS_KEY_ID",
                "access_key_id",
                c.key_id,
            ),
            (
                "AccessKey Secret:",
                "KEYLEDGER_ACCESS_KEY_SECRET",
                "access_key_secret",
                c.secret.expose(),
            ),
        ];
        if let (Some(t), Some(e)) = (c.token, &expires) {
            fields.push((
                "Security Token:",
                "KEYLEDGER_SECURITY_TOKEN",
                "security_token",
                t.expose(),
            ));
            fields.push((
                "Expiration:",
                "KEYLEDGER_EXPIRATION",
                "expiration",
                e.as_str(),
            ));
        }
        // One buffer, sized so it never grows: no copy of the secret is left unzeroized.
        let size: usize = fields
            .iter()
            .map(|f| f.0.len() + f.1.len() + f.2.len() + f.3.len())
            .sum();
        let mut text = zeroize::Zeroizing::new(String::with_capacity(2 * size + 256));
        match self.format {
            RevealFormat::Text => fields.iter().for_each(|(l, _, _, v)| {
                let _ = writeln!(text, "{l:<18}{v}");
            }),
            RevealFormat::Env => fields.iter().for_each(|(_, e, _, v)| {
                let _ = writeln!(text, "{e}={v}");
            }),
            RevealFormat::Json => {
                // The members in serde_json's order (sorted), as `--json` prints them elsewhere;
                // the values are IDs, base32 secrets and times, which need no escaping.
                let seq = c.seq.to_string();
                let mut members: Vec<(&str, &str, bool)> = fields
                    .iter()
                    .map(|(_, _, j, v)| (*j, *v, true))
                    .chain([("seq", seq.as_str(), false), ("user", c.user, true)])
                    .collect();
                members.sort_by_key(|m| m.0);
                text.push_str("{\n");
                for (i, (name, value, quoted)) in members.iter().enumerate() {
                    let comma = if i + 1 < members.len() { "," } else { "" };
                    let q = if *quoted { "\"" } else { "" };
                    let _ = writeln!(text, "  \"{name}\": {q}{}{q}{comma}", clean_json(value));
                }
                text.push_str("}\n");
            }
        }
        print_raw(&text).map_err(|e| match e.is_stdout_closed() {
            true => "stdout closed before the secret was shown".into(),
            false => e.message,
        })
    }

    fn retract(&mut self) -> String {
        "the secret printed above was handed out unrecorded".into()
    }
}

/// `v` as the inside of a JSON string: IDs, secrets, tokens, times and names never hold a
/// quote, backslash or control character, but anything else is escaped rather than trusted.
fn clean_json(v: &str) -> std::borrow::Cow<'_, str> {
    if v.chars().all(|c| c != '"' && c != '\\' && !c.is_control()) {
        return v.into();
    }
    let quoted = serde_json::to_string(v).unwrap_or_default();
    quoted[1..quoted.len() - 1].to_owned().into()
}

/// Says where the secret went, once the reveal is recorded.
fn revealed(
    ctx: &Ctx,
    channel: &dyn Channel,
    r: &Revealed<NewKey>,
    what: &str,
) -> Result<(), CliError> {
    match channel.name().strip_prefix("csv:") {
        Some(path) if ctx.json => json(
            &json!({"access_key_id": r.new.key_id, "user": r.user, "seq": r.new.receipt.seq, "csv": path, "revealed_seq": r.revealed.seq}),
        ),
        Some(path) => print(&format!(
            "{what}; secret written once to {} (mode 0600), recorded at seq {}\n",
            clean(path),
            r.revealed.seq
        )),
        None => {
            shown_once_warning();
            Ok(())
        }
    }
}

fn shown_once_warning() {
    eprintln!(
        "keyledger: this secret is shown once and can never be shown again. Store it now; if it is lost or leaked, create another key."
    );
}

/// The channel a key command asked for: the CSV file (created now, before the key), or
/// stdout.
fn channel(
    ctx: &Ctx,
    csv: Option<&Path>,
    format: RevealFormat,
) -> Result<Box<dyn Channel>, CliError> {
    Ok(match csv {
        Some(p) => Box::new(CsvOut::create(p)?),
        None => Box::new(Stdout::new(ctx, format)),
    })
}

pub fn key(ctx: &Ctx, cmd: KeyCmd) -> Result<(), CliError> {
    match cmd {
        KeyCmd::Create {
            user,
            scenario,
            confirm_necessary,
            allow_root_key,
            csv,
            format,
        } => {
            let req = KeyRequest {
                user: &user,
                scenario: &scenario,
                confirmed_necessary: confirm_necessary,
                allow_root_key,
            };
            create(ctx, &req, csv.as_deref(), format)
        }
        KeyCmd::Rotate {
            key_id,
            csv,
            format,
            disable_old,
        } => rotate(ctx, &key_id, csv.as_deref(), format, disable_old),
        KeyCmd::Disable { key_id } => status_change(ctx, key_id, "disabled", |key_id| {
            Action::KeyDisabled { key_id }
        }),
        KeyCmd::Enable { key_id } => status_change(ctx, key_id, "enabled", |key_id| {
            Action::KeyEnabled { key_id }
        }),
        KeyCmd::Delete { key_id } => status_change(ctx, key_id, "deleted", |key_id| {
            Action::KeyDeleted { key_id }
        }),
        KeyCmd::List {
            user,
            status,
            as_of,
        } => list(ctx, user, status, as_of),
        KeyCmd::Show { key_id } => show(ctx, &key_id),
    }
}

fn create(
    ctx: &Ctx,
    req: &KeyRequest<'_>,
    csv: Option<&Path>,
    format: RevealFormat,
) -> Result<(), CliError> {
    check_name(req.user)?;
    if req.scenario.len() > MAX_TEXT {
        return Err(CliError::usage(format!(
            "--scenario is longer than {MAX_TEXT} bytes"
        )));
    }
    if looks_like_credential(req.scenario) {
        return Err(CliError::usage(
            "--scenario seems to hold an access key secret or security token; the ledger never records one. Describe why the key is needed instead",
        ));
    }
    let (mut l, key) = ctx.open()?;
    let mut ch = channel(ctx, csv, format)?;
    let r = reveal::create_key(l.as_mut(), &key, req, ch.as_mut(), ctx.now)?;
    let what = format!(
        "created {} for {} (seq {})",
        r.new.key_id, r.user, r.new.receipt.seq
    );
    revealed(ctx, ch.as_ref(), &r, &what)
}

fn rotate(
    ctx: &Ctx,
    key_id: &str,
    csv: Option<&Path>,
    format: RevealFormat,
    disable_old: bool,
) -> Result<(), CliError> {
    check_key_id(key_id)?;
    let (mut l, key) = ctx.open()?;
    let mut ch = channel(ctx, csv, format)?;
    let r = reveal::rotate_key(l.as_mut(), &key, key_id, ch.as_mut(), ctx.now).map_err(|e| {
        let mut e = CliError::from(e);
        if e.message.contains("[R7]") {
            e.message.push_str(
                ". A rotation needs room for the user's second key: delete the other one first (`keyledger key delete KEY_ID`), then rotate",
            );
        }
        e
    })?;
    // The new key's creation, then the key-rotated event in the same group commit.
    let what = format!(
        "rotated {key_id} to {} for {} (created at seq {}, linked at seq {})",
        r.new.key_id,
        r.user,
        r.new.receipt.seq,
        r.new.receipt.seq + 1
    );
    revealed(ctx, ch.as_ref(), &r, &what)?;
    if disable_old {
        // Only once the new secret has reached its requester.
        let d = l.append(
            &key,
            Action::KeyDisabled {
                key_id: key_id.to_owned(),
            },
            ctx.now,
        )?;
        let line = format!("disabled {key_id} (seq {})", d.seq);
        if ctx.json || format != RevealFormat::Text {
            // stdout holds the reveal, for a script to read: nothing more there.
            super::output::message(&line);
        } else {
            print(&format!("{line}\n"))?;
        }
    }
    Ok(())
}

fn list(
    ctx: &Ctx,
    user: Option<String>,
    status: Option<String>,
    as_of: super::args::AsOf,
) -> Result<(), CliError> {
    if let Some(s) = &status
        && !["active", "disabled", "deleted", "expired"].contains(&s.as_str())
    {
        return Err(CliError::usage(format!(
            "--status {s:?}: use active, disabled, deleted or expired"
        )));
    }
    let (until, at) = parse_as_of(&as_of, ctx.now)?;
    let (state, head) = ctx.state_at(until)?;
    if let Some(u) = &user
        && !state.principals.contains_key(u)
    {
        return Err(CliError::usage(format!(
            "--user {}: no principal of that name (as of seq {}); see `keyledger user list`",
            super::output::clean(u),
            head.seq
        )));
    }
    let keys: Vec<&AccessKey> = state
        .keys
        .values()
        .filter(|k| user.as_ref().is_none_or(|u| &k.user == u))
        .filter(|k| status.as_ref().is_none_or(|s| k.status_at(at) == s))
        .collect();
    if ctx.json {
        let keys = keys.iter().map(|k| KeyView::new(k, at)).collect();
        return json(&KeyList {
            as_of_seq: head.seq,
            evaluated_at: at,
            keys,
        });
    }
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                k.id.clone(),
                k.user.clone(),
                if k.temporary {
                    "temporary"
                } else {
                    "permanent"
                }
                .into(),
                k.status_at(at).into(),
                k.created.time.to_string(),
                or_dash(k.last_used.map(|u| u.time)),
                k.revealed
                    .as_ref()
                    .map_or("never".into(), |r| r.at.time.to_string()),
            ]
        })
        .collect();
    print(&table(
        &[
            "KEY ID",
            "USER",
            "TYPE",
            "STATUS",
            "CREATED",
            "LAST USED",
            "REVEALED",
        ],
        &rows,
    ))
}

fn show(ctx: &Ctx, key_id: &str) -> Result<(), CliError> {
    check_key_id(key_id)?;
    let (r, history) = key_history(ctx, key_id)?;
    let Some(k) = r.state.keys.get(key_id) else {
        if history.is_empty() {
            return Err(CliError::usage(format!(
                "there is no access key {key_id} in this ledger"
            )));
        }
        // Only refusals or failed attempts mention it.
        return show_history(ctx, None, &history);
    };
    show_history(ctx, Some(k), &history)
}

fn status_change(
    ctx: &Ctx,
    key_id: String,
    verb: &str,
    make: impl FnOnce(String) -> Action,
) -> Result<(), CliError> {
    check_key_id(&key_id)?;
    let (mut l, key) = ctx.open()?;
    let r = l.append(&key, make(key_id.clone()), ctx.now)?;
    done(ctx, &format!("{verb} {key_id}"), &[r])
}

pub fn sts(ctx: &Ctx, cmd: StsCmd) -> Result<(), CliError> {
    let StsCmd::Issue {
        user,
        duration,
        format,
    } = cmd;
    check_name(&user)?;
    let us = parse_duration(&duration).ok_or_else(|| {
        CliError::usage(format!(
            "--duration {duration:?}: use e.g. 15m, 1h, 2h30m (15m to 12h)"
        ))
    })?;
    let (mut l, key) = ctx.open()?;
    let mut ch = Stdout::new(ctx, format);
    reveal::issue_temporary(l.as_mut(), &key, &user, us, &mut ch, ctx.now)?;
    shown_once_warning();
    Ok(())
}

pub fn auth(ctx: &Ctx, key_id: &str) -> Result<(), CliError> {
    if key_id.is_empty() || key_id.len() > 64 || !key_id.bytes().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(CliError::usage(
            "KEY_ID must be 1-64 ASCII letters and digits",
        ));
    }
    let raw = read_secret_input(4096)?;
    let text = std::str::from_utf8(&raw)
        .map_err(|_| CliError::usage("the secret on stdin is not UTF-8 text"))?;
    // The secret, then (for temporary credentials) the security token, separated by
    // whitespace: `printf '%s\n%s\n' "$SECRET" "$TOKEN" | keyledger auth KLST…`.
    let mut parts = text.split_whitespace();
    let presented = SecretText::from_input(parts.next().unwrap_or(""));
    let token = parts.next().map(SecretText::from_input);
    if parts.next().is_some() {
        return Err(CliError::usage(
            "stdin holds more than a secret and a security token; give the secret, then (for temporary credentials) the token, separated by a newline",
        ));
    }
    let (mut l, key) = ctx.open()?;
    let out = l.authenticate(&key, key_id, &presented, token.as_ref(), ctx.now)?;
    let seq = out.receipt.as_ref().map(|r| r.seq);
    let recorded = match seq {
        Some(s) => format!("recorded at seq {s}"),
        None => "coalesced into the key's last recorded use, as the server records one success per key per window".into(),
    };
    if ctx.json {
        json(
            &json!({"ok": out.ok, "key_id": key_id, "user": out.user, "reason": out.reason, "seq": seq, "coalesced": seq.is_none() && out.ok, "summarized": seq.is_none() && !out.ok}),
        )?;
    } else if out.ok {
        print(&format!(
            "authenticated {key_id} as {} ({recorded})\n",
            out.user.as_deref().unwrap_or("?"),
        ))?;
    }
    match out.reason {
        None => Ok(()),
        Some(r) if ctx.json => Err(CliError::check_failed(format!(
            "authentication failed: {r}"
        ))),
        Some(r) => Err(CliError::check_failed(format!(
            "authentication failed for {key_id}: {r} ({recorded})"
        ))),
    }
}
