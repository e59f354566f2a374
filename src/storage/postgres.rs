//! The PostgreSQL engine (issue 16): `--ledger postgres://USER@HOST:PORT/DB?ledger=NAME`.
//!
//! The database holds each ledger's 16-byte header and its frames, byte for byte as in a
//! ledger file, keyed by (ledger, seq) with their byte offsets, and one head row per ledger.
//! Every reader and writer keeps a verified copy (mirror) of the frames in this user's cache
//! directory, as a `--server` client does, so every command and both verifiers run on the
//! same bytes a file would hold.
//!
//! An append is one transaction: lock the ledger's head row (`FOR UPDATE`), catch the mirror
//! up to it, validate, chain and sign against that state, insert the frames, move the head,
//! COMMIT; only then are they written to the mirror and acknowledged. A writer with a stale
//! view waits on the row lock and catches up before it chains, so two writers can never give
//! two events one seq (the primary key refuses it too). With `synchronous_commit` on (the
//! default), COMMIT returns once the frames are durable (on a synchronous standby too, if
//! one is configured).

use std::io::Write;
use std::path::{Path, PathBuf};

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};

use crate::core::format;
use crate::core::signing::SigningKey;
use crate::core::types::{Hash32, Timestamp};
use crate::storage::cache::{Cache, Verified};
use crate::storage::ledger::{Appender, Item, Ledger, Outcome};
use crate::storage::store::{self, Receipt, StoreError, Wait};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS keyledger_ledgers (
    name     text PRIMARY KEY,
    header   bytea NOT NULL,
    head_seq bigint NOT NULL,
    head_end bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS keyledger_frames (
    ledger      text NOT NULL REFERENCES keyledger_ledgers (name),
    seq         bigint NOT NULL,
    byte_offset bigint NOT NULL,
    frame       bytea NOT NULL,
    PRIMARY KEY (ledger, seq),
    UNIQUE (ledger, byte_offset)
);
CREATE TABLE IF NOT EXISTS keyledger_nonces (
    ledger text NOT NULL REFERENCES keyledger_ledgers (name),
    replay bytea NOT NULL,
    time   bigint NOT NULL,
    PRIMARY KEY (ledger, replay)
);";

/// Whether `ledger` names the PostgreSQL engine.
pub fn is_url(ledger: &Path) -> bool {
    ledger
        .to_str()
        .is_some_and(|s| s.starts_with("postgres://") || s.starts_with("postgresql://"))
}

fn db(e: postgres::Error) -> StoreError {
    StoreError::Remote(format!("PostgreSQL: {e}"))
}

/// The connection string and the ledger's name of a `postgres://…?ledger=NAME` URL.
pub fn parse_url(url: &str) -> Result<(String, String), StoreError> {
    let bad = |why: &str| {
        StoreError::Remote(format!(
            "{why}: give --ledger postgres://USER@HOST:PORT/DB?ledger=NAME"
        ))
    };
    let (base, query) = url.split_once('?').ok_or_else(|| bad("no ?ledger=NAME"))?;
    let mut name = None;
    let mut rest = Vec::new();
    for p in query.split('&') {
        match p.strip_prefix("ledger=") {
            Some(n) => name = Some(n.to_owned()),
            None => rest.push(p),
        }
    }
    let name = name
        .filter(|n| crate::core::types::valid_name(n))
        .ok_or_else(|| bad("the ledger's name (ledger=NAME: 1-64 letters, digits, '.', '_', '@', '-') is missing or not a name"))?;
    let conn = match rest.is_empty() {
        true => base.to_owned(),
        false => format!("{base}?{}", rest.join("&")),
    };
    Ok((conn, name))
}

fn connect(url: &str) -> Result<(Client, String), StoreError> {
    let (conn, name) = parse_url(url)?;
    let mut c = Client::connect(&conn, NoTls).map_err(db)?;
    c.batch_execute(SCHEMA).map_err(db)?;
    Ok((c, name))
}

/// Brings `mirror` up to the database's head of ledger `name` (every frame it lacks, in
/// order). A mirror longer than the database's ledger, or whose end is not a frame boundary
/// there, is a history that does not continue the one verified before.
fn catch_up(
    c: &mut impl postgres::GenericClient,
    name: &str,
    mirror: &Path,
) -> Result<(), StoreError> {
    let row = c
        .query_opt(
            "SELECT header, head_end FROM keyledger_ledgers WHERE name = $1",
            &[&name],
        )
        .map_err(db)?
        .ok_or_else(|| {
            StoreError::Remote(format!(
                "there is no ledger {name} in this database; create it with `keyledger init --account NAME --ledger postgres://…?ledger={name}`"
            ))
        })?;
    let header: Vec<u8> = row.get(0);
    let head_end: i64 = row.get(1);
    let mut file =
        crate::storage::files::open_mirror(mirror).map_err(StoreError::io(mirror, "open"))?;
    let mut have = file
        .metadata()
        .map_err(StoreError::io(mirror, "stat"))?
        .len();
    let diverged = |why: String| StoreError::Diverged {
        reason: why,
        files: vec![mirror.to_path_buf()],
    };
    if have < header.len() as u64 {
        // A copy cut inside its header (or new) holds nothing verified: it starts again.
        file.set_len(0)
            .map_err(StoreError::io(mirror, "cut its torn header"))?;
        file.write_all(&header)
            .map_err(StoreError::io(mirror, "append"))?;
        have = header.len() as u64;
    }
    let mut mine = vec![0u8; header.len()];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut mine, 0)
        .map_err(StoreError::io(mirror, "read"))?;
    if mine != header {
        return Err(diverged(format!(
            "the database's ledger {name} has another file header than the copy verified before"
        )));
    }
    if have > header.len() as u64 {
        have = cut_torn_tail(c, name, mirror, &mut file, have)?;
    }
    if have > head_end as u64 {
        return Err(diverged(format!(
            "the database's ledger {name} ends at byte {head_end}, before the {have} bytes this user verified before (in {}): events were dropped",
            mirror.display()
        )));
    }
    if have < head_end as u64 {
        let rows = c
            .query(
                "SELECT byte_offset, frame FROM keyledger_frames WHERE ledger = $1 AND byte_offset >= $2 ORDER BY byte_offset",
                &[&name, &(have as i64)],
            )
            .map_err(db)?;
        for r in rows {
            let offset: i64 = r.get(0);
            let frame: Vec<u8> = r.get(1);
            if offset as u64 != have {
                return Err(diverged(format!(
                    "the database's ledger {name} has no frame at byte {have}, where the copy verified before ends"
                )));
            }
            file.write_all(&frame)
                .map_err(StoreError::io(mirror, "append"))?;
            have += frame.len() as u64;
        }
    }
    // No fsync: the database holds these durably; a mirror that lost its tail in a crash
    // is caught up (and a frame it holds only part of cut) before it is opened again.
    Ok(())
}

