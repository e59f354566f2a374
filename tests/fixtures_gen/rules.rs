//! Fixtures for the rules settled in revision 2026-11-24 of ledger-format.md: the signature
//! rule (§6.1), acceptable keys (§6.2), the account's keys, field bounds and credentials in
//! text (§7), genesis, time and anchors (§8), checkpoints (§9.2, §9.3); and the Ed25519
//! vectors file. Each ledger or note is built to break (or pass) exactly one rule.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT as B;
use curve25519_dalek::scalar::Scalar;
use keyledger::core::chain::event_hash;
use keyledger::core::credentials;
use keyledger::core::event::{Action, Permission};
use keyledger::core::format::LEN_PREFIX;
use keyledger::core::merkle;
use keyledger::core::types::{Bytes, PublicKey, Timestamp, to_hex};
use keyledger::evidence::checkpoint::{self, Checkpoint};
use serde_json::{Value, json};

use super::common::forge::*;
use super::common::*;
use super::{Fixture, verdict};

/// Genesis by acme (key 1), then `actions` signed by acme.
fn by_acme(actions: Vec<Action>) -> RawLedger {
    let mut l = RawLedger::new();
    l.push(&key(1), genesis());
    for a in actions {
        l.push(&key(1), a);
    }
    l
}

fn bad(description: &str, first: u64, problems: &[&str]) -> Vec<Value> {
    vec![verdict(description, &[], 1, Some(first), problems)]
}

fn good(description: &str) -> Vec<Value> {
    vec![verdict(description, &[], 0, None, &[])]
}

/// Appends `action` signed by acme with a hand-made signature: `sign(hash, acme's scalar,
/// acme's public bytes)`.
fn push_forged(
    l: &mut RawLedger,
    action: Action,
    sign: impl FnOnce(&[u8], Scalar, &[u8; 32]) -> [u8; 64],
) {
    let ev = l.next(key(1).public(), action);
    let a = secret_scalar(&[1; 32]);
    let a_bytes = *key(1).public().bytes();
    l.push_signed(&ev, |h| sign(&h.0, a, &a_bytes));
}

fn a_key_created(fill: char, scenario: &str) -> Action {
    let id = fixed_key_id(false, fill);
    Action::KeyCreated {
        fingerprint: credentials::fingerprint(&id, &fixed_secret(fill)),
        key_id: id,
        user: "alice".into(),
        scenario: scenario.into(),
        confirmed_necessary: true,
        root_key_allowed: false,
    }
}

/// Alice (key 2) enrolled and made admin by acme: the start of the account-key fixtures.
fn alice_admin() -> RawLedger {
    by_acme(vec![
        user("alice"),
        Action::SignerEnrolled {
            principal: "alice".into(),
            public_key: key(2).public(),
        },
        Action::PermissionGranted {
            principal: "alice".into(),
            permission: Permission::Admin,
        },
    ])
}

