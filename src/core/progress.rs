//! Progress of long passes over a ledger, for a front end to show. The library reports
//! (bytes read of the bytes to read); it never draws. No hook set: nothing happens.

use std::sync::OnceLock;

type Hook = Box<dyn Fn(u64, u64) + Send + Sync>;

static HOOK: OnceLock<Hook> = OnceLock::new();

/// Sets the process's progress hook, once; `false` if one was set already.
pub fn set_hook(f: impl Fn(u64, u64) + Send + Sync + 'static) -> bool {
    HOOK.set(Box::new(f)).is_ok()
}

/// `done` of `total` bytes read; `done == total` ends the pass.
pub fn report(done: u64, total: u64) {
    if let Some(h) = HOOK.get() {
        h(done, total);
    }
}
