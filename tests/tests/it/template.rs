//! template.yaml: it deploys the table schemas/table.json defines, every
//! function, and the event-source settings, filters and permissions the
//! README promises. (cfn-lint checks it against CloudFormation's own
//! schemas in CI; this checks what cfn-lint cannot know.)

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::{Value, json};
use streamfold::table::Schema;
use streamfold_shared::engine::Decoded;
use streamfold_shared::record::StreamRecord;
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

fn template() -> Yaml {
    let text = std::fs::read_to_string(root().join("template.yaml"))
        .unwrap_or_else(|e| panic!("template.yaml: {e}"));
    let mut docs =
        YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("template.yaml: {e}"));
    assert_eq!(docs.len(), 1);
    docs.remove(0)
}

#[test]
fn template_table_matches_schemas() {
    let docs = [template()];
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

/// (resource name, binary) of every function.
const FUNCTIONS: [(&str, &str); 5] = [
    ("MessageGroupsFunction", "message-groups"),
    ("ExtensionsFunction", "extensions"),
    ("AgentActivityFunction", "agent-activity"),
    ("ExtensionLookupFunction", "extension-lookup"),
    ("ReconcileFunction", "reconcile"),
];

fn strings(y: &Yaml) -> Vec<String> {
    match y {
        Yaml::Array(v) => v.iter().map(s).collect(),
        Yaml::BadValue => Vec::new(),
        other => vec![s(other)],
    }
}

/// Every (function, event name, event) of a stream type.
fn stream_events(t: &Yaml) -> Vec<(String, String, Yaml)> {
    let mut out = Vec::new();
    for (name, _) in FUNCTIONS {
        if let Some(events) = t["Resources"][name]["Properties"]["Events"].as_hash() {
            for (k, e) in events {
                if matches!(s(&e["Type"]).as_str(), "DynamoDB" | "Kinesis") {
                    out.push((name.to_owned(), s(k), e.clone()));
                }
            }
        }
    }
    out
}

/// A finite bound: a literal or a parameter with a MaxValue, never -1.
fn finite(t: &Yaml, v: &Yaml, what: &str) {
    match v {
        Yaml::Integer(n) => assert!(*n >= 0, "{what} = {n}"),
        Yaml::String(param) => {
            let p = &t["Parameters"][param.as_str()];
            assert_eq!(s(&p["Type"]), "Number", "{what}: parameter {param}");
            assert!(
                p["MaxValue"].as_i64().is_some(),
                "{what}: {param} has no MaxValue"
            );
            assert!(
                p["Default"].as_i64().is_some_and(|d| d >= 0),
                "{what}: {param} default"
            );
        }
        other => panic!("{what}: {other:?}"),
    }
}

#[test]
fn every_function_is_deployed_as_a_rust_arm64_lambda_with_its_own_log_group() {
    let t = template();
    let globals = &t["Globals"]["Function"];
    assert_eq!(s(&globals["Runtime"]), "provided.al2023");
    assert_eq!(strings(&globals["Architectures"]), ["arm64"]);
    assert_eq!(s(&globals["Handler"]), "bootstrap");
    for (name, binary) in FUNCTIONS {
        let f = &t["Resources"][name];
        assert_eq!(s(&f["Type"]), "AWS::Serverless::Function", "{name}");
        assert_eq!(
            s(&f["Metadata"]["BuildMethod"]),
            "rust-cargolambda",
            "{name}"
        );
        assert_eq!(
            s(&f["Metadata"]["BuildProperties"]["Binary"]),
            binary,
            "{name}"
        );
        let p = &f["Properties"];
        assert!(
            p["Runtime"].is_badvalue() && p["Architectures"].is_badvalue(),
            "{name}"
        );
        // The binary exists in the workspace under that name.
        let main = root().join("processors").join(binary).join("src/main.rs");
        assert!(main.exists(), "{}", main.display());
        // Its own log group, with a retention.
        let logs = s(&p["LoggingConfig"]["LogGroup"]);
        let group = &t["Resources"][logs.as_str()];
        assert_eq!(s(&group["Type"]), "AWS::Logs::LogGroup", "{name}");
        assert_eq!(
            s(&group["Properties"]["RetentionInDays"]),
            "LogRetentionDays"
        );
        // Its own role (no SAM-generated role with managed `*` policies).
        let role = s(&p["Role"]);
        let role = role.trim_end_matches(".Arn");
        assert_eq!(s(&t["Resources"][role]["Type"]), "AWS::IAM::Role", "{name}");
        assert_eq!(
            s(&t["Resources"][role]["Condition"]),
            s(&f["Condition"]),
            "{name}"
        );
        // Memory and timeout are set, globally or here.
        for key in ["MemorySize", "Timeout"] {
            assert!(
                p[key].as_i64().or(globals[key].as_i64()).is_some(),
                "{name}: {key}"
            );
        }
    }
    assert_eq!(s(&t["Parameters"]["LogRetentionDays"]["Type"]), "Number");
}

#[test]
fn every_event_source_mapping_reports_partial_failures_and_gives_up() {
    let t = template();
    let events = stream_events(&t);
    let sources: BTreeSet<(String, String)> = events
        .iter()
        .map(|(f, _, e)| (f.clone(), s(&e["Type"])))
        .collect();
    let want: BTreeSet<(String, String)> = [
        ("MessageGroupsFunction", "DynamoDB"),
        ("ExtensionsFunction", "DynamoDB"),
        ("AgentActivityFunction", "Kinesis"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    assert_eq!(sources, want);
    for (f, name, e) in &events {
        let p = &e["Properties"];
        let what = format!("{f}.{name}");
        assert_eq!(
            strings(&p["FunctionResponseTypes"]),
            ["ReportBatchItemFailures"],
            "{what}"
        );
        assert_eq!(
            p["BisectBatchOnFunctionError"].as_bool(),
            Some(true),
            "{what}"
        );
        finite(&t, &p["MaximumRetryAttempts"], &format!("{what} retries"));
        finite(
            &t,
            &p["MaximumRecordAgeInSeconds"],
            &format!("{what} record age"),
        );
        // The failure queue, or the S3 bucket when one is given.
        let destination = &p["DestinationConfig"]["OnFailure"]["Destination"];
        assert_eq!(s(&destination[0]), "HasFailureBucket", "{what}");
        assert_eq!(
            s(&destination[1]),
            "arn:${AWS::Partition}:s3:::${OnFailureBucketName}",
            "{what}"
        );
        assert_eq!(s(&destination[2]), "StreamFailures.Arn", "{what}");
        assert_eq!(s(&p["BatchSize"]), "StreamBatchSize", "{what}");
        assert_eq!(
            s(&p["MaximumBatchingWindowInSeconds"]),
            "StreamBatchingWindowSeconds"
        );
        assert!(!p["ParallelizationFactor"].is_badvalue(), "{what}");
        assert_eq!(s(&p["StartingPosition"]), "TRIM_HORIZON", "{what}");
        if s(&e["Type"]) == "DynamoDB" {
            assert_eq!(s(&p["Stream"]), "Table.StreamArn", "{what}");
            assert!(
                !strings(&p["FilterCriteria"]["Filters"]).is_empty(),
                "{what}: a table-stream function must filter"
            );
        }
    }
    // The pool is handed out one batch at a time per shard.
    let ext = events
        .iter()
        .find(|(f, _, _)| f == "ExtensionsFunction")
        .map(|(_, _, e)| e.clone())
        .unwrap_or(Yaml::BadValue);
    assert_eq!(ext["Properties"]["ParallelizationFactor"].as_i64(), Some(1));
    // The failure queue is encrypted and keeps messages for 14 days.
    let q = &t["Resources"]["StreamFailures"]["Properties"];
    assert_eq!(q["SqsManagedSseEnabled"].as_bool(), Some(true));
    assert_eq!(q["MessageRetentionPeriod"].as_i64(), Some(1_209_600));
}

/// Every IAM statement of the template's roles: (role, statement).
/// Every statement each role grants: its inline policies' and those of the
/// template's managed policies it attaches (`ManagedPolicyArns: [!Ref X]`,
/// the pieces the stream functions share), as (role, statement).
fn statements(t: &Yaml) -> Vec<(String, Yaml)> {
    let mut out = Vec::new();
    if let Some(resources) = t["Resources"].as_hash() {
        for (name, r) in resources {
            if s(&r["Type"]) != "AWS::IAM::Role" {
                continue;
            }
            let inline = r["Properties"]["Policies"]
                .as_vec()
                .cloned()
                .unwrap_or_default();
            let managed = r["Properties"]["ManagedPolicyArns"]
                .as_vec()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|arn| {
                    let policy = &t["Resources"][s(&arn).as_str()];
                    assert_eq!(
                        s(&policy["Type"]),
                        "AWS::IAM::ManagedPolicy",
                        "{}: managed policy {}",
                        s(name),
                        s(&arn)
                    );
                    policy["Properties"].clone()
                });
            for policy in inline.into_iter().chain(managed) {
                for st in policy["PolicyDocument"]["Statement"]
                    .as_vec()
                    .cloned()
                    .unwrap_or_default()
                {
                    // `!If [cond, statement, statement or AWS::NoValue]`:
                    // every branch that is a statement.
                    match &st {
                        Yaml::Array(v) if v.len() == 3 => {
                            for branch in &v[1..] {
                                if branch.as_hash().is_some() {
                                    out.push((s(name), branch.clone()));
                                }
                            }
                        }
                        other => out.push((s(name), other.clone())),
                    }
                }
            }
        }
    }
    out
}

fn role_actions(t: &Yaml, role: &str, prefix: &str) -> BTreeSet<String> {
    statements(t)
        .into_iter()
        .filter(|(r, _)| r == role)
        .flat_map(|(_, st)| strings(&st["Action"]))
        .filter(|a| a.starts_with(prefix))
        .collect()
}

#[test]
fn every_role_has_exactly_the_actions_its_function_uses_and_no_star() {
    let t = template();
    // No SAM policy templates: exact statements, inline or in the template's
    // own shared managed policies (`statements` refuses any other).
    for (name, _) in FUNCTIONS {
        assert!(
            t["Resources"][name]["Properties"]["Policies"].is_badvalue(),
            "{name}"
        );
    }
    for (role, st) in statements(&t) {
        assert_eq!(s(&st["Effect"]), "Allow", "{role}");
        for a in strings(&st["Action"]) {
            assert!(!a.contains('*'), "{role}: action {a}");
        }
        let resources = strings(&st["Resource"]);
        assert!(!resources.is_empty(), "{role}: {st:?}");
        for r in resources {
            assert_ne!(r, "*", "{role}");
            // Every resource is one of the stack's own or a parameter.
            assert!(
                !r.starts_with("arn:") || r.contains("${"),
                "{role}: {r} is not derived from the stack"
            );
        }
    }
    let set = |v: &[&str]| v.iter().map(|a| (*a).to_owned()).collect::<BTreeSet<_>>();
    // The actions each function's code sends (the executor's transactions
    // need the per-item actions: PutItem, UpdateItem, DeleteItem,
    // ConditionCheckItem), plus DescribeTable for the warm-up at init.
    let want = [
        (
            "MessageGroupsRole",
            set(&[
                "dynamodb:DescribeTable",
                "dynamodb:BatchGetItem",
                "dynamodb:GetItem",
                "dynamodb:Query",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
                "dynamodb:ConditionCheckItem",
                "dynamodb:DescribeStream",
                "dynamodb:GetRecords",
                "dynamodb:GetShardIterator",
                "dynamodb:ListStreams",
            ]),
        ),
        (
            "ExtensionsRole",
            set(&[
                "dynamodb:DescribeTable",
                "dynamodb:BatchGetItem",
                "dynamodb:GetItem",
                "dynamodb:Query",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
                "dynamodb:ConditionCheckItem",
                "dynamodb:DescribeStream",
                "dynamodb:GetRecords",
                "dynamodb:GetShardIterator",
                "dynamodb:ListStreams",
            ]),
        ),
        (
            "AgentActivityRole",
            set(&[
                "dynamodb:DescribeTable",
                "dynamodb:BatchGetItem",
                "dynamodb:BatchWriteItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
            ]),
        ),
        (
            "ExtensionLookupRole",
            set(&["dynamodb:DescribeTable", "dynamodb:GetItem"]),
        ),
        (
            "ReconcileRole",
            set(&[
                "dynamodb:DescribeTable",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
                "dynamodb:Query",
            ]),
        ),
    ];
    for (role, actions) in &want {
        assert_eq!(&role_actions(&t, role, "dynamodb:"), actions, "{role}");
    }
    // Queries go to the indexes they use, and only there.
    let query_resources = |role: &str| -> BTreeSet<String> {
        statements(&t)
            .into_iter()
            .filter(|(r, st)| {
                r == role && strings(&st["Action"]).contains(&"dynamodb:Query".to_owned())
            })
            .flat_map(|(_, st)| strings(&st["Resource"]))
            .collect()
    };
    assert_eq!(
        query_resources("ExtensionsRole"),
        set(&["${Table.Arn}/index/gsi1"])
    );
    assert_eq!(
        query_resources("ReconcileRole"),
        set(&["${Table.Arn}/index/gsi1", "${Table.Arn}/index/gsi2"])
    );
    assert_eq!(query_resources("MessageGroupsRole"), set(&["Table.Arn"]));
    // Stream reads: each function only its own stream.
    assert!(role_actions(&t, "AgentActivityRole", "kinesis:").contains("kinesis:GetRecords"));
    for role in [
        "MessageGroupsRole",
        "ExtensionsRole",
        "ExtensionLookupRole",
        "ReconcileRole",
    ] {
        assert!(role_actions(&t, role, "kinesis:").is_empty(), "{role}");
    }
    for role in ["AgentActivityRole", "ExtensionLookupRole", "ReconcileRole"] {
        assert!(
            !role_actions(&t, role, "dynamodb:").contains("dynamodb:GetRecords"),
            "{role}"
        );
    }
    assert_eq!(
        role_actions(&t, "ReconcileRole", "connect:"),
        set(&["connect:ListUsers"])
    );
    assert_eq!(
        role_actions(&t, "ReconcileRole", "s3:"),
        set(&["s3:PutObject"])
    );
}

#[test]
fn connect_may_invoke_the_lookup_and_reconcile_runs_on_a_schedule() {
    let t = template();
    let perm = &t["Resources"]["ExtensionLookupConnectPermission"];
    assert_eq!(s(&perm["Type"]), "AWS::Lambda::Permission");
    let p = &perm["Properties"];
    assert_eq!(s(&p["Action"]), "lambda:InvokeFunction");
    assert_eq!(s(&p["Principal"]), "connect.amazonaws.com");
    assert_eq!(s(&p["FunctionName"]), "ExtensionLookupFunction.Arn");
    assert_eq!(s(&p["SourceArn"]), "ConnectInstanceArn");
    assert_eq!(s(&p["SourceAccount"]), "AWS::AccountId");
    let schedule = &t["Resources"]["ReconcileFunction"]["Properties"]["Events"]["Schedule"];
    assert_eq!(s(&schedule["Type"]), "Schedule");
    assert_eq!(s(&schedule["Properties"]["Schedule"]), "ReconcileSchedule");
    assert!(s(&t["Parameters"]["ReconcileSchedule"]["Default"]).starts_with("rate("));
    // The agent event stream: created, or an existing one's ARN.
    assert_eq!(
        s(&t["Resources"]["AgentEventStream"]["Type"]),
        "AWS::Kinesis::Stream"
    );
    assert_eq!(
        s(&t["Resources"]["AgentEventStream"]["Condition"]),
        "CreateAgentEventStream"
    );
    assert_eq!(s(&t["Parameters"]["AgentEventStreamArn"]["Default"]), "");
    // Outputs: the table, the streams, every function.
    let outputs = &t["Outputs"];
    for key in ["TableName", "TableStreamArn", "AgentEventStreamArn"] {
        assert!(!outputs[key].is_badvalue(), "{key}");
    }
    for (name, _) in FUNCTIONS {
        assert!(
            !outputs[format!("{name}Arn").as_str()].is_badvalue(),
            "{name}"
        );
    }
}

// ── FilterCriteria, evaluated as Lambda evaluates them ─────────────────────

/// Does one filter pattern match the event (Lambda's event-filtering rules,
/// the subset the template uses: exact strings, `prefix`, `exists`)?
fn pattern_matches(pattern: &Value, event: Option<&Value>) -> bool {
    match pattern {
        Value::Object(fields) => fields
            .iter()
            .all(|(k, p)| pattern_matches(p, event.and_then(|e| e.get(k)))),
        Value::Array(alternatives) => alternatives.iter().any(|a| match a {
            Value::String(want) => event.and_then(Value::as_str) == Some(want.as_str()),
            Value::Object(op) => {
                if let Some(Value::String(prefix)) = op.get("prefix") {
                    event
                        .and_then(Value::as_str)
                        .is_some_and(|v| v.starts_with(prefix.as_str()))
                } else if let Some(Value::Bool(exists)) = op.get("exists") {
                    let present = event.is_some_and(|e| !e.is_object() && !e.is_null());
                    present == *exists
                } else {
                    panic!("unsupported filter operator {op:?}")
                }
            }
            other => panic!("unsupported filter value {other:?}"),
        }),
        other => panic!("unsupported filter pattern {other:?}"),
    }
}

/// The function's filters (any one matching lets the record through).
fn filters_of(t: &Yaml, function: &str) -> Vec<Value> {
    let events = stream_events(t);
    let (_, _, e) = events
        .iter()
        .find(|(f, _, _)| f == function)
        .unwrap_or_else(|| panic!("{function} has no stream event"));
    e["Properties"]["FilterCriteria"]["Filters"]
        .as_vec()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|f| serde_json::from_str(&s(&f["Pattern"])).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

fn passes(filters: &[Value], record: &Value) -> bool {
    filters.iter().any(|p| pattern_matches(p, Some(record)))
}

fn image(pairs: &[(&str, &str)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!({ "S": v })))
            .collect(),
    )
}

/// A Lambda table-stream record.
fn record(
    name: &str,
    keys: (&str, &str),
    new: Option<Value>,
    old: Option<Value>,
    ttl: bool,
) -> Value {
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": 1_763_700_000.0,
        "Keys": image(&[("pk", keys.0), ("sk", keys.1)]),
        "SequenceNumber": "100000000000000000001",
        "SizeBytes": 100,
        "StreamViewType": "NEW_AND_OLD_IMAGES"
    });
    if let Some(n) = new {
        dynamodb["NewImage"] = n;
    }
    if let Some(o) = old {
        dynamodb["OldImage"] = o;
    }
    let mut r = json!({
        "eventID": "e1",
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:012345678901:table/t/stream/2026-11-20T00:00:00.000",
        "dynamodb": dynamodb
    });
    if ttl {
        r["userIdentity"] = json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"});
    }
    r
}