pub fn ledgers() -> Vec<Fixture> {
    let mut out = vec![];
    let mut add = |file, l: RawLedger, verdicts| {
        out.push(Fixture {
            file,
            bytes: l.bytes,
            verdicts,
        })
    };

    // §6.1: the cofactored rule accepts what the key's holder signs with a mixed-order R.
    let mut l = by_acme(vec![user("alice")]);
    push_forged(&mut l, user("bob"), |m, a, ab| {
        sign_with(a, ab, m, nonce("torsion r"), torsion(1), None, None)
    });
    add(
        "sig-mixed-order-r.ledger",
        l,
        good(
            "the last event signed by acme's holder with R = [r]B + T (T of order 8): valid under the cofactored rule of §6.1, though verify_strict refuses it; it does not jam the ledger",
        ),
    );
    let mut l = by_acme(vec![user("alice")]);
    push_forged(&mut l, user("bob"), |m, a, ab| {
        sign_with(
            a,
            ab,
            m,
            Scalar::ZERO,
            torsion(0),
            Some(IDENTITY_NEG_ZERO),
            None,
        )
    });
    add(
        "sig-r-noncanonical.ledger",
        l,
        good(
            "an event whose R is the identity encoded with the sign bit set (x = 0, non-canonical), S = k·a with k over R as given: valid under §6.1",
        ),
    );
    let mut l = by_acme(vec![user("alice")]);
    push_forged(&mut l, user("bob"), |m, a, ab| {
        let s = sign_with(a, ab, m, nonce("s plus l"), torsion(0), None, None);
        let big = add_le(&s[32..].try_into().unwrap(), &L);
        sig(&s[..32].try_into().unwrap(), &big)
    });
    add(
        "sig-s-not-reduced.ledger",
        l,
        bad(
            "an event signed correctly, then S replaced by S + L (the same value mod L): invalid, S must be below L",
            2,
            &["signature"],
        ),
    );

    // §6.2: keys that cannot sign.
    let small = PublicKey(Bytes(enc(&torsion(1))));
    let mut l = RawLedger::new();
    let ev = l.next(
        small,
        Action::Genesis {
            ledger_id: Bytes(LEDGER_ID),
            account: "acme".into(),
            public_key: small,
        },
    );
    l.push_signed(&ev, |_| {
        // Anyone can sign for a small-order key: [8][k]A is the identity.
        let r = nonce("small-order genesis");
        sig(&enc(&(B * r)), &r.to_bytes())
    });
    add(
        "genesis-small-order-key.ledger",
        l,
        bad(
            "a genesis naming (and validly signed for, under §6.1) a key of small order: not acceptable (§6.2)",
            0,
            &["genesis"],
        ),
    );
    for (file, pk, what) in [
        (
            "enroll-small-order-key.ledger",
            enc(&torsion(2)),
            "a key of small order (order 4)",
        ),
        (
            "enroll-mixed-order-key.ledger",
            enc(&(B * nonce("mixed key") + torsion(4))),
            "a key with a small-order component ([x]B + T, T of order 2)",
        ),
        (
            "enroll-noncanonical-key.ledger",
            IDENTITY_Y_PLUS_P,
            "the identity encoded with y = 1 + p (non-canonical, and of small order)",
        ),
    ] {
        let l = by_acme(vec![
            user("alice"),
            Action::SignerEnrolled {
                principal: "alice".into(),
                public_key: PublicKey(Bytes(pk)),
            },
        ]);
        add(
            file,
            l,
            bad(
                &format!("acme enrolls for alice {what}: not an acceptable signing key"),
                2,
                &["policy"],
            ),
        );
    }

    // §7.3: only the account manages the account's signing keys.
    let mut l = alice_admin();
    l.push(
        &key(2),
        Action::SignerEnrolled {
            principal: "acme".into(),
            public_key: key(9).public(),
        },
    );
    l.push(
        &key(9),
        Action::KeyCreated {
            fingerprint: credentials::fingerprint(&fixed_key_id(false, 'R'), &fixed_secret('r')),
            key_id: fixed_key_id(false, 'R'),
            user: "acme".into(),
            scenario: "root key".into(),
            confirmed_necessary: true,
            root_key_allowed: true,
        },
    );
    add(
        "admin-enrolls-account-key.ledger",
        l,
        bad(
            "alice (admin) enrolls a key for the account, then uses it to create a root key: the enrolment is refused, so the key never signs",
            4,
            &["policy", "signer"],
        ),
    );
    let mut l = alice_admin();
    l.push(
        &key(1),
        Action::SignerEnrolled {
            principal: "acme".into(),
            public_key: key(8).public(),
        },
    );
    l.push(
        &key(2),
        Action::SignerRevoked {
            principal: "acme".into(),
            public_key: key(1).public(),
        },
    );
    add(
        "admin-revokes-account-key.ledger",
        l,
        bad(
            "alice (admin) revokes one of the account's two signing keys: only the account may",
            5,
            &["policy"],
        ),
    );

    // §8.6: genesis only as frame 0, and only a genesis there.
    let mut l = by_acme(vec![user("alice"), user("bob")]);
    l.push(&key(1), genesis());
    add(
        "late-genesis.ledger",
        l,
        bad(
            "a second genesis (chained, signed) as frame 3: a genesis finding, never applied",
            3,
            &["genesis"],
        ),
    );
    let mut l = RawLedger::new();
    l.push(&key(1), user("alice"));
    l.push(&key(1), user("bob"));
    add(
        "first-frame-not-genesis.ledger",
        l,
        bad(
            "frame 0 is a user-created: a genesis finding; with no valid genesis no key is enrolled, so frame 1's signer fails",
            0,
            &["genesis", "signer"],
        ),
    );
    let mut l = by_acme(vec![user("alice")]);
    let g = l.hashes[0].hex();
    let sig_end = l.frame(0).end;
    l.bytes[sig_end - 1] ^= 0x01;
    out.push(Fixture {
        file: "genesis-bad-signature.ledger",
        bytes: l.bytes,
        verdicts: vec![
            verdict(
                "frame 0's signature flipped: a signature finding; no valid genesis, so the next signer fails",
                &[],
                1,
                Some(0),
                &["signature", "signer"],
            ),
            verdict(
                "the same, anchored to frame 0's hash: the genesis hash is frame 0's whatever its verdict, so no anchor finding",
                &["--expect-genesis", &g],
                1,
                Some(0),
                &["signature", "signer"],
            ),
        ],
    });
    let mut add = |file, l: RawLedger, verdicts| {
        out.push(Fixture {
            file,
            bytes: l.bytes,
            verdicts,
        })
    };

    // §8.4: the future, and no cascade after it.
    let mut l = by_acme(vec![]);
    let mut ev = l.next(key(1).public(), user("alice"));
    ev.time = Timestamp::parse("2099-01-01").unwrap();
    l.push_event(&key(1), &ev);
    let mut ev = l.next(key(1).public(), user("bob"));
    ev.time = time_of(2);
    l.push_event(&key(1), &ev);
    add(
        "future-event.ledger",
        l,
        bad(
            "event 1 dated 2099 (more than 5 minutes after any verifier's clock until then): a time finding; event 2, dated back in 2026, is not held to it",
            1,
            &["time"],
        ),
    );

    // §8.9: a recorded checkpoint counts every frame, whatever its findings.
    let mut l = by_acme(vec![user("alice"), user("bob")]);
    let body_end = l.frame(1).end - 64;
    l.bytes[body_end - 1] ^= 0x01;
    let f1 = l.frame(1);
    let body1 = &l.bytes[f1.start + LEN_PREFIX..f1.end - 64];
    l.hashes[1] = event_hash(body1);
    let root = Bytes(merkle::root_of(&l.hashes));
    l.push(&key(1), Action::CheckpointRecorded { size: 3, root });
    add(
        "checkpoint-recorded-after-bad.ledger",
        l,
        bad(
            "frame 1's body altered (signature; frame 2's prev no longer matches), then a checkpoint-recorded of size 3 over the three frames as stored: the size counts frames, so no anchor finding",
            1,
            &["signature", "chain"],
        ),
    );

    // §7.3: log-repaired must describe itself.
    for (file, offset, bytes, what) in [
        (
            "log-repaired-wrong-offset.ledger",
            Some(9999),
            17,
            "records a torn tail at byte 9999, not where it is written",
        ),
        (
            "log-repaired-too-large.ledger",
            None,
            65_604,
            "records a torn tail of 65604 bytes, more than any incomplete frame",
        ),
    ] {
        let mut l = by_acme(vec![]);
        let at = l.bytes.len() as u64;
        l.push(
            &key(1),
            Action::LogRepaired {
                offset: offset.unwrap_or(at),
                removed_bytes: bytes,
                removed_blake3: Bytes([7; 32]),
                quarantine: "x.ledger.quarantine".into(),
            },
        );
        add(
            file,
            l,
            bad(&format!("a log-repaired that {what}"), 1, &["policy"]),
        );
    }

    // §5, §7.1, §7.2: channels, bounds, credentials, names.
    let key_for_alice = || by_acme(vec![user("alice"), a_key_created('A', "CI runner")]);
    for (file, channel) in [
        ("channel-not-listed.ledger", "email:alice@example.com"),
        ("channel-relative-path.ledger", "csv:secrets/alice.csv"),
    ] {
        let mut l = key_for_alice();
        l.push(
            &key(1),
            Action::SecretRevealed {
                key_id: fixed_key_id(false, 'A'),
                to: "acme".into(),
                channel: channel.into(),
            },
        );
        add(
            file,
            l,
            bad(
                &format!(
                    "a secret-revealed through {channel:?}: not one of the channel forms of §5"
                ),
                3,
                &["policy"],
            ),
        );
    }
    let l = by_acme(vec![Action::ActionDenied {
        attempted: "user-created".into(),
        user: Some("x".repeat(65)),
        key_id: None,
        reason: "r".into(),
    }]);
    add(
        "denied-user-too-long.ledger",
        l,
        bad(
            "an action-denied whose user is 65 bytes (the bound is 64)",
            1,
            &["policy"],
        ),
    );
    let l = by_acme(vec![Action::AuthFailed {
        key_id: "K".repeat(65),
        reason: "no such access key".into(),
    }]);
    add(
        "auth-failed-id-too-long.ledger",
        l,
        bad(
            "an auth-failed whose key_id is 65 bytes (the bound is 64)",
            1,
            &["policy"],
        ),
    );
    let secret = fixed_secret('s');
    let l = by_acme(vec![
        user("alice"),
        a_key_created('A', &format!("to replace {} (oops)", secret.expose())),
    ]);
    add(
        "credential-in-scenario.ledger",
        l,
        bad(
            "a key-created whose scenario holds a well-formed secret (§7.2)",
            2,
            &["policy"],
        ),
    );
    let l = by_acme(vec![user("x-klsk_1")]);
    add(
        "name-holding-klsk.ledger",
        l,
        bad(
            "a user named x-klsk_1: a name may not contain klsk_",
            1,
            &["policy"],
        ),
    );
    out
}