/// The mirror's length once a frame it holds only part of (a process killed while writing
/// it, after the database committed it) is cut off: the part must be the start of the
/// database's frame there. Its last whole frame must be the database's frame at that
/// offset, byte for byte: the history goes on from the head this copy verified, or it is a
/// divergence (a restored backup, a lagging standby, an edited row), however long it is.
fn cut_torn_tail(
    c: &mut impl postgres::GenericClient,
    name: &str,
    mirror: &Path,
    file: &mut std::fs::File,
    have: u64,
) -> Result<u64, StoreError> {
    let row = c
        .query_opt(
            "SELECT byte_offset, frame FROM keyledger_frames WHERE ledger = $1 AND byte_offset < $2 ORDER BY byte_offset DESC LIMIT 1",
            &[&name, &(have as i64)],
        )
        .map_err(db)?;
    let Some(row) = row else { return Ok(have) };
    let offset = row.get::<_, i64>(0) as u64;
    let frame: Vec<u8> = row.get(1);
    let end = offset + frame.len() as u64;
    if end < have {
        // Past the database's last frame: the caller reports the cut.
        return Ok(have);
    }
    let mut part = vec![0u8; (have - offset) as usize];
    std::os::unix::fs::FileExt::read_exact_at(&*file, &mut part, offset)
        .map_err(StoreError::io(mirror, "read"))?;
    if end == have {
        if part != frame {
            return Err(StoreError::Diverged {
                reason: format!(
                    "the database's ledger {name} holds another event at byte {offset} than the copy verified before (its head): the database's history was replaced (a restored backup, a lagging standby, an edited row)"
                ),
                files: vec![mirror.to_path_buf()],
            });
        }
        return Ok(have);
    }
    if part[..] != frame[..part.len()] {
        return Err(StoreError::Diverged {
            reason: format!(
                "the copy of ledger {name} verified before ends inside the frame at byte {offset} with bytes the database's frame does not hold"
            ),
            files: vec![mirror.to_path_buf()],
        });
    }
    file.set_len(offset)
        .map_err(StoreError::io(mirror, "cut its torn tail"))?;
    Ok(offset)
}

