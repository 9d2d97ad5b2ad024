//! GTID positions as text and as the replication protocol carries them. Pure: no I/O.
//!
//! MariaDB: a GTID state `domain-server-seq,...` (one GTID per replication domain), as in
//! `@@gtid_binlog_pos`, `@slave_connect_state` and the checkpoint. MySQL: a GTID set
//! `uuid:1-5:11-18,...` (`@@gtid_executed`), sent in COM_BINLOG_DUMP_GTID as SID blocks.

use crate::binlog::mariadb::MariaGtid;
use mysql_async::{GnoInterval, Sid};
use std::collections::BTreeMap;
use std::fmt;

/// A MariaDB GTID state: the last GTID of each replication domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MariaState(BTreeMap<u32, MariaGtid>);

impl MariaState {
    /// Parses `domain-server-seq[,...]` (spaces and newlines around entries are allowed; an
    /// empty text is the empty state).
    pub fn parse(text: &str) -> Result<MariaState, String> {
        let mut state = BTreeMap::new();
        for g in parse_list(text)? {
            if state.insert(g.domain, g).is_some() {
                return Err(format!(
                    "`{text}` names domain {} twice; a GTID state has one GTID per domain",
                    g.domain
                ));
            }
        }
        Ok(MariaState(state))
    }

    /// The state's GTID of `domain`.
    pub fn get(&self, domain: u32) -> Option<&MariaGtid> {
        self.0.get(&domain)
    }

    /// The GTIDs, by domain.
    pub fn iter(&self) -> impl Iterator<Item = &MariaGtid> {
        self.0.values()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Records a transaction's GTID as its domain's last.
    pub fn apply(&mut self, g: MariaGtid) {
        self.0.insert(g.domain, g);
    }
}

impl fmt::Display for MariaState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, g) in self.0.values().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{g}")?;
        }
        Ok(())
    }
}

/// Parses a list of MariaDB GTIDs `domain-server-seq[,...]`, several per domain allowed (as in
/// `@@gtid_binlog_state`, the last GTID of each domain and server).
pub fn parse_list(text: &str) -> Result<Vec<MariaGtid>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let fields: Vec<&str> = part.split('-').collect();
        let parsed = match fields[..] {
            [d, s, n] => match (d.parse(), s.parse(), n.parse()) {
                (Ok(domain), Ok(server), Ok(seq)) => Some(MariaGtid {
                    domain,
                    server,
                    seq,
                    standalone: false,
                }),
                _ => None,
            },
            _ => None,
        };
        out.push(parsed.ok_or_else(|| {
            format!("`{part}` is not a MariaDB GTID; write domain-server-seq, e.g. 0-1-42")
        })?);
    }
    Ok(out)
}

/// Why a server cannot continue a stream by GTID from a checkpoint's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GtidGap {
    /// The server's binlog has no transaction of the domain.
    NoDomain { wanted: MariaGtid },
    /// The server's binlog has no transaction of the checkpoint's server in the domain: it has
    /// another history (a server loaded separately), not a replica's.
    OtherHistory { wanted: MariaGtid, has: MariaGtid },
    /// The server's binlog ends before the checkpoint's transaction in the domain: it lacks
    /// transactions the capture has already published.
    Behind { wanted: MariaGtid, has: MariaGtid },
    /// The transactions after the checkpoint's were purged from the server's binlog.
    Purged {
        wanted: MariaGtid,
        oldest: MariaGtid,
    },
}

impl fmt::Display for GtidGap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GtidGap::NoDomain { wanted } => write!(
                f,
                "its binlog has no transaction of domain {} (the checkpoint is at {wanted})",
                wanted.domain
            ),
            GtidGap::OtherHistory { wanted, has } => write!(
                f,
                "its binlog has no transaction of server {} in domain {} (it has domain {} up to {has}): it did not replicate the checkpoint's {wanted}",
                wanted.server, wanted.domain, wanted.domain
            ),
            GtidGap::Behind { wanted, has } => write!(
                f,
                "its binlog has domain {} only up to {has}, before the checkpoint's {wanted}: it lacks transactions already published",
                wanted.domain
            ),
            GtidGap::Purged { wanted, oldest } => write!(
                f,
                "its oldest binlog starts after {oldest} in domain {}, so the transactions after the checkpoint's {wanted} were purged",
                wanted.domain
            ),
        }
    }
}

