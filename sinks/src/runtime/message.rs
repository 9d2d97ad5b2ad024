//! A Kafka message as the sink holds it (one allocation), and the byte budget every message
//! read and not yet written counts against.

use rdkafka::message::{BorrowedMessage, Headers, Message};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

/// One Kafka message, copied out of the consumer's buffer into one allocation: the key, the
/// payload, then each header as name length, name, value length, value (lengths `u32` LE).
/// One allocation instead of one per part and per header name and value: the dispatcher copies
/// every message, and the whole backlog may sit in the channels.
#[derive(Debug)]
pub struct Msg {
    pub offset: i64,
    bytes: Box<[u8]>,
    /// The message's share of the in-flight budget, given back when the message is dropped.
    charge: Option<Charge>,
    /// Length of the key at the start of `bytes`; `None` when the message has no key.
    key_len: Option<u32>,
    /// Length of the payload after the key; `None` for a tombstone.
    payload_len: Option<u32>,
}

impl Msg {
    /// A message from its parts; a header without a value is kept with an empty one.
    pub fn new<'h>(
        offset: i64,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: impl Iterator<Item = (&'h str, &'h [u8])> + Clone,
    ) -> Msg {
        let len = key.map_or(0, <[u8]>::len)
            + payload.map_or(0, <[u8]>::len)
            + headers
                .clone()
                .map(|(k, v)| 8 + k.len() + v.len())
                .sum::<usize>();
        let mut bytes = Vec::with_capacity(len);
        bytes.extend_from_slice(key.unwrap_or_default());
        bytes.extend_from_slice(payload.unwrap_or_default());
        for (k, v) in headers {
            for part in [k.as_bytes(), v] {
                bytes.extend_from_slice(&len_u32(part.len()).to_le_bytes());
                bytes.extend_from_slice(part);
            }
        }
        Msg {
            offset,
            bytes: bytes.into_boxed_slice(),
            charge: None,
            key_len: key.map(|k| len_u32(k.len())),
            payload_len: payload.map(|p| len_u32(p.len())),
        }
    }

    /// Counts the message against `budget` until it is dropped.
    pub(super) fn charged(mut self, budget: &Arc<Budget>) -> Msg {
        let bytes = self.size();
        budget.used.fetch_add(bytes, Ordering::AcqRel);
        self.charge = Some(Charge {
            budget: budget.clone(),
            bytes,
        });
        self
    }

    pub(super) fn from_kafka(m: &BorrowedMessage<'_>) -> Msg {
        // Each header read from librdkafka once (reading one checks its name's UTF-8): up to
        // eight (Sluice's events carry three) on the stack, the rest in a Vec.
        let mut few: [(&str, &[u8]); 8] = [("", &[]); 8];
        let (mut n, mut more) = (0, Vec::new());
        if let Some(hs) = m.headers() {
            for h in hs.iter() {
                let h = (h.key, h.value.unwrap_or_default());
                match few.get_mut(n) {
                    Some(slot) => {
                        *slot = h;
                        n += 1;
                    }
                    None => more.push(h),
                }
            }
        }
        let headers = few[..n].iter().copied().chain(more.iter().copied());
        Msg::new(m.offset(), m.key(), m.payload(), headers)
    }

    pub fn key(&self) -> Option<&[u8]> {
        self.key_len.map(|n| &self.bytes[..n as usize])
    }

    pub fn payload(&self) -> Option<&[u8]> {
        let start = self.key_len.unwrap_or(0) as usize;
        self.payload_len
            .map(|n| &self.bytes[start..start + n as usize])
    }

    /// The headers in the order the message had them.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let start = self.key_len.unwrap_or(0) as usize + self.payload_len.unwrap_or(0) as usize;
        let mut rest = &self.bytes[start..];
        std::iter::from_fn(move || {
            let name = take_part(&mut rest)?;
            let value = take_part(&mut rest)?;
            // Names were `&str` when stored.
            Some((std::str::from_utf8(name).unwrap_or_default(), value))
        })
    }

    pub(super) fn size(&self) -> usize {
        self.payload_len.unwrap_or(0) as usize + self.key_len.unwrap_or(0) as usize
    }
}

