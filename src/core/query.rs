//! Event filters shared by `log` and `export`.

use crate::core::event::Event;
use crate::core::types::Timestamp;

/// Which events to select. Every set field must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Events naming this access key.
    pub key: Option<String>,
    /// Events whose subject is this principal, or that name a key it owns.
    pub user: Option<String>,
    /// Events performed by this principal.
    pub actor: Option<String>,
    /// Events with this action tag.
    pub action: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

impl Filter {
    /// `actor` performed `ev`; `owner` owns the key it names, if any.
    pub fn matches(&self, ev: &Event, actor: &str, owner: Option<&str>) -> bool {
        let act = &ev.action;
        self.key
            .as_ref()
            .is_none_or(|k| act.key_ids().any(|id| id == k))
            && self
                .user
                .as_ref()
                .is_none_or(|u| act.subject() == Some(u.as_str()) || owner == Some(u.as_str()))
            && self.actor.as_ref().is_none_or(|x| actor == x)
            && self.action.as_ref().is_none_or(|x| act.tag() == x)
            && self.since.is_none_or(|t| ev.time >= t)
            && self.until.is_none_or(|t| ev.time <= t)
    }

    /// Whether every event matches.
    pub fn is_everything(&self) -> bool {
        self.key.is_none()
            && self.user.is_none()
            && self.actor.is_none()
            && self.action.is_none()
            && self.since.is_none()
            && self.until.is_none()
    }

    /// `key=… user=…`, or `all events`.
    pub fn describe(&self) -> String {
        let mut parts = vec![];
        for (name, v) in [
            ("key", &self.key),
            ("user", &self.user),
            ("actor", &self.actor),
            ("action", &self.action),
        ] {
            if let Some(v) = v {
                parts.push(format!("{name}={v}"));
            }
        }
        if let Some(t) = self.since {
            parts.push(format!("since={t}"));
        }
        if let Some(t) = self.until {
            parts.push(format!("until={t}"));
        }
        if parts.is_empty() {
            "all events".into()
        } else {
            parts.join(" ")
        }
    }
}
