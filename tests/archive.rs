//! The WORM archive (issue 16) against a real S3 store with Object Lock (SeaweedFS, started
//! by the test): sealed segments and checkpoints are uploaded once and resumed; the store
//! refuses to delete or shorten them; a ledger rebuilt from the archive alone verifies
//! against its checkpoints; a rewrite, a missing segment or another ledger's archive is
//! reported, by seq range where it is one.

mod common;

use common::s3::{S3, SECRET_KEY};
use common::*;
use hyper::Method;
use serde_json::Value;

struct Run<'a> {
    dir: &'a std::path::Path,
    env: Vec<(&'static str, &'static str)>,
}

impl Run<'_> {
    fn run(&self, args: &[&str]) -> std::process::Output {
        let o = run_env(self.dir, &self.env, args, None);
        // The store's secret is the requester's alone: never printed.
        assert!(
            !stdout(&o).contains(SECRET_KEY) && !stderr(&o).contains(SECRET_KEY),
            "the S3 secret was printed"
        );
        o
    }

    fn json(&self, args: &[&str], want: i32) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let o = self.run(&all);
        assert_eq!(code(&o), want, "{args:?}: {}{}", stdout(&o), stderr(&o));
        serde_json::from_str(&stdout(&o)).unwrap_or(Value::Null)
    }
}