/// A Kafka message is far below 4 GiB (`message.max.bytes` is an `i32`).
fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Splits one length-prefixed part off the front of `rest`.
fn take_part<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, tail) = rest.split_first_chunk::<4>()?;
    let len = u32::from_le_bytes(*len) as usize;
    let part = tail.get(..len)?;
    *rest = &tail[len..];
    Some(part)
}

/// Bytes of the messages read from Kafka and not yet dropped (queued for a worker, held back
/// while its partition is paused, or in a batch being written), all partitions together.
#[derive(Debug)]
pub struct Budget {
    used: AtomicUsize,
    limit: usize,
    /// Signalled when `used` falls below `limit`.
    pub(super) room: Notify,
}

impl Budget {
    pub(super) fn new(limit: usize) -> Arc<Budget> {
        Arc::new(Budget {
            used: AtomicUsize::new(0),
            limit,
            room: Notify::new(),
        })
    }

    pub(super) fn full(&self) -> bool {
        self.used.load(Ordering::Acquire) >= self.limit
    }

    /// Below half the limit: paused partitions may be resumed.
    pub(super) fn low(&self) -> bool {
        self.used.load(Ordering::Acquire) < self.limit / 2
    }
}

/// One message's bytes in the [`Budget`].
#[derive(Debug)]
struct Charge {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Drop for Charge {
    fn drop(&mut self) {
        let b = &self.budget;
        let before = b.used.fetch_sub(self.bytes, Ordering::AcqRel);
        if before >= b.limit && before - self.bytes < b.limit {
            b.room.notify_one();
        }
    }
}

#[cfg(test)]
mod msg_tests {
    use super::{Budget, Msg};
    use futures::FutureExt as _;

    #[test]
    fn the_budget_counts_messages_until_they_are_dropped_and_signals_room() {
        let budget = Budget::new(100);
        let msg = |n: usize| Msg::new(0, None, Some(&vec![b'x'; n]), std::iter::empty());
        let a = msg(60).charged(&budget);
        assert!(!budget.full() && !budget.low());
        let b = msg(45).charged(&budget);
        assert!(budget.full());
        // Nothing has been given back yet: no room to signal.
        assert!(budget.room.notified().now_or_never().is_none());
        drop(a);
        assert!(!budget.full() && budget.low());
        assert!(
            budget.room.notified().now_or_never().is_some(),
            "room signalled"
        );
        drop(b);
        assert_eq!(budget.used.load(std::sync::atomic::Ordering::Acquire), 0);
        // An uncharged message (tests, the DLQ) counts nothing.
        drop(msg(500));
        assert_eq!(budget.used.load(std::sync::atomic::Ordering::Acquire), 0);
    }

    #[test]
    fn a_message_keeps_its_parts() {
        let headers: [(&str, &[u8]); 3] = [("sluice-seq", b"7"), ("empty", b""), ("é", b"\0\xff")];
        let m = Msg::new(9, Some(b"k"), Some(b"{}"), headers.into_iter());
        assert_eq!(m.offset, 9);
        assert_eq!(m.key(), Some(&b"k"[..]));
        assert_eq!(m.payload(), Some(&b"{}"[..]));
        assert_eq!(m.headers().collect::<Vec<_>>(), headers);
        assert_eq!(m.size(), 3);

        let m = Msg::new(0, None, None, std::iter::empty());
        assert_eq!((m.key(), m.payload(), m.headers().count()), (None, None, 0));
        let m = Msg::new(0, Some(b""), Some(b""), std::iter::empty());
        assert_eq!((m.key(), m.payload()), (Some(&b""[..]), Some(&b""[..])));
        let m = Msg::new(0, None, Some(b"p"), headers[..1].iter().copied());
        assert_eq!(m.payload(), Some(&b"p"[..]));
        assert_eq!(m.headers().collect::<Vec<_>>(), &headers[..1]);
    }
}
