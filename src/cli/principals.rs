//! init, keygen, user, signer, grant, revoke.

use keyledger::storage::ledger::Appender;
use std::path::{Path, PathBuf};

use keyledger::core::event::{Action, Permission};
use keyledger::core::signing::SigningKey;
use keyledger::storage::keyfile;
use keyledger::storage::ledger::Ledger;
use serde_json::json;

use super::args::{SignerCmd, UserCmd};
use super::error::CliError;
use super::output::{json, or_dash, print, table};
use super::views::{check_name, done};
use super::{Ctx, default_key_path, parse_as_of, parse_public_key};

pub fn init(ctx: &Ctx, account: &str, key_out: Option<PathBuf>) -> Result<(), CliError> {
    check_name(account)?;
    if let Some(url) = &ctx.postgres {
        return init_postgres(ctx, url, account, key_out);
    }
    if ctx.ledger.exists() {
        return Err(CliError::usage(format!(
            "{} already exists; keyledger never overwrites a ledger",
            ctx.ledger.display()
        )));
    }
    warn_if_others_may_write_beside(&ctx.ledger);
    let key_path = key_out.unwrap_or_else(|| default_key_path(&ctx.ledger));
    let key = SigningKey::generate();
    keyfile::write_new(&key, &key_path)?;
    let (l, genesis) = match Ledger::init(&ctx.ledger, account, &key, ctx.now) {
        Ok(v) => v,
        Err(e) => {
            // Leave nothing half-made: the key was never used.
            let _ = std::fs::remove_file(&key_path);
            let _ = std::fs::remove_file(keyfile::pub_path(&key_path));
            return Err(e.into());
        }
    };
    let id = l.state().ledger_id.map(|i| i.hex()).unwrap_or_default();
    // A new ledger at this path: this user's cache starts from it (replacing what it said of
    // any ledger that was here before and was removed).
    let _ = ctx.cache.start_over(&ctx.ledger, l.verified());
    if ctx.json {
        return json(&json!({
            "ledger": ctx.ledger, "ledger_id": id, "genesis_hash": genesis.hash.hex(),
            "account": account, "public_key": key.public().to_string(), "key_file": key_path,
        }));
    }
    print(&format!(
        "Created ledger {}\n  ledger id     {id}\n  account       {account}\n  public key    {}\n  key file      {} (mode 0600)\n  genesis hash  {}\n\n\
         The genesis hash is this ledger's trust anchor: keep a copy where the operator cannot change it,\n\
         and check with `keyledger verify --expect-genesis {}`.\n",
        ctx.ledger.display(),
        key.public(),
        key_path.display(),
        genesis.hash,
        genesis.hash
    ))
}

/// `init` of a ledger in PostgreSQL (issue 16): the account's key goes where --key-out says.
fn init_postgres(
    ctx: &Ctx,
    url: &str,
    account: &str,
    key_out: Option<PathBuf>,
) -> Result<(), CliError> {
    let key_path = key_out.ok_or_else(|| {
        CliError::usage(
            "a ledger in PostgreSQL has no file to put its key beside: pass --key-out FILE",
        )
    })?;
    let key = SigningKey::generate();
    keyfile::write_new(&key, &key_path)?;
    let scratch = ctx.ledger.with_extension("init");
    let genesis = match keyledger::storage::postgres::init(url, account, &key, ctx.now, &scratch) {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&key_path);
            let _ = std::fs::remove_file(keyfile::pub_path(&key_path));
            return Err(e.into());
        }
    };
    // A copy of an earlier ledger of this name (a database made again) is not this one.
    let _ = ctx.cache.forget(&ctx.ledger);
    let _ = std::fs::remove_file(&ctx.ledger);
    let v = keyledger::storage::postgres::sync(url, &ctx.ledger, &ctx.cache)?;
    let _ = ctx.cache.start_over(&ctx.ledger, &v);
    let id = v.state.ledger_id.map(|i| i.hex()).unwrap_or_default();
    if ctx.json {
        return json(&json!({
            "ledger": url, "ledger_id": id, "genesis_hash": genesis.hash.hex(),
            "account": account, "public_key": key.public().to_string(), "key_file": key_path,
        }));
    }
    print(&format!(
        "Created ledger {url}\n  ledger id     {id}\n  account       {account}\n  public key    {}\n  key file      {} (mode 0600)\n  genesis hash  {}\n\n\
         The genesis hash is this ledger's trust anchor: keep a copy where the operator cannot change it,\n\
         and check with `keyledger verify --expect-genesis {}`.\n",
        key.public(),
        key_path.display(),
        genesis.hash,
        genesis.hash
    ))
}

pub fn keygen(ctx: &Ctx, out: &Path) -> Result<(), CliError> {
    let key = SigningKey::generate();
    let pub_path = keyfile::write_new(&key, out)?;
    if ctx.json {
        return json(
            &json!({"public_key": key.public().to_string(), "key_file": out, "public_key_file": pub_path}),
        );
    }
    print(&format!(
        "{}\nwrote {} (mode 0600) and {}\n",
        key.public(),
        out.display(),
        pub_path.display()
    ))
}

