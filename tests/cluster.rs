//! Several `keyledger serve` nodes on one PostgreSQL ledger (issue 16), with a real
//! PostgreSQL started by the test: 3 nodes × 16 clients with a node killed (-9) mid-batch
//! in each of 20 rounds, and a primary killed under load and its synchronous standby
//! promoted. Every acknowledged write must be present exactly once, at its acknowledged
//! seq and hash; the chain never forks; every node's copy is a prefix of the database's.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::pg::{Pg, PgSite, free_port, ledger_bytes};
use common::site::Server;
use common::*;
use keyledger::client::{Client, ledger_info, submit};
use keyledger::core::event::Action;
use keyledger::core::request;
use keyledger::core::signing::SigningKey;
use keyledger::core::types::{LedgerId, Timestamp};
use keyledger::storage::cache::Cache;

/// (name, seq, hash) of each write a node acknowledged as appended.
type Acked = Arc<Mutex<Vec<(String, u64, String)>>>;

fn user(name: &str) -> Action {
    Action::UserCreated {
        name: name.into(),
        federated: false,
    }
}

/// Client `t` writes users `{tag}-c{t}-{i}` until `stop`, starting at node `t % n` and
/// moving to the next node when one stops answering (a write it sent to a dying node is
/// never retried elsewhere, so nothing can be applied twice by a client's doing).
fn client(
    t: usize,
    urls: Arc<Mutex<Vec<String>>>,
    ops: Arc<SigningKey>,
    acked: Acked,
    stop: Arc<AtomicBool>,
    tag: String,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut at = t;
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            let url = {
                let u = urls.lock().unwrap();
                u[at % u.len()].clone()
            };
            let connected = Client::new(&url, None).ok().and_then(|mut c| {
                let info = ledger_info(&mut c).ok()?;
                Some((c, LedgerId::parse_hex(&info.ledger_id).unwrap()))
            });
            let Some((mut c, id)) = connected else {
                at += 1;
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            while !stop.load(Ordering::Relaxed) {
                let name = format!("{tag}-c{t}-{i}");
                i += 1;
                let action = user(&name);
                let r = request::sign(&ops, &id, Timestamp::now(), &action);
                match submit(&mut c, &id, &[(action, r)], None) {
                    Ok(mut r) => {
                        let r = r.pop().unwrap();
                        assert_eq!(r.status, "appended", "{name}: {r:?}");
                        acked
                            .lock()
                            .unwrap()
                            .push((name, r.seq.unwrap(), r.hash.unwrap()));
                    }
                    Err(_) => {
                        at += 1;
                        break;
                    }
                }
            }
        }
    })
}

/// `n` clients (`client`), each writing users tagged `tag`.
fn start_clients(
    n: usize,
    urls: &Arc<Mutex<Vec<String>>>,
    ops: &Arc<SigningKey>,
    acked: &Acked,
    stop: &Arc<AtomicBool>,
    tag: impl Into<String>,
) -> Vec<std::thread::JoinHandle<()>> {
    let tag = tag.into();
    (0..n)
        .map(|t| {
            client(
                t,
                urls.clone(),
                ops.clone(),
                acked.clone(),
                stop.clone(),
                tag.clone(),
            )
        })
        .collect()
}

/// Checks the database's ledger: seqs contiguous, it verifies (our verifier and, when
/// given, the independent one), every acknowledged write is there once at its receipt.
fn check_ledger(dir: &std::path::Path, url: &str, name: &str, acked: &Acked) {
    let (bytes, seqs) = ledger_bytes(url, name);
    assert_eq!(seqs, (0..seqs.len() as i64).collect::<Vec<_>>());
    let file = dir.join("from-db.ledger");
    std::fs::write(&file, &bytes).unwrap();
    let mut hashes = HashMap::new();
    let mut created: HashMap<String, u32> = HashMap::new();
    keyledger::storage::store::replay(&file, &Cache::none(), None, |seen| {
        hashes.insert(seen.event.seq, seen.hash.hex());
        if let Action::UserCreated { name, .. } = &seen.event.action {
            *created.entry(name.clone()).or_default() += 1;
        }
    })
    .expect("the database's ledger verifies");
    let acked = acked.lock().unwrap();
    for (name, seq, hash) in acked.iter() {
        assert_eq!(created.get(name), Some(&1), "{name} was acknowledged");
        assert_eq!(
            hashes.get(seq),
            Some(hash),
            "seq {seq} is not {name}'s event"
        );
    }
    assert!(
        created.values().all(|&n| n == 1),
        "a user was created twice"
    );
    let o = run_in(dir, &["--ledger", url, "verify"], None);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    independent_verifier(&file, true);
}

