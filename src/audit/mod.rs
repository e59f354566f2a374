//! Compliance audits (the controls auditors run: CIS, AWS Config, Alibaba Cloud Config),
//! evaluated over the state replayed at any past time. Each finding cites the seqs of the
//! events that prove it. An audit first verifies the whole ledger; one that does not verify
//! is not audited.

pub mod report;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::core::event::{Action, Permission};
use crate::core::state::{AccessKey, KeyStatus, PrincipalKind, State};
use crate::core::types::Timestamp;
use crate::evidence::verify::{self, Report};
use crate::storage::cache::Cache;
use crate::storage::store::{self, StoreError, Trust, Until};

const DAY_US: i64 = 86_400_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Low, Self::Medium, Self::High, Self::Critical]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// The controls, with what each checks (also shown in reports).
pub const CONTROLS: [(&str, &str); 13] = [
    (
        "root-access-key",
        "The account (root) holds no access key (CIS: no root access key; root-ak-check)",
    ),
    (
        "access-key-rotated",
        "No active key is older than the maximum key age (access-keys-rotated)",
    ),
    (
        "one-active-key-per-user",
        "No user has more than one active key (CIS: only one active key per user)",
    ),
    (
        "unused-credentials",
        "No active key has gone unused longer than the maximum (unused credentials)",
    ),
    (
        "secret-never-revealed",
        "Every created key's secret was handed to its requester (R10)",
    ),
    (
        "secret-revealed-to-file",
        "Secrets written to files are listed so the files can be accounted for",
    ),
    (
        "temporary-credentials-duration",
        "Temporary credentials last no longer than the maximum",
    ),
    ("keys-of-deleted-users", "No key is left on a deleted user"),
    (
        "leaked-key-active",
        "No key reported leaked is still active (R14: disable it at once)",
    ),
    (
        "signer-enrolled-by-other",
        "Signing keys enrolled for a principal by someone else are listed: the enroller chose the key that events are attributed to",
    ),
    (
        "auth-failure-flood",
        "No key had failed checks past the server's per-key rate (R11: summarized floods; brute force or a broken client)",
    ),
    (
        "privileged-without-protection",
        "Where a server can check second factors (a principal holds server), the account, admins and key managers have operation protection on (R13; CIS: MFA for privileged users)",
    ),
    (
        "refused-actions-burst",
        "No actor has a burst of refused actions (possible probing)",
    ),
];

#[derive(Debug, Clone)]
pub struct Options {
    /// Evaluate the state at this time: events dated later are not evaluated.
    pub as_of: Timestamp,
    /// Cover the whole ledger: `as_of` is raised to the last event's time if that is later
    /// (an audit "as of now" never silently stops before the end).
    pub whole: bool,
    pub max_key_age_days: i64,
    pub max_unused_days: i64,
    pub max_temporary_hours: i64,
    /// Refusals by one actor within `burst_window_us` that make a burst.
    pub burst_threshold: usize,
    pub burst_window_us: i64,
    /// Month ends to evaluate the controls at as well (the trend), latest first: 0 for
    /// none. Each is one more replay of the ledger up to it.
    pub trend_months: usize,
}