pub fn user(ctx: &Ctx, cmd: UserCmd) -> Result<(), CliError> {
    match cmd {
        UserCmd::Create {
            name,
            federated,
            public_key,
        } => {
            check_name(&name)?;
            let pk = public_key.as_deref().map(parse_public_key).transpose()?;
            let (mut l, key) = ctx.open()?;
            let mut receipts = vec![l.append(
                &key,
                Action::UserCreated {
                    name: name.clone(),
                    federated,
                },
                ctx.now,
            )?];
            if let Some(public_key) = pk {
                receipts.push(l.append(
                    &key,
                    Action::SignerEnrolled {
                        principal: name.clone(),
                        public_key,
                    },
                    ctx.now,
                )?);
            }
            let kind = if federated { "federated user" } else { "user" };
            done(ctx, &format!("created {kind} {name}"), &receipts)
        }
        UserCmd::Delete { name, delete_keys } => {
            check_name(&name)?;
            let (mut l, key) = ctx.open()?;
            let receipts = l.delete_user(&key, &name, delete_keys, ctx.now)?;
            done(ctx, &format!("deleted user {name}"), &receipts)
        }
        UserCmd::List(as_of) => {
            let (until, _) = parse_as_of(&as_of, ctx.now)?;
            let (state, head) = ctx.state_at(until)?;
            let s = &state;
            let rows: Vec<_> = s
                .principals
                .values()
                .map(|p| {
                    let perms: Vec<&str> = s
                        .permissions_of(&p.name)
                        .iter()
                        .map(|p| p.as_str())
                        .collect();
                    let keys = s
                        .keys_of(&p.name)
                        .filter(|k| k.status != keyledger::core::state::KeyStatus::Deleted)
                        .count();
                    (p, perms, keys, s.signing_keys_of(&p.name))
                })
                .collect();
            if ctx.json {
                // Serialized straight from the state (a JSON value per principal costs
                // several times the time and memory at 100,000 principals).
                let principals = rows
                    .iter()
                    .map(|(p, perms, keys, signers)| PrincipalView {
                        name: &p.name,
                        kind: p.kind.as_str(),
                        created: p.created.time,
                        created_seq: p.created.seq,
                        deleted: p.deleted.map(|d| d.time),
                        permissions: perms,
                        keys: *keys,
                        signing_keys: signers,
                        signing_keys_enrolled_by: signers
                            .iter()
                            .map(|k| s.signers.get(k).map(|x| x.enrolled_by.as_str()))
                            .collect(),
                    })
                    .collect();
                return json(&UserList {
                    as_of_seq: head.seq,
                    principals,
                });
            }
            let rows: Vec<Vec<String>> = rows
                .iter()
                .map(|(p, perms, keys, signers)| {
                    vec![
                        p.name.clone(),
                        p.kind.as_str().into(),
                        p.created.time.to_string(),
                        or_dash(p.deleted.map(|d| d.time)),
                        if perms.is_empty() {
                            "-".into()
                        } else {
                            perms.join(",")
                        },
                        keys.to_string(),
                        signers.len().to_string(),
                    ]
                })
                .collect();
            print(&table(
                &[
                    "NAME",
                    "KIND",
                    "CREATED",
                    "DELETED",
                    "PERMISSIONS",
                    "KEYS",
                    "SIGNERS",
                ],
                &rows,
            ))
        }
    }
}

/// A principal as JSON (the schema in the README).
#[derive(serde::Serialize)]
struct PrincipalView<'a> {
    name: &'a str,
    kind: &'static str,
    created: keyledger::core::types::Timestamp,
    created_seq: u64,
    deleted: Option<keyledger::core::types::Timestamp>,
    permissions: &'a [&'static str],
    keys: usize,
    signing_keys: &'a [keyledger::core::types::PublicKey],
    signing_keys_enrolled_by: Vec<Option<&'a str>>,
}

#[derive(serde::Serialize)]
struct UserList<'a> {
    as_of_seq: u64,
    principals: Vec<PrincipalView<'a>>,
}

pub fn signer(ctx: &Ctx, cmd: SignerCmd) -> Result<(), CliError> {
    let (name, pk, enroll) = match cmd {
        SignerCmd::Enroll { name, public_key } => (name, public_key, true),
        SignerCmd::Revoke { name, public_key } => (name, public_key, false),
    };
    check_name(&name)?;
    let public_key = parse_public_key(&pk)?;
    let (mut l, key) = ctx.open()?;
    let action = Action::signer_change(enroll, name.clone(), public_key);
    let r = l.append(&key, action, ctx.now)?;
    let verb = if enroll { "enrolled" } else { "revoked" };
    done(
        ctx,
        &format!("{verb} signing key {public_key} of {name}"),
        &[r],
    )
}

pub fn permission(ctx: &Ctx, name: &str, permission: &str, grant: bool) -> Result<(), CliError> {
    check_name(name)?;
    let permission = Permission::parse(permission).ok_or_else(|| {
        CliError::usage(format!(
            "{permission:?} is not a permission: use admin, manage-keys or manage-own-keys"
        ))
    })?;
    let (mut l, key) = ctx.open()?;
    let action = Action::permission_change(grant, name.to_owned(), permission);
    let r = l.append(&key, action, ctx.now)?;
    let verb = if grant { "granted" } else { "revoked" };
    done(
        ctx,
        &format!(
            "{verb} {permission} {} {name}",
            if grant { "to" } else { "from" }
        ),
        &[r],
    )
}

/// Anyone who can create files in the ledger's directory can plant its writers' lock (and,
/// with the sticky bit, keep it there): say so before the ledger exists.
fn warn_if_others_may_write_beside(ledger: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let dir = match ledger.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o002 != 0) {
        crate::cli::output::warn(&format!(
            "{} can be written by anyone: they can plant files beside the ledger (such as its writers' lock, {}) and stop its writers. Keep ledgers in a directory that only their writers can write",
            dir.display(),
            keyledger::storage::store::lock_path(ledger).display()
        ));
    }
}
