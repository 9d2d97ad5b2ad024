//! A target wrapper that injects failures and delays, so tests can prove what the runtime does
//! when writes fail: fail the Nth write, fail every write for a while, reject chosen items, delay.

use super::{Item, Outcome, Target, TargetError, Write};
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Wraps `inner`; what goes wrong is decided by the shared [`Faults`].
pub struct FaultTarget {
    inner: Box<dyn BoxedWrite>,
    kind: &'static str,
    faults: Faults,
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`Write`] with boxed futures: the wrapped target is a `Target` again, and naming its future
/// type inside `Target`'s own future would be a cycle.
trait BoxedWrite: Send + Sync {
    fn write_boxed<'a>(&'a self, items: &'a [Item]) -> BoxFuture<'a, Vec<Outcome>>;
    fn check_boxed(&self) -> BoxFuture<'_, Result<(), TargetError>>;
}

impl BoxedWrite for Target {
    fn write_boxed<'a>(&'a self, items: &'a [Item]) -> BoxFuture<'a, Vec<Outcome>> {
        Box::pin(self.write(items))
    }
    fn check_boxed(&self) -> BoxFuture<'_, Result<(), TargetError>> {
        Box::pin(self.check())
    }
}

/// The failure plan of a [`FaultTarget`]; clones share one plan, so a test keeps a handle.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    writes: u64,
    fail_writes: BTreeSet<u64>,
    transient_left: u64,
    transient_forever: bool,
    reject_ids: BTreeSet<String>,
    delay: Duration,
}

impl FaultTarget {
    pub fn new(inner: Target, faults: Faults) -> Self {
        FaultTarget {
            kind: inner.kind(),
            inner: Box::new(inner),
            faults,
        }
    }

    /// The wrapped target's kind.
    pub fn kind(&self) -> &'static str {
        self.kind
    }
}

impl Faults {
    /// Write call number `n` (1-based, counting retries) fails transiently for all its items.
    pub fn fail_write(&self, n: u64) -> &Self {
        self.with(|s| {
            s.fail_writes.insert(n);
        });
        self
    }

    /// The next `count` write calls fail transiently.
    pub fn transient_for(&self, count: u64) -> &Self {
        self.with(|s| s.transient_left = count);
        self
    }

    /// Every write fails transiently until [`Faults::recover`].
    pub fn down(&self) -> &Self {
        self.with(|s| s.transient_forever = true);
        self
    }

    /// Ends [`Faults::down`] and any remaining transient failures.
    pub fn recover(&self) -> &Self {
        self.with(|s| {
            s.transient_forever = false;
            s.transient_left = 0;
        });
        self
    }

    /// Items whose mapped id is `id` are rejected as invalid.
    pub fn reject_id(&self, id: &str) -> &Self {
        self.with(|s| {
            s.reject_ids.insert(id.to_owned());
        });
        self
    }

    /// Every write waits this long first.
    pub fn delay(&self, d: Duration) -> &Self {
        self.with(|s| s.delay = d);
        self
    }

    /// Write calls seen so far.
    pub fn writes(&self) -> u64 {
        self.with(|s| s.writes)
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut s = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut s)
    }
}

/// What the plan says about one write call, decided before it starts.
enum Verdict {
    Fail(String),
    Pass {
        delay: Duration,
        reject: BTreeSet<String>,
    },
}

impl Write for FaultTarget {
    async fn write(&self, items: &[Item]) -> Vec<Outcome> {
        let verdict = self.faults.with(|s| {
            s.writes += 1;
            let n = s.writes;
            if s.fail_writes.remove(&n) {
                return Verdict::Fail(format!("injected failure of write {n}"));
            }
            if s.transient_forever || s.transient_left > 0 {
                s.transient_left = s.transient_left.saturating_sub(1);
                return Verdict::Fail(format!("injected outage at write {n}"));
            }
            Verdict::Pass {
                delay: s.delay,
                reject: s.reject_ids.clone(),
            }
        });
        let (delay, reject) = match verdict {
            Verdict::Fail(reason) => return vec![Outcome::Retry(reason); items.len()],
            Verdict::Pass { delay, reject } => (delay, reject),
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let pass: Vec<Item> = items
            .iter()
            .filter(|i| !reject.contains(&i.mapped.id))
            .cloned()
            .collect();
        let mut inner_outcomes = self.inner.write_boxed(&pass).await.into_iter();
        items
            .iter()
            .map(|i| {
                if reject.contains(&i.mapped.id) {
                    Outcome::Reject(format!("injected rejection of id {}", i.mapped.id))
                } else {
                    inner_outcomes.next().unwrap_or_else(|| {
                        Outcome::Retry("wrapped target returned too few outcomes".into())
                    })
                }
            })
            .collect()
    }

    async fn check(&self) -> Result<(), TargetError> {
        self.inner.check_boxed().await
    }
}
