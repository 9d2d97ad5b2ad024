//! The alert state machine driven by a clock the tests set.

use super::*;
use crate::readings::Reading;

const T0: i64 = 1_796_634_000_000; // 2026-12-07 (a Monday) 09:00 UTC

fn alerts(text: &str) -> Vec<AlertConfig> {
    #[derive(serde::Deserialize)]
    struct File {
        alerts: Vec<AlertConfig>,
    }
    let f: File = toml::from_str(text).expect("alerts parse");
    f.alerts
}

fn reading(subject: &str, lag: f64, events: u64, errors: u64, last: Option<i64>) -> Reading {
    Reading {
        subject: subject.to_owned(),
        lag_seconds: lag,
        events_total: events,
        errors_total: errors,
        last_event_ms: last,
    }
}

fn frame(at_s: i64, subjects: Vec<Reading>) -> Frame {
    Frame {
        at_ms: T0 + at_s * 1000,
        lag_seconds: 0.0,
        subjects,
    }
}

fn kinds(notices: &[Notice]) -> Vec<(NoticeStatus, String)> {
    notices
        .iter()
        .map(|n| (n.status, n.subject.clone()))
        .collect()
}

#[test]
fn lag_is_pending_for_its_duration_then_fires_once_then_resolves() {
    let cfg = alerts(
        r#"[[alerts]]
           name = "late"
           kind = "lag"
           match = "shop.*"
           threshold_seconds = 30
           for_seconds = 60
           repeat_seconds = 0"#,
    );
    let mut e = Engine::new(&cfg, "table");
    let late = |at, lag| frame(at, vec![reading("shop.orders", lag, 1, 0, None)]);
    assert!(e.evaluate(&late(0, 10.0)).is_empty());
    assert!(
        e.active(T0).is_empty(),
        "below the threshold nothing is active"
    );
    assert!(e.evaluate(&late(1, 31.0)).is_empty());
    assert_eq!(e.active(T0)[0].state, "pending");
    assert!(e.evaluate(&late(60, 90.0)).is_empty(), "59 s is not yet 60");
    let n = e.evaluate(&late(61, 91.0));
    assert_eq!(kinds(&n), [(NoticeStatus::Firing, "shop.orders".into())]);
    assert_eq!(n[0].value, 91.0);
    assert_eq!(n[0].since_ms, T0 + 1000);
    assert_eq!(
        n[0].summary,
        "[FIRING] late: table shop.orders is 91 s behind (above 30 s for 60 s)"
    );
    assert_eq!(e.active(T0)[0].state, "firing");
    assert!(
        e.evaluate(&late(5000, 95.0)).is_empty(),
        "repeat 0: told once"
    );
    let n = e.evaluate(&late(5001, 2.0));
    assert_eq!(kinds(&n), [(NoticeStatus::Resolved, "shop.orders".into())]);
    assert_eq!(n[0].value, 2.0);
    assert!(e.active(T0).is_empty());
}

#[test]
fn a_condition_that_stops_before_its_duration_is_never_told() {
    let cfg = alerts(
        "[[alerts]]\nname = \"late\"\nkind = \"lag\"\nthreshold_seconds = 5\nfor_seconds = 30",
    );
    let mut e = Engine::new(&cfg, "table");
    assert!(e
        .evaluate(&frame(0, vec![reading("a.b", 9.0, 0, 0, None)]))
        .is_empty());
    assert!(
        e.evaluate(&frame(10, vec![reading("a.b", 1.0, 0, 0, None)]))
            .is_empty(),
        "no resolved notice for an alert nobody was told of"
    );
}

#[test]
fn firing_repeats_at_its_interval_and_only_for_matching_subjects() {
    let cfg = alerts(
        r#"[[alerts]]
           name = "late"
           kind = "lag"
           match = "shop.orders_*"
           threshold_seconds = 1
           repeat_seconds = 600"#,
    );
    let mut e = Engine::new(&cfg, "table");
    let f = |at| {
        frame(
            at,
            vec![
                reading("shop.orders_01", 5.0, 0, 0, None),
                reading("shop.users", 500.0, 0, 0, None),
            ],
        )
    };
    assert_eq!(e.evaluate(&f(0)).len(), 1);
    assert!(e.evaluate(&f(599)).is_empty());
    let n = e.evaluate(&f(600));
    assert_eq!(kinds(&n), [(NoticeStatus::Firing, "shop.orders_01".into())]);
}

