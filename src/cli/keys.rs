//! key create|disable|enable|delete|list|show, sts issue, auth.

use keyledger::protocol::ops::Ops;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use keyledger::core::credentials::{SecretText, looks_like_credential};
use keyledger::core::event::Action;
use keyledger::core::signing::SigningKey;
use keyledger::core::state::{AccessKey, MAX_TEXT};
use keyledger::core::types::{Timestamp, parse_duration};
use keyledger::protocol::ops::KeyRequest;
use keyledger::storage::store::Receipt;
use serde_json::json;

use super::args::{KeyCmd, RevealFormat, StsCmd};
use super::error::CliError;
use super::output::{clean, json, or_dash, print, print_raw, table};
use super::views::{HistoryRow, check_key_id, check_name, done, key_history};
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

    /// Writes the CSV; on failure the file is removed and the error says what to do.
    fn write(mut self, key_id: &str, body: &str) -> Result<(PathBuf, String), CliError> {
        match self
            .file
            .write_all(body.as_bytes())
            .and_then(|_| self.file.sync_all())
        {
            Ok(()) => Ok((self.path, self.channel)),
            Err(e) => {
                let _ = std::fs::remove_file(&self.path);
                Err(CliError::io(format!(
                    "{}: {e}; {key_id} was created but its secret could not be written, and no copy remains. Delete the key: keyledger key delete {key_id}",
                    self.path.display()
                )))
            }
        }
    }

    fn abandon(self) {
        drop(self.file);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The fields handed to the requester, in order: (label, env name, json name, value).
type Reveal<'a> = Vec<(&'a str, &'a str, &'a str, &'a str)>;

/// Prints the secret on stdout in the chosen format; returns the channel to record.
fn reveal_stdout(
    format: RevealFormat,
    fields: &Reveal<'_>,
    extra: serde_json::Value,
) -> Result<String, CliError> {
    let text = match format {
        RevealFormat::Text => fields
            .iter()
            .map(|(l, _, _, v)| format!("{l:<18}{v}\n"))
            .collect(),
        RevealFormat::Env => fields
            .iter()
            .map(|(_, e, _, v)| format!("{e}={v}\n"))
            .collect(),
        RevealFormat::Json => {
            let mut m = extra;
            for (_, _, j, v) in fields {
                m[*j] = json!(v);
            }
            format!(
                "{}\n",
                serde_json::to_string_pretty(&m).map_err(CliError::io)?
            )
        }
    };
    print_raw(&text).map_err(|e| {
        if !e.is_stdout_closed() {
            return e;
        }
        let id = fields.first().map_or("", |f| f.3);
        CliError::io(format!(
            "stdout closed before the secret of {id} was shown: it exists, never revealed, and \
             cannot be shown again; delete it (`keyledger key delete {id}`) and create another"
        ))
    })?;
    Ok(format!(
        "stdout:{}",
        match format {
            RevealFormat::Text => "text",
            RevealFormat::Json => "json",
            RevealFormat::Env => "env",
        }
    ))
}

/// Records that the secret of `key_id` went out through `channel`. If that append fails
/// (a full disk, say), a secret exists with no record of its reveal: a CSV copy is removed,
/// and the error says so and what to do.
fn record_reveal(
    l: &mut dyn Ops,
    key: &SigningKey,
    key_id: &str,
    channel: &str,
    csv: Option<&Path>,
    now: Timestamp,
) -> Result<Receipt, CliError> {
    l.record_reveal(key, key_id, channel, now).map_err(|e| {
        let mut err = CliError::from(e);
        let secret = match csv {
            Some(path) => {
                let _ = std::fs::remove_file(path);
                format!(
                    "{} was removed, so no copy of its secret remains",
                    path.display()
                )
            }
            None => "the secret printed above was handed out unrecorded".into(),
        };
        err.message = format!(
            "{key_id} was created, but recording the reveal of its secret failed ({}); {secret}. Delete the key: keyledger key delete {key_id}",
            err.message
        );
        err
    })
}

/// Hands a new key's secret to its requester, once: into the CSV file made before the key
/// existed, or on stdout; then records the reveal (R10).
#[allow(clippy::too_many_arguments)]
fn deliver(
    ctx: &Ctx,
    l: &mut dyn Ops,
    key: &SigningKey,
    user: &str,
    new: &keyledger::protocol::ops::NewKey,
    csv: Option<CsvOut>,
    format: RevealFormat,
    what: &str,
) -> Result<(), CliError> {
    let format = if ctx.json { RevealFormat::Json } else { format };
    let (csv_path, channel) = match csv {
        Some(c) => {
            let (p, channel) = c.write(
                &new.key_id,
                &format!(
                    "AccessKey ID,AccessKey Secret\n{},{}\n",
                    new.key_id,
                    new.secret.expose()
                ),
            )?;
            (Some(p), channel)
        }
        None => (None, {
            let fields = id_and_secret(&new.key_id, &new.secret);
            reveal_stdout(
                format,
                &fields,
                json!({"user": user, "seq": new.receipt.seq}),
            )?
        }),
    };
    let revealed = record_reveal(l, key, &new.key_id, &channel, csv_path.as_deref(), ctx.now)?;
    if let Some(path) = channel.strip_prefix("csv:") {
        if ctx.json {
            json(
                &json!({"access_key_id": new.key_id, "user": user, "seq": new.receipt.seq, "csv": path, "revealed_seq": revealed.seq}),
            )?;
        } else {
            print(&format!(
                "{what}; secret written once to {} (mode 0600), recorded at seq {}\n",
                super::output::clean(path),
                revealed.seq
            ))?;
        }
    } else {
        shown_once_warning();
    }
    Ok(())
}

/// The ID and secret as `reveal_stdout` shows them: (text label, env name, JSON name, value).
fn id_and_secret<'a>(
    id: &'a str,
    secret: &'a SecretText,
) -> Vec<(&'static str, &'static str, &'static str, &'a str)> {
    vec![
        (
            "AccessKey ID:",
            "KEYLEDGER_ACCESS_KEY_ID",
            "access_key_id",
            id,
        ),
        (
            "AccessKey Secret:",
            "KEYLEDGER_ACCESS_KEY_SECRET",
            "access_key_secret",
            secret.expose(),
        ),
    ]
}