/// Signs `cp`'s text with `key` under the key name `name` (as `Checkpoint::sign` does for
/// the origin), `text` replacing the text if given.
fn note(cp: &Checkpoint, text: Option<&str>, name: &str, signer: u8) -> String {
    let body = text.map_or_else(|| cp.body(), str::to_owned);
    let k = key(signer);
    let mut blob = checkpoint::key_hash(name, &k.public()).to_vec();
    blob.extend_from_slice(&k.sign_bytes(body.as_bytes()));
    use base64::Engine;
    format!(
        "{body}\n\u{2014} {name} {}\n",
        base64::engine::general_purpose::STANDARD.encode(blob)
    )
}

/// `note` with the last base64 character of its signature changed so that it decodes to the
/// same bytes but with stray (non-zero) unused bits: non-canonical base64.
fn noncanonical_b64(note: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let line = note.trim_end_matches('\n');
    let body = line.trim_end_matches('=');
    let pad = line.len() - body.len();
    // With one '=' the last character carries 2 unused bits; with two, 4.
    let spare = if pad == 1 { 0b11 } else { 0b1111 };
    let last = body.as_bytes()[body.len() - 1];
    let i = A.iter().position(|&c| c == last).unwrap();
    let j = (i & !spare) | ((i & spare) ^ 1).max(1);
    assert_ne!(i & spare, j & spare);
    format!(
        "{}{}{}\n",
        &body[..body.len() - 1],
        A[j] as char,
        &line[body.len()..]
    )
}

