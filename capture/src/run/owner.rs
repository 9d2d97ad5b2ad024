//! Who captures an instance: one capture alone, or a worker of a fleet. Transactional
//! checkpoints carry the owner, so a second capture of a live instance is refused rather than
//! left to fence the first.

use crate::checkpoint::Checkpoint;
use crate::config::CaptureConfig;
use crate::error::CaptureError;

/// The capture's part in owning the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// `sluice-capture run` of one instance.
    Single,
    /// A worker of a fleet: instances move between the fleet's workers.
    Fleet { fleet: String, worker: String },
}

impl Role {
    /// What goes into the checkpoints' `owner`.
    pub fn owner(&self, cfg: &CaptureConfig) -> String {
        match self {
            Role::Single => cfg.owner(),
            Role::Fleet { fleet, worker } => format!("{fleet}/{worker}"),
        }
    }

    /// Refuses to take the instance from a live capture that is not ours to replace: in a
    /// fleet, one of another fleet; alone, any other owner. `last` is the instance's committed
    /// checkpoint; a capture commits one at least every `checkpoint.interval_ms`, so one older
    /// than [`Role::fresh_ms`] belongs to a capture that stopped.
    pub fn check_takeover(
        &self,
        cfg: &CaptureConfig,
        last: Option<&Checkpoint>,
        now_ms: i64,
    ) -> Result<(), CaptureError> {
        let Some((cp, other)) = last.and_then(|cp| Some((cp, cp.owner.as_deref()?))) else {
            return Ok(());
        };
        let age_ms = now_ms - cp.saved_ms;
        if age_ms > fresh_ms(cfg) {
            return Ok(());
        }
        let mine = self.owner(cfg);
        let (refuse, hint) = match self {
            Role::Single => (other != mine, String::new()),
            Role::Fleet { fleet, .. } => {
                let other_fleet = other.split_once('/').map(|(f, _)| f);
                (
                    other_fleet != Some(fleet.as_str()),
                    format!(
                        " (two fleets, or a fleet and a lone capture, list instance {}; each instance belongs in one)",
                        cfg.instance
                    ),
                )
            }
        };
        if refuse {
            return Err(CaptureError::InUse {
                instance: cfg.instance.clone(),
                owner: other.to_owned(),
                age_ms,
                transactional_id: cfg.transactional_id(),
                hint,
            });
        }
        Ok(())
    }
}

/// How old the last checkpoint may be while its capture counts as alive: a few keep-alive
/// intervals and 5 s of slack.
pub fn fresh_ms(cfg: &CaptureConfig) -> i64 {
    3 * cfg.checkpoint.interval_ms as i64 + 5_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> CaptureConfig {
        let text = "instance = \"i\"\n[source]\nurl = \"mysql://u@h:1\"\n[kafka]\nbrokers = [\"k:1\"]\n[checkpoint]\nowner = \"host-a\"\n";
        sluice_config::parse(text, std::path::Path::new("c.toml"), |_| None).unwrap()
    }

    fn cp(owner: &str, saved_ms: i64) -> Checkpoint {
        Checkpoint {
            owner: Some(owner.into()),
            saved_ms,
            ..Checkpoint::default()
        }
    }

    #[test]
    fn a_live_capture_is_replaced_only_by_its_own_kind() {
        let cfg = cfg();
        let now = 100_000;
        let alone = Role::Single;
        let fleet = Role::Fleet {
            fleet: "main".into(),
            worker: "w2".into(),
        };
        assert!(alone.check_takeover(&cfg, None, now).is_ok());
        // The same owner restarting, or an owner gone quiet for long: fine.
        assert!(alone
            .check_takeover(&cfg, Some(&cp("host-a", now - 10)), now)
            .is_ok());
        assert!(alone
            .check_takeover(&cfg, Some(&cp("host-b", now - 60_000)), now)
            .is_ok());
        let err = alone
            .check_takeover(&cfg, Some(&cp("host-b", now - 500)), now)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("host-b") && err.contains("sluice-capture.i"),
            "{err}"
        );
        // A fleet takes over from its own workers, never from another fleet.
        assert!(fleet
            .check_takeover(&cfg, Some(&cp("main/w1", now - 500)), now)
            .is_ok());
        let err = fleet
            .check_takeover(&cfg, Some(&cp("other/w1", now - 500)), now)
            .unwrap_err()
            .to_string();
        assert!(err.contains("two fleets"), "{err}");
        assert!(fleet
            .check_takeover(&cfg, Some(&cp("host-b", now - 500)), now)
            .is_err());
        assert_eq!(fleet.owner(&cfg), "main/w2");
        assert_eq!(alone.owner(&cfg), "host-a");
    }
}
