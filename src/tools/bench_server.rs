//! `keyledger bench server`: a real server on loopback, driven by concurrent signed writers
//! and then gateways checking keys, beside the machine limits measured in the same run
//! (fdatasync rate, Ed25519 sign and verify per core).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::{Client, ledger_info, post, submit};
use crate::core::credentials::SecretText;
use crate::core::event::{Action, Permission};
use crate::core::request;
use crate::core::signing::SigningKey;
use crate::core::types::{LedgerId, Timestamp};
use crate::protocol::ops::{KeyRequest, Ops};
use crate::protocol::wire::{self, AuthBody};
use crate::server::{self, Config};
use crate::storage::cache::Cache;
use crate::storage::ledger::{Appender, Ledger};
use crate::storage::store::StoreError;
use crate::tools::bench::{percentile, sign_rate, single_verify_rates};

#[derive(Debug, Clone, Serialize)]
pub struct ServerFigures {
    pub clients: usize,
    pub seconds: f64,
    pub cores: usize,
    /// One small write + fdatasync per event, events per second.
    pub fsync_per_s: f64,
    pub sign_per_s_per_core: f64,
    pub verify_per_s_per_core: f64,
    /// One request verify + one frame sign per event, on every core.
    pub crypto_limit_per_s: f64,
    pub writes: usize,
    pub writes_per_s: f64,
    pub write_p50_ms: f64,
    pub write_p99_ms: f64,
    pub auths: usize,
    pub auth_per_s: f64,
    pub auth_p50_ms: f64,
    pub auth_p99_ms: f64,
    /// Events the auth phase appended (successes coalesced per key per minute).
    pub auth_events: u64,
    /// Group commits in the write phase: how many, mean events in one, mean time of one
    /// (validate, chain, sign, write, fdatasync), ms.
    pub write_commits: u64,
    pub write_batch_mean: f64,
    pub write_commit_ms: f64,
    pub failed_requests: usize,
}

