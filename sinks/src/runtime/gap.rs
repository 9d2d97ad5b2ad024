//! The offset gap check, so that nothing is skipped whatever the broker does.
//!
//! librdkafka starts fetching a partition at the next offset it owes the application: the
//! committed offset on assignment, the offset after the last delivered message on resume after a
//! pause, the target of a seek. That offset is usually inside a stored record batch. Kafka answers
//! with the whole batch and librdkafka skips the records before the offset; some brokers (tansu
//! 0.6's memory engine) answer with the *later* batches only, so the rest of the batch would be
//! skipped silently, or, at the end of the partition, never arrive.
//!
//! Each partition has a [`Cursor`] holding the next offset it must hand over. After a (re)start
//! of fetching, a later offset is not taken: the partition is sought back, one offset and then
//! twice as far each time (bounded by the low watermark), until a fetch delivers an offset at or
//! before the expected one. Offsets already handed over are dropped. When reading from below the
//! expected offset still leads to a later one, the gap is genuine (compaction, transaction
//! markers) and is accepted. Once the position is confirmed, the stream is continuous (the next
//! fetch begins after the last record of the previous answer, at a batch boundary), so a gap
//! there is genuine without any seek: the normal path costs one comparison.

use std::time::{Duration, Instant};

/// What to do with a message, or with a partition that stays silent after a (re)start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it to the worker.
    Take,
    /// Hand it to the worker; seeking back recovered the offsets the broker had left out.
    Recovered,
    /// Hand it to the worker; the offsets from `expected` up to this one do not exist.
    Genuine { expected: i64 },
    /// Already handed over (read again after seeking back): drop it.
    Drop,
    /// Not this one: the fetch began after the expected offset. Seek the partition to `to`.
    Seek { to: i64 },
    /// Ask again once [`Cursor::set_floor`] has the partition's low watermark.
    NeedFloor,
}

/// One assigned partition's position as the dispatcher sees it.
#[derive(Debug, Clone)]
pub struct Cursor {
    /// Next offset to hand over; -1 while unknown (no committed offset: the first message
    /// decides, as `auto.offset.reset` put the consumer there).
    expected: i64,
    /// Set when fetching (re)started at or before `expected` and nothing has confirmed it yet.
    unconfirmed: Option<Instant>,
    /// How far the last seek went back from `expected` (0: none since the (re)start).
    step: i64,
    /// When that seek was made.
    sought_at: Option<Instant>,
    /// A later offset than `expected` arrived since the (re)start.
    gap_seen: bool,
    /// The current fetch began with a seek or an assignment, not with a resume.
    fresh_fetch: bool,
    /// The last (re)start needed a seek back: this broker leaves out the rest of a batch, so a
    /// resume seeks back straight away instead of waiting to see the gap.
    lossy: bool,
    /// The partition's low watermark, fetched the first time a seek needs it.
    floor: Option<i64>,
    /// Nothing to check: the next message should be `expected` (the normal path).
    settled: bool,
    /// Seeks made because nothing arrived, since the last message.
    silent_seeks: u32,
    /// Offsets known to be good places to fetch from (the first offset a fetch delivered after a
    /// seek or an assignment, or a later offset that a fetch began with: a batch's first record
    /// on any broker), most recent last, at most [`KNOWN`].
    known: Vec<i64>,
}

/// How many good fetch starts a cursor remembers.
const KNOWN: usize = 4;

/// A remembered fetch start further back than this is not used; seeking steps back instead.
const MAX_REREAD: i64 = 100_000;

/// A seek that delivers the expected offset within this time recovered it; an idle partition
/// that receives new messages later did not need the seek.
const RECOVERY_WINDOW: Duration = Duration::from_secs(2);

impl Cursor {
    /// A newly assigned partition whose fetching starts at `committed` (`None`: nothing committed).
    pub fn assigned(committed: Option<i64>, now: Instant) -> Cursor {
        let mut c = Cursor {
            expected: committed.unwrap_or(-1),
            unconfirmed: None,
            step: 0,
            sought_at: None,
            gap_seen: false,
            fresh_fetch: true,
            lossy: false,
            floor: None,
            settled: true,
            silent_seeks: 0,
            known: Vec::new(),
        };
        if c.expected >= 0 {
            c.restart(now);
            c.fresh_fetch = true;
        }
        c
    }