/// Creates ledger `name` in the database with a new genesis by `key` for `account`.
pub fn init(
    url: &str,
    account: &str,
    key: &SigningKey,
    time: Timestamp,
    scratch: &Path,
) -> Result<Receipt, StoreError> {
    let (mut c, name) = connect(url)?;
    // The genesis is made as a ledger file would hold it, then stored; the file goes.
    crate::storage::files::create_private_parent(scratch)
        .map_err(StoreError::io(scratch, "create its directory"))?;
    let _ = std::fs::remove_file(scratch);
    let made = Ledger::init(scratch, account, key, time).map(|(l, r)| {
        drop(l);
        r
    });
    let bytes = std::fs::read(scratch).map_err(StoreError::io(scratch, "read"));
    let _ = std::fs::remove_file(scratch);
    let _ = std::fs::remove_file(store::lock_path(scratch));
    let (receipt, bytes) = (made?, bytes?);
    let (header, frame) = bytes.split_at(format::HEADER_LEN as usize);
    let mut tx = c.transaction().map_err(db)?;
    let inserted = tx
        .execute(
            "INSERT INTO keyledger_ledgers (name, header, head_seq, head_end) VALUES ($1, $2, 0, $3) ON CONFLICT DO NOTHING",
            &[&name, &header, &(bytes.len() as i64)],
        )
        .map_err(db)?;
    if inserted == 0 {
        return Err(StoreError::Remote(format!(
            "the database already holds a ledger {name}; choose another ledger=NAME"
        )));
    }
    tx.execute(
        "INSERT INTO keyledger_frames (ledger, seq, byte_offset, frame) VALUES ($1, 0, $2, $3)",
        &[&name, &(header.len() as i64), &frame],
    )
    .map_err(db)?;
    tx.commit().map_err(db)?;
    Ok(receipt)
}

/// Stores the ledger file `bytes` (already verified by the caller) as the new ledger of
/// `url`, frame for frame, in one transaction; the number of frames.
pub fn import(url: &str, bytes: &[u8]) -> Result<u64, StoreError> {
    let (mut c, name) = connect(url)?;
    let header_len = format::HEADER_LEN as usize;
    let bad = || StoreError::Remote("the file's frames do not parse; verify it first".into());
    let mut frames = Vec::new();
    let mut at = header_len;
    while at < bytes.len() {
        let len = bytes
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")) as usize)
            .ok_or_else(bad)?;
        let end = at + 4 + len + 64;
        frames.push((at, bytes.get(at..end).ok_or_else(bad)?));
        at = end;
    }
    let mut tx = c.transaction().map_err(db)?;
    let inserted = tx
        .execute(
            "INSERT INTO keyledger_ledgers (name, header, head_seq, head_end) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            &[
                &name,
                &&bytes[..header_len],
                &(frames.len() as i64 - 1),
                &(bytes.len() as i64),
            ],
        )
        .map_err(db)?;
    if inserted == 0 {
        return Err(StoreError::Remote(format!(
            "the database already holds a ledger {name}; import into a new ledger=NAME"
        )));
    }
    let insert = tx
        .prepare("INSERT INTO keyledger_frames (ledger, seq, byte_offset, frame) VALUES ($1, $2, $3, $4)")
        .map_err(db)?;
    for (seq, (offset, frame)) in frames.iter().enumerate() {
        tx.execute(&insert, &[&name, &(seq as i64), &(*offset as i64), frame])
            .map_err(db)?;
    }
    tx.commit().map_err(db)?;
    Ok(frames.len() as u64)
}

/// Brings the mirror of `url` up to date and verifies it (through this user's cache): what
/// every read command then runs on.
pub fn sync(url: &str, mirror: &Path, cache: &Cache) -> Result<Verified, StoreError> {
    let (mut c, name) = connect(url)?;
    catch_up(&mut c, &name, mirror)?;
    Ok(store::head(mirror, cache)?.0)
}