/// Whether a server holds every transaction after `checkpoint` in its binlog, in every domain
/// of the checkpoint, with the checkpoint's transaction itself in its history. `binlog_pos` is
/// its `@@gtid_binlog_pos` (the last GTID per domain), `binlog_state` its `@@gtid_binlog_state`
/// (the last per domain and server: a replica lists its primary's server there), `oldest` the
/// GTID state its oldest binlog file starts at. A domain the oldest file does not list began
/// later, so all its transactions are there.
pub fn continues(
    checkpoint: &MariaState,
    binlog_pos: &MariaState,
    binlog_state: &[MariaGtid],
    oldest: &MariaState,
) -> Result<(), GtidGap> {
    for &wanted in checkpoint.iter() {
        let Some(&has) = binlog_pos.get(wanted.domain) else {
            return Err(GtidGap::NoDomain { wanted });
        };
        let same_server = binlog_state
            .iter()
            .find(|g| g.domain == wanted.domain && g.server == wanted.server);
        match same_server {
            None => return Err(GtidGap::OtherHistory { wanted, has }),
            Some(&last) if last.seq < wanted.seq => {
                return Err(GtidGap::Behind { wanted, has: last })
            }
            Some(_) => {}
        }
        if let Some(&first) = oldest.get(wanted.domain) {
            if first.seq > wanted.seq {
                return Err(GtidGap::Purged {
                    wanted,
                    oldest: first,
                });
            }
        }
    }
    Ok(())
}

/// Parses a MySQL GTID set (`3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:11-18,...`, as in
/// `@@gtid_executed`, newlines allowed) into the SID blocks of COM_BINLOG_DUMP_GTID: per
/// server UUID, its intervals as `[start, end + 1)`.
pub fn mysql_sids(text: &str) -> Result<Vec<Sid<'static>>, String> {
    let mut sids = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut fields = part.split(':');
        let uuid_text = fields.next().unwrap_or_default().trim();
        let uuid = parse_uuid(uuid_text).ok_or_else(|| {
            format!("`{uuid_text}` in `{part}` is not a server UUID (8-4-4-4-12 hex digits)")
        })?;
        let mut intervals = Vec::new();
        for range in fields {
            let range = range.trim();
            let (start, end) = match range.split_once('-') {
                Some((a, b)) => (a.parse::<u64>(), b.parse::<u64>()),
                None => (range.parse::<u64>(), range.parse::<u64>()),
            };
            let (start, end) = match (start, end) {
                (Ok(s), Ok(e)) if s >= 1 && s <= e && e < u64::MAX => (s, e),
                _ if range
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic()) =>
                {
                    return Err(format!(
                        "`{part}` has the tag `{range}`: tagged GTIDs (MySQL 8.4) are not supported"
                    ))
                }
                _ => {
                    return Err(format!(
                        "`{range}` in `{part}` is not a transaction number or range (1-5)"
                    ))
                }
            };
            intervals.push(GnoInterval::new(start, end + 1));
        }
        if intervals.is_empty() {
            return Err(format!(
                "`{part}` has no transaction numbers; write uuid:1-5[:7-9...]"
            ));
        }
        sids.push(Sid::new(uuid).with_intervals(intervals));
    }
    Ok(sids)
}

fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let groups: Vec<&str> = text.split('-').collect();
    if groups.iter().map(|g| g.len()).collect::<Vec<_>>() != [8, 4, 4, 4, 12] {
        return None;
    }
    let hex: String = groups.concat();
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_common::misc::raw::Either;
    use mysql_common::packets::binlog_request::BinlogRequest;
    use mysql_common::proto::MySerialize;

    fn g(domain: u32, server: u32, seq: u64) -> MariaGtid {
        MariaGtid {
            domain,
            server,
            seq,
            standalone: false,
        }
    }

    #[test]
    fn maria_state_round_trips() {
        let s = MariaState::parse("1-2-7, 0-1-42\n").unwrap();
        assert_eq!(s.to_string(), "0-1-42,1-2-7");
        assert_eq!(s.get(1), Some(&g(1, 2, 7)));
        assert!(MariaState::parse("").unwrap().is_empty());
        assert!(MariaState::parse("0-1").is_err());
        assert!(MariaState::parse("0-1-x").is_err());
        assert!(MariaState::parse("0-1-4,0-2-5").is_err());
    }

    #[test]
    fn continues_needs_every_domain_up_to_the_checkpoint_and_not_purged() {
        let st = |s: &str| MariaState::parse(s).unwrap();
        let list = |s: &str| parse_list(s).unwrap();
        // A promoted replica: domain 0 went on with server 2's transactions.
        assert_eq!(
            continues(
                &st("0-1-42"),
                &st("0-2-57"),
                &list("0-1-50,0-2-57"),
                &st("0-1-3")
            ),
            Ok(())
        );
        // Exactly at the end of the new server's binlog.
        assert_eq!(
            continues(&st("0-1-42"), &st("0-1-42"), &list("0-1-42"), &st("")),
            Ok(())
        );
        assert_eq!(
            continues(&st("0-1-42"), &st("1-3-9"), &list("1-3-9"), &st("")),
            Err(GtidGap::NoDomain {
                wanted: g(0, 1, 42)
            })
        );
        // A server loaded separately: domain 0 has as many transactions, none of server 1.
        assert_eq!(
            continues(&st("0-1-42"), &st("0-3-70"), &list("0-3-70"), &st("")),
            Err(GtidGap::OtherHistory {
                wanted: g(0, 1, 42),
                has: g(0, 3, 70)
            })
        );
        assert_eq!(
            continues(&st("0-1-42"), &st("0-1-40"), &list("0-1-40"), &st("")),
            Err(GtidGap::Behind {
                wanted: g(0, 1, 42),
                has: g(0, 1, 40)
            })
        );
        assert_eq!(
            continues(
                &st("0-1-42"),
                &st("0-2-90"),
                &list("0-1-42,0-2-90"),
                &st("0-2-50")
            ),
            Err(GtidGap::Purged {
                wanted: g(0, 1, 42),
                oldest: g(0, 2, 50)
            })
        );
        let gap = continues(&st("0-1-42,1-1-5"), &st("0-2-57"), &list("0-1-42"), &st(""))
            .unwrap_err()
            .to_string();
        assert!(gap.contains("no transaction of domain 1"), "{gap}");
    }

    #[test]
    fn mysql_set_parses_into_sid_blocks() {
        let sids = mysql_sids(
            "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:11-18,\n 4d4a0c1e-0000-11e1-8000-000000000001:7",
        )
        .unwrap();
        assert_eq!(sids.len(), 2);
        assert_eq!(sids[0].uuid()[..4], [0x3e, 0x11, 0xfa, 0x47]);
        let iv: Vec<(u64, u64)> = sids[0]
            .intervals()
            .iter()
            .map(|i| (i.start(), i.end()))
            .collect();
        assert_eq!(iv, [(1, 6), (11, 19)]);
        assert_eq!(
            (sids[1].intervals()[0].start(), sids[1].intervals()[0].end()),
            (7, 8)
        );
        for bad in [
            "3E11FA47-71CA-11E1-9E33:1-5",
            "3E11FA47-71CA-11E1-9E33-C80AA9429562",
            "3E11FA47-71CA-11E1-9E33-C80AA9429562:5-1",
            "3E11FA47-71CA-11E1-9E33-C80AA9429562:0-3",
            "3E11FA47-71CA-11E1-9E33-C80AA9429562:tag:1-3",
        ] {
            assert!(mysql_sids(bad).is_err(), "{bad}");
        }
        assert!(mysql_sids("3E11FA47-71CA-11E1-9E33-C80AA9429562:tag:1-3")
            .unwrap_err()
            .contains("tagged"));
    }

    /// COM_BINLOG_DUMP_GTID as MySQL's protocol documentation lays it out, for server_id 4242
    /// and `3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:11-18`, written out by hand.
    #[test]
    fn mysql_gtid_dump_request_bytes() {
        let sids = mysql_sids("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:11-18").unwrap();
        let req = BinlogRequest::new(4242)
            .with_use_gtid(true)
            .with_pos(4_u64)
            .with_sids(sids);
        let mut bytes = Vec::new();
        match req.as_cmd() {
            Either::Right(cmd) => cmd.serialize(&mut bytes),
            Either::Left(_) => panic!("a GTID request is COM_BINLOG_DUMP_GTID"),
        }
        let le8 = |n: u64| n.to_le_bytes().to_vec();
        let mut want = vec![
            0x1e, // COM_BINLOG_DUMP_GTID
            0x04, 0x00, // flags: BINLOG_THROUGH_GTID
            0x92, 0x10, 0x00, 0x00, // server_id 4242
            0x00, 0x00, 0x00, 0x00, // binlog-filename-len 0 (no filename)
        ];
        want.extend(le8(4)); // binlog-pos
        want.extend([0x40, 0x00, 0x00, 0x00]); // data-size: 8 + 16 + 8 + 2 * 16 = 64
        want.extend(le8(1)); // n_sids
        want.extend([
            0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42,
            0x95, 0x62,
        ]); // SID
        want.extend(le8(2)); // n_intervals
        want.extend(le8(1)); // 1-5: start 1 ...
        want.extend(le8(6)); // ... end 6 (exclusive)
        want.extend(le8(11)); // 11-18: start 11 ...
        want.extend(le8(19)); // ... end 19
        assert_eq!(bytes, want);
    }
}
