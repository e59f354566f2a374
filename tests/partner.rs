//! The secret scanning partner endpoint (issue 15 item 5, R14) on a real `keyledger serve`:
//! a report signed with a configured ECDSA P-256 key (generated here in GitHub's place)
//! disables the reported key with a `leak-reported` first; an unsigned, wrongly signed or
//! unknown-key report is 401 and records nothing; the answer labels each token.

mod common;

use base64::Engine;
use common::site::*;
use common::*;
use keyledger::client::Client;
use keyledger::server::scanning::{Feedback, p256_pem, token_hash};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

struct Scanner {
    id: &'static str,
    key: EcdsaKeyPair,
}

impl Scanner {
    fn new(id: &'static str) -> Scanner {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Scanner { id, key }
    }

    fn sign(&self, body: &[u8]) -> String {
        let sig = self.key.sign(&SystemRandom::new(), body).unwrap();
        base64::engine::general_purpose::STANDARD.encode(sig.as_ref())
    }

    fn pem(&self) -> String {
        p256_pem(self.key.public_key().as_ref())
    }
}

/// POSTs a report with the given signature headers; (status, body).
fn post(url: &str, body: &[u8], headers: &[(&str, String)]) -> (u16, Vec<u8>) {
    let mut c = Client::new(url, None).unwrap();
    let r = c
        .request(
            hyper::Method::POST,
            "/v1/github/secret-scanning",
            headers,
            body.to_vec(),
        )
        .unwrap();
    (r.status.as_u16(), r.body)
}

fn signed_by(s: &Scanner, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        ("Github-Public-Key-Identifier", s.id.to_string()),
        ("Github-Public-Key-Signature", s.sign(body)),
    ]
}

fn status_of(dir: &std::path::Path, id: &str) -> String {
    let o = run_in(dir, &["--json", "key", "show", id], None);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    v["key"]["status"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn a_signed_partner_report_disables_the_key_and_a_bad_one_records_nothing() {
    let site = Site::new();
    let d = site.dir.path();
    let github = Scanner::new("test-key-1");
    let stranger = Scanner::new("test-key-1");
    let keys = json!({"public_keys": [
        {"key_identifier": github.id, "key": github.pem(), "is_current": true}
    ]});
    std::fs::write(d.join("scanner-keys.json"), keys.to_string()).unwrap();
    let (id, secret) = create_key(d, "alice");
    let (kept, kept_secret) = create_key(d, "alice");
    let server = site.serve(&["--scanner-keys", "scanner-keys.json"]);
    let unknown = keyledger::core::credentials::SecretText::new_secret();
    let url = "https://github.com/acme/app/blob/0123abc/deploy/.env";
    let report = json!([
        {"token": secret, "type": "keyledger_secret", "url": url, "source": "content"},
        {"token": unknown.expose(), "type": "keyledger_secret", "url": url, "source": "content"},
        {"token": "klsk_notarealone", "type": "keyledger_secret", "url": url, "source": "content"},
        // The same token again: one report of the key.
        {"token": secret, "type": "keyledger_secret", "url": url, "source": "commit"},
    ])
    .to_string();
    let body = report.as_bytes();
    let before = std::fs::read(site.ledger()).unwrap().len();

    // Unsigned, signed by a key not configured under that identifier, signed over other
    // bytes, or naming an unknown key: 401, and nothing recorded.
    let mut altered = body.to_vec();
    altered[3] ^= 0x01;
    for (what, headers, bytes) in [
        ("unsigned", vec![], body.to_vec()),
        (
            "a stranger's signature",
            signed_by(&stranger, body),
            body.to_vec(),
        ),
        (
            "a signature over other bytes",
            signed_by(&github, &altered),
            body.to_vec(),
        ),
        (
            "an unknown key identifier",
            vec![
                ("Github-Public-Key-Identifier", "no-such-key".to_string()),
                ("Github-Public-Key-Signature", github.sign(body)),
            ],
            body.to_vec(),
        ),
    ] {
        let (status, _) = post(&server.url, &bytes, &headers);
        assert_eq!(status, 401, "{what}");
        assert_eq!(
            std::fs::read(site.ledger()).unwrap().len(),
            before,
            "{what}: the ledger changed"
        );
    }

    // Signed by the configured key: alice's key is reported and disabled; the others are
    // false positives. The answer names tokens by their SHA-256 only.
    let (status, answer) = post(&server.url, body, &signed_by(&github, body));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let feedback: Vec<Feedback> = serde_json::from_slice(&answer).unwrap();
    let labels: Vec<&str> = feedback.iter().map(|f| f.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "true_positive",
            "false_positive",
            "false_positive",
            "true_positive"
        ]
    );
    assert_eq!(feedback[0].token_hash, token_hash(&secret));
    assert!(!String::from_utf8_lossy(&answer).contains(&secret));
    assert_eq!(status_of(d, &id), "disabled");
    assert_eq!(status_of(d, &kept), "active");
    let o = run_in(d, &["--json", "log", "--key", &id], None);
    let log: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let events = log["events"].as_array().unwrap();
    let tags: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        tags,
        [
            "key-created",
            "secret-revealed",
            "leak-reported",
            "key-disabled"
        ]
    );
    assert_eq!(events[2]["actor"], "gw");
    assert_eq!(events[2]["detail"]["leak-reported"]["source"], url);
    // The same signed report again (a retry, or a captured one replayed): the same answer,
    // nothing recorded, even after the key was enabled again.
    let o = run_in(
        d,
        &[
            "--server",
            &server.url,
            "--key",
            "ops.key",
            "key",
            "enable",
            &id,
        ],
        None,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let len = std::fs::read(site.ledger()).unwrap().len();
    let (status, again) = post(&server.url, body, &signed_by(&github, body));
    assert_eq!((status, again), (200, answer.clone()));
    assert_eq!(std::fs::read(site.ledger()).unwrap().len(), len);
    assert_eq!(status_of(d, &id), "active");
    // A URL carrying another key's secret, percent-encoded: the source is withheld.
    let hidden = kept_secret.replace('_', "%5F");
    let sneaky =
        json!([{"token": secret, "type": "t", "url": format!("https://x.test/?s={hidden}")}])
            .to_string();
    let (status, _) = post(
        &server.url,
        sneaky.as_bytes(),
        &signed_by(&github, sneaky.as_bytes()),
    );
    assert_eq!(status, 200);
    assert_eq!(server.stop(), 0);

    // Report only: the leak is recorded, the key left active.
    let server = site.serve(&[
        "--scanner-keys",
        "scanner-keys.json",
        "--scanner-report-only",
    ]);
    let report =
        json!([{"token": kept_secret, "type": "keyledger_secret", "url": url}]).to_string();
    let (status, _) = post(
        &server.url,
        report.as_bytes(),
        &signed_by(&github, report.as_bytes()),
    );
    assert_eq!(status, 200);
    assert_eq!(status_of(d, &kept), "active");
    assert_eq!(server.stop(), 0);
    let o = run_in(d, &["verify"], None);
    assert_eq!(code(&o), 0, "{}", stdout(&o) + &stderr(&o));

    // No secret in the ledger, its server's log, or the answers.
    for f in ["keyledger.ledger", "server.log"] {
        let text = String::from_utf8_lossy(&std::fs::read(d.join(f)).unwrap()).into_owned();
        for s in [&secret, &kept_secret, &hidden] {
            assert!(!text.contains(s.as_str()), "a secret in {f}");
        }
    }
}
