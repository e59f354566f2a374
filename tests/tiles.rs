//! `keyledger tiles` (issue 17): the log as C2SP tlog-tiles. A client that reads only the
//! files (and hashes with its own RFC 6962 code, here) reproduces the checkpoint's root,
//! an earlier checkpoint's root from the same tiles (consistency), and every level-1 hash.

mod common;

use common::*;
use sha2::{Digest, Sha256};

fn leaf(data: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update([0u8])
        .chain_update(data)
        .finalize()
        .into()
}

fn node(l: &[u8; 32], r: &[u8; 32]) -> [u8; 32] {
    Sha256::new()
        .chain_update([1u8])
        .chain_update(l)
        .chain_update(r)
        .finalize()
        .into()
}

/// RFC 6962 MTH over leaf hashes.
fn mth(h: &[[u8; 32]]) -> [u8; 32] {
    match h.len() {
        0 => Sha256::digest([]).into(),
        1 => h[0],
        n => {
            let k = 1 << (usize::BITS - (n - 1).leading_zeros() - 1);
            node(&mth(&h[..k]), &mth(&h[k..]))
        }
    }
}

/// What a tile client gets from `dir` for a tree of `size`: every leaf hash, from the
/// level-0 tiles (full ones, then the partial one), each checked against its entry bundle.
fn leaf_hashes(dir: &std::path::Path, size: u64) -> Vec<[u8; 32]> {
    let mut out = Vec::new();
    let full = size / 256;
    for n in 0..=full {
        let w = if n < full { 256 } else { size % 256 };
        if w == 0 {
            break;
        }
        let p = keyledger::evidence::tiles::tile_path(Some(0), n, w);
        let e = keyledger::evidence::tiles::tile_path(None, n, w);
        let tile = std::fs::read(dir.join(&p)).unwrap_or_else(|_| panic!("no {p}"));
        let bundle = std::fs::read(dir.join(&e)).unwrap_or_else(|_| panic!("no {e}"));
        assert_eq!(tile.len() as u64, 32 * w, "{p}");
        assert_eq!(bundle.len() as u64, 34 * w, "{e}");
        for i in 0..w as usize {
            assert_eq!(
                &bundle[34 * i..34 * i + 2],
                &[0, 32],
                "{e}: a 32-byte entry"
            );
            let entry = &bundle[34 * i + 2..34 * i + 34];
            assert_eq!(&leaf(entry)[..], &tile[32 * i..32 * i + 32], "{e}[{i}]");
            out.push(tile[32 * i..32 * i + 32].try_into().unwrap());
        }
    }
    out
}

fn root_of(note: &str) -> (u64, [u8; 32]) {
    let (cp, _, _) = keyledger::evidence::checkpoint::Checkpoint::parse(note).unwrap();
    (cp.size, cp.root)
}

