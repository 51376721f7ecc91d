//! template.yaml deploys the table schemas/table.json defines.

use std::path::PathBuf;

use streamfold::table::Schema;
use yaml_rust2::{Yaml, YamlLoader};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn s(y: &Yaml) -> String {
    match y {
        Yaml::String(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn pairs(list: &Yaml, a: &str, b: &str) -> Vec<(String, String)> {
    list.as_vec()
        .map(|v| v.iter().map(|e| (s(&e[a]), s(&e[b]))).collect())
        .unwrap_or_default()
}

#[test]
fn template_table_matches_schemas() {
    let text = std::fs::read_to_string(root().join("template.yaml"))
        .unwrap_or_else(|e| panic!("template.yaml: {e}"));
    let docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("template.yaml: {e}"));
    let table = &docs[0]["Resources"]["Table"];
    assert_eq!(s(&table["Type"]), "AWS::DynamoDB::Table");
    let p = &table["Properties"];
    let schema = Schema::builtin().unwrap_or_else(|e| panic!("{e:#}"));

    let keys: Vec<_> = schema
        .key_schema
        .iter()
        .map(|k| (k.attribute_name.clone(), k.key_type.clone()))
        .collect();
    assert_eq!(pairs(&p["KeySchema"], "AttributeName", "KeyType"), keys);

    let mut attrs: Vec<_> = schema
        .attribute_definitions
        .iter()
        .map(|a| (a.attribute_name.clone(), a.attribute_type.clone()))
        .collect();
    let mut t_attrs = pairs(&p["AttributeDefinitions"], "AttributeName", "AttributeType");
    attrs.sort();
    t_attrs.sort();
    assert_eq!(t_attrs, attrs);

    let t_indexes = p["GlobalSecondaryIndexes"]
        .as_vec()
        .cloned()
        .unwrap_or_default();
    assert_eq!(t_indexes.len(), schema.global_secondary_indexes.len());
    for (t, g) in t_indexes.iter().zip(&schema.global_secondary_indexes) {
        assert_eq!(s(&t["IndexName"]), g.index_name);
        let keys: Vec<_> = g
            .key_schema
            .iter()
            .map(|k| (k.attribute_name.clone(), k.key_type.clone()))
            .collect();
        assert_eq!(pairs(&t["KeySchema"], "AttributeName", "KeyType"), keys);
        assert_eq!(
            s(&t["Projection"]["ProjectionType"]),
            g.projection.projection_type
        );
    }
    assert_eq!(
        s(&p["StreamSpecification"]["StreamViewType"]),
        schema.stream_specification.stream_view_type
    );
    assert_eq!(
        s(&p["TimeToLiveSpecification"]["AttributeName"]),
        schema.time_to_live_specification.attribute_name
    );
    assert_eq!(s(&p["TimeToLiveSpecification"]["Enabled"]), "true");
    assert_eq!(s(&p["BillingMode"]), schema.billing_mode);
    assert_eq!(
        s(&p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"]),
        "true"
    );
}