/// A ledger in PostgreSQL, open for writing through its verified mirror.
///
/// A batch runs inside one transaction: `lock` (BEGIN, the head row `FOR UPDATE`, the
/// mirror caught up), then what the writer decides against that state (`claim` of request
/// nonces among it), then `append_items`, whose frames are inserted and COMMITted before
/// they reach the mirror; `release` ends a batch that appended nothing.
pub struct PgLedger {
    url: String,
    client: Client,
    name: String,
    mirror: PathBuf,
    ledger: Ledger,
    /// A transaction holding the head row is open.
    locked: bool,
    /// This writer's id in its commit notices (`listen` skips a node's own).
    node: String,
}

impl PgLedger {
    pub fn open(url: &str, mirror: &Path, wait: Wait, cache: &Cache) -> Result<Self, StoreError> {
        Self::open_checked(url, mirror, wait, cache, false)
    }

    /// As `open`, every event of the mirror verified again (a server's start).
    pub fn open_verifying_all(
        url: &str,
        mirror: &Path,
        wait: Wait,
        cache: &Cache,
    ) -> Result<Self, StoreError> {
        Self::open_checked(url, mirror, wait, cache, true)
    }

    fn open_checked(
        url: &str,
        mirror: &Path,
        wait: Wait,
        cache: &Cache,
        all: bool,
    ) -> Result<Self, StoreError> {
        let (mut client, name) = connect(url)?;
        catch_up(&mut client, &name, mirror)?;
        let mut ledger = match all {
            true => Ledger::open_verifying_all(mirror, wait, cache)?,
            false => Ledger::open_with(mirror, wait, cache)?,
        };
        ledger.durable_elsewhere();
        let mut id = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        Ok(PgLedger {
            url: url.to_owned(),
            client,
            name,
            mirror: mirror.to_path_buf(),
            ledger,
            locked: false,
            node: crate::core::types::to_hex(&id),
        })
    }

    /// The mirror, open for writing (its head is the database's as of the last lock,
    /// append or follow).
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The ledger's name in the database.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This writer's id in the notices of its commits.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Begins the batch's transaction: locks the head row and catches the mirror up to it.
    /// Until `append_items` or `release`, no other writer can chain.
    pub fn lock(&mut self) -> Result<(), StoreError> {
        if self.locked {
            return Ok(());
        }
        self.reconnect()?;
        self.client.batch_execute("BEGIN").map_err(db)?;
        self.locked = true;
        let caught = self.catch_up_locked();
        if caught.is_err() {
            self.rollback();
        }
        caught
    }

    /// Under the lock: the database's frame where this copy's head is must be that head,
    /// byte for byte, whatever the lengths say (a replaced history of the same size), and
    /// what follows it is taken in.
    fn catch_up_locked(&mut self) -> Result<(), StoreError> {
        let at = self.ledger.verified().head_offset as i64;
        let row = self
            .client
            .query_one(
                "SELECT l.head_end, f.frame FROM keyledger_ledgers l LEFT JOIN keyledger_frames f ON f.ledger = l.name AND f.byte_offset = $2 WHERE l.name = $1 FOR UPDATE OF l",
                &[&self.name, &at],
            )
            .map_err(db)?;
        let head_end: i64 = row.get(0);
        let theirs: Option<Vec<u8>> = row.get(1);
        let mine = self
            .ledger
            .head_frame()
            .map_err(StoreError::io(&self.mirror, "read"))?;
        if theirs.as_deref() != Some(&mine[..]) {
            return Err(StoreError::Diverged {
                reason: format!(
                    "the database's ledger {} holds another event at byte {at} than the head this node verified: the database's history was replaced (a restored backup, a lagging standby, an edited row)",
                    self.name
                ),
                files: vec![self.mirror.clone()],
            });
        }
        if head_end as u64 != self.ledger.head().end {
            // Another writer went first: take its frames in before chaining after them.
            catch_up(&mut self.client, &self.name, &self.mirror)?;
            self.follow_mirror()?;
        }
        Ok(())
    }

    /// Takes in what other writers committed, without locking (a follower's read).
    pub fn follow(&mut self) -> Result<(), StoreError> {
        if self.locked {
            return Ok(());
        }
        self.reconnect()?;
        catch_up(&mut self.client, &self.name, &self.mirror)?;
        self.follow_mirror()
    }

