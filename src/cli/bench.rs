//! bench: every figure beside the machine limit it is judged against, measured in one run.

use keyledger::protocol::ops::Ops;
use keyledger::storage::ledger::Appender;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use keyledger::core::event::Action;
use keyledger::core::signing::SigningKey;
use keyledger::core::types::Timestamp;
use keyledger::storage::cache::Cache;
use keyledger::storage::keyfile;
use keyledger::storage::store::Wait;
use keyledger::tools::bench::{self, Limits};
use serde_json::json;

use super::Ctx;
use super::error::CliError;
use super::output::{json, print, table};

/// One row: figure, measured value, the limit it is compared with, target ratio and whether
/// the target is met.
struct Row {
    figure: String,
    value: f64,
    unit: &'static str,
    limit: Option<(f64, &'static str)>,
    target: &'static str,
    met: bool,
}

pub fn verify_child(path: &std::path::Path) -> Result<(), CliError> {
    let t = Instant::now();
    let r = keyledger::evidence::verify::verify_file(path, &Default::default())
        .map_err(CliError::io)?;
    let secs = t.elapsed().as_secs_f64();
    json(
        &json!({"ok": r.ok, "events": r.events, "secs": secs, "peak_rss_kib": bench::peak_rss_kib()}),
    )
}

pub fn bench(ctx: &Ctx, events: u64, keep: Option<PathBuf>) -> Result<(), CliError> {
    if let Some(url) = &ctx.postgres {
        return postgres(ctx, url);
    }
    if events < 1000 {
        return Err(CliError::usage("--events must be at least 1000"));
    }
    let dir = match &keep {
        Some(d) => {
            if d.exists() && d.read_dir().map_err(CliError::io)?.next().is_some() {
                return Err(CliError::usage(format!("{} is not empty", d.display())));
            }
            std::fs::create_dir_all(d).map_err(CliError::io)?;
            d.clone()
        }
        None => {
            let d = std::env::temp_dir().join(format!("keyledger-bench-{}", std::process::id()));
            std::fs::create_dir_all(&d).map_err(CliError::io)?;
            d
        }
    };
    let result = run(ctx, events, &dir);
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// Runs this keyledger as a child with `args` (and `stdin`), on the bench's own cache;
/// returns the wall time in milliseconds, process start included.
fn timed_cli(
    cache: &Path,
    args: &[&str],
    stdin: Option<&str>,
    want_ok: bool,
) -> Result<f64, CliError> {
    let exe = std::env::current_exe().map_err(CliError::io)?;
    let t = Instant::now();
    let mut child = std::process::Command::new(&exe)
        .args(args)
        .env("KEYLEDGER_CACHE_DIR", cache)
        .env_remove("KEYLEDGER_NOW")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(CliError::io)?;
    if let Some(s) = stdin {
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(s.as_bytes())
            .map_err(CliError::io)?;
    }
    let out = child.wait_with_output().map_err(CliError::io)?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    if out.status.success() != want_ok {
        return Err(CliError::io(format!(
            "bench: `keyledger {}` exited {:?}: {}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(ms)
}

/// The median of `n` timed runs.
fn median_of(n: usize, mut f: impl FnMut() -> Result<f64, CliError>) -> Result<f64, CliError> {
    let mut v: Vec<f64> = (0..n).map(|_| f()).collect::<Result<_, _>>()?;
    Ok(bench::percentile(&mut v, 50.0))
}

fn run(ctx: &Ctx, events: u64, dir: &Path) -> Result<(), CliError> {
    let say = |s: &str| {
        if !ctx.json {
            super::output::message(&format!("bench: {s}"));
        }
    };
    say("measuring this machine's limits");
    let mut lim: Limits = bench::limits(dir).map_err(CliError::io)?;
    let (zip215_rate, strict_rate) = bench::single_verify_rates();
    let path = dir.join("bench.ledger");
    let cache_dir = dir.join("cache");
    let cache = Cache::at(&cache_dir);
    let p = path
        .to_str()
        .ok_or_else(|| CliError::usage("the bench directory must be UTF-8"))?;
    say(&format!("building a ledger of {events} events"));
    let t = Instant::now();
    let synth = keyledger::tools::synth::build(&path, events, bench::start_time(), 42)?;
    let append_rate = synth.events as f64 / t.elapsed().as_secs_f64();
    // This machine's speed drifts over a run (shared cores): each CPU limit is the mean of
    // a measurement before and one right after the figure it is compared with.
    lim.sign_per_s = (lim.sign_per_s + bench::sign_rate()) / 2.0;
    let gateway_key = dir.join("gateway.key");
    keyfile::write_new(&synth.account, &dir.join("bench.key")).map_err(CliError::from)?;
    keyfile::write_new(&synth.gateway, &gateway_key).map_err(CliError::from)?;
    let bytes = std::fs::metadata(&path).map_err(CliError::io)?.len();
    say("verifying in full, in a child process (for its peak memory)");
    let batch_before = bench::batch_verify_rate();
    let exe = std::env::current_exe().map_err(CliError::io)?;
    let out = std::process::Command::new(&exe)
        .arg("bench-verify-child")
        .arg(&path)
        .output()
        .map_err(CliError::io)?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| CliError::io(format!("verify child: {e}")))?;
    if v["ok"] != true {
        return Err(CliError::io("the generated ledger did not verify"));
    }
    let verify_rate = synth.events as f64 / v["secs"].as_f64().unwrap_or(f64::NAN);
    lim.batch_verify_per_s_per_core = (batch_before + bench::batch_verify_rate()) / 2.0;
    let rss_mib = v["peak_rss_kib"].as_f64().unwrap_or(f64::NAN) / 1024.0;
    say("`key list` with no cache (verifies in full and writes this user's cache)");
    let first_ms = timed_cli(
        &cache_dir,
        &["--ledger", p, "--json", "key", "list"],
        None,
        true,
    )?;
    say("replaying every event, trusting this user's cache for the signatures");
    let t = Instant::now();
    keyledger::storage::store::replay(&path, &cache, None, |_| {})?;
    let replay_rate = synth.events as f64 / t.elapsed().as_secs_f64();
    say("`key list` and `auth` with a warm cache");
    let key_list_ms = median_of(7, || {
        timed_cli(
            &cache_dir,
            &["--ledger", p, "--json", "key", "list"],
            None,
            true,
        )
    })?;
    // A key whose secret the bench knows, authenticated through the CLI by the gateway.
    let (key_id, secret) = {
        let mut l = keyledger::storage::ledger::Ledger::open_with(&path, Wait::Block, &cache)?;
        let now = l.head().time;
        l.append(
            &synth.account,
            keyledger::core::event::Action::UserCreated {
                name: "bench-auth".into(),
                federated: false,
            },
            now,
        )?;
        let k = l.create_key(
            &synth.admin,
            &keyledger::protocol::ops::KeyRequest {
                user: "bench-auth",
                scenario: "bench",
                confirmed_necessary: true,
                allow_root_key: false,
            },
            now,
        )?;
        (k.key_id, k.secret)
    };
    let gk = gateway_key.to_str().expect("UTF-8");
    let auth_ms = median_of(7, || {
        timed_cli(
            &cache_dir,
            &["--ledger", p, "--key", gk, "auth", &key_id],
            Some(secret.expose()),
            true,
        )
    })?;
    say("durable single-event appends");
    let (p50, p99) = bench::single_appends(&path, &synth.account, 200, &cache)?;
    say("`user list` at 25,000 and 100,000 principals (and as many keys)");
    let mut user_list = Vec::new();
    let mut leak_ms = 0.0;
    for users in [25_000usize, 100_000] {
        let up = dir.join(format!("principals-{users}.ledger"));
        keyledger::tools::synth::principals(&up, users, bench::start_time())?;
        let upath = up.to_str().expect("UTF-8");
        timed_cli(
            &cache_dir,
            &["--ledger", upath, "--json", "user", "list"],
            None,
            true,
        )?;
        user_list.push(median_of(5, || {
            timed_cli(
                &cache_dir,
                &["--ledger", upath, "--json", "user", "list"],
                None,
                true,
            )
        })?);
        // A secret of no key here: every key's fingerprint is compared (the worst case).
        let stranger = keyledger::core::credentials::SecretText::new_secret();
        leak_ms = median_of(5, || {
            timed_cli(
                &cache_dir,
                &["--ledger", upath, "leak"],
                Some(stranger.expose()),
                false,
            )
        })?;
    }
    let batch_limit = lim.batch_verify_per_s_per_core * lim.cores as f64;
    let rows = [
        Row {
            figure: "bulk append".into(),
            value: append_rate,
            unit: "events/s",
            limit: Some((lim.sign_per_s, "ed25519 sign, 1 core")),
            target: ">= 0.7",
            met: append_rate >= 0.7 * lim.sign_per_s,
        },
        Row {
            figure: "durable single append p50".into(),
            value: p50,
            unit: "us",
            limit: Some((lim.fdatasync_us, "one fdatasync")),
            target: "<= 2.0",
            met: p50 <= 2.0 * lim.fdatasync_us,
        },
        Row {
            figure: "durable single append p99".into(),
            value: p99,
            unit: "us",
            limit: Some((lim.fdatasync_us, "one fdatasync")),
            target: "-",
            met: true,
        },
        Row {
            figure: "replay trusting the cache".into(),
            value: replay_rate,
            unit: "events/s",
            limit: Some((lim.blake3_per_s, "blake3 300 B, 1 core")),
            target: ">= 1,000,000/s",
            met: replay_rate >= 1e6,
        },
        Row {
            figure: "full verify".into(),
            value: verify_rate,
            unit: "events/s",
            limit: Some((batch_limit, "verify_batch x cores")),
            target: ">= 0.8",
            met: verify_rate >= 0.8 * batch_limit,
        },
        Row {
            figure: "ZIP-215 single verify".into(),
            value: zip215_rate,
            unit: "sig/s",
            limit: Some((strict_rate, "dalek verify_strict, 1 core")),
            target: "-",
            met: true,
        },
        Row {
            figure: "peak RSS of verify".into(),
            value: rss_mib,
            unit: "MiB",
            limit: None,
            target: "<= 64 MiB",
            met: rss_mib <= 64.0,
        },
        Row {
            figure: "bytes per event".into(),
            value: bytes as f64 / synth.events as f64,
            unit: "B",
            limit: None,
            target: "-",
            met: true,
        },
        Row {
            figure: "key list, warm cache (process)".into(),
            value: key_list_ms,
            unit: "ms",
            limit: None,
            target: "< 100 ms",
            met: key_list_ms < 100.0,
        },
        Row {
            figure: "auth, warm cache (process, appends)".into(),
            value: auth_ms,
            unit: "ms",
            limit: Some((lim.fdatasync_us / 1000.0, "one fdatasync")),
            target: "< 100 ms",
            met: auth_ms < 100.0,
        },
        Row {
            figure: "key list, no cache (verifies all)".into(),
            value: first_ms,
            unit: "ms",
            limit: None,
            target: "-",
            met: true,
        },
        Row {
            figure: "user list, 25k principals (process)".into(),
            value: user_list[0],
            unit: "ms",
            limit: None,
            target: "-",
            met: true,
        },
        Row {
            figure: "user list, 100k principals (process)".into(),
            value: user_list[1],
            unit: "ms",
            limit: Some((user_list[0], "user list at 25k")),
            target: "< 8 (n log n 4.6, n^2 16)",
            met: user_list[1] < 8.0 * user_list[0],
        },
        Row {
            figure: "leak: a secret among 100k keys (process)".into(),
            value: leak_ms,
            unit: "ms",
            limit: None,
            target: "< 1000 ms",
            met: leak_ms < 1000.0,
        },
    ];
    let head = format!(
        "keyledger bench: {} events, {} cores; limits measured in this run: sign {:.0}/s, verify_batch {:.0}/s/core (each the mean of a measurement just before and just after its figure), blake3 {:.0}/s, fdatasync {:.0} us",
        synth.events,
        lim.cores,
        lim.sign_per_s,
        lim.batch_verify_per_s_per_core,
        lim.blake3_per_s,
        lim.fdatasync_us,
    );
    report(
        ctx,
        &head,
        &rows,
        json!({"events": synth.events, "limits": lim, "kept": dir}),
    )
}

/// Prints the rows as a table under `head`, or (with --json) as `figures` in `extra`.
fn report(
    ctx: &Ctx,
    head: &str,
    rows: &[Row],
    mut extra: serde_json::Value,
) -> Result<(), CliError> {
    if ctx.json {
        let r: Vec<_> = rows
            .iter()
            .map(|r| json!({"figure": r.figure, "value": r.value, "unit": r.unit, "limit": r.limit.map(|l| l.0), "limit_of": r.limit.map(|l| l.1), "ratio": r.limit.map(|l| r.value / l.0), "target": r.target, "met": r.met}))
            .collect();
        extra["figures"] = json!(r);
        return json(&extra);
    }
    let fmt = |v: f64| {
        if v >= 1000.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.2}")
        }
    };
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.figure.clone(),
                format!("{} {}", fmt(r.value), r.unit),
                r.limit
                    .map_or("-".into(), |l| format!("{} ({})", fmt(l.0), l.1)),
                r.limit
                    .map_or("-".into(), |l| format!("{:.2}", r.value / l.0)),
                r.target.into(),
                if r.met { "yes" } else { "NO" }.into(),
            ]
        })
        .collect();
    print(&format!(
        "{head}\n\n{}",
        table(
            &["FIGURE", "MEASURED", "LIMIT", "RATIO", "TARGET", "MET"],
            &table_rows
        )
    ))
}

