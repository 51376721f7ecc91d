use super::*;

fn row(pk: &str, sk: &str, v: Option<&str>) -> OldRow {
    OldRow {
        pk: pk.into(),
        sk: sk.into(),
        sk_value: v.map(str::to_owned),
    }
}

#[test]
fn each_defect_is_handled_by_its_rule() {
    let rows = [
        row("0001", "agentID", Some("ada")),
        row("0002", "nu", Some("0002")),
        row("0003", "nu", None),
        row("0004", "nu", Some("0004")),
        row("0004", "agentID", Some("bob")),
        row("0009", "agentID", Some("cy")),
        row("0005", "agentID", Some("cy")),
        row("12345", "agentID", Some("dee")),
        row("42", "nu", Some("42")),
        row("00x1", "nu", None),
        row("0006", "agentID", None),
    ];
    let p = plan(&rows, 4);
    let pairs: Vec<(String, String)> = p
        .pairs
        .iter()
        .map(|(u, x)| (u.to_string(), x.to_string()))
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("ada".to_owned(), "0001".to_owned()),
            ("bob".to_owned(), "0004".to_owned()),
            ("cy".to_owned(), "0005".to_owned()),
        ]
    );
    assert_eq!(p.free_without_sk_value, vec!["0003"]);
    assert_eq!(p.free_and_assigned, vec!["0004"]);
    assert_eq!(p.free_rows, 2);
    assert_eq!(
        p.usernames_on_two,
        vec![TwoExtensions {
            username: "cy".into(),
            kept: "0005".into(),
            freed: vec!["0009".into()]
        }]
    );
    assert_eq!(p.outside_pool, vec!["12345", "42"]);
    assert_eq!(p.malformed.len(), 2, "{:?}", p.malformed);
}

#[test]
fn the_csv_export_is_read_with_its_quirks() {
    let text = "\u{feff}user,extension\r\nada,1\r\n\"o\"\"neil\",0002\nbob,0003\nbob,0007\ncy,0003\n,0008\nx,99999\nbad\n";
    let p = plan_csv(text, 4).unwrap_or_else(|e| panic!("{e}"));
    let pairs: Vec<(String, String)> = p
        .pairs
        .iter()
        .map(|(u, x)| (u.to_string(), x.to_string()))
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("ada".to_owned(), "0001".to_owned()),
            ("o\"neil".to_owned(), "0002".to_owned()),
            ("bob".to_owned(), "0003".to_owned()),
        ]
    );
    assert_eq!(p.extensions_on_two, vec!["0003"]);
    assert_eq!(p.usernames_on_two.len(), 1);
    assert_eq!(p.outside_pool, vec!["99999"]);
    assert_eq!(p.free_rows, 1);
    assert_eq!(p.malformed.len(), 1);
    assert!(plan_csv("name,number\n", 4).is_err());
    assert!(plan_csv("", 4).is_err());
}