    /// The mirror's handle takes in the frames `catch_up` wrote; a handle that cannot is
    /// opened again (verifying through the cache).
    fn follow_mirror(&mut self) -> Result<(), StoreError> {
        if self.ledger.follow().is_err() {
            self.reopen()?;
        }
        Ok(())
    }

    /// The mirror verified again in place (this handle keeps its writers' lock).
    fn reopen(&mut self) -> Result<(), StoreError> {
        self.ledger.reload()
    }

    /// A connection the database closed (a restart, a timeout) is opened again.
    fn reconnect(&mut self) -> Result<(), StoreError> {
        if self.client.is_closed() {
            self.locked = false;
            self.client = connect(&self.url)?.0;
        }
        Ok(())
    }

    /// Records the request ids `ids` (with their request times) as used, inside the batch's
    /// transaction (taken by `lock`): whether each was new to every node of this ledger.
    pub fn claim(&mut self, ids: &[(Hash32, Timestamp)]) -> Result<Vec<bool>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.lock()?;
        let keys: Vec<&[u8]> = ids.iter().map(|(h, _)| &h.0[..]).collect();
        let times: Vec<i64> = ids.iter().map(|(_, t)| t.0).collect();
        let fresh: std::collections::HashSet<Vec<u8>> = self
            .client
            .query(
                "INSERT INTO keyledger_nonces (ledger, replay, time) SELECT $1, r, t FROM unnest($2::bytea[], $3::bigint[]) AS u(r, t) ON CONFLICT DO NOTHING RETURNING replay",
                &[&self.name, &keys, &times],
            )
            .map_err(db)?
            .into_iter()
            .map(|r| r.get::<_, Vec<u8>>(0))
            .collect();
        Ok(keys.iter().map(|k| fresh.contains(*k)).collect())
    }

    /// Forgets request ids signed more than `age_us` before the database's clock (one clock
    /// for every node): a request that old is refused by its time.
    pub fn forget_nonces(&mut self, age_us: i64) -> Result<(), StoreError> {
        if self.locked {
            return Ok(());
        }
        self.reconnect()?;
        self.client
            .execute(
                "DELETE FROM keyledger_nonces WHERE ledger = $1 AND time < (extract(epoch from clock_timestamp()) * 1000000)::bigint - $2",
                &[&self.name, &age_us],
            )
            .map(drop)
            .map_err(db)
    }

    /// Ends a batch that appended nothing, keeping its claims (COMMIT).
    pub fn release(&mut self) -> Result<(), StoreError> {
        if !self.locked {
            return Ok(());
        }
        self.locked = false;
        self.client.batch_execute("COMMIT").map_err(db)
    }

    fn rollback(&mut self) {
        self.locked = false;
        let _ = self.client.batch_execute("ROLLBACK");
    }

    /// Appends `items` (see `Ledger::append_items`) in the batch's transaction (taken here
    /// if `lock` was not called), committed before the mirror is written.
    pub fn append_items(
        &mut self,
        key: &SigningKey,
        items: Vec<Item>,
        now: Timestamp,
        all_or_nothing: bool,
    ) -> Result<Vec<Result<Outcome, StoreError>>, StoreError> {
        self.lock()?;
        let PgLedger {
            client,
            name,
            ledger,
            locked,
            node,
            ..
        } = self;
        let first = ledger.head().seq + 1;
        let notice = format!("{name} {node}");
        let mut commit = |frames: &[(u64, Vec<u8>)]| -> Result<(), StoreError> {
            // One statement: the frames, the head moved, the notice to other nodes.
            let seqs: Vec<i64> = (0..frames.len() as u64)
                .map(|i| (first + i) as i64)
                .collect();
            let offsets: Vec<i64> = frames.iter().map(|(o, _)| *o as i64).collect();
            let bytes: Vec<&[u8]> = frames.iter().map(|(_, f)| f.as_slice()).collect();
            let (last, f) = frames.last().expect("at least one frame");
            client
                .execute(
                    "WITH f AS (INSERT INTO keyledger_frames (ledger, seq, byte_offset, frame) SELECT $1, s, o, b FROM unnest($2::bigint[], $3::bigint[], $4::bytea[]) AS u(s, o, b)), h AS (UPDATE keyledger_ledgers SET head_seq = $5, head_end = $6 WHERE name = $1) SELECT pg_notify('keyledger', $7)",
                    &[
                        &*name,
                        &seqs,
                        &offsets,
                        &bytes,
                        &((first + frames.len() as u64 - 1) as i64),
                        &((*last + f.len() as u64) as i64),
                        &notice,
                    ],
                )
                .map_err(db)?;
            // Whatever COMMIT answers, the transaction is over.
            *locked = false;
            client.batch_execute("COMMIT").map_err(db)
        };
        let out = ledger.append_items_via(key, items, now, all_or_nothing, &mut commit);
        if self.locked {
            // Nothing reached COMMIT (nothing to append, or refused before it): the claims
            // made in this batch are kept.
            self.release()?;
        }
        if out.is_err() {
            // The mirror's handle may be ahead of its file: open it again.
            self.reopen()?;
        }
        out
    }
}