#[test]
fn three_nodes_and_sixteen_clients_survive_twenty_kill_9s_with_nothing_lost_or_forked() {
    let site = PgSite::new();
    let d = site.dir.path();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut nodes: Vec<Option<Server>> = ports
        .iter()
        .map(|&p| Some(site.node_of(&site.url, p)))
        .collect();
    let urls = Arc::new(Mutex::new(
        nodes
            .iter()
            .map(|n| n.as_ref().unwrap().url.clone())
            .collect::<Vec<_>>(),
    ));
    let ops = Arc::new(site.key("ops"));
    let acked: Acked = Arc::default();
    for round in 0..20 {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = start_clients(16, &urls, &ops, &acked, &stop, format!("r{round}"));
        std::thread::sleep(Duration::from_millis(150 + (round * 37 % 200) as u64));
        let victim = round % 3;
        nodes[victim].take().unwrap().kill9();
        // The others go on taking writes without it for a while.
        std::thread::sleep(Duration::from_millis(150));
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().unwrap();
        }
        // It comes back on its own copy, cut at any torn frame and caught up.
        nodes[victim] = Some(site.node_of(&site.url, ports[victim]));
    }
    // A node killed while writing its copy of a committed frame comes back: the part it
    // holds is cut and the frame fetched again. A copy with other bytes there is refused.
    nodes[0].take().unwrap().stop();
    let mirror = site.mirror_of(&site.url, ports[0]);
    let len = std::fs::metadata(&mirror).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&mirror)
        .unwrap();
    f.set_len(len - 10).unwrap();
    nodes[0] = Some(site.node_of(&site.url, ports[0]));
    nodes[0].take().unwrap().stop();
    assert_eq!(std::fs::metadata(&mirror).unwrap().len(), len);
    let mut bytes = std::fs::read(&mirror).unwrap();
    bytes.truncate(bytes.len() - 10);
    let at = bytes.len() - 5;
    bytes[at] ^= 1;
    std::fs::write(&mirror, &bytes).unwrap();
    let o = run_in(
        d,
        &[
            "--ledger",
            &site.url,
            "--key",
            "gw.key",
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", ports[0]),
        ],
        None,
    );
    assert_ne!(
        code(&o),
        0,
        "a node started on a copy the database does not hold"
    );
    assert!(stderr(&o).contains("does not hold"), "{}", stderr(&o));
    std::fs::remove_file(&mirror).unwrap();
    nodes[0] = Some(site.node_of(&site.url, ports[0]));
    // Every node answers reads caught up to the others' writes.
    let last = acked.lock().unwrap().iter().map(|a| a.1).max().unwrap();
    for n in nodes.iter().flatten() {
        let mut c = Client::new(&n.url, None).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while ledger_info(&mut c).unwrap().seq < last {
            assert!(
                std::time::Instant::now() < deadline,
                "{} never caught up to {last}",
                n.url
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    for n in nodes.into_iter().flatten() {
        assert_eq!(n.stop(), 0, "a drained node exits 0");
    }
    let n = acked.lock().unwrap().len();
    assert!(n > 300, "only {n} writes acknowledged in 20 rounds");
    check_ledger(d, &site.url, &site.name, &acked);
    // No node's copy forked from the database's frames.
    let (bytes, _) = ledger_bytes(&site.url, &site.name);
    for &p in &ports {
        let mine = std::fs::read(site.mirror_of(&site.url, p)).unwrap();
        assert!(
            bytes.starts_with(&mine),
            "node :{p}'s copy is not the database's"
        );
    }
    eprintln!("3 nodes x 16 clients, 20 kill -9 rounds: {n} acknowledged writes, all present once");
}

#[test]
fn a_primary_killed_under_load_loses_nothing_acknowledged_once_its_synchronous_standby_is_promoted()
{
    let primary = Pg::start_with(&[
        "wal_level=replica",
        "max_wal_senders=5",
        "synchronous_standby_names=*",
    ]);
    let standby = Pg::standby_of(&primary);
    let mut c = postgres::Client::connect(&primary.admin_url(), postgres::NoTls).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while c
        .query(
            "SELECT 1 FROM pg_stat_replication WHERE sync_state = 'sync'",
            &[],
        )
        .unwrap()
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the standby never became synchronous"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(c);
    let mut site = PgSite::on(primary);
    let d = site.dir.path().to_path_buf();
    let ports: Vec<u16> = (0..2).map(|_| free_port()).collect();
    let nodes: Vec<Server> = ports.iter().map(|&p| site.node_of(&site.url, p)).collect();
    let urls = Arc::new(Mutex::new(nodes.iter().map(|n| n.url.clone()).collect()));
    let ops = Arc::new(site.key("ops"));
    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let clients = start_clients(16, &urls, &ops, &acked, &stop, "p");
    std::thread::sleep(Duration::from_millis(1500));
    site.pg.kill9();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let before = acked.lock().unwrap().len();
    assert!(
        before > 100,
        "only {before} writes acknowledged before the kill"
    );
    for n in nodes {
        n.kill9();
    }
    standby.promote();
    // The nodes, pointed at the promoted standby, serve the same ledger and take writes.
    let url = standby.ledger_url(&site.name);
    let nodes: Vec<Server> = ports.iter().map(|&p| site.node_of(&url, p)).collect();
    *urls.lock().unwrap() = nodes.iter().map(|n| n.url.clone()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let clients = start_clients(4, &urls, &ops, &acked, &stop, "s");
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    for n in nodes {
        assert_eq!(n.stop(), 0);
    }
    assert!(
        acked.lock().unwrap().len() > before,
        "no write after the failover"
    );
    check_ledger(&d, &url, &site.name, &acked);
    eprintln!(
        "failover: {before} writes acknowledged before the primary was killed, all on the promoted standby"
    );
}

#[test]
fn a_request_answered_by_one_node_is_a_replay_at_another_and_a_retry_gets_its_receipt() {
    use keyledger::protocol::wire::ReadAuth;
    let site = PgSite::new();
    let (a, b) = (free_port(), free_port());
    let (na, nb) = (site.node_of(&site.url, a), site.node_of(&site.url, b));
    let ops = site.key("ops");
    let mut ca = Client::new(&na.url, None).unwrap();
    let mut cb = Client::new(&nb.url, None).unwrap();
    let id = LedgerId::parse_hex(&ledger_info(&mut ca).unwrap().ledger_id).unwrap();
    // A signed read, answered by node A, is refused when sent again to node B.
    let target = "/v1/frames?from=0";
    let auth = ReadAuth::sign(&ops, &id, &format!("GET {target}"));
    let headers = auth.headers();
    let get = |c: &mut Client| {
        c.request(hyper::Method::GET, target, &headers, Vec::new())
            .unwrap()
            .status
            .as_u16()
    };
    assert_eq!(get(&mut ca), 200);
    assert_eq!(get(&mut cb), 409, "node B answered a read node A answered");
    assert_eq!(get(&mut ca), 409);
    // A write appended through node A and sent again to node B: its original receipt.
    let action = user("once");
    let r = request::sign(&ops, &id, Timestamp::now(), &action);
    let first = submit(&mut ca, &id, &[(action.clone(), r.clone())], None)
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(first.status, "appended");
    let again = submit(&mut cb, &id, &[(action, r)], None)
        .unwrap()
        .pop()
        .unwrap();
    assert!(again.replayed, "{again:?}");
    assert_eq!((again.seq, again.hash), (first.seq, first.hash));
    assert_eq!(na.stop(), 0);
    assert_eq!(nb.stop(), 0);
}

/// A database whose history was replaced under the nodes (a backup restored, then one new
/// event of the same size at the same offset): a node that verified the old head refuses
/// to chain on, answers instead of hanging, and writes nothing into the database.
#[test]
fn a_node_refuses_a_database_whose_history_was_replaced_under_it() {
    let site = PgSite::new();
    let (a, c) = (free_port(), free_port());
    let na = site.node_of(&site.url, a);
    let ops = site.key("ops");
    let write = |url: &str, name: &str| {
        let mut client = Client::new(url, None).unwrap();
        let id = LedgerId::parse_hex(&ledger_info(&mut client).unwrap().ledger_id).unwrap();
        let action = user(name);
        let r = request::sign(&ops, &id, Timestamp::now(), &action);
        submit(&mut client, &id, &[(action, r)], None)
    };
    assert_eq!(write(&na.url, "eve").unwrap()[0].status, "appended");
    // The restore: eve's row gone, the head moved back.
    let mut db = postgres::Client::connect(site.pg.admin_url().as_str(), postgres::NoTls).unwrap();
    let (seq, end): (i64, i64) = {
        let r = db
            .query_one(
                "SELECT seq, byte_offset FROM keyledger_frames WHERE ledger = $1 ORDER BY seq DESC LIMIT 1",
                &[&site.name],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    db.execute(
        "DELETE FROM keyledger_frames WHERE ledger = $1 AND seq = $2",
        &[&site.name, &seq],
    )
    .unwrap();
    db.execute(
        "UPDATE keyledger_ledgers SET head_seq = $2, head_end = $3 WHERE name = $1",
        &[&site.name, &(seq - 1), &end],
    )
    .unwrap();
    // Another node, new to the ledger, writes an event of the same size there.
    let nc = site.node_of(&site.url, c);
    assert_eq!(write(&nc.url, "zed").unwrap()[0].status, "appended");
    // Node A answers, and refuses: the head it verified is not the database's.
    let started = std::time::Instant::now();
    let r = write(&na.url, "fay");
    assert!(started.elapsed() < Duration::from_secs(20), "node A hung");
    let refused = match r {
        Err(e) => e.to_string(),
        Ok(items) => panic!("node A chained on a replaced history: {items:?}"),
    };
    assert!(refused.contains("another event"), "{refused}");
    // And it still answers (its writer did not deadlock), refusing again.
    assert!(write(&na.url, "gus").is_err());
    let o = run_in(site.dir.path(), &["--ledger", &site.url, "verify"], None);
    assert_eq!(
        code(&o),
        0,
        "the database's chain was broken: {}",
        stdout(&o)
    );
    drop((na, nc));
}

/// A node whose database connections were cut (a restart, a proxy's timeout) connects
/// again: at most the write in flight fails, never every write after it.
#[test]
fn a_node_connects_again_after_the_database_drops_its_connections() {
    let site = PgSite::new();
    let node = site.node_of(&site.url, free_port());
    let ops = site.key("ops");
    let mut client = Client::new(&node.url, None).unwrap();
    let id = LedgerId::parse_hex(&ledger_info(&mut client).unwrap().ledger_id).unwrap();
    let mut write = |name: &str| {
        let action = user(name);
        let r = request::sign(&ops, &id, Timestamp::now(), &action);
        submit(&mut client, &id, &[(action, r)], None).is_ok_and(|r| r[0].status == "appended")
    };
    assert!(write("before"));
    let mut db = postgres::Client::connect(site.pg.admin_url().as_str(), postgres::NoTls).unwrap();
    let cut = db
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'",
            &[],
        )
        .unwrap()
        .len();
    assert!(cut >= 2, "the node's connections were not found ({cut})");
    let ok = (0..5).filter(|i| write(&format!("after{i}"))).count();
    assert!(ok >= 4, "only {ok} of 5 writes after the cut were appended");
    assert_eq!(node.stop(), 0);
}