/// `bench --ledger postgres://…?ledger=NAME` (issue 16): batched appends through the engine
/// (groups of 256 events, one transaction each, from one writer) beside the database's own
/// single-row synchronous commit rate measured in the same run. Ledger NAME is made for
/// the run and removed after it.
fn postgres(ctx: &Ctx, url: &str) -> Result<(), CliError> {
    use keyledger::storage::postgres as pg;
    let key = SigningKey::generate();
    let scratch = ctx.ledger.with_extension("bench-init");
    pg::init(url, "bench", &key, Timestamp::now(), &scratch)?;
    let measured = (|| -> Result<(f64, f64, u64), CliError> {
        let limit = pg::commit_rate(url, 300)?;
        let _ = ctx.cache.forget(&ctx.ledger);
        let _ = std::fs::remove_file(&ctx.ledger);
        let mut l = pg::PgLedger::open(url, &ctx.ledger, ctx.wait, &ctx.cache)?;
        let (batches, size) = (16u64, 256u64);
        let started = std::time::Instant::now();
        for b in 0..batches {
            let actions = (0..size)
                .map(|i| Action::UserCreated {
                    name: format!("u{b}-{i}"),
                    federated: false,
                })
                .collect();
            for o in l.append_batch(&key, actions, Timestamp::now())? {
                o.map_err(|(r, _)| CliError::io(format!("a bench append was refused: {r}")))?;
            }
        }
        let rate = (batches * size) as f64 / started.elapsed().as_secs_f64();
        Ok((rate, limit, batches * size))
    })();
    let _ = pg::drop_ledger(url);
    let _ = ctx.cache.forget(&ctx.ledger);
    let _ = std::fs::remove_file(&ctx.ledger);
    let (rate, limit, n) = measured?;
    let rows = vec![Row {
        figure: "PostgreSQL engine: batched appends (256 events per transaction)".into(),
        value: rate,
        unit: "events/s",
        limit: Some((limit, "single-row commits/s")),
        target: ">= 20x",
        met: rate >= 20.0 * limit,
    }];
    report(
        ctx,
        &format!(
            "keyledger bench on {url}: {n} events in transactions of 256, the database's single-row commit rate in the same run"
        ),
        &rows,
        json!({"ledger": url, "events": n}),
    )
}

