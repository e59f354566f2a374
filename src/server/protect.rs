//! R13: the server's own store of TOTP seeds, the only place a seed is kept. One JSON file,
//! mode 0600, owned by the server's user, replaced whole (a new file, fsynced, renamed over
//! the old one) on every change, so a crash leaves the old store or the new one. The
//! ledger records only that a factor was verified and the step of the code; never a seed,
//! never a code.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::core::event::{FactorKind, SecondFactor};
use crate::core::totp;
use crate::core::types::Timestamp;
use crate::storage::files;

/// This many wrong codes for one principal within `FAILURE_WINDOW_US` refuse every code
/// for it (right ones too) until the oldest of them leaves the window.
pub const MAX_FAILURES: usize = 5;
pub const FAILURE_WINDOW_US: i64 = 15 * 60 * 1_000_000;

#[derive(Debug, Error)]
pub enum ProtectError {
    #[error("the seed store {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "the seed store {path} is readable or writable by others (mode {mode:o}) or owned by another user; it must be the server user's, mode 0600 (chmod 600)"
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error("the seed store {path} is not a seed store this version reads: {message}")]
    Corrupt { path: PathBuf, message: String },
}

#[derive(Default, Serialize, Deserialize)]
struct File {
    version: u32,
    principals: BTreeMap<String, Entry>,
}

#[derive(Default, Serialize, Deserialize)]
struct Entry {
    /// The seed of protection in force (base32).
    seed: Option<Zeroizing<String>>,
    /// A seed handed out by `protect enable` and not yet confirmed.
    pending: Option<Zeroizing<String>>,
    /// The pending seed whose first code was accepted: the one `confirm` puts in force
    /// (a `protect enable` racing the confirmation replaces `pending`, never this).
    #[serde(default)]
    verified: Option<Zeroizing<String>>,
    /// The greatest step of a code accepted (RFC 6238 §5.2: each code once).
    last_step: Option<u64>,
}

pub struct SeedStore {
    path: PathBuf,
    file: File,
    /// Times of recent wrong codes, per principal (kept in memory).
    failures: HashMap<String, VecDeque<Timestamp>>,
}

/// Why a code was not accepted: the reason an `action-denied` records (never the code).
pub type CodeRefusal = String;

impl SeedStore {
    /// Opens the store at `path`, creating an empty one if there is none. A store that
    /// others may read, or that is a link or not a regular file, is refused.
    pub fn open(path: &Path) -> Result<Self, ProtectError> {
        let io = |source| ProtectError::Io {
            path: path.into(),
            source,
        };
        let file = match files::open_regular_nofollow(path, false) {
            Ok(f) => {
                let m = f.metadata().map_err(io)?;
                if m.mode() & 0o077 != 0 || m.uid() != files::effective_uid() {
                    return Err(ProtectError::Exposed {
                        path: path.into(),
                        mode: m.mode() & 0o777,
                    });
                }
                let bytes = Zeroizing::new(files::read_file(f, path, 64 << 20).map_err(io)?);
                let file: File =
                    serde_json::from_slice(&bytes).map_err(|e| ProtectError::Corrupt {
                        path: path.into(),
                        message: format!("not JSON of the expected shape (line {})", e.line()),
                    })?;
                if file.version != 1 {
                    return Err(ProtectError::Corrupt {
                        path: path.into(),
                        message: format!("version {}", file.version),
                    });
                }
                file
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let s = SeedStore {
                    path: path.into(),
                    file: File {
                        version: 1,
                        ..File::default()
                    },
                    failures: HashMap::new(),
                };
                s.save()?;
                return Ok(s);
            }
            Err(e) => return Err(io(e)),
        };
        Ok(SeedStore {
            path: path.into(),
            file,
            failures: HashMap::new(),
        })
    }