/// Runs the benchmark in `dir` (a new ledger there): `clients` writers for half of
/// `seconds`, then `clients` gateways checking keys for the other half.
pub fn run(dir: &Path, clients: usize, seconds: f64) -> Result<ServerFigures, StoreError> {
    let io = |e: std::io::Error| StoreError::Remote(format!("bench server: {e}"));
    // The limits first, so the load does not disturb them.
    let fsync_per_s = 1e6
        / crate::tools::bench::limits(dir)
            .map_err(io)?
            .fdatasync_us
            .max(1.0);
    let sign = sign_rate();
    let verify = single_verify_rates().0;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let crypto_limit = cores as f64 / (1.0 / sign + 1.0 / verify);

    let path = dir.join("bench-server.ledger");
    let account = SigningKey::generate();
    let gw = SigningKey::generate();
    let ops = SigningKey::generate();
    let now = Timestamp::now();
    let (mut l, _) = Ledger::init(&path, "acme", &account, now)?;
    l.append_batch(&account, principals(&gw, &ops), now)?;
    // Keys the gateways check, one per client (each user holds at most two).
    let mut keys = Vec::new();
    for i in 0..clients.div_ceil(2) {
        let user = format!("svc{i}");
        l.append(
            &account,
            Action::UserCreated {
                name: user.clone(),
                federated: false,
            },
            now,
        )?;
        for _ in 0..2 {
            let k = l.create_key(
                &ops,
                &KeyRequest {
                    user: &user,
                    scenario: "bench",
                    confirmed_necessary: true,
                    allow_root_key: false,
                },
                now,
            )?;
            keys.push((k.key_id.clone(), k.secret));
        }
    }
    drop(l);
    let log: server::LogSink = Arc::new(|_: &str| {});
    let mut config = Config::new(
        path.clone(),
        SigningKey::from_seed(&gw.seed()),
        "127.0.0.1:0".parse().expect("an address"),
        log,
    );
    config.cache = Cache::none();
    let running = server::start(config).map_err(|e| StoreError::Remote(e.to_string()))?;
    let url = running.url.clone();
    let half = Duration::from_secs_f64(seconds / 2.0);

    let ops = Arc::new(ops);
    let (writes, failed_w) = drive(clients, half, &url, |c, id, t, i| {
        let a = Action::UserCreated {
            name: format!("w{t}-{i}"),
            federated: false,
        };
        let r = request::sign(&ops, id, Timestamp::now(), &a);
        submit(c, id, &[(a, r)], None).is_ok_and(|r| r[0].status == "appended")
    });
    let events_before = events_of(&url)?;
    let (write_commits, write_batch_mean) = running.metrics().batch_events.mean();
    let write_commit_ms = running.metrics().fsync_seconds.mean().1 * 1e3;
    let keys = Arc::new(keys);
    let gw = Arc::new(gw);
    let (auths, failed_a) = drive(clients, half, &url, |c, id, t, _| {
        let (key_id, secret): &(String, SecretText) = &keys[t % keys.len()];
        let a = Action::AuthSucceeded {
            key_id: key_id.clone(),
        };
        let r = request::sign(&gw, id, Timestamp::now(), &a);
        let body = AuthBody {
            key_id: key_id.clone(),
            secret: secret.expose().to_owned(),
            token: None,
            request: wire::encode_request(&a, &r),
        };
        let body = serde_json::to_vec(&body).expect("encodes");
        post(c, "/v1/auth", body).is_ok_and(|(s, b)| {
            s.is_success() && serde_json::from_slice::<wire::AuthReply>(&b).is_ok_and(|a| a.ok)
        })
    });
    let auth_events = events_of(&url)? - events_before;
    running.stop();
    let stats = |mut v: Vec<f64>, secs: f64| {
        let n = v.len();
        (
            n,
            n as f64 / secs,
            percentile(&mut v, 50.0),
            percentile(&mut v, 99.0),
        )
    };
    let (nw, wps, w50, w99) = stats(writes, half.as_secs_f64());
    let (na, aps, a50, a99) = stats(auths, half.as_secs_f64());
    Ok(ServerFigures {
        clients,
        seconds,
        cores,
        fsync_per_s,
        sign_per_s_per_core: sign,
        verify_per_s_per_core: verify,
        crypto_limit_per_s: crypto_limit,
        writes: nw,
        writes_per_s: wps,
        write_p50_ms: w50,
        write_p99_ms: w99,
        auths: na,
        auth_per_s: aps,
        auth_p50_ms: a50,
        auth_p99_ms: a99,
        auth_events,
        write_commits,
        write_batch_mean,
        write_commit_ms,
        failed_requests: failed_w + failed_a,
    })
}

/// The bench's server principal `gw` (server) and operator `ops` (admin), with their keys.
fn principals(gw: &SigningKey, ops: &SigningKey) -> Vec<Action> {
    let mut setup = vec![];
    for (name, perm, key) in [
        ("gw", Permission::Server, gw),
        ("ops", Permission::Admin, ops),
    ] {
        setup.push(Action::UserCreated {
            name: name.into(),
            federated: false,
        });
        setup.push(Action::permission_change(true, name.into(), perm));
        setup.push(Action::signer_change(true, name.into(), key.public()));
    }
    setup
}

fn events_of(url: &str) -> Result<u64, StoreError> {
    let mut c = Client::new(url, None).map_err(StoreError::Remote)?;
    Ok(ledger_info(&mut c)?.seq + 1)
}

/// `clients` threads, each with its own connection, calling `one` until `time` is up; the
/// latencies (ms) of the calls that succeeded, and how many failed.
fn drive(
    clients: usize,
    time: Duration,
    url: &str,
    one: impl Fn(&mut Client, &LedgerId, usize, usize) -> bool + Sync,
) -> (Vec<f64>, usize) {
    drive_over(clients, time, &[url.to_owned()], one)
}