fn stream_record(v: &Value) -> StreamRecord {
    let r: aws_lambda_events::event::dynamodb::EventRecord =
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"));
    StreamRecord::from_lambda(r).unwrap_or_else(|e| panic!("{e}"))
}

/// Samples of every kind of record the table's stream carries.
fn samples() -> Vec<(&'static str, Value)> {
    let msg = |extra: &[(&str, &str)]| {
        let mut p = vec![
            ("pk", "MSG#g1"),
            ("sk", "2026-11-20T08:00:00.000000Z#m1"),
            ("type", "message"),
            ("message_uuid", "m1"),
            ("message", "hi"),
            ("user_uuid", "u1"),
            ("user_handle", "ada"),
            ("user_display_name", "Ada"),
            ("created_at", "2026-11-20T08:00:00.000000Z"),
        ];
        p.extend_from_slice(extra);
        image(&p)
    };
    let msg_keys = ("MSG#g1", "2026-11-20T08:00:00.000000Z#m1");
    let profile = |ext: Option<&str>| {
        let mut p = vec![
            ("pk", "AGENT#a1"),
            ("sk", "PROFILE"),
            ("type", "agent"),
            (
                "agent_arn",
                "arn:aws:connect:us-east-1:012345678901:instance/i/agent/a1",
            ),
            ("username", "ada"),
        ];
        match ext {
            Some(x) => p.push(("extension", x)),
            None => {
                p.push(("gsi1pk", "EXT#WAITING"));
                p.push(("gsi1sk", "2026-11-20T08:00:00.000000Z#a1"));
            }
        }
        image(&p)
    };
    let prof_keys = ("AGENT#a1", "PROFILE");
    let untyped_profile = image(&[("pk", "AGENT#a1"), ("sk", "PROFILE"), ("username", "ada")]);
    let untyped_msg = image(&[("pk", "MSG#g1"), ("sk", "2026-11-20T08:00:00.000000Z#m1")]);
    let ext = |agent: Option<&str>| match agent {
        Some(a) => image(&[
            ("pk", "EXT#0042"),
            ("sk", "EXT"),
            ("type", "ext"),
            ("extension", "0042"),
            ("agent_id", a),
        ]),
        None => image(&[
            ("pk", "EXT#0042"),
            ("sk", "EXT"),
            ("type", "ext"),
            ("extension", "0042"),
            ("gsi1pk", "EXT#FREE"),
            ("gsi1sk", "0042"),
        ]),
    };
    let ext_keys = ("EXT#0042", "EXT");
    let group = image(&[
        ("pk", "GROUP#g1"),
        ("sk", "GROUP"),
        ("type", "group"),
        ("last_message_key", "x"),
    ]);
    let preview = image(&[
        ("pk", "GRP#u1"),
        ("sk", "2026-11-20T08:00:00.000000Z#g1"),
        ("type", "preview"),
        ("message", "hi"),
    ]);
    let activity = image(&[
        ("pk", "AGENT#a1"),
        ("sk", "ACT#2026-11-20T08:00:00.000000Z#e1"),
        ("type", "activity"),
    ]);
    let daily = image(&[
        ("pk", "AGENT#a1"),
        ("sk", "DAY#2026-11-20"),
        ("type", "daily"),
    ]);
    let letter = image(&[
        ("pk", "DEADLETTER#message-groups"),
        ("sk", "2026-11-20T08:00:00.000000Z#e1"),
        ("type", "deadletter"),
    ]);
    vec![
        (
            "message insert",
            record("INSERT", msg_keys, Some(msg(&[])), None, false),
        ),
        (
            "message edit",
            record(
                "MODIFY",
                msg_keys,
                Some(msg(&[("message", "edited")])),
                Some(msg(&[])),
                false,
            ),
        ),
        (
            "message delete",
            record("REMOVE", msg_keys, None, Some(msg(&[])), false),
        ),
        (
            "untyped message",
            record("INSERT", msg_keys, Some(untyped_msg), None, false),
        ),
        (
            "group insert",
            record(
                "INSERT",
                ("GROUP#g1", "GROUP"),
                Some(group.clone()),
                None,
                false,
            ),
        ),
        (
            "group update",
            record(
                "MODIFY",
                ("GROUP#g1", "GROUP"),
                Some(group.clone()),
                Some(group),
                false,
            ),
        ),
        (
            "preview insert",
            record(
                "INSERT",
                ("GRP#u1", "2026-11-20T08:00:00.000000Z#g1"),
                Some(preview.clone()),
                None,
                false,
            ),
        ),
        (
            "preview delete",
            record(
                "REMOVE",
                ("GRP#u1", "2026-11-20T08:00:00.000000Z#g1"),
                None,
                Some(preview),
                false,
            ),
        ),
        (
            "waiting profile insert",
            record("INSERT", prof_keys, Some(profile(None)), None, false),
        ),
        (
            "waiting profile change",
            record(
                "MODIFY",
                prof_keys,
                Some(profile(None)),
                Some(profile(None)),
                false,
            ),
        ),
        (
            "profile overwritten without its extension",
            record(
                "MODIFY",
                prof_keys,
                Some(profile(None)),
                Some(profile(Some("0042"))),
                false,
            ),
        ),
        (
            "own assignment",
            record(
                "MODIFY",
                prof_keys,
                Some(profile(Some("0042"))),
                Some(profile(None)),
                false,
            ),
        ),
        (
            "status change of an agent with an extension",
            record(
                "MODIFY",
                prof_keys,
                Some(profile(Some("0042"))),
                Some(profile(Some("0042"))),
                false,
            ),
        ),
        (
            "profile removal",
            record(
                "REMOVE",
                prof_keys,
                None,
                Some(profile(Some("0042"))),
                false,
            ),
        ),
        (
            "profile TTL removal",
            record("REMOVE", prof_keys, None, Some(profile(Some("0042"))), true),
        ),
        (
            "waiting profile removal",
            record("REMOVE", prof_keys, None, Some(profile(None)), false),
        ),
        (
            "untyped profile",
            record("INSERT", prof_keys, Some(untyped_profile), None, false),
        ),
        (
            "ext free",
            record("INSERT", ext_keys, Some(ext(None)), None, false),
        ),
        (
            "ext assigned",
            record(
                "MODIFY",
                ext_keys,
                Some(ext(Some("a1"))),
                Some(ext(None)),
                false,
            ),
        ),
        (
            "activity",
            record(
                "INSERT",
                ("AGENT#a1", "ACT#2026-11-20T08:00:00.000000Z#e1"),
                Some(activity),
                None,
                false,
            ),
        ),
        (
            "daily",
            record(
                "MODIFY",
                ("AGENT#a1", "DAY#2026-11-20"),
                Some(daily.clone()),
                Some(daily),
                false,
            ),
        ),
        (
            "dead letter",
            record(
                "INSERT",
                (
                    "DEADLETTER#message-groups",
                    "2026-11-20T08:00:00.000000Z#e1",
                ),
                Some(letter),
                None,
                false,
            ),
        ),
    ]
}