#[test]
fn the_archive_is_sealed_resumable_verifiable_alone_and_reports_what_is_missing() {
    let s3 = S3::start();
    let mut worm = s3.bucket("worm", true);
    s3.bucket("plain", false);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let r = Run {
        dir: d,
        env: s3.env(),
    };
    assert_eq!(code(&r.run(&["demo", "--dir", "demo"])), 0);
    let l = [
        "--ledger",
        "demo/demo.ledger",
        "--key",
        "demo/keys/acme.key",
    ];
    let ep = s3.endpoint.as_str();
    let archive = |to: &str, extra: &[&str], want: i32| {
        let mut a: Vec<&str> = l.to_vec();
        a.extend([
            "archive",
            "--to",
            to,
            "--endpoint",
            ep,
            "--retain-days",
            "1",
        ]);
        a.extend_from_slice(extra);
        r.json(&a, want)
    };
    // A bucket without Object Lock is refused: nothing there would be write-once.
    let o = r.run(
        &[
            &l[..],
            &["archive", "--to", "s3://plain/x", "--endpoint", ep],
        ]
        .concat(),
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("Object Lock"), "{}", stderr(&o));
    // Wrong credentials: the store's refusal, exit 5, and the wrong secret not echoed.
    let bad = run_env(
        d,
        &[
            ("AWS_ACCESS_KEY_ID", "KLTESTACCESSKEY"),
            ("AWS_SECRET_ACCESS_KEY", "not-the-secret-x9"),
        ],
        &[
            &l[..],
            &["archive", "--to", "s3://worm/acme", "--endpoint", ep],
        ]
        .concat(),
        None,
    );
    assert_eq!(code(&bad), 5, "{}", stderr(&bad));
    assert!(!stderr(&bad).contains("not-the-secret-x9"));

    let first = archive("s3://worm/acme", &["--segment-events", "10"], 0);
    let head = r.json(&["--ledger", "demo/demo.ledger", "verify"], 0)["report"].clone();
    let head_seq = head["head_seq"].as_u64().unwrap();
    let segs = first["result"]["uploaded"].as_array().unwrap().len() as u64;
    assert_eq!(segs, head_seq / 10 + 1, "{first}");
    // Again: nothing new. After a new event: one more segment, the rest untouched.
    let again = archive("s3://worm/acme", &["--segment-events", "10"], 0);
    assert_eq!(again["result"]["uploaded"], serde_json::json!([]));
    let user = r.run(&[&l[..], &["user", "create", "late"]].concat());
    assert_eq!(code(&user), 0);
    let more = archive("s3://worm/acme", &[], 0);
    assert_eq!(
        more["result"]["uploaded"],
        serde_json::json!([[head_seq + 1, head_seq + 1]])
    );

    // Verified from the archive alone: the same head, every checkpoint matched.
    let url = format!("s3://worm/acme?endpoint={ep}");
    let v = r.json(&["--ledger", &url, "verify"], 0);
    assert_eq!(v["report"]["ok"], true, "{v}");
    assert_eq!(v["report"]["head_seq"], head_seq + 1);
    assert_eq!(v["archive"]["covers_to"], head_seq + 1);
    assert_eq!(v["archive"]["checkpoints"], segs + 1);
    assert!(
        v["report"]["anchor"]
            .as_str()
            .unwrap()
            .contains("checkpoints match"),
        "{v}"
    );
    let file = r.json(&["--ledger", "demo/demo.ledger", "verify"], 0);
    assert_eq!(v["report"]["head_hash"], file["report"]["head_hash"]);
    {
        // The independent verifier on the rebuilt bytes (read back from the store).
        let mut bytes = Vec::new();
        let mut keys: Vec<_> = worm
            .versions("acme/segments/")
            .unwrap()
            .into_iter()
            .filter(|v| !v.delete_marker)
            .collect();
        keys.sort_by(|a, b| a.key.cmp(&b.key));
        for k in keys {
            bytes.extend(worm.get(&k.key, Some(&k.version_id)).unwrap().unwrap());
        }
        std::fs::write(d.join("rebuilt.ledger"), &bytes).unwrap();
        independent_verifier(&d.join("rebuilt.ledger"), true);
    }

    // The store refuses to delete a sealed segment or shorten its retention.
    let seg = "acme/segments/00000000000000000000-00000000000000000009.frames";
    let sealed = worm
        .versions(seg)
        .unwrap()
        .into_iter()
        .find(|v| v.key == seg && !v.delete_marker)
        .unwrap();
    let original = worm.get(seg, Some(&sealed.version_id)).unwrap().unwrap();
    let del = worm
        .raw(
            Method::DELETE,
            seg,
            &[("versionId", &sealed.version_id)],
            &[],
            Vec::new(),
        )
        .unwrap();
    assert_eq!(del.status.as_u16(), 403, "a sealed segment was deleted");
    let bypass = worm
        .raw(
            Method::DELETE,
            seg,
            &[("versionId", &sealed.version_id)],
            &[("x-amz-bypass-governance-retention", "true".into())],
            Vec::new(),
        )
        .unwrap();
    assert_eq!(bypass.status.as_u16(), 403, "COMPLIANCE was bypassed");
    let shorter = r#"<Retention xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Mode>COMPLIANCE</Mode><RetainUntilDate>2026-01-01T00:00:00Z</RetainUntilDate></Retention>"#;
    let shorten = worm
        .raw(
            Method::PUT,
            seg,
            &[("retention", ""), ("versionId", &sealed.version_id)],
            &[("content-type", "application/xml".into())],
            shorter.as_bytes().to_vec(),
        )
        .unwrap();
    assert!(
        shorten.status.is_client_error(),
        "retention shortened: {}",
        shorten.status
    );
    // Writing over it makes a new version (or is refused); the sealed one stays as it was,
    // it is what a verifier reads, and the attempt is reported.
    let over = worm
        .raw(
            Method::PUT,
            seg,
            &[],
            &[("content-type", "application/octet-stream".into())],
            b"forged".to_vec(),
        )
        .unwrap();
    let hide = worm.raw(Method::DELETE, seg, &[], &[], Vec::new()).unwrap();
    eprintln!("overwrite: {}, plain delete: {}", over.status, hide.status);
    assert_eq!(
        worm.get(seg, Some(&sealed.version_id)).unwrap().unwrap(),
        original
    );
    let tampered = r.json(&["--ledger", &url, "verify"], 1);
    assert_eq!(tampered["report"]["ok"], true, "{tampered}");
    assert_eq!(tampered["report"]["head_hash"], file["report"]["head_hash"]);
    assert_eq!(
        tampered["archive"]["rewritten"],
        serde_json::json!([seg]),
        "{tampered}"
    );

    // Other commands do not run on an archive that is not whole as if it were.
    let o = r.run(&["--ledger", &url, "log"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("written again"), "{}", stderr(&o));

    // A copy of the archive without segment 10-19: verify names the missing seqs, and
    // archiving into it is refused.
    let until = keyledger::core::types::Timestamp::now().plus_micros(86_400_000_000);
    // Copies the sealed objects of acme/ to `to`/, but those `skip` names.
    let mut copy = |to: &str, skip: &dyn Fn(&str) -> bool| {
        let all = worm.versions("acme/").unwrap();
        for (i, v) in all.iter().enumerate() {
            // The sealed version of a key is its last listed (S3 lists newest first).
            let sealed = !v.delete_marker && all[i + 1..].iter().all(|x| x.key != v.key);
            if !sealed || skip(&v.key) {
                continue;
            }
            let body = worm.get(&v.key, Some(&v.version_id)).unwrap().unwrap();
            let key = v.key.replacen("acme/", &format!("{to}/"), 1);
            assert!(worm.put_locked(&key, body, until).unwrap());
        }
    };
    copy("gap", &|k| k.contains("00000000000000000010-"));
    // A run stopped between a segment and its checkpoint: the next one completes it.
    let last_cp = format!("checkpoints/{:020}.checkpoint", head_seq + 1);
    copy("cut", &|k| k.ends_with(&last_cp));
    let cut = format!("s3://worm/cut?endpoint={ep}");
    assert_eq!(
        r.json(&["--ledger", &cut, "verify"], 1)["archive"]["without_checkpoint"],
        serde_json::json!([head_seq + 1])
    );
    let resumed = archive("s3://worm/cut", &[], 0);
    assert_eq!(
        resumed["result"]["checkpoints_completed"],
        serde_json::json!([head_seq + 1]),
        "{resumed}"
    );
    assert_eq!(
        r.json(&["--ledger", &cut, "verify"], 0)["report"]["ok"],
        true
    );
    let gap = format!("s3://worm/gap?endpoint={ep}");
    let g = r.json(&["--ledger", &gap, "verify"], 1);
    assert_eq!(
        g["archive"]["missing"],
        serde_json::json!([[10, 19]]),
        "{g}"
    );
    assert_eq!(g["archive"]["covers_to"], 9);
    let text = r.run(&["--ledger", &gap, "verify"]);
    assert!(
        stdout(&text).contains("seqs 10-19 are missing"),
        "{}",
        stdout(&text)
    );
    let o = r.run(
        &[
            &l[..],
            &["archive", "--to", "s3://worm/gap", "--endpoint", ep],
        ]
        .concat(),
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("10-19"), "{}", stderr(&o));

    // Objects planted before the first run, sealed, one byte off: never adopted, nothing
    // signed over them.
    let planted = worm
        .versions("acme/segments/00000000000000000000-")
        .unwrap()
        .into_iter()
        .last()
        .unwrap();
    let mut bad = worm
        .get(&planted.key, Some(&planted.version_id))
        .unwrap()
        .unwrap();
    bad[200] ^= 1;
    let pkey = "planted/segments/00000000000000000000-00000000000000000009.frames";
    assert!(worm.put_locked(pkey, bad, until).unwrap());
    let o = r.run(
        &[
            &l[..],
            &["archive", "--to", "s3://worm/planted", "--endpoint", ep],
        ]
        .concat(),
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("other bytes"), "{}", stderr(&o));
    assert!(
        worm.versions("planted/checkpoints/").unwrap().is_empty(),
        "a checkpoint was signed over a planted segment"
    );
    // A stray key is reported by verify, never taken for a segment.
    assert!(
        worm.put_locked("gap/segments/x", b"junk".to_vec(), until)
            .unwrap()
    );
    let g = r.json(&["--ledger", &gap, "verify"], 1);
    assert_eq!(
        g["archive"]["junk"],
        serde_json::json!(["gap/segments/x"]),
        "{g}"
    );

    // Another ledger's archive is not continued.
    assert_eq!(
        code(&r.run(&["--ledger", "other.ledger", "init", "--account", "other"])),
        0
    );
    let o = r.run(&[
        "--ledger",
        "other.ledger",
        "archive",
        "--to",
        "s3://worm/acme",
        "--endpoint",
        ep,
    ]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("not this ledger's"), "{}", stderr(&o));
    // An archive is read, never written through --ledger.
    let o = r.run(&[
        "--ledger",
        &url,
        "--key",
        "demo/keys/acme.key",
        "user",
        "create",
        "x",
    ]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
}