/// As `drive`, client `t` talking to `urls[t % urls.len()]`.
fn drive_over(
    clients: usize,
    time: Duration,
    urls: &[String],
    one: impl Fn(&mut Client, &LedgerId, usize, usize) -> bool + Sync,
) -> (Vec<f64>, usize) {
    let start = Instant::now();
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..clients)
            .map(|t| {
                let one = &one;
                let url = urls[t % urls.len()].as_str();
                s.spawn(move || {
                    let mut lat = Vec::new();
                    let mut failed = 0;
                    let Ok(mut c) = Client::new(url, None) else {
                        return (lat, 1);
                    };
                    let Ok(info) = ledger_info(&mut c) else {
                        return (lat, 1);
                    };
                    let id = LedgerId::parse_hex(&info.ledger_id).expect("a ledger id");
                    let mut i = 0;
                    while start.elapsed() < time {
                        let t0 = Instant::now();
                        if one(&mut c, &id, t, i) {
                            lat.push(t0.elapsed().as_secs_f64() * 1e3);
                        } else {
                            failed += 1;
                        }
                        i += 1;
                    }
                    (lat, failed)
                })
            })
            .collect();
        let mut all = Vec::new();
        let mut failed = 0;
        for t in threads {
            let (l, f) = t.join().expect("a bench client does not panic");
            all.extend(l);
            failed += f;
        }
        (all, failed)
    })
}

/// One node count of `bench server --nodes N` on a PostgreSQL ledger.
#[derive(Debug, Clone, Serialize)]
pub struct NodesFigures {
    pub nodes: usize,
    pub writes: usize,
    pub writes_per_s: f64,
    pub write_p50_ms: f64,
    pub write_p99_ms: f64,
    pub failed_requests: usize,
}

/// `bench server --nodes N --ledger postgres://…` (issue 16): a new ledger NAME in the
/// database (removed afterwards), served by 1, then 2, … `nodes` nodes in this process, each
/// on its own mirror in `dir`; `clients` signed writers spread over the nodes for `seconds`
/// per node count; and the database's single-row synchronous commit rate, the limit.
pub fn run_nodes(
    dir: &Path,
    url: &str,
    clients: usize,
    seconds: f64,
    nodes: usize,
) -> Result<(Vec<NodesFigures>, f64), StoreError> {
    use crate::storage::postgres::{self as pg, PgLedger};
    let account = SigningKey::generate();
    let gw = SigningKey::generate();
    let ops = SigningKey::generate();
    let now = Timestamp::now();
    pg::init(url, "acme", &account, now, &dir.join("init.scratch"))?;
    let measured = (|| {
        let limit = pg::commit_rate(url, 300)?;
        let mut l = PgLedger::open(
            url,
            &dir.join("setup.ledger"),
            crate::storage::store::Wait::Block,
            &Cache::none(),
        )?;
        l.append_batch(&account, principals(&gw, &ops), now)?;
        drop(l);
        let ops = Arc::new(ops);
        let mut out = Vec::new();
        for n in 1..=nodes {
            let running = (0..n)
                .map(|i| {
                    let mut config = Config::new(
                        dir.join(format!("nodes{n}-node{i}.ledger")),
                        SigningKey::from_seed(&gw.seed()),
                        "127.0.0.1:0".parse().expect("an address"),
                        Arc::new(|_: &str| {}),
                    );
                    config.postgres = Some(url.to_owned());
                    config.cache = Cache::none();
                    server::start(config).map_err(|e| StoreError::Remote(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let urls: Vec<String> = running.iter().map(|r| r.url.clone()).collect();
            let time = Duration::from_secs_f64(seconds);
            let (writes, failed) = drive_over(clients, time, &urls, |c, id, t, i| {
                let a = Action::UserCreated {
                    name: format!("n{n}-w{t}-{i}"),
                    federated: false,
                };
                let r = request::sign(&ops, id, Timestamp::now(), &a);
                submit(c, id, &[(a, r)], None).is_ok_and(|r| r[0].status == "appended")
            });
            for r in running {
                r.stop();
            }
            let mut w = writes;
            out.push(NodesFigures {
                nodes: n,
                writes: w.len(),
                writes_per_s: w.len() as f64 / seconds,
                write_p50_ms: percentile(&mut w, 50.0),
                write_p99_ms: percentile(&mut w, 99.0),
                failed_requests: failed,
            });
        }
        Ok((out, limit))
    })();
    let _ = pg::drop_ledger(url);
    measured
}