fn shown_once_warning() {
    eprintln!(
        "keyledger: this secret is shown once and can never be shown again. Store it now; if it is lost or leaked, create another key."
    );
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
            check_name(&user)?;
            if scenario.len() > MAX_TEXT {
                return Err(CliError::usage(format!(
                    "--scenario is longer than {MAX_TEXT} bytes"
                )));
            }
            if looks_like_credential(&scenario) {
                return Err(CliError::usage(
                    "--scenario seems to hold an access key secret or security token; the ledger never records one. Describe why the key is needed instead",
                ));
            }
            let (mut l, key) = ctx.open()?;
            let csv = csv.as_deref().map(CsvOut::create).transpose()?;
            let req = KeyRequest {
                user: &user,
                scenario: &scenario,
                confirmed_necessary: confirm_necessary,
                allow_root_key,
            };
            let new = match l.create_key(&key, &req, ctx.now) {
                Ok(n) => n,
                Err(e) => {
                    if let Some(c) = csv {
                        c.abandon();
                    }
                    return Err(e.into());
                }
            };
            let what = format!(
                "created {} for {user} (seq {})",
                new.key_id, new.receipt.seq
            );
            deliver(ctx, l.as_mut(), &key, &user, &new, csv, format, &what)
        }
        KeyCmd::Rotate {
            key_id,
            csv,
            format,
            disable_old,
        } => {
            check_key_id(&key_id)?;
            let (mut l, key) = ctx.open()?;
            let csv = csv.as_deref().map(CsvOut::create).transpose()?;
            let user = l.state().keys.get(&key_id).map(|k| k.user.clone());
            let new = match l.rotate_key(&key, &key_id, ctx.now) {
                Ok(n) => n,
                Err(e) => {
                    if let Some(c) = csv {
                        c.abandon();
                    }
                    let mut e = CliError::from(e);
                    if e.message.contains("[R7]") {
                        e.message.push_str(
                            ". A rotation needs room for the user's second key: delete the other one first (`keyledger key delete KEY_ID`), then rotate",
                        );
                    }
                    return Err(e);
                }
            };
            let user = user.unwrap_or_default();
            // The new key's creation, then the key-rotated event in the same group commit.
            let what = format!(
                "rotated {key_id} to {} for {user} (created at seq {}, linked at seq {})",
                new.key_id,
                new.receipt.seq,
                new.receipt.seq + 1
            );
            deliver(ctx, l.as_mut(), &key, &user, &new, csv, format, &what)?;
            if disable_old {
                // Only once the new secret has reached its requester.
                let r = l.append(
                    &key,
                    Action::KeyDisabled {
                        key_id: key_id.clone(),
                    },
                    ctx.now,
                )?;
                let line = format!("disabled {key_id} (seq {})", r.seq);
                if ctx.json || format != RevealFormat::Text {
                    // stdout holds the reveal, for a script to read: nothing more there.
                    super::output::message(&line);
                } else {
                    print(&format!("{line}\n"))?;
                }
            }
            Ok(())
        }
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
        } => {
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
        KeyCmd::Show { key_id } => {
            check_key_id(&key_id)?;
            let (r, history) = key_history(ctx, &key_id)?;
            let Some(k) = r.state.keys.get(&key_id) else {
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
    }
}

/// A key as JSON (the schema in the README), serialized straight from the state.
#[derive(serde::Serialize)]
struct KeyView<'a> {
    key_id: &'a str,
    user: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    status: &'static str,
    created: Timestamp,
    created_seq: u64,
    created_by: &'a str,
    scenario: Option<&'a str>,
    expires: Option<Timestamp>,
    last_used: Option<Timestamp>,
    last_used_seq: Option<u64>,
    revealed: Option<RevealView<'a>>,
    failed_auths: u64,
    rotated_to: Option<RotationView<'a>>,
    rotated_from: Option<RotationView<'a>>,
}