/// Checkpoint notes of `valid.ledger` (whose event hashes are `hashes`), and their verdicts.
pub fn checkpoints(
    hashes: &[keyledger::core::types::Hash32],
    script: &Script,
) -> Vec<(String, Vec<u8>, Value)> {
    let origin = checkpoint::origin(&Bytes(LEDGER_ID));
    let cp = |n: usize| Checkpoint {
        origin: origin.clone(),
        size: n as u64,
        root: merkle::root_of(&hashes[..n]),
    };
    let n = hashes.len();
    let revoked_at = script
        .iter()
        .position(
            |(_, a)| matches!(a, Action::SignerRevoked { principal, .. } if principal == "bob"),
        )
        .expect("bob's key is revoked in the valid script");
    let full = cp(n);
    let text = full.body();
    let with_size = |size: &str| text.replacen(&format!("\n{n}\n"), &format!("\n{size}\n"), 1);
    let mut corrupted = note(&full, None, &origin, 1);
    let at = corrupted.rfind(' ').unwrap() + 10;
    let flipped = if corrupted.as_bytes()[at] == b'A' {
        "B"
    } else {
        "A"
    };
    corrupted.replace_range(at..at + 1, flipped);
    let witness = format!(
        "{}\u{2014} witness.example/w1 {}\n",
        note(&full, None, &origin, 1),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    );
    let cases: Vec<(&str, String, &str, bool)> = vec![
        (
            "valid.checkpoint",
            note(&full, None, &origin, 1),
            "signed by acme over the whole ledger",
            true,
        ),
        (
            "size-zero.checkpoint",
            note(&cp(0), None, &origin, 1),
            "of size 0 (root SHA-256()), signed by acme, active after the genesis",
            true,
        ),
        (
            "extension-line.checkpoint",
            note(
                &full,
                Some(&format!("{text}an extension line\n")),
                &origin,
                1,
            ),
            "with an extension line after the root (ignored)",
            true,
        ),
        (
            "witness-line.checkpoint",
            witness,
            "with a second signature line under another name (ignored)",
            true,
        ),
        (
            "before-revocation.checkpoint",
            note(&cp(revoked_at), None, &origin, 3),
            "of the frames before bob's key was revoked, signed by bob's key: it could sign then",
            true,
        ),
        (
            "revoked-key.checkpoint",
            note(&full, None, &origin, 3),
            "of the whole ledger signed by bob's key, revoked within it",
            false,
        ),
        (
            "leading-zero.checkpoint",
            note(&full, Some(&with_size(&format!("0{n}"))), &origin, 1),
            "whose size has a leading zero",
            false,
        ),
        (
            "plus-size.checkpoint",
            note(&full, Some(&with_size(&format!("+{n}"))), &origin, 1),
            "whose size has a plus sign",
            false,
        ),
        (
            "other-name.checkpoint",
            note(&full, None, "acme.example/log", 1),
            "signed by acme's key under a key name other than the origin",
            false,
        ),
        (
            "bad-signature.checkpoint",
            corrupted,
            "whose only known signature does not verify",
            false,
        ),
        (
            "not-utf8.checkpoint",
            format!("{}\u{fffd}", note(&full, None, &origin, 1)),
            "followed by a byte that is not UTF-8",
            false,
        ),
        (
            "noncanonical-base64.checkpoint",
            noncanonical_b64(&note(&full, None, &origin, 1)),
            "whose signature's base64 has stray bits in its last character",
            false,
        ),
    ];
    cases
        .into_iter()
        .map(|(file, note, what, ok)| {
            // U+FFFD stands for a byte that is not UTF-8: written as the lone byte 0xff.
            let bytes: Vec<u8> = note
                .split('\u{fffd}')
                .collect::<Vec<_>>()
                .join("\u{1}")
                .into_bytes()
                .into_iter()
                .map(|b| if b == 1 { 0xff } else { b })
                .collect();
            let v = verdict(
                &format!("valid.ledger against a checkpoint {what}"),
                &["--checkpoint", file],
                if ok { 0 } else { 1 },
                None,
                if ok { &[] } else { &["anchor"] },
            );
            (file.to_owned(), bytes, v)
        })
        .collect()
}