/// `bench server --nodes N --ledger postgres://…` (issue 16): writes/s and p99 for 1..=N
/// nodes serving one PostgreSQL ledger, beside the database's single-row commit rate in the
/// same run; the target is N nodes together at least as fast as one.
pub fn nodes(ctx: &Ctx, clients: usize, seconds: f64, nodes: usize) -> Result<(), CliError> {
    let Some(url) = &ctx.postgres else {
        return Err(CliError::usage(
            "bench server --nodes serves one shared ledger from several nodes: give --ledger 'postgres://USER@HOST:PORT/DB?ledger=NAME' (NAME: a new scratch ledger, removed afterwards)",
        ));
    };
    if !(1.0..=600.0).contains(&seconds) {
        return Err(CliError::usage("--seconds must be between 1 and 600"));
    }
    let dir = std::env::temp_dir().join(format!("keyledger-bench-nodes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(CliError::io)?;
    let f = keyledger::tools::bench_server::run_nodes(&dir, url, clients, seconds, nodes);
    let _ = std::fs::remove_dir_all(&dir);
    let (figures, limit) = f?;
    let mut rows = Vec::new();
    for f in &figures {
        rows.push(Row {
            figure: format!("{} node(s): signed writes/s", f.nodes),
            value: f.writes_per_s,
            unit: "/s",
            limit: Some((limit, "single-row commits/s")),
            target: "-",
            met: true,
        });
        rows.push(Row {
            figure: format!("{} node(s): write p99", f.nodes),
            value: f.write_p99_ms,
            unit: "ms",
            limit: None,
            target: "-",
            met: true,
        });
    }
    let (one, all) = (&figures[0], &figures[figures.len() - 1]);
    if figures.len() > 1 {
        rows.push(Row {
            figure: format!("{} nodes together vs 1 node", all.nodes),
            value: all.writes_per_s,
            unit: "/s",
            limit: Some((one.writes_per_s, "1 node's writes/s")),
            target: ">= 1",
            met: all.writes_per_s >= one.writes_per_s,
        });
    }
    report(
        ctx,
        &format!(
            "keyledger bench server on {url}: {clients} signed writers over 1..{nodes} node(s), {seconds} s per node count"
        ),
        &rows,
        json!({"ledger": url, "clients": clients, "nodes": figures, "commit_rate": limit}),
    )
}

/// `bench server`: the server's figures beside the limits of the same run (issue 14's
/// targets on this 2-core machine).
pub fn server(ctx: &Ctx, clients: usize, seconds: f64) -> Result<(), CliError> {
    if !(1.0..=600.0).contains(&seconds) {
        return Err(CliError::usage("--seconds must be between 1 and 600"));
    }
    let dir = std::env::temp_dir().join(format!("keyledger-bench-server-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(CliError::io)?;
    let f = keyledger::tools::bench_server::run(&dir, clients, seconds);
    let _ = std::fs::remove_dir_all(&dir);
    let f = f?;
    let rows = vec![
        Row {
            figure: "signed writes/s vs one fsync per event".into(),
            value: f.writes_per_s,
            unit: "/s",
            limit: Some((f.fsync_per_s, "fdatasync/s")),
            target: ">= 4",
            met: f.writes_per_s >= 4.0 * f.fsync_per_s,
        },
        Row {
            figure: "signed writes/s vs crypto limit".into(),
            value: f.writes_per_s,
            unit: "/s",
            limit: Some((f.crypto_limit_per_s, "verify+sign, all cores")),
            target: ">= 0.5",
            met: f.writes_per_s >= 0.5 * f.crypto_limit_per_s,
        },
        Row {
            figure: "write p50".into(),
            value: f.write_p50_ms,
            unit: "ms",
            limit: None,
            target: "-",
            met: true,
        },
        Row {
            figure: "write p99".into(),
            value: f.write_p99_ms,
            unit: "ms",
            limit: None,
            target: "<= 25 ms",
            met: f.write_p99_ms <= 25.0,
        },
        Row {
            figure: "auth checks/s".into(),
            value: f.auth_per_s,
            unit: "/s",
            limit: None,
            target: ">= 20000",
            met: f.auth_per_s >= 20_000.0,
        },
        Row {
            figure: "auth p50".into(),
            value: f.auth_p50_ms,
            unit: "ms",
            limit: None,
            target: "-",
            met: true,
        },
        Row {
            figure: "auth p99".into(),
            value: f.auth_p99_ms,
            unit: "ms",
            limit: None,
            target: "<= 5 ms",
            met: f.auth_p99_ms <= 5.0,
        },
    ];
    let head = format!(
        "keyledger bench server: {} clients, {:.0} s ({} writes, {} auth checks recorded as {} events, {} failed requests; writes in {} group commits of {:.1} events and {:.2} ms each), {} cores; limits measured in this run: fdatasync {:.0}/s, sign {:.0}/s/core, verify {:.0}/s/core",
        f.clients,
        f.seconds,
        f.writes,
        f.auths,
        f.auth_events,
        f.failed_requests,
        f.write_commits,
        f.write_batch_mean,
        f.write_commit_ms,
        f.cores,
        f.fsync_per_s,
        f.sign_per_s_per_core,
        f.verify_per_s_per_core,
    );
    report(ctx, &head, &rows, json!({"server": f}))
}