#[derive(serde::Serialize)]
struct RotationView<'a> {
    key_id: &'a str,
    seq: u64,
    time: Timestamp,
}

impl<'a> RotationView<'a> {
    fn of(r: &'a Option<keyledger::core::state::Rotation>) -> Option<Self> {
        r.as_ref().map(|r| RotationView {
            key_id: &r.key_id,
            seq: r.at.seq,
            time: r.at.time,
        })
    }
}

#[derive(serde::Serialize)]
struct RevealView<'a> {
    time: Timestamp,
    seq: u64,
    to: &'a str,
    channel: &'a str,
}

impl<'a> KeyView<'a> {
    fn new(k: &'a AccessKey, at: Timestamp) -> Self {
        KeyView {
            key_id: &k.id,
            user: &k.user,
            kind: if k.temporary {
                "temporary"
            } else {
                "permanent"
            },
            status: k.status_at(at),
            created: k.created.time,
            created_seq: k.created.seq,
            created_by: &k.created_by,
            scenario: k.scenario.as_deref(),
            expires: k.expires,
            last_used: k.last_used.map(|u| u.time),
            last_used_seq: k.last_used.map(|u| u.seq),
            revealed: k.revealed.as_ref().map(|r| RevealView {
                time: r.at.time,
                seq: r.at.seq,
                to: &r.to,
                channel: &r.channel,
            }),
            failed_auths: k.failed_auths,
            rotated_to: RotationView::of(&k.rotated_to),
            rotated_from: RotationView::of(&k.rotated_from),
        }
    }
}

#[derive(serde::Serialize)]
struct KeyList<'a> {
    as_of_seq: u64,
    evaluated_at: Timestamp,
    keys: Vec<KeyView<'a>>,
}

fn show_history(ctx: &Ctx, k: Option<&AccessKey>, history: &[HistoryRow]) -> Result<(), CliError> {
    if ctx.json {
        let h: Vec<_> = history.iter().map(HistoryRow::json).collect();
        return json(&json!({"key": k.map(|k| KeyView::new(k, ctx.now)), "history": h}));
    }
    let mut out = String::new();
    if let Some(k) = k {
        out.push_str(&format!(
            "{}  user {}  {}  {}\n  created {} by {} (seq {})\n",
            k.id,
            k.user,
            if k.temporary {
                "temporary"
            } else {
                "permanent"
            },
            k.status_at(ctx.now),
            k.created.time,
            k.created_by,
            k.created.seq
        ));
        if let Some(s) = &k.scenario {
            out.push_str(&format!("  scenario {}\n", clean(s)));
        }
        if let Some(e) = k.expires {
            out.push_str(&format!("  expires {e}\n"));
        }
        match &k.revealed {
            Some(r) => out.push_str(&format!(
                "  secret revealed {} to {} via {} (seq {})\n",
                r.at.time,
                r.to,
                clean(&r.channel),
                r.at.seq
            )),
            None => out.push_str("  secret never revealed\n"),
        }
        for (label, r) in [
            ("rotated to", &k.rotated_to),
            ("rotated from", &k.rotated_from),
        ] {
            if let Some(r) = r {
                out.push_str(&format!(
                    "  {label} {} at {} (seq {})\n",
                    r.key_id, r.at.time, r.at.seq
                ));
            }
        }
        out.push_str(&format!(
            "  last used {}\n\n",
            or_dash(k.last_used.map(|u| u.time))
        ));
    }
    let rows: Vec<Vec<String>> = history.iter().map(HistoryRow::cells).collect();
    out.push_str(&table(&HistoryRow::HEADERS, &rows));
    print(&out)
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
    let t = l.issue_temporary(&key, &user, us, ctx.now)?;
    let expires = t.expires.to_string();
    let mut fields = id_and_secret(&t.key_id, &t.secret);
    fields.extend([
        (
            "Security Token:",
            "KEYLEDGER_SECURITY_TOKEN",
            "security_token",
            t.token.expose(),
        ),
        (
            "Expiration:",
            "KEYLEDGER_EXPIRATION",
            "expiration",
            expires.as_str(),
        ),
    ]);
    let format = if ctx.json { RevealFormat::Json } else { format };
    let channel = reveal_stdout(format, &fields, json!({"user": user, "seq": t.receipt.seq}))?;
    record_reveal(l.as_mut(), &key, &t.key_id, &channel, None, ctx.now)?;
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
    // Sized so that it never grows (growing leaves unzeroized copies of the secret).
    let mut raw = zeroize::Zeroizing::new(Vec::with_capacity(4097));
    std::io::stdin()
        .take(4096)
        .read_to_end(&mut raw)
        .map_err(|e| CliError::io(format!("reading the secret from stdin: {e}")))?;
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
            &json!({"ok": out.ok, "key_id": key_id, "user": out.user, "reason": out.reason, "seq": seq, "coalesced": seq.is_none()}),
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