impl Drop for PgLedger {
    fn drop(&mut self) {
        if self.locked {
            self.rollback();
        }
    }
}

impl Appender for PgLedger {
    fn verified(&self) -> &Verified {
        self.ledger.verified()
    }

    fn append_batch(
        &mut self,
        key: &SigningKey,
        actions: Vec<crate::core::event::Action>,
        now: Timestamp,
    ) -> Result<Vec<Outcome>, StoreError> {
        let items = actions.into_iter().map(Item::own).collect();
        self.append_items(key, items, now, true)?
            .into_iter()
            .collect()
    }

    fn event_time(&self, now: Timestamp) -> Result<Timestamp, StoreError> {
        self.ledger.event_time(now)
    }
}

/// Waits for other writers' commits to ledger `url` (LISTEN), calling `wake` after each
/// one not by writer `own` (and every `idle` without one), until `wake` returns false or
/// the connection fails.
pub fn listen(
    url: &str,
    own: &str,
    idle: std::time::Duration,
    mut wake: impl FnMut() -> bool,
) -> Result<(), StoreError> {
    let (mut c, name) = connect(url)?;
    c.batch_execute("LISTEN keyledger").map_err(db)?;
    loop {
        let mut n = c.notifications();
        let mut it = n.timeout_iter(idle);
        let mine = match it.next() {
            Ok(Some(note)) => match note.payload().split_once(' ') {
                Some((ledger, node)) => ledger == name && node != own,
                None => false,
            },
            Ok(None) => true,
            Err(e) => return Err(db(e)),
        };
        if mine && !wake() {
            return Ok(());
        }
    }
}

/// The database's own limit for `bench`: single-row synchronous commits per second from one
/// client (one INSERT, one COMMIT, `rows` times), in a scratch table dropped afterwards.
pub fn commit_rate(url: &str, rows: u32) -> Result<f64, StoreError> {
    let (mut c, _) = connect(url)?;
    c.batch_execute(
        "DROP TABLE IF EXISTS keyledger_bench_commits; CREATE TABLE keyledger_bench_commits (id bigserial PRIMARY KEY, v bytea NOT NULL)",
    )
    .map_err(db)?;
    let insert = c
        .prepare("INSERT INTO keyledger_bench_commits (v) VALUES ($1)")
        .map_err(db)?;
    let payload = vec![7u8; 200];
    let started = std::time::Instant::now();
    for _ in 0..rows {
        // Outside a transaction block each statement commits on its own.
        c.execute(&insert, &[&payload]).map_err(db)?;
    }
    let rate = rows as f64 / started.elapsed().as_secs_f64();
    c.batch_execute("DROP TABLE keyledger_bench_commits")
        .map_err(db)?;
    Ok(rate)
}

/// Removes ledger `name` of `url` from the database (what `bench` made).
pub fn drop_ledger(url: &str) -> Result<(), StoreError> {
    let (mut c, name) = connect(url)?;
    let mut tx = c.transaction().map_err(db)?;
    tx.execute("DELETE FROM keyledger_nonces WHERE ledger = $1", &[&name])
        .map_err(db)?;
    tx.execute("DELETE FROM keyledger_frames WHERE ledger = $1", &[&name])
        .map_err(db)?;
    tx.execute("DELETE FROM keyledger_ledgers WHERE name = $1", &[&name])
        .map_err(db)?;
    tx.commit().map_err(db)
}
