//! What several commands show or check alike: history rows, filters, IDs and names, the
//! line a write prints. Command modules share these and never import one another.

use keyledger::core::credentials::id_form;
use keyledger::core::event::{ACTION_TAGS, Action, Event};
use keyledger::core::query::Filter;
use keyledger::core::state::{AccessKey, State};
use keyledger::core::types::{Timestamp, valid_name};
use keyledger::evidence::export::Record;
use keyledger::storage::store::{Receipt, Verified};
use serde_json::json;

use super::args::FilterArgs;
use super::error::{CliError, LEDGER};
use super::output::{clean, json, or_dash, print, table};
use super::{Ctx, parse_time};

/// One line of human detail for an action. Events carry no secrets, so nothing is hidden.
pub fn detail(a: &Action) -> String {
    match a {
        Action::Genesis {
            ledger_id,
            account,
            public_key,
        } => format!("ledger {ledger_id}, account {account}, key {public_key}"),
        Action::SignerEnrolled {
            principal,
            public_key,
        }
        | Action::SignerRevoked {
            principal,
            public_key,
        } => {
            format!("{principal} {public_key}")
        }
        Action::UserCreated { name, federated } => {
            format!("{name}{}", if *federated { " (federated)" } else { "" })
        }
        Action::UserDeleted { name } | Action::ProtectionDisabled { principal: name } => {
            name.clone()
        }
        Action::AuthFailuresSummarized {
            key_id,
            count,
            first,
            last,
        } => format!("{key_id}: {count} failed checks from {first} to {last}"),
        Action::ProtectionEnabled { principal, factor } => {
            format!("{principal} ({})", factor.as_str())
        }
        Action::PermissionGranted {
            principal,
            permission,
        }
        | Action::PermissionRevoked {
            principal,
            permission,
        } => {
            format!("{principal} {permission}")
        }
        Action::KeyCreated {
            key_id,
            user,
            scenario,
            root_key_allowed,
            ..
        } => format!(
            "{key_id} for {user}{}: {scenario}",
            if *root_key_allowed {
                " (root key allowed)"
            } else {
                ""
            }
        ),
        Action::TemporaryIssued {
            key_id,
            user,
            expires,
            ..
        } => format!("{key_id} for {user} until {expires}"),
        Action::SecretRevealed {
            key_id,
            to,
            channel,
        } => format!("{key_id} to {to} via {channel}"),
        Action::KeyDisabled { key_id }
        | Action::KeyEnabled { key_id }
        | Action::KeyDeleted { key_id }
        | Action::AuthSucceeded { key_id } => key_id.clone(),
        Action::AuthFailed { key_id, reason } => format!("{key_id}: {reason}"),
        Action::ActionDenied {
            attempted, reason, ..
        } => format!("{attempted}: {reason}"),
        Action::CheckpointRecorded { size, root } => format!("{size} events, Merkle root {root}"),
        Action::KeyRotated {
            old_key_id,
            new_key_id,
        } => format!("{old_key_id} replaced by {new_key_id}"),
        Action::LeakReported {
            key_id,
            source,
            reason,
        } => format!("{key_id} reported leaked, found at {source}: {reason}"),
        Action::LogRepaired {
            offset,
            removed_bytes,
            removed_blake3,
            quarantine,
        } => {
            format!(
                "{removed_bytes} bytes at offset {offset} moved to {quarantine} (blake3 {removed_blake3})"
            )
        }
    }
}

/// One event as `log`, `key show` and `follow` show it: who acted, and who enrolled the
/// key that signed (L3: the signature vouches for whoever chose that key).
pub struct HistoryRow {
    pub seq: u64,
    pub time: Timestamp,
    pub actor: String,
    pub key_enrolled_by: String,
    pub action: Action,
    pub hash: Option<String>,
}

/// The row for `ev`, attributed through `state` (which knows every signer ever enrolled).
pub fn history_row(state: &State, ev: Event) -> HistoryRow {
    let (actor, by) = state.actor_and_enroller(&ev);
    HistoryRow {
        seq: ev.seq,
        time: ev.time,
        actor: actor.to_owned(),
        key_enrolled_by: by.to_owned(),
        action: ev.action,
        hash: None,
    }
}

