//! log and inspect.

use std::collections::VecDeque;

use keyledger::core::event::Event;
use keyledger::core::signing::verify_hash;
use keyledger::core::state::State;
use keyledger::core::types::{Hash32, Timestamp};
use serde_json::json;

use keyledger::core::format::RawFrame;
use keyledger::evidence::export::Record;

use super::Ctx;
use super::args::{LogArgs, LogFormat};
use super::error::CliError;
use super::output::{clean, json, print, print_raw, table};
use super::views::{HistoryRow, history_row, ocsf_line, to_filter};
use keyledger::core::query::Filter;

/// How `log` prints: a table (or tab-separated lines when following), JSON, or OCSF.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Text,
    Json,
    Ocsf,
}

pub fn log(ctx: &Ctx, a: &LogArgs) -> Result<(), CliError> {
    let filter = to_filter(&a.filter)?;
    let limit = a.limit.unwrap_or(usize::MAX);
    if limit == 0 {
        return Err(CliError::usage("--limit must be at least 1"));
    }
    let mode = match (a.format, ctx.json) {
        (Some(LogFormat::Ocsf), _) => Mode::Ocsf,
        (Some(LogFormat::Json), _) | (None, true) => Mode::Json,
        _ => Mode::Text,
    };
    // The last `limit` matching events, oldest first (with their frames, for OCSF).
    type Kept = (HistoryRow, Option<(RawFrame, Event, Hash32)>);
    let mut rows: VecDeque<Kept> = VecDeque::new();
    let mut keep =
        |state: &State, frame: &RawFrame, ev: &Event, owner: Option<&str>, hash: &Hash32| {
            let actor = state.actor_and_enroller(ev).0;
            if filter.matches(ev, actor, owner) {
                if rows.len() == limit {
                    rows.pop_front();
                }
                let mut row = history_row(state, ev.clone());
                row.hash = Some(hash.hex());
                let raw = (mode == Mode::Ocsf).then(|| (frame.clone(), ev.clone(), *hash));
                rows.push_back((row, raw));
            }
        };
    // The state behind the rows: `--follow` continues from exactly its head, so that no
    // event appended meanwhile falls between the rows and the following.
    let (state, head, tree) = if let Some(key_id) = &filter.key {
        // Through this user's cache: only the frames that name this key are read.
        let v = ctx.read_head()?;
        let owner = v.state.keys.get(key_id).map(|k| k.user.as_str());
        for (frame, ev, hash) in super::views::trail_frames(ctx, &v, key_id)? {
            keep(&v.state, &frame, &ev, owner, &hash);
        }
        (v.state, v.head, v.tree)
    } else {
        let r = ctx.read(None, |seen| {
            keep(
                seen.state,
                seen.frame,
                seen.event,
                seen.state.key_owner(&seen.event.action),
                seen.hash,
            );
        })?;
        (r.state, r.head, r.tree)
    };
    if a.newest_first {
        rows.make_contiguous().reverse();
    }
    let mut lines = Vec::with_capacity(rows.len());
    if mode == Mode::Ocsf {
        // Shown with their signatures: checked again, as exports are.
        let raw: Vec<_> = rows.iter().filter_map(|(_, r)| r.as_ref()).collect();
        let refs: Vec<_> = raw.iter().map(|(f, e, h)| (f, e, h)).collect();
        keyledger::storage::store::recheck_signatures(&ctx.ledger, &refs)?;
        for (f, ev, h) in raw {
            let actor = state.actor_and_enroller(ev).0;
            lines.push(ocsf_line(&state, &Record::new(&state, f, ev, h, actor)));
        }
    }
    if a.follow {
        if mode == Mode::Ocsf {
            print_raw(&lines.concat())?;
        } else {
            for (r, _) in &rows {
                print_line(mode, r)?;
            }
        }
        return follow(ctx, mode, &filter, state, head, tree);
    }
    match mode {
        Mode::Ocsf => print_raw(&lines.concat()),
        Mode::Json => {
            let v: Vec<_> = rows.iter().map(|(r, _)| r.json()).collect();
            json(&json!({"events": v}))
        }
        Mode::Text => {
            let rows: Vec<Vec<String>> = rows.iter().map(|(r, _)| r.cells()).collect();
            print(&table(&HistoryRow::HEADERS, &rows))
        }
    }
}

/// One event as a line: JSON Lines in JSON mode, else tab-separated columns.
fn print_line(mode: Mode, r: &HistoryRow) -> Result<(), CliError> {
    if mode == Mode::Json {
        return print_raw(&format!("{}\n", r.json()));
    }
    let cells: Vec<String> = r.cells().iter().map(|c| clean(c)).collect();
    print(&format!("{}\n", cells.join("\t")))
}