/// The filters never drop a record the processor would act on (an event or
/// a dead letter), and they keep out the records the processor's own writes
/// produce.
fn check_filters(
    function: &str,
    decode: impl Fn(&StreamRecord) -> bool,
    own_writes: &[&str],
) -> Vec<&'static str> {
    let t = template();
    let filters = filters_of(&t, function);
    assert!(!filters.is_empty(), "{function}");
    let mut passed = Vec::new();
    for (what, r) in samples() {
        let acts = decode(&stream_record(&r));
        let through = passes(&filters, &r);
        if acts {
            assert!(
                through,
                "{function}: the filter drops a {what} record it must see"
            );
        }
        if own_writes.contains(&what) {
            assert!(
                !through,
                "{function}: its own write ({what}) passes the filter"
            );
        }
        if through {
            passed.push(what);
        }
    }
    passed
}

fn acts_on<K, E>(d: Decoded<K, E>) -> bool {
    !matches!(d, Decoded::Ignore)
}

#[test]
fn message_groups_filter_lets_through_messages_only() {
    let passed = check_filters(
        "MessageGroupsFunction",
        |r| acts_on(message_groups::decode(r)),
        &[
            "group insert",
            "group update",
            "preview insert",
            "preview delete",
        ],
    );
    assert_eq!(
        passed,
        [
            "message insert",
            "message edit",
            "message delete",
            "untyped message"
        ]
    );
}