impl Options {
    pub fn at(as_of: Timestamp) -> Self {
        Options {
            as_of,
            whole: false,
            max_key_age_days: 90,
            max_unused_days: 45,
            max_temporary_hours: 12,
            burst_threshold: 5,
            burst_window_us: 3600 * 1_000_000,
            trend_months: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub control: &'static str,
    pub severity: Severity,
    pub principal: Option<String>,
    pub key_id: Option<String>,
    pub message: String,
    /// Seqs of the events that prove the finding.
    pub evidence: Vec<u64>,
}

/// One event on a key's timeline (for reports).
#[derive(Debug, Clone, Serialize)]
pub struct Mark {
    pub seq: u64,
    pub time: Timestamp,
    pub tag: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Audit {
    pub as_of: Timestamp,
    /// The last seq evaluated: events 0..=as_of_seq are those dated at or before `as_of`.
    pub as_of_seq: u64,
    /// Events evaluated (as_of_seq + 1).
    pub events: u64,
    /// Events in the whole ledger, all verified; those after `as_of_seq` are dated after
    /// `as_of`.
    pub ledger_events: u64,
    pub findings: Vec<Finding>,
    /// Per key: created, revealed, used, disabled, enabled, deleted events up to `as_of`.
    pub timelines: BTreeMap<String, Vec<Mark>>,
    #[serde(skip)]
    pub state: State,
    /// Every evidence event: seq → (time, actor, tag, one-line detail).
    pub evidence_events: BTreeMap<u64, (Timestamp, String, &'static str, Action)>,
    /// The findings counted by control and severity at each month end before `as_of`.
    pub trend: Vec<TrendPoint>,
}

/// The controls' findings at one moment, counted by control and by severity.
#[derive(Debug, Clone, Serialize)]
pub struct TrendPoint {
    pub at: Timestamp,
    pub by_control: BTreeMap<&'static str, usize>,
    pub by_severity: BTreeMap<&'static str, usize>,
}

impl TrendPoint {
    fn of(at: Timestamp, findings: &[Finding]) -> Self {
        let mut p = TrendPoint {
            at,
            by_control: BTreeMap::new(),
            by_severity: BTreeMap::new(),
        };
        for f in findings {
            *p.by_control.entry(f.control).or_default() += 1;
            *p.by_severity.entry(f.severity.as_str()).or_default() += 1;
        }
        p
    }
}

/// The last instants of the months from `from`'s month to the month before `to`'s, the
/// last `max` of them.
pub fn month_ends(from: Timestamp, to: Timestamp, max: usize) -> Vec<Timestamp> {
    use chrono::{Datelike, TimeZone, Utc};
    let (Some(a), Some(b)) = (
        Utc.timestamp_micros(from.0).single(),
        Utc.timestamp_micros(to.0).single(),
    ) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let (mut y, mut m) = (a.year(), a.month());
    while (y, m) < (b.year(), b.month()) {
        let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        if let Some(next) = Utc.with_ymd_and_hms(ny, nm, 1, 0, 0, 0).single() {
            out.push(Timestamp(next.timestamp_micros() - 1));
        }
        (y, m) = (ny, nm);
    }
    let skip = out.len().saturating_sub(max);
    out.split_off(skip)
}

/// One rotation (`key-rotated`), as an audit sees it: the old key, its successor, and
/// whether the old key is still active.
#[derive(Debug, Clone, Serialize)]
pub struct RotationSeen {
    pub user: String,
    pub old_key_id: String,
    pub new_key_id: String,
    pub seq: u64,
    pub time: Timestamp,
    pub old_status: &'static str,
}

impl Audit {
    /// Every rotation up to `as_of`, oldest first.
    pub fn rotations(&self) -> Vec<RotationSeen> {
        let mut out: Vec<RotationSeen> = self
            .state
            .keys
            .values()
            .filter_map(|k| {
                k.rotated_to.as_ref().map(|r| RotationSeen {
                    user: k.user.clone(),
                    old_key_id: k.id.clone(),
                    new_key_id: r.key_id.clone(),
                    seq: r.at.seq,
                    time: r.at.time,
                    old_status: k.status_at(self.as_of),
                })
            })
            .collect();
        out.sort_by_key(|r| r.seq);
        out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}: {1}")]
    Io(std::path::PathBuf, std::io::Error),
    #[error("the ledger does not verify ({} problem(s), first: {}); an audit over it would prove nothing. Run `keyledger verify`", .0.findings.len(), .0.findings.first().map_or(String::new(), |f| f.message.clone()))]
    NotVerified(Box<Report>),
    #[error("{0}; an audit of what is left would hide that. Run `keyledger verify`")]
    Diverged(String),
}

/// The controls evaluated over state `s` at time `t`, with the refusals seen up to then.
fn evaluate(
    s: &State,
    t: Timestamp,
    denials: &BTreeMap<String, Vec<(u64, Timestamp)>>,
    opts: &Options,
) -> Vec<Finding> {
    let mut findings = vec![];
    let mut add = |control,
                   severity,
                   k: Option<&AccessKey>,
                   principal: Option<&str>,
                   message: String,
                   evidence: Vec<u64>| {
        findings.push(Finding {
            control,
            severity,
            principal: principal
                .map(str::to_owned)
                .or_else(|| k.map(|k| k.user.clone())),
            key_id: k.map(|k| k.id.clone()),
            message,
            evidence,
        })
    };
    let active = |k: &AccessKey| k.status == KeyStatus::Active && !k.expired_at(t);
    for k in s.keys.values() {
        let owner = s.principals.get(&k.user);
        let age_days = (t.0 - k.created.time.0) / DAY_US;
        if owner.is_some_and(|p| p.kind == PrincipalKind::Account) && k.status != KeyStatus::Deleted
        {
            add(
                "root-access-key",
                Severity::Critical,
                Some(k),
                None,
                format!(
                    "the account holds access key {} ({}), created {}",
                    k.id,
                    k.status_at(t),
                    k.created.time
                ),
                vec![k.created.seq],
            );
        }
        if active(k) && !k.temporary && age_days > opts.max_key_age_days {
            // A rotation started (its successor exists and is not deleted) is credited: what
            // is left is to disable the old key once its users have moved.
            let successor = k.rotated_to.as_ref().filter(|r| {
                s.keys
                    .get(&r.key_id)
                    .is_some_and(|n| n.status != KeyStatus::Deleted)
            });
            match successor {
                Some(r) => add(
                    "access-key-rotated",
                    Severity::Medium,
                    Some(k),
                    None,
                    format!(
                        "{} is {age_days} days old (limit {}) and was rotated to {} at seq {}; disable it once its users have moved",
                        k.id, opts.max_key_age_days, r.key_id, r.at.seq
                    ),
                    vec![k.created.seq, r.at.seq],
                ),
                None => add(
                    "access-key-rotated",
                    Severity::High,
                    Some(k),
                    None,
                    format!(
                        "{} is {age_days} days old (limit {}); rotate it (`keyledger key rotate {}`)",
                        k.id, opts.max_key_age_days, k.id
                    ),
                    vec![k.created.seq],
                ),
            }
        }
        if active(k) {
            let (since, seq, what) = match k.last_used {
                Some(u) => (u.time, u.seq, "last used"),
                None => (
                    k.created.time,
                    k.created.seq,
                    "never used since its creation",
                ),
            };
            let idle = (t.0 - since.0) / DAY_US;
            if idle > opts.max_unused_days {
                add(
                    "unused-credentials",
                    Severity::Medium,
                    Some(k),
                    None,
                    format!(
                        "{} is active but {what} {idle} days ago (limit {}); disable it",
                        k.id, opts.max_unused_days
                    ),
                    vec![seq],
                );
            }
        }
        match &k.revealed {
            None => {
                let sev = if k.status == KeyStatus::Deleted {
                    Severity::Low
                } else {
                    Severity::High
                };
                add(
                    "secret-never-revealed",
                    sev,
                    Some(k),
                    None,
                    format!(
                        "the secret of {} ({}) was never revealed: the creating session may have crashed; delete it and create another",
                        k.id,
                        k.status_at(t)
                    ),
                    vec![k.created.seq],
                );
            }
            Some(rv) if rv.channel.starts_with("csv:") => {
                add(
                    "secret-revealed-to-file",
                    Severity::Low,
                    Some(k),
                    None,
                    format!(
                        "the secret of {} was written to {} at {}; make sure that file was moved to a vault and destroyed",
                        k.id,
                        &rv.channel[4..],
                        rv.at.time
                    ),
                    vec![rv.at.seq],
                );
            }
            Some(_) => {}
        }
        if let Some(e) = k.expires {
            let hours = (e.0 - k.created.time.0) as f64 / 3.6e9;
            if hours > opts.max_temporary_hours as f64 {
                add(
                    "temporary-credentials-duration",
                    Severity::High,
                    Some(k),
                    None,
                    format!(
                        "{} was issued for {hours:.1} h (limit {} h)",
                        k.id, opts.max_temporary_hours
                    ),
                    vec![k.created.seq],
                );
            }
        }
        if let Some(l) = k.leak_reported
            && active(k)
        {
            add(
                "leaked-key-active",
                Severity::Critical,
                Some(k),
                None,
                format!(
                    "{} of {} was reported leaked at {} and is still active; disable it: keyledger key disable {}",
                    k.id, k.user, l.time, k.id
                ),
                vec![k.created.seq, l.seq],
            );
        }
        if let Some(d) = owner.and_then(|p| p.deleted)
            && k.status != KeyStatus::Deleted
        {
            add(
                "keys-of-deleted-users",
                Severity::High,
                Some(k),
                None,
                format!(
                    "{} ({}) is left on {}, deleted at {}; delete the key",
                    k.id,
                    k.status_at(t),
                    k.user,
                    d.time
                ),
                vec![k.created.seq, d.seq],
            );
        }
    }
    for p in s.principals.values().filter(|p| p.deleted.is_none()) {
        let keys: Vec<&AccessKey> = s
            .keys_of(&p.name)
            .filter(|k| !k.temporary && active(k))
            .collect();
        if keys.len() > 1 {
            let ids: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
            // Two active keys tied by a rotation are a rotation in progress: low.
            let rotating = keys.len() == 2
                && keys.iter().any(|a| {
                    a.rotated_to
                        .as_ref()
                        .is_some_and(|r| keys.iter().any(|b| b.id == r.key_id))
                });
            add(
                "one-active-key-per-user",
                if rotating {
                    Severity::Low
                } else {
                    Severity::Medium
                },
                None,
                Some(&p.name),
                format!(
                    "{} has {} active keys ({}){}",
                    p.name,
                    keys.len(),
                    ids.join(", "),
                    if rotating {
                        ": a rotation in progress; disable the old key once its users have moved"
                    } else {
                        "; keep one active outside a rotation"
                    }
                ),
                keys.iter().map(|k| k.created.seq).collect(),
            );
        }
    }
    for (pk, signer) in &s.signers {
        if signer.enrolled_by == signer.principal || signer.enrolled.time > t {
            continue;
        }
        let by_account = signer.enrolled_by == s.account;
        add(
            "signer-enrolled-by-other",
            if by_account {
                Severity::Low
            } else {
                Severity::Medium
            },
            None,
            Some(&signer.principal),
            format!(
                "signing key {pk} of {} was enrolled by {} at seq {}: events it signs are attributed to {} on {}'s word that they hold it",
                signer.principal,
                signer.enrolled_by,
                signer.enrolled.seq,
                signer.principal,
                signer.enrolled_by
            ),
            vec![signer.enrolled.seq],
        );
    }
    for f in s.floods.iter().filter(|f| f.at.time <= t) {
        let k = s.keys.get(&f.key_id);
        let whose = match (k, f.key_id.as_str()) {
            (Some(k), _) => format!("{} of {}", k.id, k.user),
            (None, crate::core::state::UNKNOWN_KEYS) => "key IDs of no key of this ledger".into(),
            (None, id) => id.to_owned(),
        };
        add(
            "auth-failure-flood",
            Severity::High,
            k,
            None,
            format!(
                "{} failed checks of {whose} from {} to {}, past the server's per-key rate (seq {}): brute force or a client with a wrong secret; rotate the key if it may have leaked",
                f.count, f.first, f.last, f.at.seq
            ),
            vec![f.at.seq],
        );
    }
    // Protection is checked by a server: a ledger no server may write cannot have it.
    let served = s
        .principals
        .values()
        .any(|p| p.deleted.is_none() && p.permissions.contains_key(&Permission::Server));
    for p in s
        .principals
        .values()
        .filter(|p| served && p.deleted.is_none() && p.protection.is_none())
    {
        let grants: Vec<(Permission, u64)> = [Permission::Admin, Permission::ManageKeys]
            .into_iter()
            .filter_map(|x| p.permissions.get(&x).map(|at| (x, at.seq)))
            .collect();
        let what = match (p.kind, grants.first()) {
            (PrincipalKind::Account, _) => "the account (root)".to_owned(),
            (_, Some((x, _))) => format!("{} (holds {x})", p.name),
            (_, None) => continue,
        };
        let mut evidence: Vec<u64> = grants.iter().map(|g| g.1).collect();
        evidence.insert(0, p.created.seq);
        add(
            "privileged-without-protection",
            Severity::Medium,
            None,
            Some(&p.name),
            format!(
                "{what} acts without operation protection: turn it on through the server (keyledger --server URL protect enable {0}, then protect confirm {0} --code CODE)",
                p.name
            ),
            evidence,
        );
    }
    for (actor, list) in denials {
        // The densest window: the most refusals within burst_window_us.
        let mut best: &[(u64, Timestamp)] = &[];
        let mut lo = 0;
        for hi in 0..list.len() {
            while list[hi].1.0 - list[lo].1.0 > opts.burst_window_us {
                lo += 1;
            }
            if hi + 1 - lo > best.len() {
                best = &list[lo..=hi];
            }
        }
        if best.len() >= opts.burst_threshold {
            add(
                "refused-actions-burst",
                Severity::Medium,
                None,
                Some(actor),
                format!(
                    "{actor} had {} actions refused within {} minutes (threshold {}): possible probing",
                    best.len(),
                    opts.burst_window_us / 60_000_000,
                    opts.burst_threshold
                ),
                best.iter().map(|x| x.0).collect(),
            );
        }
    }
    findings
}

/// Verifies the whole ledger, replays it up to `opts.as_of` (every event replayed is one
/// this process just verified), and evaluates every control. `Audit::as_of_seq` and
/// `Audit::ledger_events` say which part of the ledger was evaluated.
pub fn audit(path: &Path, opts: &Options, cache: &Cache) -> Result<Audit, AuditError> {
    // A head this user verified earlier is an anchor too: what is left of a ledger cut or
    // replaced below it does not verify.
    let vopts = verify::Options {
        witness: cache.witness(path),
        ..Default::default()
    };
    let (report, verified) =
        verify::verify_file_full(path, &vopts, true).map_err(|e| AuditError::Io(path.into(), e))?;
    let (true, Some(v)) = (report.ok, verified) else {
        return Err(AuditError::NotVerified(Box::new(report)));
    };
    let _ = cache.save(path, &v);
    let trust = Some(Trust {
        seq: v.head.seq,
        hash: v.head.hash,
    });
    let f = crate::storage::files::open_regular(path, false)
        .map_err(|e| AuditError::Io(path.into(), e))?;
    let len = f
        .metadata()
        .map_err(|e| AuditError::Io(path.into(), e))?
        .len();
    let as_of = if opts.whole {
        opts.as_of.max(v.head.time)
    } else {
        opts.as_of
    };
    let mut timelines: BTreeMap<String, Vec<Mark>> = BTreeMap::new();
    let mut denials: BTreeMap<String, Vec<(u64, Timestamp)>> = BTreeMap::new();
    // Both passes read the same open file up to `as_of`, trusting what was just verified.
    let window = |visit: &mut dyn FnMut(&store::Seen<'_>)| {
        store::replay_open(path, &f, len, trust, None, Some(Until::Time(as_of)), visit)
    };
    let r = window(&mut |seen| {
        let ev = seen.event;
        for k in ev.action.key_ids() {
            let marks = timelines.entry(k.to_owned()).or_default();
            // Timelines keep every lifecycle event but only the first 500 authentications.
            if marks.len() < 500
                || !matches!(
                    ev.action,
                    Action::AuthSucceeded { .. } | Action::AuthFailed { .. }
                )
            {
                marks.push(Mark {
                    seq: ev.seq,
                    time: ev.time,
                    tag: ev.action.tag(),
                });
            }
        }
        if let Action::ActionDenied { .. } = ev.action {
            denials
                .entry(seen.actor().to_owned())
                .or_default()
                .push((ev.seq, ev.time));
        }
    })?;
    let t = as_of;
    let mut findings = evaluate(&r.state, t, &denials, opts);
    // The trend: the same controls at each month end before `t` (the last
    // `trend_months`), each over the state replayed to that moment.
    let mut trend = Vec::new();
    let genesis_time = r
        .state
        .principals
        .get(&r.state.account)
        .map_or(t, |p| p.created.time);
    for end in month_ends(genesis_time, t, opts.trend_months) {
        let at = store::replay_open(path, &f, len, trust, None, Some(Until::Time(end)), |_| {})?;
        let upto: BTreeMap<String, Vec<(u64, Timestamp)>> = denials
            .iter()
            .map(|(a, l)| {
                (
                    a.clone(),
                    l.iter().copied().filter(|x| x.1 <= end).collect(),
                )
            })
            .collect();
        trend.push(TrendPoint::of(end, &evaluate(&at.state, end, &upto, opts)));
    }
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.control.cmp(b.control))
            .then(a.key_id.cmp(&b.key_id))
            .then(a.principal.cmp(&b.principal))
            .then(a.message.cmp(&b.message))
    });
    // Every evidence event, for reports that show them.
    let wanted: std::collections::BTreeSet<u64> = findings
        .iter()
        .flat_map(|f| f.evidence.iter().copied())
        .collect();
    let mut evidence_events = BTreeMap::new();
    if !wanted.is_empty() {
        window(&mut |seen| {
            if wanted.contains(&seen.event.seq) {
                evidence_events.insert(
                    seen.event.seq,
                    (
                        seen.event.time,
                        seen.actor().to_owned(),
                        seen.event.action.tag(),
                        seen.event.action.clone(),
                    ),
                );
            }
        })?;
    }
    Ok(Audit {
        as_of: t,
        as_of_seq: r.head.seq,
        events: r.head.seq + 1,
        ledger_events: v.head.seq + 1,
        findings,
        timelines,
        state: r.state,
        evidence_events,
        trend,
    })
}
