use super::*;

fn p(uuid: &str) -> Person {
    Person {
        uuid: uuid.into(),
        handle: format!("@{uuid}"),
        name: uuid.to_uppercase(),
    }
}

fn row(owner: &str, sk: &str, other: &str) -> GrpRow {
    GrpRow {
        owner: owner.into(),
        sk: sk.into(),
        other: p(other),
    }
}

#[test]
fn both_rows_name_both_participants_and_stale_rows_collapse() {
    let g = OldGroup {
        rows: vec![
            row("a", "2023-01-01T00:00:00+00:00", "b"),
            row("a", "2023-01-02T00:00:00+00:00", "b"),
            row("b", "2023-01-02T00:00:00+00:00", "a"),
        ],
        ..OldGroup::default()
    };
    let (pair, collapsed) = resolve(&g, &HashMap::new()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(collapsed, 1);
    let uuids: Vec<&str> = pair.iter().map(|p| p.user_uuid.as_str()).collect();
    assert_eq!(uuids, vec!["a", "b"]);
    assert_eq!(pair[0].user_handle, "@a");
}

#[test]
fn a_missing_row_is_filled_from_senders_or_reported() {
    let mut g = OldGroup {
        rows: vec![row("a", "2023-01-01T00:00:00+00:00", "b")],
        ..OldGroup::default()
    };
    assert!(resolve(&g, &HashMap::new()).is_err());
    g.senders.insert("a".into(), p("a"));
    let (pair, _) = resolve(&g, &HashMap::new()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pair[0].user_handle, "@a");
    // From another conversation's row of the same user.
    g.senders.clear();
    let dir = HashMap::from([("a".to_owned(), p("a"))]);
    assert!(resolve(&g, &dir).is_ok());
    // Rows that disagree, or too many owners, are never guessed.
    let bad = OldGroup {
        rows: vec![row("a", "1", "b"), row("b", "1", "c")],
        ..OldGroup::default()
    };
    assert!(resolve(&bad, &HashMap::new()).is_err());
    let none = OldGroup {
        senders: BTreeMap::from([("a".to_owned(), p("a"))]),
        ..OldGroup::default()
    };
    assert!(resolve(&none, &HashMap::new()).is_err());
}

#[test]
fn old_messages_get_canonical_keys() {
    let item = HashMap::from([
        ("pk".to_owned(), sv("MSG#g1")),
        ("sk".to_owned(), sv("2023-06-01T12:00:00.123456+00:00")),
        ("message_uuid".to_owned(), sv("m1")),
        ("message".to_owned(), sv("hi")),
        ("user_uuid".to_owned(), sv("a")),
        ("user_handle".to_owned(), sv("@a")),
        ("user_display_name".to_owned(), sv("A")),
    ]);
    let (g, m) = message_item(&item).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(g.as_str(), "g1");
    assert_eq!(s(&m, "sk"), Some("2023-06-01T12:00:00.123456Z#m1"));
    assert_eq!(s(&m, "type"), Some("message"));
    let mut bad = item.clone();
    bad.insert("sk".into(), sv("yesterday"));
    assert!(message_item(&bad).is_err());
}