/// Streams events appended after the current head until Ctrl-C or the ledger disappears.
/// Every new event is verified (signature, chain, signer, policy) before it is shown.
fn follow(
    ctx: &Ctx,
    mode: Mode,
    filter: &Filter,
    state: State,
    head: keyledger::core::chain::Head,
    tree: keyledger::core::merkle::TreeBuilder,
) -> Result<(), CliError> {
    use std::os::unix::fs::MetadataExt;
    let mut file =
        keyledger::storage::files::open_regular(&ctx.ledger, false).map_err(CliError::io)?;
    let ino = file.metadata().map_err(CliError::io)?.ino();
    let mut checker =
        keyledger::evidence::verify::Checker::resume(state, head, tree, Timestamp::now());
    let mut offset = head.end;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::io)?;
    rt.block_on(async {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
        // Registered once, so a Ctrl-C between two polls is not lost.
        let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
        loop {
            tokio::select! {
                _ = &mut ctrl_c => return Ok(()),
                _ = tick.tick() => {}
            }
            let meta = match std::fs::metadata(&ctx.ledger) {
                Ok(m) if m.ino() == ino => m,
                _ => {
                    eprintln!("keyledger: {} was removed or replaced; stopped following", ctx.ledger.display());
                    return Ok(());
                }
            };
            if meta.len() < offset {
                return Err(CliError {
                    code: super::error::LEDGER,
                    message: format!("{} shrank below byte {offset}: it was rewritten; run `keyledger verify`", ctx.ledger.display()),
                });
            }
            if meta.len() == offset {
                continue;
            }
            // Read through the handle opened at the start: the path may vanish at any moment.
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(offset)).map_err(CliError::io)?;
            let reader = std::io::BufReader::new(std::io::Read::take(&mut file, meta.len() - offset));
            // A frame still being written reads as torn: wait for the rest. Anything else
            // that cannot be framed is the end of following.
            for item in keyledger::core::format::FrameReader::at(reader, offset) {
                let frame = match item {
                    Ok(f) => f,
                    Err(keyledger::core::format::ReadError::Format(keyledger::core::format::FormatError::Torn { .. })) => break,
                    Err(e) => {
                        return Err(CliError {
                            code: super::error::LEDGER,
                            message: format!("{} at byte offset {offset}: {e}; run `keyledger verify`", ctx.ledger.display()),
                        });
                    }
                };
                let step = checker.step(&frame, |ev, h| verify_hash(&ev.signer, h, &frame.sig));
                if let Some(bad) = step.findings.first() {
                    return Err(CliError {
                        code: super::error::LEDGER,
                        message: format!("the event at seq {} (byte offset {}) fails its checks: {}; run `keyledger verify`", bad.seq.map_or("?".into(), |s| s.to_string()), bad.offset, bad.message),
                    });
                }
                offset = frame.end();
                let ev = step.event.expect("a frame without findings decodes");
                let state = &checker.state;
                let actor = state.actor_and_enroller(&ev).0;
                let owner = state.key_owner(&ev.action);
                if filter.matches(&ev, actor, owner) {
                    if mode == Mode::Ocsf {
                        print_raw(&ocsf_line(state, &Record::new(state, &frame, &ev, &step.hash, actor)))?;
                    } else {
                        let mut row = history_row(state, ev);
                        row.hash = Some(step.hash.hex());
                        print_line(mode, &row)?;
                    }
                }
            }
        }
    })
}

pub fn inspect(ctx: &Ctx, seq: u64) -> Result<(), CliError> {
    let mut found = None;
    let mut frame = None;
    ctx.read(Some(keyledger::storage::store::Until::Seq(seq)), |seen| {
        if seen.event.seq == seq {
            frame = Some((seen.frame.clone(), seen.event.clone(), *seen.hash));
            found = Some(json!({
                "seq": seen.event.seq,
                "time": seen.event.time.to_string(),
                "time_us": seen.event.time.0,
                "actor": seen.actor(),
                "key_enrolled_by": seen.state.actor_and_enroller(seen.event).1,
                "request": seen.event.request.as_ref().map(|r| json!({
                    "key": r.key.to_string(),
                    "time": r.time.to_string(),
                    "nonce": r.nonce.hex(),
                    "refused": r.refused,
                    "signature": r.sig.hex(),
                })),
                "second_factor": seen.event.factor.map(|f| json!({
                    "kind": f.kind.as_str(),
                    "step": f.step,
                })),
                "action": seen.event.action.tag(),
                "fields": seen.event.action,
                "prev_hash": seen.event.prev.hex(),
                "hash": seen.hash.hex(),
                "signer": seen.event.signer.to_string(),
                "signature": keyledger::core::types::to_hex(&seen.frame.sig),
                "offset": seen.frame.offset,
                "frame_len": seen.frame.len(),
                "body_len": seen.frame.body.len(),
                "body_hex": keyledger::core::types::to_hex(&seen.frame.body),
            }));
        }
    })?;
    let v = found.ok_or_else(|| {
        CliError::usage(format!("there is no event with seq {seq} in this ledger"))
    })?;
    // The signature shown must be the one that verifies, whatever the cache vouched for.
    if let Some((f, ev, h)) = &frame {
        keyledger::storage::store::recheck_signatures(&ctx.ledger, &[(f, ev, h)])?;
    }
    if ctx.json {
        return json(&v);
    }
    let mut out = String::new();
    for k in [
        "seq",
        "time",
        "actor",
        "key_enrolled_by",
        "second_factor",
        "action",
        "prev_hash",
        "hash",
        "signer",
        "signature",
        "offset",
        "frame_len",
        "body_len",
    ] {
        let s = match &v[k] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.push_str(&format!("{k:<10} {s}\n"));
    }
    out.push_str(&format!(
        "{:<10} {}\n",
        "fields",
        serde_json::to_string(&v["fields"]).map_err(CliError::io)?
    ));
    out.push_str(&format!(
        "{:<10} {}\n",
        "body",
        v["body_hex"].as_str().unwrap_or_default()
    ));
    print(&out)
}
