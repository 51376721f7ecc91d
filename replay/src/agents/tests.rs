use aws_sdk_dynamodb::types::AttributeValue;
use streamfold_shared::attrs::sv;
use streamfold_shared::executor::Item;
use streamfold_shared::ids::Timestamp;

use super::read::bound;
use super::*;

fn profile(user: &str, rp: &str, state: &str, last: &str) -> Item {
    Item::from([
        ("agent_id".to_owned(), sv(format!("id-{user}"))),
        ("username".to_owned(), sv(user)),
        ("routing_profile".to_owned(), sv(rp)),
        ("state".to_owned(), sv(state)),
        ("last_event_at".to_owned(), sv(last)),
    ])
}

#[test]
fn stale_is_logged_in_and_silent_past_the_threshold() {
    let now = Timestamp::parse("2026-11-20T15:00:00Z")
        .map(|t| t.epoch_millis())
        .unwrap_or_default();
    let limit = DEFAULT_STALE_AFTER_SECS * 1000;
    let fresh = profile("a", "Sales", "available", "2026-11-20T14:56:00.000000Z");
    let silent = profile("b", "Sales", "on_contact", "2026-11-20T14:54:59.000000Z");
    let gone = profile("c", "Support", "offline", "2026-11-20T09:00:00.000000Z");
    assert!(!is_stale(&fresh, now, limit));
    assert!(is_stale(&silent, now, limit));
    // Exactly at the threshold: not yet.
    let edge = profile("d", "Sales", "Lunch", "2026-11-20T14:55:00.000000Z");
    assert!(!is_stale(&edge, now, limit));
    assert!(!is_stale(&gone, now, limit), "offline is never stale");
    let rows = wallboard(&[gone, silent, fresh, edge], now, limit, None);
    let names: Vec<&str> = rows.iter().map(|r| r.username.as_str()).collect();
    assert_eq!(names, ["a", "b", "d", "c"]);
    let counts = wallboard_counts(&rows);
    assert_eq!(counts["Sales"]["stale"], 1);
    assert_eq!(counts["Sales"]["available"], 1);
    assert_eq!(counts["Support"]["offline"], 1);
    let text = render_wallboard(&rows);
    assert!(text.contains("on_contact (stale)"), "{text}");
    let only = wallboard(&rows_items(), now, limit, Some("Support"));
    assert!(only.iter().all(|r| r.routing_profile == "Support"));
}

fn rows_items() -> Vec<Item> {
    vec![
        profile("x", "Support", "available", "2026-11-20T14:59:00.000000Z"),
        profile("y", "Sales", "available", "2026-11-20T14:59:00.000000Z"),
    ]
}

#[test]
fn durations_read_well() {
    assert_eq!(duration(0), "0:00:00.000");
    assert_eq!(duration(3_723_004), "1:02:03.004");
    assert_eq!(duration(50_405_310), "14:00:05.310");
}

#[test]
fn history_bounds() {
    assert_eq!(
        bound("2026-11-20", false).ok().as_deref(),
        Some("ACT#2026-11-20")
    );
    assert_eq!(
        bound("2026-11-20", true).ok().as_deref(),
        Some("ACT#2026-11-21")
    );
    assert_eq!(
        bound("2026-11-20T15:00:00+01:00", false).ok().as_deref(),
        Some("ACT#2026-11-20T14:00:00.000000Z")
    );
    assert!(bound("soon", false).is_err());
}

#[test]
fn daily_items_read_back() {
    let item = Item::from([
        ("agent_id".to_owned(), sv("a")),
        ("date".to_owned(), sv("2026-11-20")),
        ("ms_Available".to_owned(), AttributeValue::N("10".into())),
        ("ms_Lunch".to_owned(), AttributeValue::N("5".into())),
        ("total_ms".to_owned(), AttributeValue::N("15".into())),
        (
            "claimed".to_owned(),
            AttributeValue::Ss(vec!["e1".into(), "e2".into()]),
        ),
    ]);
    let d = DailyTotals::from_item(&item);
    assert_eq!(d.statuses.len(), 2);
    assert_eq!(d.total_ms, 15);
    assert_eq!(d.events, 2);
    assert!(render_daily(&d).contains("Lunch"));
}