#[test]
fn extensions_filter_lets_through_profiles_without_an_extension_and_removals() {
    let passed = check_filters(
        "ExtensionsFunction",
        |r| acts_on(extensions::decode(r)),
        &[
            "own assignment",
            "ext free",
            "ext assigned",
            "activity",
            "daily",
        ],
    );
    assert_eq!(
        passed,
        [
            "waiting profile insert",
            "waiting profile change",
            "profile overwritten without its extension",
            "profile removal",
            "profile TTL removal",
            "waiting profile removal",
            "untyped profile"
        ]
    );
    // Status changes of agents who have an extension (most profile writes
    // agent-activity makes) never invoke it.
    let t = template();
    let filters = filters_of(&t, "ExtensionsFunction");
    let (_, busy) = samples()
        .into_iter()
        .find(|(w, _)| *w == "status change of an agent with an extension")
        .unwrap_or_else(|| panic!("sample"));
    assert!(!passes(&filters, &busy));
}

#[test]
fn the_filter_matcher_follows_lambdas_rules() {
    let p = json!({"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "MSG#"}]}}, "NewImage": {"x": {"S": [{"exists": false}]}}}});
    let r = |pk: &str, x: Option<&str>| {
        let mut v = json!({"dynamodb": {"Keys": {"pk": {"S": pk}}}});
        if let Some(x) = x {
            v["dynamodb"]["NewImage"] = json!({"x": {"S": x}});
        }
        v
    };
    assert!(pattern_matches(&p, Some(&r("MSG#1", None))));
    assert!(!pattern_matches(&p, Some(&r("MSG#1", Some("1")))));
    assert!(!pattern_matches(&p, Some(&r("GRP#1", None))));
    let exact = json!({"a": ["x", "y"]});
    assert!(pattern_matches(&exact, Some(&json!({"a": "y"}))));
    assert!(!pattern_matches(&exact, Some(&json!({"a": "z"}))));
    assert!(!pattern_matches(&exact, Some(&json!({}))));
}

/// Every alarm of the template: (resource name, properties).
fn alarms(t: &Yaml) -> Vec<(String, Yaml)> {
    t["Resources"]
        .as_hash()
        .map(|r| {
            r.iter()
                .filter(|(_, v)| s(&v["Type"]) == "AWS::CloudWatch::Alarm")
                .map(|(k, v)| (s(k), v["Properties"].clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The alarm on `namespace`/`metric` with exactly these dimensions.
fn alarm_on<'a>(
    all: &'a [(String, Yaml)],
    namespace: &str,
    metric: &str,
    dimensions: &[(&str, &str)],
) -> &'a Yaml {
    let want: Vec<(String, String)> = dimensions
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    all.iter()
        .find(|(_, p)| {
            s(&p["Namespace"]) == namespace
                && s(&p["MetricName"]) == metric
                && pairs(&p["Dimensions"], "Name", "Value") == want
        })
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("no alarm on {namespace} {metric} {dimensions:?}"))
}

#[test]
fn alarms_watch_every_stream_function_the_failure_queue_and_the_table() {
    let t = template();
    let all = alarms(&t);
    let stream_functions = [
        ("MessageGroupsFunction", "message-groups"),
        ("ExtensionsFunction", "extensions"),
        ("AgentActivityFunction", "agent-activity"),
    ];
    for (function, processor) in stream_functions {
        let by_name = [("FunctionName", function)];
        let age = alarm_on(&all, "AWS/Lambda", "IteratorAge", &by_name);
        assert_eq!(s(&age["Threshold"]), "IteratorAgeAlarmMilliseconds");
        assert_eq!(s(&age["Statistic"]), "Maximum");
        for metric in ["Errors", "Throttles"] {
            let a = alarm_on(&all, "AWS/Lambda", metric, &by_name);
            assert_eq!(a["Threshold"].as_i64(), Some(0), "{function} {metric}");
        }
        // The EMF metric the function writes, with exactly its dimensions.
        let dead = alarm_on(
            &all,
            streamfold_shared::emf::DEFAULT_NAMESPACE,
            streamfold_shared::emf::names::DEAD_LETTERED,
            &[("Function", function), ("Processor", processor)],
        );
        assert_eq!(s(&dead["Statistic"]), "Sum");
        // The processor dimension is the processor's own name.
        assert!(
            streamfold::pipeline::ProcessorKind::ALL
                .iter()
                .any(|k| k.name() == processor)
        );
    }
    let queue = [("QueueName", "StreamFailures.QueueName")];
    let visible = alarm_on(
        &all,
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        &queue,
    );
    assert_eq!(visible["Threshold"].as_i64(), Some(0));
    let oldest = alarm_on(&all, "AWS/SQS", "ApproximateAgeOfOldestMessage", &queue);
    assert_eq!(s(&oldest["Threshold"]), "FailureQueueAgeAlarmSeconds");
    for metric in ["WriteThrottleEvents", "ReadThrottleEvents"] {
        alarm_on(&all, "AWS/DynamoDB", metric, &[("TableName", "Table")]);
    }
    // Every alarm notifies the topic when one is given, and nothing else.
    for (name, p) in &all {
        for key in ["AlarmActions", "OKActions"] {
            // `!If [HasAlarmTopic, [!Ref AlarmTopicArn], !Ref AWS::NoValue]`
            let v = &p[key];
            assert_eq!(s(&v[0]), "HasAlarmTopic", "{name}.{key}");
            assert_eq!(strings(&v[1]), ["AlarmTopicArn"], "{name}.{key}");
            assert_eq!(s(&v[2]), "AWS::NoValue", "{name}.{key}");
        }
        assert_eq!(s(&p["TreatMissingData"]), "notBreaching", "{name}");
        assert!(
            s(&p["AlarmDescription"]).contains("docs/operations.md"),
            "{name}"
        );
    }
    assert_eq!(s(&t["Parameters"]["AlarmTopicArn"]["Default"]), "");
}

#[test]
fn the_dashboard_graphs_what_the_alarms_watch_and_records_by_outcome() {
    let t = template();
    let d = &t["Resources"]["Dashboard"];
    assert_eq!(s(&d["Type"]), "AWS::CloudWatch::Dashboard");
    // `!Sub` placeholders are strings inside the JSON.
    let body_text = s(&d["Properties"]["DashboardBody"]);
    let body: Value = serde_json::from_str(&body_text)
        .unwrap_or_else(|e| panic!("dashboard body is not JSON ({e}): {body_text}"));
    let mut graphed: BTreeSet<(String, String)> = BTreeSet::new();
    for w in body["widgets"].as_array().cloned().unwrap_or_default() {
        for m in w["properties"]["metrics"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            graphed.insert((
                m[0].as_str().unwrap_or_default().to_owned(),
                m[1].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    for (name, p) in alarms(&t) {
        let key = (s(&p["Namespace"]), s(&p["MetricName"]));
        assert!(graphed.contains(&key), "{name}: {key:?} is not graphed");
    }
    use streamfold_shared::emf::names;
    for metric in [
        names::APPLIED,
        names::NO_OP,
        names::IGNORED,
        names::DEAD_LETTERED,
        names::FAILED,
    ] {
        assert!(
            graphed.contains(&("Streamfold".to_owned(), metric.to_owned())),
            "{metric}"
        );
    }
    for metric in ["ConsumedWriteCapacityUnits", "ConsumedReadCapacityUnits"] {
        assert!(graphed.contains(&("AWS/DynamoDB".to_owned(), metric.to_owned())));
    }
    // Only the stream functions' names and the processors' names as
    // dimension values: never an id from the data.
    assert!(!body_text.contains("AGENT#") && !body_text.contains("MSG#"));
}

#[test]
fn each_stream_role_may_write_to_its_failure_destination_only() {
    let t = template();
    for role in ["MessageGroupsRole", "ExtensionsRole", "AgentActivityRole"] {
        let sts: Vec<Yaml> = statements(&t)
            .into_iter()
            .filter(|(r, _)| r == role)
            .map(|(_, st)| st)
            .collect();
        let by_sid = |sid: &str| -> Yaml {
            sts.iter()
                .find(|st| s(&st["Sid"]) == sid)
                .cloned()
                .unwrap_or_else(|| panic!("{role}: no statement {sid}"))
        };
        let sqs = by_sid("OnFailure");
        assert_eq!(strings(&sqs["Action"]), ["sqs:SendMessage"], "{role}");
        assert_eq!(strings(&sqs["Resource"]), ["StreamFailures.Arn"], "{role}");
        let objects = by_sid("OnFailureObjects");
        assert_eq!(strings(&objects["Action"]), ["s3:PutObject"], "{role}");
        assert_eq!(
            strings(&objects["Resource"]),
            ["arn:${AWS::Partition}:s3:::${OnFailureBucketName}/*"],
            "{role}"
        );
        let bucket = by_sid("OnFailureBucket");
        assert_eq!(strings(&bucket["Action"]), ["s3:ListBucket"], "{role}");
        assert_eq!(
            strings(&bucket["Resource"]),
            ["arn:${AWS::Partition}:s3:::${OnFailureBucketName}"],
            "{role}"
        );
    }
    assert_eq!(s(&t["Parameters"]["OnFailureBucketName"]["Default"]), "");
}