impl HistoryRow {
    pub const HEADERS: [&'static str; 6] = ["SEQ", "TIME", "ACTOR", "KEY BY", "ACTION", "DETAIL"];

    pub fn json(&self) -> serde_json::Value {
        let mut v = json!({"seq": self.seq, "time": self.time.to_string(), "actor": self.actor,
            "key_enrolled_by": self.key_enrolled_by, "action": self.action.tag(), "detail": self.action});
        if let Some(h) = &self.hash {
            v["hash"] = json!(h);
        }
        v
    }

    pub fn cells(&self) -> Vec<String> {
        vec![
            self.seq.to_string(),
            self.time.to_string(),
            self.actor.clone(),
            self.key_enrolled_by.clone(),
            self.action.tag().into(),
            detail(&self.action),
        ]
    }
}

/// The library filter for `--key --user --actor --action --since --until`.
pub fn to_filter(f: &FilterArgs) -> Result<Filter, CliError> {
    // A filter that cannot match is a mistake, not an empty answer.
    if let Some(k) = &f.key {
        super::views::check_key_id(k)?;
    }
    for name in [&f.user, &f.actor].into_iter().flatten() {
        super::views::check_name(name)?;
    }
    if let Some(a) = &f.action
        && !ACTION_TAGS.contains(&a.as_str())
    {
        return Err(CliError::usage(format!(
            "--action {a:?} is not an action tag; use one of: {}",
            ACTION_TAGS.join(", ")
        )));
    }
    Ok(Filter {
        key: f.key.clone(),
        user: f.user.clone(),
        actor: f.actor.clone(),
        action: f.action.clone(),
        since: f
            .since
            .as_deref()
            .map(|s| parse_time("--since", s))
            .transpose()?,
        until: f
            .until
            .as_deref()
            .map(|s| parse_time("--until", s))
            .transpose()?,
    })
}

/// One OCSF record (ocsf.rs) as a line, described as `log` describes the event.
pub fn ocsf_line(state: &State, r: &Record) -> String {
    let owner = state.key_owner(&r.detail);
    let ledger_id = state.ledger_id.map(|i| i.hex()).unwrap_or_default();
    let v = keyledger::evidence::ocsf::event(r, owner, &ledger_id, &detail(&r.detail));
    serde_json::to_string(&v).expect("values serialize") + "\n"
}

/// An access key ID given on the command line must be well-formed before anything is read.
pub fn check_key_id(id: &str) -> Result<(), CliError> {
    if id_form(id).is_some() {
        return Ok(());
    }
    Err(CliError::usage(format!(
        "{:?} is not a keyledger access key ID (KLAK… or KLST…, 26 characters, with a valid checksum)",
        id.chars().take(64).collect::<String>()
    )))
}

/// The frames naming `key_id`, through this user's cache: only those frames are read, and
/// they are checked to be exactly the events verified.
pub fn trail_frames(
    ctx: &Ctx,
    v: &Verified,
    key_id: &str,
) -> Result<
    Vec<(
        keyledger::core::format::RawFrame,
        keyledger::core::event::Event,
        keyledger::core::types::Hash32,
    )>,
    CliError,
> {
    let Some(trail) = v.trails.get(key_id) else {
        return Ok(Vec::new());
    };
    keyledger::storage::store::trail_events(&ctx.ledger, trail)?.ok_or_else(|| CliError {
        code: LEDGER,
        message: format!(
            "{}: the events of {key_id} changed while they were read (the ledger was rewritten?); run `keyledger verify`",
            ctx.ledger.display()
        ),
    })
}

/// Every event naming `key_id`, with the verified state at the head.
pub fn key_history(ctx: &Ctx, key_id: &str) -> Result<(Verified, Vec<HistoryRow>), CliError> {
    let v = ctx.read_head()?;
    let rows = trail_frames(ctx, &v, key_id)?
        .into_iter()
        .map(|(_, ev, _)| history_row(&v.state, ev))
        .collect();
    Ok((v, rows))
}

/// A principal name given on the command line must be well-formed before anything is recorded.
pub fn check_name(name: &str) -> Result<(), CliError> {
    if valid_name(name) {
        return Ok(());
    }
    Err(CliError::usage(format!(
        "{name:?} is not a valid name: use 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"
    )))
}

/// Prints what a write did: one line, or JSON.
pub fn done(ctx: &Ctx, what: &str, receipts: &[Receipt]) -> Result<(), CliError> {
    if ctx.json {
        let r: Vec<_> = receipts
            .iter()
            .map(|r| json!({"seq": r.seq, "hash": r.hash.hex(), "time": r.time.to_string()}))
            .collect();
        return json(&json!({"ok": true, "what": what, "events": r}));
    }
    let seqs: Vec<String> = receipts.iter().map(|r| r.seq.to_string()).collect();
    print(&format!("{what} (seq {})\n", seqs.join(", ")))
}

/// A finding's evidence seqs for a human line: the first ten, then how many more (JSON and
/// HTML list them all).
pub fn evidence_text(seqs: &[u64]) -> String {
    let mut s: Vec<String> = seqs.iter().take(10).map(u64::to_string).collect();
    if seqs.len() > 10 {
        s.push(format!("and {} more", seqs.len() - 10));
    }
    s.join(",")
}

/// A key as JSON (the schema in the README), serialized straight from the state.
#[derive(serde::Serialize)]
pub struct KeyView<'a> {
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
    leak_reported: Option<Timestamp>,
    leak_reported_seq: Option<u64>,
    leak_reports: u64,
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
    pub fn new(k: &'a AccessKey, at: Timestamp) -> Self {
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
            leak_reported: k.leak_reported.map(|a| a.time),
            leak_reported_seq: k.leak_reported.map(|a| a.seq),
            leak_reports: k.leak_reports,
        }
    }
}