/// The Ed25519 vectors of ledger-format.md §6: every kind of signature that separates the
/// common rules (after Chalkias, Garillot and Nikolaenko, "Taming the many EdDSAs", 2020),
/// made here by their defining construction, each with the spec's verdict.
pub fn ed25519_vectors() -> Value {
    let a = secret_scalar(&[0x11; 32]);
    let ap = B * a;
    let ap_bytes = enc(&ap);
    let msg = |i: usize| format!("keyledger ed25519 vector {i}").into_bytes();
    let mut v = vec![];
    let mut case = |desc: &str,
                    why: &str,
                    pk: [u8; 32],
                    m: Vec<u8>,
                    s: [u8; 64],
                    valid: bool,
                    acceptable: bool| {
        let i = v.len();
        v.push(json!({
            "case": i,
            "description": desc,
            "message": to_hex(&m),
            "public_key": to_hex(&pk),
            "signature": to_hex(&s),
            "cofactorless_equation_holds": cofactorless(&pk, &m, &s),
            "zip215_valid": valid,
            "key_acceptable": acceptable,
            "why": why,
        }));
    };
    // 0: small A, small R, S = 0.
    let (t8, t4) = (torsion(1), torsion(2));
    case(
        "small-order A, small-order R, S = 0",
        "[8]([0]B - R - [k]A) is the identity for any small-order R and A",
        enc(&t8),
        msg(0),
        sig(&enc(&t4), &[0; 32]),
        true,
        false,
    );
    // 1: small A, mixed R.
    let m = msg(1);
    let r = nonce("v1");
    case(
        "small-order A, mixed-order R = [r]B + T, S = r",
        "[8]([r]B - [r]B - T - [k]A) = [8](-T - [k]A) is the identity",
        enc(&t8),
        m.clone(),
        sig(&enc(&(B * r + torsion(3))), &r.to_bytes()),
        true,
        false,
    );
    // 2: mixed A, small R.
    let am = ap + torsion(4);
    let am_bytes = enc(&am);
    let m = msg(2);
    let rs = enc(&t8);
    let k = challenge(&rs, &am_bytes, &m);
    case(
        "mixed-order A = [a]B + T, small-order R, S = k·a",
        "the torsion parts vanish under [8]",
        am_bytes,
        m,
        sig(&rs, &(k * a).to_bytes()),
        true,
        false,
    );
    // 3 and 4: mixed A (order-2 torsion), mixed R with the same torsion: cofactorless holds
    // when k is odd, only the cofactored equation when k is even.
    for (want_odd, desc) in [
        (
            true,
            "mixed A, mixed R, k odd: both the cofactorless and the cofactored equation hold",
        ),
        (
            false,
            "mixed A, mixed R, k even: only the cofactored equation holds",
        ),
    ] {
        let m = msg(3 + usize::from(!want_odd));
        let (s, _) = (0..)
            .map(|i| {
                let r = nonce(&format!("v34-{i}"));
                let rb = enc(&(B * r + torsion(4)));
                let k = challenge(&rb, &am_bytes, &m);
                (sig(&rb, &(r + k * a).to_bytes()), k.to_bytes()[0] & 1 == 1)
            })
            .find(|(_, odd)| *odd == want_odd)
            .unwrap();
        case(
            desc,
            "[S]B - R - [k]A = -T - [k]T, which is the identity exactly when k is odd (T of order 2)",
            am_bytes,
            m,
            s,
            true,
            false,
        );
    }
    // 5: mixed A (order 8 torsion), prime-order R, k not a multiple of 8.
    let a8 = ap + torsion(1);
    let a8_bytes = enc(&a8);
    let m = msg(5);
    let (s, _) = (0..)
        .map(|i| {
            let r = nonce(&format!("v5-{i}"));
            let rb = enc(&(B * r));
            let k = challenge(&rb, &a8_bytes, &m);
            (
                sig(&rb, &(r + k * a).to_bytes()),
                !k.to_bytes()[0].is_multiple_of(8),
            )
        })
        .find(|(_, ok)| *ok)
        .unwrap();
    case(
        "mixed A = [a]B + T (T of order 8), prime-order R, S = r + k·a, k not a multiple of 8",
        "[S]B - R - [k]A = -[k]T: not the identity, but of small order",
        a8_bytes,
        m,
        s,
        true,
        false,
    );
    // 6 and 7: S not reduced.
    let m = msg(6);
    let s = sign_with(a, &ap_bytes, &m, nonce("v6"), torsion(0), None, None);
    let s_plus_l = add_le(&s[32..].try_into().unwrap(), &L);
    case(
        "a correct signature with S + L in place of S",
        "S must be below L",
        ap_bytes,
        m,
        sig(&s[..32].try_into().unwrap(), &s_plus_l),
        false,
        true,
    );
    let m = msg(7);
    let s = sign_with(a, &ap_bytes, &m, nonce("v7"), torsion(0), None, None);
    let mut high = <[u8; 32]>::try_from(&s[32..]).unwrap();
    high[31] |= 0xe0;
    case(
        "a correct signature with the top three bits of S set",
        "S must be below L",
        ap_bytes,
        m,
        sig(&s[..32].try_into().unwrap(), &high),
        false,
        true,
    );
    // 8 and 9: R the identity encoded with x = 0 and the sign bit set.
    let m = msg(8);
    let canonical_identity = enc(&torsion(0));
    let s = sign_with(
        a,
        &ap_bytes,
        &m,
        Scalar::ZERO,
        torsion(0),
        Some(IDENTITY_NEG_ZERO),
        Some(canonical_identity),
    );
    case(
        "R = identity with the sign bit set; k computed over R's canonical encoding",
        "k is computed over R as given, so S = k'·a does not match",
        ap_bytes,
        m,
        s,
        false,
        true,
    );
    let m = msg(9);
    let s = sign_with(
        a,
        &ap_bytes,
        &m,
        Scalar::ZERO,
        torsion(0),
        Some(IDENTITY_NEG_ZERO),
        None,
    );
    case(
        "R = identity with the sign bit set; k computed over R as given",
        "non-canonical R is accepted and hashed as given",
        ap_bytes,
        m,
        s,
        true,
        true,
    );
    // 10 and 11: non-canonical A (the identity, two ways).
    for (i, pk, desc) in [
        (
            10,
            IDENTITY_NEG_ZERO,
            "A = identity with the sign bit set, R = [r]B, S = r",
        ),
        (
            11,
            IDENTITY_Y_PLUS_P,
            "A = identity encoded with y = 1 + p, R = [r]B, S = r",
        ),
    ] {
        let m = msg(i);
        let r = nonce(&format!("v{i}"));
        case(
            desc,
            "A decodes (relaxed) to the identity, so [S]B - R - [k]A is the identity; as a key it is neither canonical nor of prime order",
            pk,
            m,
            sig(&enc(&(B * r)), &r.to_bytes()),
            true,
            false,
        );
    }
    // 12: an ordinary signature, for calibration.
    let m = msg(12);
    let s = sign_with(a, &ap_bytes, &m, nonce("v12"), torsion(0), None, None);
    case(
        "an ordinary signature by an acceptable key",
        "RFC 8032",
        ap_bytes,
        m,
        s,
        true,
        true,
    );
    json!({
        "description": "Ed25519 signatures that separate verification rules, with the verdict of ledger-format.md §6.1 (zip215_valid) and §6.2 (key_acceptable). cofactorless_equation_holds is informational (null when S is not reduced).",
        "vectors": v,
    })
}

