//! Files keyledger creates or reads, made safe against what someone else may have put at
//! those paths first (a symlink, a FIFO, a device, a directory).
//!
//! Invariants: every file keyledger creates is created with `O_CREAT | O_EXCL | O_NOFOLLOW`,
//! so it is a new regular file and never the target of a planted link; every file it reads is
//! opened with `O_NONBLOCK` and refused unless `fstat` says it is a regular file, so a FIFO
//! cannot make a command hang. Names keyledger chooses itself (quarantine files, cache
//! files) move on to a fresh name when one is taken.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

fn not_regular(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} is not a regular file (a FIFO, device, directory or socket); keyledger refuses it",
            path.display()
        ),
    )
}

/// Creates `path` as a new regular file with `mode` (before the umask). Fails with
/// `AlreadyExists` if anything, a dangling symlink included, is already there.
pub fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Creates `path` (as `create_new`), writes `data` and syncs it to disk.
pub fn write_new(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let mut f = create_new(path, mode)?;
    f.write_all(data).and_then(|_| f.sync_all())
}

/// Creates a new file named `stem`, or `stem-1`, `stem-2`, … if that is taken, in `dir`.
pub fn create_fresh(dir: &Path, stem: &str, mode: u32) -> io::Result<(File, PathBuf)> {
    for n in 0..10_000u32 {
        let name = match n {
            0 => stem.to_owned(),
            n => format!("{stem}-{n}"),
        };
        let p = dir.join(&name);
        match create_new(&p, mode) {
            Ok(f) => return Ok((f, p)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("no free name for {stem} in {}", dir.display()),
    ))
}

/// Creates the directory `path` is in, if need be, with mode 0700.
pub fn create_private_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
        }
        _ => Ok(()),
    }
}

/// Opens (creating if need be) a verified copy of a ledger kept in this user's cache, for
/// appending: its directory made 0700, the file 0600, never through a symlink.
pub fn open_mirror(mirror: &Path) -> io::Result<File> {
    create_private_parent(mirror)?;
    OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(mirror)
}

/// Opens an existing regular file without blocking on a FIFO, following symlinks (a
/// user may keep a ledger behind one); anything but a regular file is refused.
pub fn open_regular(path: &Path, write: bool) -> io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(not_regular(path));
    }
    Ok(f)
}

/// As `open_regular`, but a symlink at `path` is refused too (for files keyledger itself
/// names, in places where a link can only have been planted).
pub fn open_regular_nofollow(path: &Path, write: bool) -> io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(not_regular(path));
    }
    Ok(f)
}

/// Reads a whole regular file of at most `max` bytes.
pub fn read_regular(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    read_file(open_regular(path, false)?, path, max)
}

/// Reads all of `f` (at most `max` bytes) into a buffer sized once.
pub fn read_file(f: File, path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let len = f.metadata()?.len();
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is {len} bytes, more than the {max} expected",
                path.display()
            ),
        ));
    }
    let mut buf = Vec::with_capacity(len as usize + 1);
    f.take(max).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Is `path` (absolute, links resolved) a mount point in this process's view, such as a
/// file bind-mounted on its own? `None` if `/proc/self/mountinfo` cannot be read.
pub fn is_mount_point(path: &Path) -> Option<bool> {
    let info = std::fs::read("/proc/self/mountinfo").ok()?;
    let want = path.as_os_str().as_encoded_bytes();
    // Field 5 is the mount point, with space, tab, newline and backslash as \ooo.
    Some(info.split(|&b| b == b'\n').any(|line| {
        line.split(|&b| b == b' ')
            .nth(4)
            .is_some_and(|m| unescape_octal(m) == want)
    }))
}

fn unescape_octal(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let code = s
            .get(i + 1..i + 4)
            .filter(|d| s[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match code {
            Some(d) => {
                out.push(
                    d.iter()
                        .fold(0u8, |n, c| n.wrapping_mul(8).wrapping_add(c - b'0')),
                );
                i += 4;
            }
            None => {
                out.push(s[i]);
                i += 1;
            }
        }
    }
    out
}

/// The effective user id of this process.
pub fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_told_apart() {
        assert_eq!(unescape_octal(br"/a\040b\134c\9"), b"/a b\\c\\9".to_vec());
        if std::path::Path::new("/proc/self/mountinfo").exists() {
            assert_eq!(is_mount_point(Path::new("/")), Some(true));
            let d = tempfile::tempdir().unwrap();
            let f = std::fs::canonicalize(d.path()).unwrap().join("x");
            std::fs::write(&f, b"").unwrap();
            assert_eq!(is_mount_point(&f), Some(false));
        }
    }

    #[test]
    fn create_new_refuses_links_and_existing_files() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("target");
        std::fs::write(&target, b"keep").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert_eq!(
            create_new(&link, 0o600).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        let dangling = d.path().join("dangling");
        std::os::unix::fs::symlink(d.path().join("nowhere"), &dangling).unwrap();
        assert!(create_new(&dangling, 0o600).is_err());
        assert!(!d.path().join("nowhere").exists());
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        let (_, p) = create_fresh(d.path(), "dangling", 0o600).unwrap();
        assert_eq!(p, d.path().join("dangling-1"));
    }

    #[test]
    fn fifos_are_refused_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let e = read_regular(&fifo, 100).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(open_regular(&fifo, true).is_err());
        assert!(open_regular(d.path(), false).is_err());
    }
}
