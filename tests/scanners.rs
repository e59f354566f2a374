//! The secret-scanner rules shipped in scanners/ (issue 15, item 6): every pattern finds
//! freshly generated credentials and no near-miss of their shape. The patterns are applied
//! with Python's `re` (python3, as the OCSF test uses), since neither gitleaks nor TruffleHog
//! can be installed here; they use only syntax that Go's RE2 reads the same way.

use std::path::Path;
use std::process::Command;

use keyledger::core::credentials::{SecretText, new_key_id};

/// (rule name, pattern) from gitleaks.toml's `regex = '''…'''` lines.
fn gitleaks() -> Vec<(String, String)> {
    let text = read("gitleaks.toml");
    let mut id = String::new();
    let mut out = vec![];
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("id = \"") {
            id = v.trim_end_matches('"').to_owned();
        }
        if let Some(v) = line.strip_prefix("regex = '''") {
            out.push((id.clone(), v.trim_end_matches("'''").to_owned()));
        }
    }
    out
}

/// (detector name, pattern) from trufflehog.yaml's `regex:` entries.
fn trufflehog() -> Vec<(String, String)> {
    let text = read("trufflehog.yaml");
    let mut name = String::new();
    let mut out = vec![];
    let mut in_regex = false;
    for line in text.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("- name: ") {
            name = v.to_owned();
            in_regex = false;
        } else if t == "regex:" {
            in_regex = true;
        } else if in_regex && let Some((_, v)) = t.split_once(": '") {
            out.push((name.clone(), v.trim_end_matches('\'').to_owned()));
        }
    }
    out
}

fn read(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scanners")
            .join(name),
    )
    .unwrap()
}

/// Each pattern's matches in `text`, by Python's `re` (one JSON list per pattern).
fn matches(patterns: &[(String, String)], text: &str) -> Vec<Vec<String>> {
    let script = "import json,re,sys\nd=json.load(sys.stdin)\nprint(json.dumps([re.findall(p,d['text']) for p in d['patterns']]))";
    let input = serde_json::json!({
        "patterns": patterns.iter().map(|p| &p.1).collect::<Vec<_>>(),
        "text": text,
    });
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 must be installed to apply the scanner patterns");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn scanner_rules_find_generated_credentials_and_no_near_miss() {
    let ids: Vec<String> = (0..3).map(|_| new_key_id(false)).collect();
    let temps: Vec<String> = (0..3).map(|_| new_key_id(true)).collect();
    let secrets: Vec<SecretText> = (0..3).map(|_| SecretText::new_secret()).collect();
    let tokens: Vec<SecretText> = (0..3).map(|_| SecretText::new_token()).collect();
    let real: [Vec<String>; 4] = [
        secrets.iter().map(|s| s.expose().to_owned()).collect(),
        tokens.iter().map(|s| s.expose().to_owned()).collect(),
        ids.clone(),
        temps.clone(),
    ];
    // Each form once in its kind of context: an env line, JSON, a CSV, prose.
    let mut text = String::new();
    for (i, forms) in real.iter().enumerate() {
        for (j, c) in forms.iter().enumerate() {
            text.push_str(&match j {
                0 => format!("EXPORT_{i}={c}\n"),
                1 => format!("{{\"v{i}\": \"{c}\"}}\n"),
                _ => format!("AccessKey ID,AccessKey Secret\n{c},x\n"),
            });
        }
    }
    let mut misses = String::new();
    for forms in &real {
        for c in forms {
            misses.push_str(&format!("{}\n", &c[..c.len() - 1])); // one short
            misses.push_str(&format!("{c}Z\n")); // one long
            misses.push_str(&format!("a{c}\n")); // glued on the left
            let (p, rest) = c.split_at(4);
            let reversed: String = p.chars().rev().collect();
            misses.push_str(&format!("{reversed}{rest}\n")); // prefix reversed
        }
    }
    for (file, rules) in [
        ("gitleaks.toml", gitleaks()),
        ("trufflehog.yaml", trufflehog()),
    ] {
        assert_eq!(rules.len(), 4, "{file}: one rule per form");
        for (name, p) in &rules {
            for forbidden in ["(?=", "(?!", "(?<", "\\1"] {
                assert!(!p.contains(forbidden), "{file} {name}: not RE2 syntax");
            }
        }
        let found = matches(&rules, &text);
        for (k, forms) in real.iter().enumerate() {
            assert_eq!(&found[k], forms, "{file} {}: finds every one", rules[k].0);
        }
        let none = matches(&rules, &misses);
        assert!(
            none.iter().all(|m| m.is_empty()),
            "{file}: near-misses found: {none:?}"
        );
        // And keyledger's own scan finds exactly the same in both texts.
        let own: Vec<&str> = keyledger::core::credentials::scan(&text)
            .into_iter()
            .map(|(_, _, t)| t)
            .collect();
        assert_eq!(own.len(), 12);
        assert!(keyledger::core::credentials::scan(&misses).is_empty());
    }
}