#[test]
fn a_client_of_the_tiles_alone_reproduces_roots() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ledger = d.join("big.ledger");
    let s = keyledger::tools::synth::build(&ledger, 600, keyledger::tools::bench::start_time(), 7)
        .unwrap();
    keyledger::storage::keyfile::write_new(&s.account, &d.join("acme.key")).unwrap();
    let l = ["--ledger", "big.ledger", "--key", "acme.key"];
    let o = run_in(d, &[&l[..], &["tiles", "--out", "t"]].concat(), None);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let first = std::fs::read_to_string(d.join("t/checkpoint")).unwrap();
    let (n1, r1) = root_of(&first);
    // More events, then the tiles again: the full tiles are kept, the new checkpoint covers all.
    for i in 0..3 {
        let o = run_in(
            d,
            &[&l[..], &["user", "create", &format!("late{i}")]].concat(),
            None,
        );
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    let o = run_in(
        d,
        &[&l[..], &["--json", "tiles", "--out", "t"]].concat(),
        None,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let again: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(again["kept"].as_u64().unwrap() >= 2, "{again}");
    let (n2, r2) = root_of(&std::fs::read_to_string(d.join("t/checkpoint")).unwrap());
    assert_eq!(n2, n1 + 3);
    let leaves = leaf_hashes(&d.join("t"), n2);
    assert_eq!(
        mth(&leaves),
        r2,
        "the checkpoint's root from the tiles alone"
    );
    assert_eq!(
        mth(&leaves[..n1 as usize]),
        r1,
        "the earlier checkpoint's root, from the same tiles"
    );
    // Level 1: each hash is the MTH of a full level-0 tile.
    let l1 = keyledger::evidence::tiles::tile_path(Some(1), 0, n2 / 256);
    let l1 = std::fs::read(d.join("t").join(&l1)).unwrap_or_else(|_| panic!("no {l1}"));
    for (i, h) in l1.chunks(32).enumerate() {
        assert_eq!(h, &mth(&leaves[256 * i..256 * (i + 1)])[..]);
    }
    // The same as the ledger's own verification says.
    let v = run_in(
        d,
        &[
            "--ledger",
            "big.ledger",
            "verify",
            "--checkpoint",
            "t/checkpoint",
        ],
        None,
    );
    assert_eq!(code(&v), 0, "{}", stdout(&v));
    // A link planted inside the tiles directory is not followed.
    std::fs::create_dir(d.join("elsewhere")).unwrap();
    std::fs::create_dir_all(d.join("t2/tile")).unwrap();
    std::os::unix::fs::symlink(d.join("elsewhere"), d.join("t2/tile/0")).unwrap();
    let o = run_in(d, &[&l[..], &["tiles", "--out", "t2"]].concat(), None);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert_eq!(std::fs::read_dir(d.join("elsewhere")).unwrap().count(), 0);
    // A full tile changed under it is refused, not overwritten.
    let p = d.join("t/tile/0/000");
    let mut b = std::fs::read(&p).unwrap();
    b[0] ^= 1;
    std::fs::write(&p, b).unwrap();
    let o = run_in(d, &[&l[..], &["tiles", "--out", "t"]].concat(), None);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
}

/// `serve --tiles` serves the same paths `tiles --out` writes, and a checkpoint (signed by
/// the server's key) that the ledger verifies against.
#[test]
fn serve_serves_the_tiles_tiles_writes() {
    let site = common::site::Site::new();
    let d = site.dir.path();
    let server = site.serve(&["--tiles"]);
    let o = run_in(d, &["--key", "keyledger.key", "tiles", "--out", "t"], None);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let note = std::fs::read_to_string(d.join("t/checkpoint")).unwrap();
    let (size, _) = root_of(&note);
    let mut c = keyledger::client::Client::new(&server.url, None).unwrap();
    let mut get = |path: &str| {
        let r = c
            .request(hyper::Method::GET, path, &[], Vec::new())
            .unwrap();
        (r.status.as_u16(), r.body)
    };
    for kind in [Some(0), None] {
        let p = keyledger::evidence::tiles::tile_path(kind, 0, size);
        let (status, body) = get(&format!("/{p}"));
        assert_eq!(status, 200, "{p}");
        assert_eq!(body, std::fs::read(d.join("t").join(&p)).unwrap(), "{p}");
    }
    // Not there yet, and not a tile path: 404. A path is taken as sent: a tile named in
    // percent-encoding or with a query is not that tile's name.
    assert_eq!(get("/tile/0/000").0, 404);
    assert_eq!(get("/tile/0/0").0, 404);
    let p = keyledger::evidence::tiles::tile_path(Some(0), 0, size);
    assert_eq!(get(&format!("/{p}?x=1")).0, 404);
    assert_eq!(
        get(&format!("/{}", p.replacen("000", "%30%30%30", 1))).0,
        404
    );
    let (status, served) = get("/checkpoint");
    assert_eq!(status, 200);
    assert_eq!(
        root_of(std::str::from_utf8(&served).unwrap()),
        root_of(&note)
    );
    std::fs::write(d.join("served.checkpoint"), &served).unwrap();
    let v = run_in(d, &["verify", "--checkpoint", "served.checkpoint"], None);
    assert_eq!(code(&v), 0, "{}", stdout(&v));
    assert_eq!(server.stop(), 0);
}
