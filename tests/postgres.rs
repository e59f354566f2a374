//! The PostgreSQL engine (issue 16, first part) against a real PostgreSQL started by the
//! test: the CLI on `--ledger postgres://…` creates, writes, reads, verifies and audits; the
//! frames are those of a file (the same genesis and head hashes); two writers racing never
//! give two events one seq.

mod common;

use common::pg::Pg;
use common::*;
use serde_json::Value;

fn ok(dir: &std::path::Path, args: &[&str]) -> String {
    let o = run_in(dir, args, None);
    assert_eq!(code(&o), 0, "{args:?}: {}{}", stdout(&o), stderr(&o));
    stdout(&o)
}

#[test]
fn the_cli_runs_on_a_postgres_ledger_and_racing_writers_never_fork_it() {
    let pg = Pg::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let url = pg.ledger_url("acme-prod");
    let l = ["--ledger", url.as_str(), "--key", "acme.key"];
    let with =
        |rest: &[&str]| -> Vec<String> { l.iter().chain(rest).map(|s| s.to_string()).collect() };
    let run = |rest: &[&str]| {
        let a = with(rest);
        ok(d, &a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let init: Value = serde_json::from_str(&ok(
        d,
        &[
            "--ledger",
            &url,
            "--json",
            "init",
            "--account",
            "acme",
            "--key-out",
            "acme.key",
        ],
    ))
    .unwrap();
    let genesis = init["genesis_hash"].as_str().unwrap().to_owned();
    // The same name again is refused: a ledger is created once.
    let o = run_in(
        d,
        &[
            "--ledger",
            &url,
            "init",
            "--account",
            "acme",
            "--key-out",
            "again.key",
        ],
        None,
    );
    assert_ne!(code(&o), 0);
    run(&["user", "create", "alice"]);
    run(&["grant", "alice", "manage-own-keys"]);
    // Two writers at once, each creating users: every one present, seqs contiguous.
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (url, d) = (url.clone(), d.to_path_buf());
            std::thread::spawn(move || {
                for i in 0..15 {
                    let cache = d.join(format!("cache-{w}"));
                    let o = run_env(
                        &d,
                        &[("KEYLEDGER_CACHE_DIR", cache.to_str().unwrap())],
                        &[
                            "--ledger",
                            &url,
                            "--key",
                            "acme.key",
                            "user",
                            "create",
                            &format!("u{w}-{i}"),
                        ],
                        None,
                    );
                    assert_eq!(code(&o), 0, "{}", stderr(&o));
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let log: Value =
        serde_json::from_str(&run(&["--json", "log", "--action", "user-created"])).unwrap();
    assert_eq!(log["events"].as_array().unwrap().len(), 31);
    let v = run(&["--json", "verify", "--expect-genesis", &genesis]);
    let report: Value = serde_json::from_str(&v).unwrap();
    assert_eq!(report["report"]["ok"], true, "{report}");
    assert_eq!(
        report["ledger"],
        url.as_str(),
        "the ledger as the user named it"
    );
    // Byte for byte what a file would hold: the frames from the database, as a file, verify
    // with the same hashes.
    let file = d.join("copy.ledger");
    let mut bytes = Vec::new();
    let mut c = postgres::Client::connect(url.split('?').next().unwrap(), postgres::NoTls).unwrap();
    let h: Vec<u8> = c
        .query_one(
            "SELECT header FROM keyledger_ledgers WHERE name = 'acme-prod'",
            &[],
        )
        .unwrap()
        .get(0);
    bytes.extend(h);
    let mut seqs = Vec::new();
    for r in c
        .query(
            "SELECT seq, frame FROM keyledger_frames WHERE ledger = 'acme-prod' ORDER BY seq",
            &[],
        )
        .unwrap()
    {
        seqs.push(r.get::<_, i64>(0));
        bytes.extend(r.get::<_, Vec<u8>>(1));
    }
    assert_eq!(
        seqs,
        (0..seqs.len() as i64).collect::<Vec<_>>(),
        "seqs are contiguous"
    );
    std::fs::write(&file, &bytes).unwrap();
    let fv: Value = serde_json::from_str(&ok(
        d,
        &[
            "--ledger",
            file.to_str().unwrap(),
            "--json",
            "verify",
            "--expect-genesis",
            &genesis,
        ],
    ))
    .unwrap();
    assert_eq!(fv["report"]["ok"], true, "{fv}");
    assert_eq!(
        fv["report"]["head_hash"], report["report"]["head_hash"],
        "{fv} {report}"
    );
    independent_verifier(&file, true);
    // Reads and audits run on the verified copy.
    let audit = run_in(
        d,
        &with(&["audit"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        None,
    );
    assert!(matches!(code(&audit), 0 | 1), "{}", stderr(&audit));
    // Editing a stored frame is caught: it no longer verifies.
    c.execute(
        "UPDATE keyledger_frames SET frame = overlay(frame placing '\\x00'::bytea from 30 for 1) WHERE ledger = 'acme-prod' AND seq = 3",
        &[],
    )
    .unwrap();
    let fresh = d.join("fresh-cache");
    let o = run_env(
        d,
        &[("KEYLEDGER_CACHE_DIR", fresh.to_str().unwrap())],
        &["--ledger", &url, "verify"],
        None,
    );
    assert_ne!(code(&o), 0, "an edited frame verifies: {}", stdout(&o));
}

#[test]
fn a_file_imported_into_postgres_and_exported_back_is_byte_identical() {
    let pg = Pg::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["demo", "--dir", "demo"]);
    let file = d.join("demo/demo.ledger");
    let url = pg.ledger_url("imported");
    let o: Value = serde_json::from_str(&ok(
        d,
        &["--ledger", &url, "--json", "import", file.to_str().unwrap()],
    ))
    .unwrap();
    // Importing again into the same name is refused; a file that does not verify is refused.
    let o2 = run_in(
        d,
        &["--ledger", &url, "import", file.to_str().unwrap()],
        None,
    );
    assert_ne!(code(&o2), 0);
    let mut broken = std::fs::read(&file).unwrap();
    let n = broken.len();
    broken[n - 70] ^= 1;
    std::fs::write(d.join("broken.ledger"), &broken).unwrap();
    let o3 = run_in(
        d,
        &[
            "--ledger",
            &pg.ledger_url("broken"),
            "import",
            "broken.ledger",
        ],
        None,
    );
    assert_eq!(code(&o3), 1, "{}", stderr(&o3));
    ok(
        d,
        &[
            "--ledger",
            &url,
            "export",
            "--format",
            "ledger",
            "--out",
            "back.ledger",
        ],
    );
    assert_eq!(
        std::fs::read(d.join("back.ledger")).unwrap(),
        std::fs::read(&file).unwrap(),
        "exported back byte for byte"
    );
    let v: Value = serde_json::from_str(&ok(d, &["--ledger", &url, "--json", "verify"])).unwrap();
    assert_eq!(v["report"]["head_hash"], o["head_hash"]);
    // And it takes writes like any ledger.
    ok(
        d,
        &[
            "--ledger",
            &url,
            "--key",
            "demo/keys/acme.key",
            "user",
            "create",
            "zed",
        ],
    );
}

/// The engine's bench runs against a real database and reports its figure beside the
/// database's own commit rate (the figures themselves are the bench's business, not a test's).
#[test]
fn bench_on_postgres_reports_appends_beside_the_commit_rate_and_leaves_nothing() {
    let pg = Pg::start();
    let dir = tempfile::tempdir().unwrap();
    let url = pg.ledger_url("bench");
    let out: Value =
        serde_json::from_str(&ok(dir.path(), &["--ledger", &url, "--json", "bench"])).unwrap();
    let f = &out["figures"][0];
    assert!(
        f["value"].as_f64().unwrap() > 0.0 && f["limit"].as_f64().unwrap() > 0.0,
        "{out}"
    );
    assert_eq!(f["limit_of"], "single-row commits/s");
    // The bench's ledger is gone afterwards: the name can be created again.
    ok(
        dir.path(),
        &[
            "--ledger",
            &url,
            "init",
            "--account",
            "acme",
            "--key-out",
            "acme.key",
        ],
    );
}
