//! A throwaway PostgreSQL server for tests (issue 16): initdb in a temporary directory, as
//! an unprivileged user when the tests run as root (initdb refuses root), listening on a free
//! loopback port, stopped when dropped. A machine without PostgreSQL fails loudly: CI installs
//! it (Debian's `postgresql`), and no test that needs it is ever skipped silently.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Pg {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

/// The directory holding initdb and postgres: PATH, or Debian's /usr/lib/postgresql/N/bin.
fn bin_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|d| d.join("initdb").is_file() && d.join("postgres").is_file())
    {
        return p;
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").is_file())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "POSTGRESQL IS NOT INSTALLED: this test needs initdb and postgres (Debian: apt-get install postgresql); .ci/run installs it"
        )
    })
}

/// A PostgreSQL program: beside initdb, else in Debian's directory, else on PATH.
fn tool(name: &str) -> PathBuf {
    let beside = bin_dir().join(name);
    if beside.is_file() {
        return beside;
    }
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin").join(name))
        .find(|p| p.is_file());
    debian.unwrap_or_else(|| PathBuf::from(name))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `cmd` as the unprivileged user `nobody` when this process is root.
fn as_owner(program: &Path) -> Command {
    if rustix::process::geteuid().is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl Pg {
    pub fn start() -> Pg {
        Self::start_with(&[])
    }

    /// As `start`, with more `-c NAME=VALUE` settings.
    pub fn start_with(settings: &[&str]) -> Pg {
        let (dir, data) = Self::data_dir();
        let out = as_owner(&bin_dir().join("initdb"))
            .args(["-D"])
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdout(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "POSTGRESQL DID NOT START: initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self::launch(dir, settings)
    }

    /// A streaming standby of `primary` (pg_basebackup -R), started and connected; the
    /// primary counts it synchronous if its `synchronous_standby_names` says so.
    pub fn standby_of(primary: &Pg) -> Pg {
        let (dir, data) = Self::data_dir();
        let out = as_owner(&tool("pg_basebackup"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &primary.port.to_string(),
                "-U",
                "postgres",
            ])
            .arg("-D")
            .arg(&data)
            .args(["-R", "-X", "stream", "--no-sync"])
            .output()
            .expect("run pg_basebackup");
        assert!(
            out.status.success(),
            "POSTGRESQL STANDBY DID NOT START: pg_basebackup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self::launch(dir, &["hot_standby=on"])
    }

    /// A temporary directory and its `data` folder, owned by the user PostgreSQL runs as.
    fn data_dir() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        if rustix::process::geteuid().is_root() {
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            std::os::unix::fs::chown(&data, Some(65534), Some(65534)).unwrap();
        }
        (dir, data)
    }

    fn launch(dir: tempfile::TempDir, settings: &[&str]) -> Pg {
        let data = dir.path().join("data");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("postgres.log")).unwrap();
        let child = as_owner(&bin_dir().join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "unix_socket_directories=", "-c", "fsync=on"])
            .args(["-c", "synchronous_commit=on", "-c", "max_connections=100"])
            .args(settings.iter().flat_map(|s| ["-c", s]))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        let pg = Pg { dir, port, child };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
            || postgres::Client::connect(&pg.admin_url(), postgres::NoTls).is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "POSTGRESQL DID NOT START within 60 s: {}",
                std::fs::read_to_string(pg.dir.path().join("postgres.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        pg
    }

    /// kill -9 of the postmaster (its backends exit when they notice).
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A standby becomes the primary (`pg_promote`, waiting for it).
    pub fn promote(&self) {
        let mut c = postgres::Client::connect(&self.admin_url(), postgres::NoTls).unwrap();
        let done: bool = c
            .query_one("SELECT pg_promote(true, 60)", &[])
            .unwrap()
            .get(0);
        assert!(done, "the standby was not promoted within 60 s");
    }

    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The `--ledger` URL of ledger `name` in this server's `postgres` database.
    pub fn ledger_url(&self, name: &str) -> String {
        format!("{}?ledger={name}", self.admin_url())
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SIGINT: PostgreSQL's fast shutdown.
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The ledger `name` as a ledger file would hold it: the header and every frame in seq
/// order, read from the database at `url` (with the seqs found, which must be 0, 1, 2, …).
pub fn ledger_bytes(url: &str, name: &str) -> (Vec<u8>, Vec<i64>) {
    let mut c = postgres::Client::connect(url.split('?').next().unwrap(), postgres::NoTls).unwrap();
    let mut bytes: Vec<u8> = c
        .query_one(
            "SELECT header FROM keyledger_ledgers WHERE name = $1",
            &[&name],
        )
        .unwrap()
        .get(0);
    let mut seqs = Vec::new();
    for r in c
        .query(
            "SELECT seq, frame FROM keyledger_frames WHERE ledger = $1 ORDER BY seq",
            &[&name],
        )
        .unwrap()
    {
        seqs.push(r.get::<_, i64>(0));
        bytes.extend(r.get::<_, Vec<u8>>(1));
    }
    (bytes, seqs)
}

/// A ledger in a throwaway PostgreSQL with a server principal `gw` (server), an operator
/// `ops` (admin) and a user `alice`, each with an enrolled signing key in `dir` (as
/// `site::Site`, but in the database). The ledger's name is new on every run, so no copy
/// kept in the shared test cache belongs to another run's ledger.
pub struct PgSite {
    pub pg: Pg,
    pub dir: tempfile::TempDir,
    pub name: String,
    pub url: String,
}

impl PgSite {
    pub fn new() -> PgSite {
        Self::on(Pg::start())
    }

    pub fn on(pg: Pg) -> PgSite {
        let dir = tempfile::tempdir().unwrap();
        let name = format!(
            "t{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let url = pg.ledger_url(&name);
        let site = PgSite { pg, dir, name, url };
        site.ok(&["init", "--account", "acme", "--key-out", "acme.key"]);
        for (user, perm) in [
            ("gw", Some("server")),
            ("ops", Some("admin")),
            ("alice", None),
        ] {
            site.ok(&["--key", "acme.key", "user", "create", user]);
            if let Some(p) = perm {
                site.ok(&["--key", "acme.key", "grant", user, p]);
            }
            site.ok(&["keygen", "--out", &format!("{user}.key")]);
            site.ok(&[
                "--key",
                "acme.key",
                "signer",
                "enroll",
                user,
                "--public-key",
                &format!("@{user}.key.pub"),
            ]);
        }
        site
    }

    /// `keyledger --ledger URL ARGS` in the site's directory; must succeed.
    pub fn ok(&self, args: &[&str]) -> String {
        let mut all = vec!["--ledger", self.url.as_str()];
        all.extend_from_slice(args);
        super::site::ok(self.dir.path(), &all)
    }

    pub fn key(&self, name: &str) -> keyledger::core::signing::SigningKey {
        keyledger::storage::keyfile::load(&self.dir.path().join(format!("{name}.key"))).unwrap()
    }

    /// A node serving the ledger at `url` on `127.0.0.1:port`.
    pub fn node_of(&self, url: &str, port: u16) -> super::site::Server {
        let listen = format!("127.0.0.1:{port}");
        super::site::serve_in(
            self.dir.path(),
            &[
                "--ledger", url, "--key", "gw.key", "serve", "--listen", &listen,
            ],
        )
    }

    /// The node's own verified copy of the frames (in the shared test cache).
    pub fn mirror_of(&self, url: &str, port: u16) -> PathBuf {
        keyledger::client::mirror_path(
            &super::test_cache_dir(),
            &format!("{url}#node-127.0.0.1:{port}"),
        )
    }
}