#[derive(serde::Serialize)]
pub struct KeyList<'a> {
    pub as_of_seq: u64,
    pub evaluated_at: Timestamp,
    pub keys: Vec<KeyView<'a>>,
}

/// A key and its history as `key show --json` prints them.
pub fn key_report(ctx: &Ctx, k: Option<&AccessKey>, history: &[HistoryRow]) -> serde_json::Value {
    let h: Vec<_> = history.iter().map(HistoryRow::json).collect();
    json!({"key": k.map(|k| KeyView::new(k, ctx.now)), "history": h})
}

/// Up to `limit` bytes of stdin, which may hold a secret: read into a buffer sized so it
/// never grows (growing leaves unzeroized copies), zeroized when dropped.
pub fn read_secret_input(limit: usize) -> Result<zeroize::Zeroizing<Vec<u8>>, CliError> {
    use std::io::Read;
    let mut raw = zeroize::Zeroizing::new(Vec::with_capacity(limit + 1));
    std::io::stdin()
        .take(limit as u64)
        .read_to_end(&mut raw)
        .map_err(|e| CliError::io(format!("reading the secret from stdin: {e}")))?;
    Ok(raw)
}

pub fn show_history(
    ctx: &Ctx,
    k: Option<&AccessKey>,
    history: &[HistoryRow],
) -> Result<(), CliError> {
    if ctx.json {
        return json(&key_report(ctx, k, history));
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
        if let Some(l) = &k.leak_reported {
            out.push_str(&format!(
                "  leak reported {} (seq {}; {} report{})\n",
                l.time,
                l.seq,
                k.leak_reports,
                if k.leak_reports == 1 { "" } else { "s" }
            ));
        }
        out.push_str(&format!(
            "  last used {}; failed attempts {}\n\n",
            or_dash(k.last_used.map(|u| u.time)),
            k.failed_auths
        ));
    }
    let rows: Vec<Vec<String>> = history.iter().map(HistoryRow::cells).collect();
    out.push_str(&table(&HistoryRow::HEADERS, &rows));
    print(&out)
}