#[test]
fn outside_alert_hours_a_firing_alert_is_muted_and_told_when_they_begin() {
    let cfg = alerts(
        r#"[[alerts]]
           name = "late"
           kind = "lag"
           threshold_seconds = 1
           hours = { days = ["mon-fri"], from = "10:00", to = "18:00", time_zone = "UTC" }"#,
    );
    let mut e = Engine::new(&cfg, "table");
    let f = |at| frame(at, vec![reading("a.b", 5.0, 0, 0, None)]);
    // 09:00: firing but muted.
    assert!(e.evaluate(&f(0)).is_empty());
    let a = e.active(T0);
    assert_eq!((a[0].state, a[0].muted), ("firing", true));
    // 10:00: the hours begin and the alert is told.
    let n = e.evaluate(&f(3600));
    assert_eq!(kinds(&n), [(NoticeStatus::Firing, "a.b".into())]);
    assert!(!e.active(T0 + 3_600_000)[0].muted);
}

#[test]
fn no_traffic_watches_the_pattern_as_a_whole_from_the_start() {
    let cfg = alerts(
        r#"[[alerts]]
           name = "silent"
           kind = "no_traffic"
           match = "shop.*"
           window_seconds = 300"#,
    );
    let mut e = Engine::new(&cfg, "table");
    // No matching table ever had an event: silent since the first frame.
    assert!(e.evaluate(&frame(0, vec![])).is_empty());
    let n = e.evaluate(&frame(300, vec![reading("other.t", 0.0, 9, 0, Some(T0))]));
    assert_eq!(kinds(&n), [(NoticeStatus::Firing, "shop.*".into())]);
    assert_eq!(
        n[0].summary,
        "[FIRING] silent: no event from shop.* for 300 s (window 300 s)"
    );
    // One table of the pattern speaks: resolved.
    let at = T0 + 301_000;
    let n = e.evaluate(&frame(
        302,
        vec![
            reading("shop.a", 0.0, 1, 0, Some(at)),
            reading("shop.b", 0.0, 0, 0, None),
        ],
    ));
    assert_eq!(kinds(&n), [(NoticeStatus::Resolved, "shop.*".into())]);
    assert_eq!(n[0].value, 1.0);
}

#[test]
fn errors_count_the_failures_within_the_window() {
    let cfg = alerts(
        r#"[[alerts]]
           name = "failing"
           kind = "errors"
           match = "orders"
           threshold = 10
           window_seconds = 60"#,
    );
    let mut e = Engine::new(&cfg, "rule");
    let f = |at, errors| frame(at, vec![reading("orders", 0.0, 0, errors, None)]);
    // Failures before the first reading are not this window's.
    assert!(e.evaluate(&f(0, 100)).is_empty());
    assert!(e.evaluate(&f(30, 110)).is_empty(), "10 is not above 10");
    let n = e.evaluate(&f(40, 111));
    assert_eq!(kinds(&n), [(NoticeStatus::Firing, "orders".into())]);
    assert_eq!(n[0].value, 11.0);
    assert_eq!(
        n[0].summary,
        "[FIRING] failing: rule orders had 11 failures in 60 s (above 10)"
    );
    // A minute later no new failures: the window holds 111 - 111.
    let n = e.evaluate(&f(101, 111));
    assert_eq!(kinds(&n), [(NoticeStatus::Resolved, "orders".into())]);
}

#[test]
fn a_subject_that_disappears_resolves() {
    let cfg = alerts("[[alerts]]\nname = \"late\"\nkind = \"lag\"\nthreshold_seconds = 1");
    let mut e = Engine::new(&cfg, "rule");
    assert_eq!(
        e.evaluate(&frame(0, vec![reading("r", 9.0, 0, 0, None)]))
            .len(),
        1
    );
    let n = e.evaluate(&frame(1, vec![]));
    assert_eq!(kinds(&n), [(NoticeStatus::Resolved, "r".into())]);
}

#[test]
fn resolved_notices_can_be_turned_off() {
    let cfg = alerts(
        "[[alerts]]\nname = \"late\"\nkind = \"lag\"\nthreshold_seconds = 1\nsend_resolved = false",
    );
    let mut e = Engine::new(&cfg, "rule");
    assert_eq!(
        e.evaluate(&frame(0, vec![reading("r", 9.0, 0, 0, None)]))
            .len(),
        1
    );
    assert!(e
        .evaluate(&frame(1, vec![reading("r", 0.0, 0, 0, None)]))
        .is_empty());
}
