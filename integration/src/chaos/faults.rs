//! The chaos run's fault schedule: which fault strikes when, seeded, and how each is dealt.

use super::Rig;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::time::Duration;

/// The faults, each with its weight in the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    KillCapture,
    KillSink,
    KillBroker,
    KillReplica,
    KillRedis,
    PauseCapture,
    PauseSink,
    CutSource,
    CutReplica,
    CutRedis,
    CutSearch,
    Delay,
    Refuse,
}

const ALL: [(Fault, u32); 13] = [
    (Fault::KillCapture, 6),
    (Fault::KillSink, 6),
    (Fault::KillBroker, 1),
    (Fault::KillReplica, 1),
    (Fault::KillRedis, 1),
    (Fault::PauseCapture, 1),
    (Fault::PauseSink, 1),
    (Fault::CutSource, 1),
    (Fault::CutReplica, 1),
    (Fault::CutRedis, 1),
    (Fault::CutSearch, 1),
    (Fault::Delay, 1),
    (Fault::Refuse, 1),
];

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::KillCapture => "kill -9 capture worker",
            Fault::KillSink => "kill -9 sink",
            Fault::KillBroker => "kill -9 Kafka broker",
            Fault::KillReplica => "kill -9 replica MariaDB",
            Fault::KillRedis => "kill -9 Redis",
            Fault::PauseCapture => "SIGSTOP capture worker 8 s",
            Fault::PauseSink => "SIGSTOP sink 8 s",
            Fault::CutSource => "cut source connections",
            Fault::CutReplica => "cut replica connections",
            Fault::CutRedis => "cut Redis connections",
            Fault::CutSearch => "cut OpenSearch connections",
            Fault::Delay => "delay all proxies 3 s",
            Fault::Refuse => "refuse connections 3 s",
        }
    }
}

/// The seeded schedule and what it struck.
pub struct Schedule {
    rng: StdRng,
    every: Duration,
    pub counts: BTreeMap<&'static str, usize>,
}

impl Schedule {
    pub fn new(seed: u64, every: Duration) -> Schedule {
        Schedule {
            rng: StdRng::seed_from_u64(seed),
            every,
            counts: BTreeMap::new(),
        }
    }

    /// The time to the next fault: between half and one and a half of the mean.
    pub fn next_gap(&mut self) -> Duration {
        self.every.mul_f64(self.rng.random_range(0.5..1.5))
    }

    /// The next fault, counted.
    pub fn pick(&mut self) -> Fault {
        let total: u32 = ALL.iter().map(|(_, w)| w).sum();
        let mut roll = self.rng.random_range(0..total);
        let mut fault = ALL[0].0;
        for (f, w) in ALL {
            if roll < w {
                fault = f;
                break;
            }
            roll -= w;
        }
        *self.counts.entry(fault.name()).or_default() += 1;
        fault
    }

    /// A random choice among `n` (which worker, how long).
    pub fn below(&mut self, n: usize) -> usize {
        self.rng.random_range(0..n.max(1))
    }
}

/// Deals `fault` to the rig; returns once it is over (killed parts started again, paused ones
/// resumed), so faults never pile up into a total outage.
pub async fn strike(fault: Fault, rig: &mut Rig, schedule: &mut Schedule) -> Result<(), String> {
    let workers: Vec<String> = rig.fleet.workers.keys().cloned().collect();
    let worker = workers[schedule.below(workers.len())].clone();
    let pause = Duration::from_millis(200 + 300 * schedule.below(6) as u64);
    match fault {
        Fault::KillCapture => {
            if let Some(w) = rig.fleet.workers.get_mut(&worker) {
                crate::process::kill9(&mut w.child).await;
            }
            tokio::time::sleep(pause).await;
            rig.fleet.start(&worker);
        }
        Fault::KillSink => {
            if let Some(child) = rig.sink.as_mut() {
                crate::process::kill9(child).await;
            }
            tokio::time::sleep(pause).await;
            rig.start_sink();
        }
        Fault::KillBroker => {
            rig.broker.kill();
            tokio::time::sleep(pause).await;
            rig.broker.restart().await?;
        }
        Fault::KillReplica => {
            rig.replica.kill().await;
            tokio::time::sleep(pause).await;
            rig.replica.restart().await?;
        }
        Fault::KillRedis => {
            tokio::time::sleep(pause).await;
            rig.redis.kill_and_restart().await?;
        }
        Fault::PauseCapture => {
            if let Some(pid) = rig.fleet.workers.get(&worker).and_then(|w| w.child.id()) {
                crate::process::signal(pid, "STOP")?;
                tokio::time::sleep(Duration::from_secs(8)).await;
                crate::process::signal(pid, "CONT")?;
            }
        }
        Fault::PauseSink => {
            if let Some(pid) = rig.sink.as_ref().and_then(|c| c.id()) {
                crate::process::signal(pid, "STOP")?;
                tokio::time::sleep(Duration::from_secs(8)).await;
                crate::process::signal(pid, "CONT")?;
            }
        }
        Fault::CutSource => rig.src_proxy.cut(),
        Fault::CutReplica => rig.rep_proxy.cut(),
        Fault::CutRedis => rig.redis_proxy.cut(),
        Fault::CutSearch => rig.es_proxy.cut(),
        Fault::Delay => {
            let ms = 50 + 50 * schedule.below(5) as u64;
            for p in proxies(rig) {
                p.delay(ms);
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
            for p in proxies(rig) {
                p.delay(0);
            }
        }
        Fault::Refuse => {
            let all = proxies(rig);
            let p = all[schedule.below(all.len())];
            p.refuse(true);
            p.cut();
            tokio::time::sleep(Duration::from_secs(3)).await;
            p.refuse(false);
        }
    }
    Ok(())
}

fn proxies(rig: &Rig) -> [&crate::tcp_proxy::TcpProxy; 4] {
    [
        &rig.src_proxy,
        &rig.rep_proxy,
        &rig.redis_proxy,
        &rig.es_proxy,
    ]
}

/// After the last fault: every proxy passes everything, and every process runs (one that
/// exited by itself would be a finding: its log says why).
pub fn check_running(rig: &mut Rig) -> Result<(), String> {
    for p in proxies(rig) {
        p.delay(0);
        p.refuse(false);
    }
    for (name, w) in rig.fleet.workers.iter_mut() {
        if let Ok(Some(status)) = w.child.try_wait() {
            return Err(format!(
                "capture worker {name} exited by itself ({status}):\n{}",
                crate::process::tail(&w.log, 30)
            ));
        }
    }
    if let Some(child) = rig.sink.as_mut() {
        if let Ok(Some(status)) = child.try_wait() {
            let log = rig.fleet.dir.join(format!("sink-{}.log", rig.sink_starts));
            return Err(format!(
                "the sink exited by itself ({status}):\n{}",
                crate::process::tail(&log, 30)
            ));
        }
    }
    Ok(())
}