    /// Fetching starts again at `expected` (the partition was resumed after a pause). Returns a
    /// seek to make at once when this partition's broker needed one at the last (re)start.
    pub fn resumed(&mut self, now: Instant) -> Option<Verdict> {
        if self.expected < 0 {
            return None;
        }
        self.restart(now);
        if !self.lossy || self.floor.is_none() {
            return None;
        }
        self.seek_back(now)
            .filter(|v| matches!(v, Verdict::Seek { .. }))
    }

    fn restart(&mut self, now: Instant) {
        self.silent_seeks = 0;
        self.unconfirmed = Some(now);
        self.step = 0;
        self.sought_at = None;
        self.gap_seen = false;
        self.fresh_fetch = false;
        self.settled = false;
    }

    /// Decides about the message at `offset`.
    /// `now` is called only off the normal path.
    #[inline]
    pub fn check(&mut self, offset: i64, now: impl FnOnce() -> Instant) -> Verdict {
        if offset == self.expected && self.settled {
            self.expected = offset + 1;
            return Verdict::Take;
        }
        self.check_slow(offset, now())
    }

    fn check_slow(&mut self, offset: i64, now: Instant) -> Verdict {
        self.silent_seeks = 0;
        let expected = self.expected;
        if expected < 0 {
            self.learn(offset);
            self.expected = offset + 1;
            return Verdict::Take;
        }
        // The first offset of a fetch that began with a seek or an assignment, or that began
        // later than `expected` (messages fetched before a pause continue at `expected`).
        if self.unconfirmed.is_some() && (self.fresh_fetch || offset != expected) {
            self.learn(offset);
        }
        if offset < expected {
            // Read from below the expected offset: the fetch position is confirmed.
            self.unconfirmed = None;
            self.settled = self.step == 0 && !self.gap_seen;
            return Verdict::Drop;
        }
        if offset == expected {
            let sought = self.step > 0;
            let quick = self
                .sought_at
                .is_some_and(|t| now.saturating_duration_since(t) < RECOVERY_WINDOW);
            let recovered = sought && (self.gap_seen || quick);
            if recovered {
                self.lossy = true;
            } else if !sought && self.unconfirmed.is_some() {
                // A (re)start answered with the expected offset itself.
                self.lossy = false;
            }
            self.confirm(offset);
            return if recovered {
                Verdict::Recovered
            } else {
                Verdict::Take
            };
        }
        if self.unconfirmed.is_none() {
            self.confirm(offset);
            return Verdict::Genuine { expected };
        }
        self.gap_seen = true;
        self.settled = false;
        match self.seek_back(now) {
            Some(v) => v,
            None => {
                // Already read from the floor: nothing exists between it and `offset`.
                self.confirm(offset);
                Verdict::Genuine { expected }
            }
        }
    }

    /// For a partition that has delivered nothing for `after` since fetching (re)started: the
    /// broker may have answered a fetch from inside the last stored batch with nothing at all.
    pub fn stalled(&mut self, now: Instant, after: Duration) -> Option<Verdict> {
        let since = self.unconfirmed?;
        // A seek waits for the fetch in flight, and a slow broker is not a stall: every silent
        // seek doubles the wait, so seeking can never keep a partition from being fetched.
        let after = after.saturating_mul(1 << self.silent_seeks.min(5));
        if now.saturating_duration_since(since) < after {
            return None;
        }
        let Some(floor) = self.floor else {
            return Some(Verdict::NeedFloor);
        };
        if self.expected <= floor {
            // Nothing earlier to look for.
            self.unconfirmed = None;
            self.settled = !self.gap_seen;
            return None;
        }
        if self.step > 0 && self.expected - self.step <= floor {
            // Sought back to the floor and nothing came: the broker is slow or away; start over.
            self.step = 0;
        }
        self.silent_seeks = self.silent_seeks.saturating_add(1);
        self.seek_back(now)
    }

    /// The partition's low watermark, bounding how far back a seek goes.
    pub fn set_floor(&mut self, low: i64) {
        self.floor = Some(low.max(0));
    }

