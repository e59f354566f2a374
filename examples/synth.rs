//! Builds a synthetic ledger for measurement: `cargo run --release --example synth -- PATH EVENTS`.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (path, n) = match (args.get(1), args.get(2).and_then(|n| n.parse().ok())) {
        (Some(p), Some(n)) => (std::path::PathBuf::from(p), n),
        _ => {
            eprintln!("usage: synth PATH EVENTS");
            std::process::exit(2);
        }
    };
    let start = std::time::Instant::now();
    let start_time = keyledger::core::types::Timestamp::parse("2025-01-01").expect("a date");
    match keyledger::tools::synth::build(&path, n, start_time, 7) {
        Ok(s) => {
            let key = path.with_extension("key");
            let _ = keyledger::storage::keyfile::write_new(&s.account, &key);
            println!(
                "{} events in {:.1?}; account key {}",
                s.events,
                start.elapsed(),
                key.display()
            );
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
