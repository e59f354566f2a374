//! Times replay and full verify of an existing ledger, for profiling:
//! `cargo run --release --example replay -- PATH [replay|verify]`. `replay` trusts the
//! cache in $KEYLEDGER_CACHE_DIR (run it twice: the first run verifies and writes it).
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1).map(std::path::PathBuf::from) else {
        eprintln!("usage: replay PATH [replay|verify]");
        std::process::exit(2);
    };
    let what = args.get(2).map_or("replay", String::as_str);
    let start = std::time::Instant::now();
    let events = match what {
        "verify" => keyledger::evidence::verify::verify_file(&path, &Default::default())
            .map(|r| r.events)
            .map_err(|e| e.to_string()),
        _ => {
            let cache = keyledger::storage::cache::Cache::default_dir().map_or_else(
                keyledger::storage::cache::Cache::none,
                keyledger::storage::cache::Cache::at,
            );
            let _ = keyledger::storage::store::head(&path, &cache);
            keyledger::storage::store::replay(&path, &cache, None, |_| {})
                .map(|r| r.head.seq + 1)
                .map_err(|e| e.to_string())
        }
    };
    match events {
        Ok(n) => {
            let s = start.elapsed().as_secs_f64();
            println!(
                "{what}: {n} events in {s:.3} s = {:.0} events/s",
                n as f64 / s
            );
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