/// Re-signs a bundle's manifest by `key(1)` (the trusted exporter) after `change`.
fn resign(dir: &std::path::Path, change: impl FnOnce(&mut Value)) {
    let mut m: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    change(&mut m);
    let json = serde_json::to_vec_pretty(&m).unwrap();
    let digest = blake3::derive_key(keyledger::evidence::export::MANIFEST_CONTEXT, &json);
    std::fs::write(dir.join("manifest.json"), &json).unwrap();
    std::fs::write(
        dir.join("manifest.sig"),
        format!("{}\n", to_hex(&key(1).sign_bytes(&digest))),
    )
    .unwrap();
}

/// Evidence bundles (§10.3) of `valid.ledger` (key B's history) and of
/// `requests-valid.ledger` (key A's, written through a server), with their verdicts under
/// `verify-bundle`: files as (path under fixtures/, bytes), and verdicts {dir, args, exit,
/// description}.
pub fn bundles(ledger: &[u8], through_server: &[u8]) -> (Vec<(String, Vec<u8>)>, Vec<Value>) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("valid.ledger");
    std::fs::write(&path, ledger).unwrap();
    let served = tmp.path().join("requests-valid.ledger");
    std::fs::write(&served, through_server).unwrap();
    // A bundle of key `key_id`'s events; `cosigned`: witness w1's cosignature time.
    let export_cosigned = |from: &std::path::Path,
                           key_id: char,
                           name: &str,
                           cosigned: Option<u64>|
     -> std::path::PathBuf {
        let dir = tmp.path().join(name);
        let filter = keyledger::core::query::Filter {
            key: Some(fixed_key_id(false, key_id)),
            ..Default::default()
        };
        keyledger::evidence::export::write_bundle(
            from,
            &dir,
            &filter,
            &key(1),
            &keyledger::storage::cache::Cache::none(),
            |note: String, _: &merkle::ProofTree, _| {
                let Some(t) = cosigned else {
                    return Ok::<_, keyledger::evidence::export::BundleError>(note);
                };
                let (_, _, text) = Checkpoint::parse(&note).unwrap();
                Ok(format!("{note}{}", super::witness::line(0, &text, t)))
            },
        )
        .unwrap();
        dir
    };
    let export = |from: &std::path::Path, key_id: char, name: &str| {
        export_cosigned(from, key_id, name, None)
    };
    let write = |name: &str| export(&path, 'B', name);
    let acme = key(1).public().to_string();
    let alice = key(2).public().to_string();
    // (name, directory, [(verify-bundle arguments, exit, description)])
    type Case<'a> = (Vec<&'a str>, i32, String);
    let mut dirs: Vec<(&str, std::path::PathBuf, Vec<Case>)> = vec![];
    let good = write("good");
    dirs.push((
        "good",
        good,
        vec![
            (
                vec![],
                6,
                "intact, but no trusted key was given: valid but untrusted".into(),
            ),
            (
                vec!["--trusted-key", &acme],
                0,
                "intact and signed by the trusted key".into(),
            ),
            (
                vec!["--trusted-key", &alice],
                1,
                "intact, but signed by a key other than the trusted one".into(),
            ),
        ],
    ));
    let extra = write("extra-file");
    std::fs::write(extra.join("notes.txt"), "not part of a bundle\n").unwrap();
    dirs.push((
        "extra-file",
        extra,
        vec![(
            vec!["--trusted-key", &acme],
            1,
            "a sixth file in the directory".into(),
        )],
    ));
    let moved = write("events-reordered");
    resign(&moved, |m| m["events"].as_array_mut().unwrap().swap(0, 1));
    dirs.push((
        "events-reordered",
        moved,
        vec![(
            vec!["--trusted-key", &acme],
            1,
            "two manifest entries swapped and the manifest re-signed by the trusted key: the order and offsets are cross-checked".into(),
        )],
    ));
    let served_good = export(&served, 'A', "requests-good");
    dirs.push((
        "requests-good",
        served_good,
        vec![(
            vec!["--trusted-key", &acme],
            0,
            "key A's history written through the server gw: the frames are gw's, each request alice's; keys lists gw's key as gw's and alice's as alice's, and every request verifies".into(),
        )],
    ));
    let unlisted = export(&served, 'A', "requests-actor-key-missing");
    let alice_key = key(3).public().to_string();
    resign(&unlisted, |m| {
        m["keys"]
            .as_array_mut()
            .unwrap()
            .retain(|k| k["public_key"] != alice_key.as_str())
    });
    dirs.push((
        "requests-actor-key-missing",
        unlisted,
        vec![(
            vec!["--trusted-key", &acme],
            1,
            "requests-good with alice's key left out of keys and the manifest re-signed by the trusted key: a request must be signed by a listed key (§10.3 step 9)".into(),
        )],
    ));
    // Witnessed (§10.3 step 7a): w1 cosigned after the last event, or 5 minutes before
    // event 2's time (every event of key B is later than that).
    let (w1, w2) = (super::witness::vkey(0), super::witness::vkey(1));
    let last = (time_of(valid_script().len() - 1).0 / 1_000_000) as u64;
    let witnessed = export_cosigned(&path, 'B', "witnessed", Some(last + 60));
    dirs.push((
        "witnessed",
        witnessed,
        vec![
            (
                vec!["--trusted-key", &acme, "--witness-key", &w1],
                0,
                "the checkpoint cosigned by w1 after the last event; acme's key and w1 trusted".into(),
            ),
            (
                vec!["--witness-key", &w1],
                6,
                "as above with no trusted key: witnessed, but valid and untrusted".into(),
            ),
            (
                vec!["--trusted-key", &acme, "--witness-key", &w1, "--witness-key", &w2],
                1,
                "cosigned by w1 only; w1 and w2 trusted, quorum 2 (the default): fewer than the quorum".into(),
            ),
        ],
    ));
    let early = (time_of(2).0 / 1_000_000) as u64 - 300;
    let backdated = export_cosigned(&path, 'B', "witnessed-backdated", Some(early));
    dirs.push((
        "witnessed-backdated",
        backdated,
        vec![
            (
                vec!["--trusted-key", &acme, "--witness-key", &w1],
                1,
                "w1 cosigned 5 minutes before event 2's time; the bundle's events are later: backdated (§10.3 step 9)".into(),
            ),
            (
                vec!["--trusted-key", &acme],
                0,
                "as above, checked with no witness: the cosignature is not asked about".into(),
            ),
        ],
    ));
    let mut files = vec![];
    let mut verdicts = vec![];
    for (name, dir, cases) in dirs {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let f = p.file_name().unwrap().to_string_lossy().into_owned();
            files.push((format!("bundles/{name}/{f}"), std::fs::read(&p).unwrap()));
        }
        for (args, exit, description) in cases {
            verdicts.push(json!({"bundle": format!("bundles/{name}"), "args": args, "exit": exit, "description": description}));
        }
    }
    (files, verdicts)
}