    /// Writes the whole store to a new file beside it and renames it into place.
    fn save(&self) -> Result<(), ProtectError> {
        let io = |source| ProtectError::Io {
            path: self.path.clone(),
            source,
        };
        let bytes = Zeroizing::new(serde_json::to_vec(&self.file).expect("encodes"));
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let stem = format!(
            ".{}.new",
            self.path
                .file_name()
                .map_or("seeds".into(), |n| n.to_string_lossy().into_owned())
        );
        let (mut f, tmp) = files::create_fresh(&dir, &stem, 0o600).map_err(io)?;
        let written = io::Write::write_all(&mut f, &bytes)
            .and_then(|_| f.sync_all())
            .and_then(|_| std::fs::rename(&tmp, &self.path))
            .and_then(|_| std::fs::File::open(&dir)?.sync_all());
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(e));
        }
        Ok(())
    }

    /// A new pending seed for `name` (replacing a pending one), saved before it is returned.
    pub fn begin(&mut self, name: &str) -> Result<Zeroizing<Vec<u8>>, ProtectError> {
        let mut seed = Zeroizing::new(vec![0u8; totp::SEED_LEN]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
        let e = self.file.principals.entry(name.to_owned()).or_default();
        e.pending = Some(Zeroizing::new(totp::base32(&seed)));
        self.save()?;
        Ok(seed)
    }

    /// Whether `name` has a seed of protection in force here.
    pub fn has_seed(&self, name: &str) -> bool {
        self.file
            .principals
            .get(name)
            .is_some_and(|e| e.seed.is_some())
    }

    /// Checks `code` for `name` at `now`: against its pending seed (`pending`, for
    /// `protect confirm`) or its seed in force. A code is accepted once, and only after
    /// the last accepted one (`floor`: the greatest step the ledger attests, too);
    /// failures are limited per principal. An accepted step is saved before it is used.
    pub fn check(
        &mut self,
        name: &str,
        code: &str,
        pending: bool,
        floor: Option<u64>,
        now: Timestamp,
    ) -> Result<SecondFactor, CodeRefusal> {
        // Only a name with a seed here gets a failure count (memory: one per seed).
        let entry = self.file.principals.get(name);
        let text = entry.and_then(|e| {
            if pending {
                e.pending.clone()
            } else {
                e.seed.clone()
            }
        });
        let Some(seed) = text.as_ref().and_then(|s| totp::base32_decode(s)) else {
            return Err(match pending {
                true => format!(
                    "no authenticator is waiting for confirmation for {name}: run `keyledger protect enable {name}` first"
                ),
                false => format!(
                    "this server holds no seed for {name}: an admin with operation protection can turn it off (keyledger protect disable {name} --code CODE), then turn it on again"
                ),
            });
        };
        let seed = Zeroizing::new(seed);
        let last = entry.and_then(|e| e.last_step).max(floor);
        let recent = self.failures.entry(name.to_owned()).or_default();
        while recent
            .front()
            .is_some_and(|t| now.0 - t.0 > FAILURE_WINDOW_US)
        {
            recent.pop_front();
        }
        if recent.len() >= MAX_FAILURES {
            let again = recent[0].plus_micros(FAILURE_WINDOW_US);
            return Err(format!(
                "{MAX_FAILURES} wrong codes for {name} within 15 minutes: no code is accepted for it until {again}"
            ));
        }
        let matched = totp::well_formed(code)
            .then(|| totp::matching_step(&seed, code, now))
            .flatten();
        match matched {
            None => {
                recent.push_back(now);
                Err(format!(
                    "the code is not {name}'s current one ({} of {MAX_FAILURES} wrong codes allowed within 15 minutes)",
                    recent.len()
                ))
            }
            Some(step) if last.is_some_and(|l| step <= l) => Err(format!(
                "that code was used already (a code is good once): wait for {name}'s next code"
            )),
            Some(step) => {
                let e = self.file.principals.get_mut(name).expect("has a seed");
                e.last_step = Some(step);
                if pending {
                    e.verified = text;
                }
                self.save()
                    .map_err(|e| format!("the server could not save the code's use: {e}"))?;
                Ok(SecondFactor {
                    kind: FactorKind::Totp,
                    step,
                })
            }
        }
    }

    /// `protection-enabled` of `name` is on disk: the pending seed whose code it carried
    /// is the seed in force.
    pub fn confirm(&mut self, name: &str) -> Result<(), ProtectError> {
        if let Some(e) = self.file.principals.get_mut(name)
            && let Some(v) = e.verified.take()
        {
            if e.pending.as_ref().is_some_and(|p| **p == *v) {
                e.pending = None;
            }
            e.seed = Some(v);
            self.save()?;
        }
        Ok(())
    }

    /// `protection-disabled` of `name` is on disk: its seeds are forgotten (the last
    /// step stays, so an old code is never accepted again).
    pub fn remove(&mut self, name: &str) -> Result<(), ProtectError> {
        if let Some(e) = self.file.principals.get_mut(name) {
            e.seed = None;
            e.pending = None;
            e.verified = None;
            self.save()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_at(seed: &[u8], now: Timestamp) -> String {
        String::from_utf8(totp::code(seed, totp::step_of(now)).to_vec()).unwrap()
    }

    #[test]
    fn an_enable_racing_the_confirmation_never_becomes_the_seed_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SeedStore::open(&dir.path().join("seeds")).unwrap();
        let mine = s.begin("bob").unwrap();
        let now = Timestamp(1_767_225_600_000_000);
        s.check("bob", &code_at(&mine, now), true, None, now)
            .unwrap();
        // Between the checked code and the recorded protection-enabled: another enable.
        let theirs = s.begin("bob").unwrap();
        s.confirm("bob").unwrap();
        let later = now.plus_micros(totp::STEP_US);
        assert!(
            s.check("bob", &code_at(&mine, later), false, None, later)
                .is_ok()
        );
        let again = later.plus_micros(totp::STEP_US);
        assert!(
            s.check("bob", &code_at(&theirs, again), false, None, again)
                .is_err()
        );
        // A name without a seed here is refused without a failure count kept for it.
        assert!(s.check("nobody", "123456", false, None, now).is_err());
        assert!(!s.failures.contains_key("nobody"));
    }

    #[test]
    fn a_code_is_good_once_wrong_codes_are_limited_and_the_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seeds");
        let mut s = SeedStore::open(&path).unwrap();
        let seed = s.begin("bob").unwrap();
        let now = Timestamp(1_767_225_600_000_000);
        assert!(
            s.check("bob", &code_at(&seed, now), false, None, now)
                .is_err()
        );
        let f = s
            .check("bob", &code_at(&seed, now), true, None, now)
            .unwrap();
        assert_eq!(f.step, totp::step_of(now));
        s.confirm("bob").unwrap();
        let again = s.check("bob", &code_at(&seed, now), false, None, now);
        assert!(again.unwrap_err().contains("used already"));
        let later = now.plus_micros(totp::STEP_US);
        assert!(
            s.check("bob", &code_at(&seed, later), false, None, later)
                .is_ok()
        );
        // Reopened: the last step is remembered, the seed is in force, mode 0600.
        let mut s = SeedStore::open(&path).unwrap();
        assert!(s.has_seed("bob"));
        assert!(
            s.check("bob", &code_at(&seed, later), false, None, later)
                .is_err()
        );
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let t = later.plus_micros(2 * totp::STEP_US);
        for _ in 0..MAX_FAILURES {
            assert!(s.check("bob", "000000x", false, None, t).is_err());
        }
        let locked = s
            .check("bob", &code_at(&seed, t), false, None, t)
            .unwrap_err();
        assert!(locked.contains("no code is accepted"), "{locked}");
        // Nothing of the seed in a refusal.
        assert!(!locked.contains(&totp::base32(&seed)));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            SeedStore::open(&path),
            Err(ProtectError::Exposed { .. })
        ));
    }
    use std::os::unix::fs::PermissionsExt;
}
