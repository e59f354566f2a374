//! R11 through a real server: a flood of wrong secrets records the first few failures of
//! each minute one by one and the rest as one `auth-failures-summarized` (count and time
//! window), so the ledger does not grow with the flood; no failure goes uncounted, and the
//! flood is an audit finding.

mod common;

use common::site::*;
use common::*;
use serde_json::Value;

fn json_of(o: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

#[test]
fn a_flood_of_wrong_secrets_is_summarized_and_every_failure_is_counted() {
    let site = Site::new();
    let d = site.dir.path();
    let (key_id, _) = create_key(d, "alice");
    let server = site.serve(&["--auth-failures-per-minute", "4"]);
    let auth = |id: &str| {
        let o = run_in(
            d,
            &[
                "--server",
                &server.url,
                "--key",
                "gw.key",
                "--json",
                "auth",
                id,
            ],
            Some(keyledger::core::credentials::SecretText::new_secret().expose()),
        );
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        json_of(&o)
    };
    let answers: Vec<Value> = (0..30).map(|_| auth(&key_id)).collect();
    let recorded = answers.iter().filter(|a| a["seq"].is_u64()).count();
    let summarized = answers.iter().filter(|a| a["summarized"] == true).count();
    assert_eq!((recorded, summarized), (4, 26), "{answers:?}");
    // IDs of no key share one bucket, so random IDs cannot flood the ledger either.
    for i in 0..9 {
        let id = keyledger::core::credentials::new_key_id(i % 2 == 0);
        auth(&id);
    }
    let before_stop = std::fs::read(site.ledger()).unwrap().len();
    // Draining writes what is still counted.
    assert_eq!(server.stop(), 0);
    assert!(std::fs::read(site.ledger()).unwrap().len() > before_stop);

    let log = json_of(&run_in(
        d,
        &["--json", "log", "--action", "auth-failures-summarized"],
        None,
    ));
    let summaries = log["events"].as_array().unwrap();
    let counts: Vec<(String, u64)> = summaries
        .iter()
        .map(|e| {
            let f = &e["detail"]["auth-failures-summarized"];
            (
                f["key_id"].as_str().unwrap().to_owned(),
                f["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(counts.contains(&(key_id.clone(), 26)), "{counts:?}");
    assert!(counts.contains(&("*".to_owned(), 5)), "{counts:?}");
    assert!(summaries.iter().all(|e| e["actor"] == "gw"));
    let failed = json_of(&run_in(
        d,
        &["--json", "log", "--action", "auth-failed"],
        None,
    ));
    assert_eq!(failed["events"].as_array().unwrap().len(), 8);
    let shown = json_of(&run_in(d, &["--json", "key", "show", &key_id], None));
    assert_eq!(shown["key"]["failed_auths"], 30, "{shown}");
    let v = run_in(d, &["verify"], None);
    assert_eq!(code(&v), 0, "{}", stdout(&v));
    let audit = run_in(d, &["--json", "audit", "--fail-on", "none"], None);
    assert_eq!(code(&audit), 0, "{}", stderr(&audit));
    let floods: Vec<Value> = json_of(&audit)["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["control"] == "auth-failure-flood")
        .cloned()
        .collect();
    assert_eq!(floods.len(), 2, "{floods:?}");
    assert!(floods.iter().all(|f| f["severity"] == "high"));
}
