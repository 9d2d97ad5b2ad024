//! Waiting for what another task or process does. The services offer no notification, so tests
//! poll; a deadline turns a hang into a failure that says what was awaited and what there was.

use std::time::Duration;
use tokio::time::Instant;

/// How often [`until`] and [`until_ok`] ask again.
pub const POLL: Duration = Duration::from_millis(100);

/// Calls `check` every 100 ms until it returns true; panics naming `what` after `secs` s.
pub async fn until(secs: u64, what: &str, mut check: impl AsyncFnMut() -> bool) {
    until_ok(secs, what, async || {
        if check().await {
            Ok(())
        } else {
            Err(String::new())
        }
    })
    .await
}

/// Calls `check` every 100 ms until it returns `Ok`, and returns its value; after `secs` s panics
/// naming `what` and the last `Err` (what there was instead).
pub async fn until_ok<T>(
    secs: u64,
    what: &str,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = Deadline::after(secs);
    loop {
        match check().await {
            Ok(value) => return value,
            Err(now) => deadline.sleep(POLL, || failure(what, &now)).await,
        }
    }
}

/// A deadline for a polling loop whose checks need more than [`until_ok`] allows (mutable state
/// such as a child process to watch between polls).
pub struct Deadline {
    at: Instant,
    secs: u64,
}

impl Deadline {
    /// `secs` s from now.
    pub fn after(secs: u64) -> Deadline {
        Deadline {
            at: Instant::now() + Duration::from_secs(secs),
            secs,
        }
    }

    /// Whether the deadline has passed.
    pub fn passed(&self) -> bool {
        Instant::now() >= self.at
    }

    /// Sleeps `every` before the next poll; panics with "waited N s for <what()>" instead if the
    /// deadline has passed (`what` is only called then).
    pub async fn sleep(&self, every: Duration, what: impl FnOnce() -> String) {
        assert!(!self.passed(), "waited {} s for {}", self.secs, what());
        tokio::time::sleep(every).await;
    }
}

/// `what`, and the state found by the last poll if there is one.
pub(crate) fn failure(what: &str, now: &str) -> String {
    if now.is_empty() {
        what.to_owned()
    } else {
        format!("{what}; last seen: {now}")
    }
}
