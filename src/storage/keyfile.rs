//! Signing key files (ledger-format.md §12): mode 0600, refused if group or others can
//! read them or someone else owns them, as ssh does.
//! ```text
//! # comment lines
//! KEYLEDGER-ED25519-SEED:<64 hex digits of the 32-byte ed25519 seed>
//! ```
//! `FILE.pub` holds the public key's text form (`ed25519:<hex>`) and a newline.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;
use zeroize::Zeroizing;

use crate::core::signing::SigningKey;
use crate::core::types::{from_hex, to_hex};
use crate::storage::files;

const SEED_PREFIX: &str = "KEYLEDGER-ED25519-SEED:";
/// A key file larger than this is not a key file.
const MAX_KEY_FILE: u64 = 4096;

#[derive(Debug, Error)]
pub enum KeyFileError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} already exists; keyledger never overwrites a file. Choose another path")]
    Exists { path: PathBuf },
    #[error(
        "{path} is readable by group or others (mode {mode:o}); a signing key must be private: run `chmod 600 {path}`"
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error(
        "{path} belongs to uid {owner}, not to you: a signing key must be your own file (as ssh requires), or whoever planted it there would sign in its owner's name"
    )]
    NotOwned { path: PathBuf, owner: u32 },
    #[error("{path} is not a keyledger signing key: {reason}")]
    Malformed { path: PathBuf, reason: &'static str },
}

/// Writes `path` (mode 0600) and `path.pub`, refusing to replace either.
pub fn write_new(key: &SigningKey, path: &Path) -> Result<PathBuf, KeyFileError> {
    let pub_path = pub_path(path);
    for p in [path, pub_path.as_path()] {
        if p.exists() {
            return Err(KeyFileError::Exists { path: p.into() });
        }
    }
    let seed = Zeroizing::new(to_hex(&*key.seed()));
    let text = Zeroizing::new(format!(
        "# keyledger signing key (ed25519). Keep it private: mode 0600, never share or commit it.\n\
         # public key: {}\n{SEED_PREFIX}{}\n",
        key.public(),
        *seed
    ));
    write_exclusive(path, text.as_bytes(), 0o600)?;
    if let Err(e) = write_exclusive(&pub_path, format!("{}\n", key.public()).as_bytes(), 0o644) {
        let _ = fs::remove_file(path);
        return Err(e);
    }
    Ok(pub_path)
}

/// Reads a key file, refusing one that group or others can read.
pub fn load(path: &Path) -> Result<SigningKey, KeyFileError> {
    let io_err = |source| KeyFileError::Io {
        path: path.into(),
        source,
    };
    let mut f = files::open_regular(path, false).map_err(|e| match e.kind() {
        io::ErrorKind::InvalidInput => KeyFileError::Malformed {
            path: path.into(),
            reason: "not a regular file",
        },
        _ => io_err(e),
    })?;
    if path.extension().is_some_and(|e| e == "pub") {
        return Err(KeyFileError::Malformed {
            path: path.into(),
            reason: "it is a public key file (.pub); --key takes the private key file, the same name without .pub",
        });
    }
    let meta = f.metadata().map_err(io_err)?;
    if meta.uid() != files::effective_uid() {
        return Err(KeyFileError::NotOwned {
            path: path.into(),
            owner: meta.uid(),
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Permissions {
            path: path.into(),
            mode,
        });
    }
    if meta.len() > MAX_KEY_FILE {
        return Err(KeyFileError::Malformed {
            path: path.into(),
            reason: "file is too large",
        });
    }
    // Sized up front and read through `take`, so the buffer never grows: a growing
    // Vec would leave unzeroized copies of the seed in freed memory.
    let mut raw = Zeroizing::new(Vec::with_capacity(MAX_KEY_FILE as usize + 1));
    (&mut f)
        .take(MAX_KEY_FILE)
        .read_to_end(&mut raw)
        .map_err(io_err)?;
    let malformed = |reason| KeyFileError::Malformed {
        path: path.into(),
        reason,
    };
    let text = std::str::from_utf8(&raw).map_err(|_| malformed("not UTF-8 text"))?;
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let line = lines.next().ok_or_else(|| malformed("no key line"))?;
    if lines.next().is_some() {
        return Err(malformed("more than one key line"));
    }
    let hex = line
        .strip_prefix(SEED_PREFIX)
        .ok_or_else(|| malformed("the key line does not start with KEYLEDGER-ED25519-SEED:"))?;
    let seed = Zeroizing::new(
        from_hex::<32>(hex).ok_or_else(|| malformed("the seed is not 64 hex digits"))?,
    );
    Ok(SigningKey::from_seed(&seed))
}

/// `FILE` → `FILE.pub`.
pub fn pub_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// Creates `path` exclusively with `mode`, writes `data`, and syncs it to disk.
/// Never follows a symlink at `path` and never replaces anything there.
pub fn write_exclusive(path: &Path, data: &[u8], mode: u32) -> Result<(), KeyFileError> {
    files::write_new(path, data, mode).map_err(|source| match source.kind() {
        io::ErrorKind::AlreadyExists => KeyFileError::Exists { path: path.into() },
        _ => KeyFileError::Io {
            path: path.into(),
            source,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::types::PublicKey;

    #[test]
    fn key_file_round_trip_and_permission_check() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        let k = SigningKey::generate();
        let pubp = write_new(&k, &p).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let pub_text = fs::read_to_string(pubp).unwrap();
        assert_eq!(PublicKey::parse(&pub_text), Some(k.public()));
        assert_eq!(load(&p).unwrap().public(), k.public());
        assert!(matches!(
            write_new(&k, &p),
            Err(KeyFileError::Exists { .. })
        ));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            load(&p),
            Err(KeyFileError::Permissions { mode: 0o640, .. })
        ));
    }

    #[test]
    fn malformed_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (i, body) in [
            "",
            "hello\n",
            "KEYLEDGER-ED25519-SEED:abcd\n",
            "KEYLEDGER-ED25519-SEED:\u{ff}\n",
        ]
        .iter()
        .enumerate()
        {
            let p = dir.path().join(format!("k{i}"));
            write_exclusive(&p, body.as_bytes(), 0o600).unwrap();
            assert!(
                matches!(load(&p), Err(KeyFileError::Malformed { .. })),
                "{body:?}"
            );
        }
    }
}