    /// The seek just asked for failed: the next try goes back no further than this one did.
    pub fn seek_failed(&mut self) {
        self.step /= 2;
    }

    /// The next seek, `None` when the last one already reached the floor.
    fn seek_back(&mut self, now: Instant) -> Option<Verdict> {
        let Some(floor) = self.floor else {
            return Some(Verdict::NeedFloor);
        };
        let expected = self.expected;
        if expected <= floor || (self.step > 0 && expected - self.step <= floor) {
            return None;
        }
        self.step = if self.step == 0 {
            // Straight to a fetch start known to work, when there is one not too far back.
            self.known
                .iter()
                .copied()
                .filter(|&k| k < expected && k >= floor && expected - k <= MAX_REREAD)
                .max()
                .map_or(1, |k| expected - k)
        } else {
            self.step.saturating_mul(2)
        };
        self.unconfirmed = Some(now);
        self.sought_at = Some(now);
        self.fresh_fetch = true;
        Some(Verdict::Seek {
            to: (expected - self.step).max(floor),
        })
    }

    fn learn(&mut self, offset: i64) {
        if self.known.last() != Some(&offset) {
            if self.known.len() == KNOWN {
                self.known.remove(0);
            }
            self.known.push(offset);
        }
    }

    fn confirm(&mut self, offset: i64) {
        self.expected = offset + 1;
        self.unconfirmed = None;
        self.step = 0;
        self.sought_at = None;
        self.gap_seen = false;
        self.fresh_fetch = false;
        self.settled = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A broker that answers a fetch from inside a stored batch with the later batches only
    /// (tansu 0.6's memory engine), with librdkafka's skipping of records before the fetch offset.
    struct Broker {
        /// Base offset of every stored batch, ascending; the last batch ends at `end`.
        bases: Vec<i64>,
        end: i64,
        /// Offsets that do not exist (compacted away, transaction markers).
        missing: Vec<i64>,
    }

    impl Broker {
        fn fetch(&self, from: i64) -> Vec<i64> {
            let start = self
                .bases
                .iter()
                .copied()
                .find(|&b| b >= from)
                .unwrap_or(self.end);
            (start.max(from)..self.end)
                .filter(|o| !self.missing.contains(o))
                .collect()
        }
    }

    /// Runs `cursor` against `broker` from `from`, following seeks; returns what was taken and
    /// the gap outcomes.
    fn consume(broker: &Broker, cursor: &mut Cursor, from: i64) -> (Vec<i64>, Vec<Verdict>) {
        let (taken, notes, _) = consume_counting(broker, cursor, from);
        (taken, notes)
    }

    /// [`consume`], also counting the seeks.
    fn consume_counting(
        broker: &Broker,
        cursor: &mut Cursor,
        from: i64,
    ) -> (Vec<i64>, Vec<Verdict>, usize) {
        let mut seeks = 0;
        let mut clock = Instant::now();
        let (mut taken, mut notes) = (Vec::new(), Vec::new());
        let mut stream = broker.fetch(from).into_iter();
        for _ in 0..10_000 {
            let next = stream.next();
            let verdict = match next {
                Some(o) => cursor.check(o, || clock),
                None => {
                    clock += Duration::from_secs(60);
                    match cursor.stalled(clock, Duration::from_secs(1)) {
                        Some(v) => v,
                        None => break,
                    }
                }
            };
            match verdict {
                Verdict::Take => taken.push(next.unwrap()),
                Verdict::Recovered | Verdict::Genuine { .. } => {
                    notes.push(verdict);
                    taken.push(next.unwrap());
                }
                Verdict::Drop => {}
                Verdict::Seek { to } => {
                    seeks += 1;
                    stream = broker.fetch(to).into_iter();
                }
                Verdict::NeedFloor => {
                    cursor.set_floor(0);
                    if let Some(o) = next {
                        // Offer the same message again, as the dispatcher does.
                        stream = std::iter::once(o)
                            .chain(stream)
                            .collect::<Vec<_>>()
                            .into_iter();
                    }
                }
            }
        }
        (taken, notes, seeks)
    }

    fn batches(size: i64, end: i64) -> Broker {
        Broker {
            bases: (0..end).step_by(size as usize).collect(),
            end,
            missing: Vec::new(),
        }
    }

    #[test]
    fn restart_inside_a_batch_recovers_the_rest_of_it() {
        let broker = batches(1000, 5000);
        let mut c = Cursor::assigned(Some(1234), Instant::now());
        let (taken, notes) = consume(&broker, &mut c, 1234);
        assert_eq!(taken, (1234..5000).collect::<Vec<_>>());
        assert_eq!(notes, [Verdict::Recovered]);
    }

    #[test]
    fn restart_inside_the_last_batch_is_found_by_the_stall_check() {
        let broker = batches(1000, 5000);
        let mut c = Cursor::assigned(Some(4321), Instant::now());
        let (taken, _) = consume(&broker, &mut c, 4321);
        assert_eq!(taken, (4321..5000).collect::<Vec<_>>());
    }

    #[test]
    fn restart_at_a_batch_start_needs_no_seek() {
        let broker = batches(1000, 3000);
        let mut c = Cursor::assigned(Some(1000), Instant::now());
        let (taken, notes) = consume(&broker, &mut c, 1000);
        assert_eq!(taken, (1000..3000).collect::<Vec<_>>());
        assert!(notes.is_empty());
    }

    #[test]
    fn genuine_gaps_are_accepted_at_a_restart_and_in_the_stream() {
        let mut broker = batches(100, 400);
        broker.missing = (150..160).chain([250]).collect();
        let mut c = Cursor::assigned(Some(150), Instant::now());
        let (taken, notes) = consume(&broker, &mut c, 150);
        let want: Vec<i64> = (160..400).filter(|&o| o != 250).collect();
        assert_eq!(taken, want);
        assert_eq!(
            notes,
            [
                Verdict::Genuine { expected: 150 },
                Verdict::Genuine { expected: 250 }
            ]
        );
    }

    #[test]
    fn expected_offset_below_the_low_watermark_is_a_genuine_gap() {
        let broker = Broker {
            bases: vec![500, 600],
            end: 700,
            missing: (0..500).collect(),
        };
        let mut c = Cursor::assigned(Some(100), Instant::now());
        c.set_floor(500);
        let (taken, notes) = consume(&broker, &mut c, 100);
        assert_eq!(taken, (500..700).collect::<Vec<_>>());
        assert_eq!(notes, [Verdict::Genuine { expected: 100 }]);
    }

    #[test]
    fn without_a_committed_offset_the_first_message_decides() {
        let broker = batches(10, 50);
        let mut c = Cursor::assigned(None, Instant::now());
        let (taken, _) = consume(&broker, &mut c, 23);
        assert_eq!(taken, (30..50).collect::<Vec<_>>());
    }

    #[test]
    fn a_resumed_partition_is_checked_again() {
        let broker = batches(1000, 3000);
        let mut c = Cursor::assigned(Some(0), Instant::now());
        for o in 0..1500 {
            assert_eq!(c.check(o, Instant::now), Verdict::Take);
        }
        c.resumed(Instant::now());
        let (taken, notes, seeks) = consume_counting(&broker, &mut c, 1500);
        assert_eq!(taken, (1500..3000).collect::<Vec<_>>());
        assert_eq!(notes, [Verdict::Recovered]);
        // Straight back to offset 0, where fetching began and which is known to work.
        assert_eq!(seeks, 1);

        // The broker needed a seek: the next resume (at 3000) seeks back at once, to 2000, the
        // first offset of the batch that the gap revealed.
        assert_eq!(c.resumed(Instant::now()), Some(Verdict::Seek { to: 2000 }));
    }

    #[test]
    fn a_silent_partition_is_sought_back_less_and_less_often() {
        // A slow broker must not be kept from answering by seeks that restart its fetch.
        let t0 = Instant::now();
        let mut c = Cursor::assigned(Some(100), t0);
        c.set_floor(0);
        let mut seeks = Vec::new();
        for quarter in 1..=400u64 {
            let t = t0 + Duration::from_millis(250 * quarter);
            if let Some(Verdict::Seek { .. }) = c.stalled(t, Duration::from_secs(1)) {
                seeks.push(250 * quarter);
            }
        }
        assert_eq!(seeks, [1000, 3000, 7000, 15000, 31000, 63000, 95000]);
    }
}
