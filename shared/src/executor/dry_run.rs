//! The dry run: a [`DryRun`] records every write a real run would send as
//! one JSON line, caches reads per key, and its client refuses writes.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::sync::Mutex;

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, WriteRequest};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use serde_json::{Map, Value, json};

use super::{Item, Tx};
use crate::keys::Key;

/// Of request counts by operation, those that read ([`is_read`]).
pub fn read_requests(requests: &std::collections::BTreeMap<String, u64>) -> u64 {
    requests
        .iter()
        .filter(|(op, _)| is_read(op))
        .map(|(_, n)| n)
        .sum()
}

/// Requests a dry run lets through: reads only.
pub fn is_read(op: &str) -> bool {
    matches!(
        op,
        "GetItem"
            | "BatchGetItem"
            | "Query"
            | "Scan"
            | "TransactGetItems"
            | "DescribeTable"
            | "DescribeTimeToLive"
            | "DescribeContinuousBackups"
            | "DescribeEndpoints"
            | "ListTables"
            | "ListTagsOfResource"
    )
}

/// The interceptor of a dry run's client: it refuses every request that is
/// not a read, so nothing can write to the table, whichever path sends it.
#[derive(Debug, Clone, Copy)]
pub(super) struct ReadOnly;

impl Intercept for ReadOnly {
    fn name(&self) -> &'static str {
        "DryRunReadOnly"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = crate::metrics::operation_of(context);
        if is_read(op) {
            Ok(())
        } else {
            Err(format!("dry run: {op} refused (a dry run sends reads only)").into())
        }
    }
}

/// How many items (found or known absent) a dry run keeps; when the cache
/// is full it starts over, so memory stays bounded on any input.
pub const DRY_RUN_CACHE_MAX: usize = 50_000;

/// What a dry run recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DryRunStats {
    /// Write requests a real run would have sent, per operation
    /// (`TransactWriteItems`, `BatchWriteItem`, `PutItem`).
    pub requests: std::collections::BTreeMap<String, u64>,
    /// Write actions in them.
    pub puts: u64,
    pub updates: u64,
    pub deletes: u64,
    pub condition_checks: u64,
    /// Keys read from the table, and reads answered from the cache.
    pub keys_read: u64,
    pub cache_hits: u64,
}

#[derive(Default)]
struct DryState {
    cache: HashMap<(String, String), Option<Item>>,
    stats: DryRunStats,
}

/// Writing a dry run's output failed (the first such error; the output
/// stops there).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("writing the dry run's output: {0}")]
pub struct DryRunOutputError(String);

/// The recorder of a dry run: prints every write a real run would send as
/// one JSON line (JSON Lines), and caches what was read per key.
///
/// Each line is one request: `{"op": "TransactWriteItems", "table", "token",
/// "actions": [...]}`, `{"op": "BatchWriteItem", "table", "requests": [...]}`
/// (25 at most, as sent) or `{"op": "PutItem", "table", "key", "item",
/// "condition"}`. An action has `action` (`Put`, `Update`, `Delete`,
/// `ConditionCheck`), `key` (plain strings), and as the request has them
/// `item` (DynamoDB JSON), `update`, `condition`, `names`, `values`
/// (DynamoDB JSON). Conditions are printed, not evaluated: every write is
/// answered as successful.
///
/// Nothing is written, so the table a dry run reads does not change under
/// it (other writers aside): an item read once is answered from the cache
/// for the rest of the run, and later reads never see the run's own
/// (unwritten) writes.
pub struct DryRun {
    out: Mutex<Option<Box<dyn Write + Send>>>,
    error: Mutex<Option<DryRunOutputError>>,
    state: Mutex<DryState>,
    cache_max: usize,
}

impl fmt::Debug for DryRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DryRun")
            .field("stats", &self.stats())
            .finish()
    }
}

impl DryRun {
    /// Records into `out`.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            out: Mutex::new(Some(out)),
            error: Mutex::new(None),
            state: Mutex::new(DryState::default()),
            cache_max: DRY_RUN_CACHE_MAX,
        }
    }

    /// Records to standard output (buffered; [`DryRun::finish`] flushes).
    pub fn stdout() -> Self {
        Self::new(Box::new(std::io::BufWriter::with_capacity(
            1 << 16,
            std::io::stdout(),
        )))
    }

    /// Another cache size (tests).
    pub fn with_cache_max(mut self, max: usize) -> Self {
        self.cache_max = max;
        self
    }

    /// What was recorded so far.
    pub fn stats(&self) -> DryRunStats {
        self.state
            .lock()
            .map(|s| s.stats.clone())
            .unwrap_or_default()
    }

    /// Flushes the output; the first write error, if any.
    pub fn finish(&self) -> Result<DryRunStats, DryRunOutputError> {
        if let Ok(mut out) = self.out.lock()
            && let Some(w) = out.as_mut()
            && let Err(e) = w.flush()
        {
            self.fail(&e);
            *out = None;
        }
        match self.error.lock().ok().and_then(|e| e.clone()) {
            Some(e) => Err(e),
            None => Ok(self.stats()),
        }
    }

    fn fail(&self, e: &dyn fmt::Display) {
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert_with(|| DryRunOutputError(e.to_string()));
        }
    }

    fn emit(&self, line: &Value) {
        let Ok(mut out) = self.out.lock() else {
            return;
        };
        let Some(w) = out.as_mut() else {
            return;
        };
        let written = serde_json::to_writer(&mut *w, line)
            .map_err(|e| e.to_string())
            .and_then(|()| w.write_all(b"\n").map_err(|e| e.to_string()));
        if let Err(e) = written {
            self.fail(&e);
            *out = None;
        }
    }

    fn count(&self, op: &str, f: impl FnOnce(&mut DryRunStats)) {
        if let Ok(mut s) = self.state.lock() {
            *s.stats.requests.entry(op.to_owned()).or_insert(0) += 1;
            f(&mut s.stats);
        }
    }

    /// Splits `keys` into the items the cache knows (found ones; known
    /// absent ones are left out, as a read would) and the keys to read.
    pub(super) fn cached(&self, keys: &[Key]) -> (Vec<Item>, Vec<Key>) {
        let mut found = Vec::new();
        let mut missing = Vec::new();
        let Ok(mut s) = self.state.lock() else {
            return (found, keys.to_vec());
        };
        for key in keys {
            match s.cache.get(&(key.pk(), key.sk())) {
                Some(Some(item)) => found.push(item.clone()),
                Some(None) => {}
                None => {
                    missing.push(key.clone());
                    continue;
                }
            }
            s.stats.cache_hits += 1;
        }
        (found, missing)
    }

    /// Remembers what reading `keys` found (the rest is absent).
    pub(super) fn remember(&self, keys: &[Key], found: &[Item]) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        s.stats.keys_read += keys.len() as u64;
        if s.cache.len() + keys.len() > self.cache_max {
            s.cache.clear();
        }
        for key in keys {
            s.cache.insert((key.pk(), key.sk()), None);
        }
        for item in found {
            let (pk, sk) = Tx::item_key(item);
            s.cache.insert((pk, sk), Some(item.clone()));
        }
    }

    pub(super) fn record_transaction(&self, table: &str, items: &[TransactWriteItem], token: &str) {
        let mut actions = Vec::with_capacity(items.len());
        let (mut puts, mut updates, mut deletes, mut checks) = (0, 0, 0, 0);
        for item in items {
            if let Some(p) = item.put() {
                puts += 1;
                let mut a = action("Put", Some(p.item()));
                a.insert("item".into(), item_json(p.item()));
                add_expr(
                    &mut a,
                    None,
                    p.condition_expression(),
                    p.expression_attribute_names(),
                    p.expression_attribute_values(),
                );
                actions.push(Value::Object(a));
            } else if let Some(u) = item.update() {
                updates += 1;
                let mut a = action("Update", Some(u.key()));
                add_expr(
                    &mut a,
                    Some(u.update_expression()),
                    u.condition_expression(),
                    u.expression_attribute_names(),
                    u.expression_attribute_values(),
                );
                actions.push(Value::Object(a));
            } else if let Some(d) = item.delete() {
                deletes += 1;
                let mut a = action("Delete", Some(d.key()));
                add_expr(
                    &mut a,
                    None,
                    d.condition_expression(),
                    d.expression_attribute_names(),
                    d.expression_attribute_values(),
                );
                actions.push(Value::Object(a));
            } else if let Some(c) = item.condition_check() {
                checks += 1;
                let mut a = action("ConditionCheck", Some(c.key()));
                add_expr(
                    &mut a,
                    None,
                    Some(c.condition_expression()),
                    c.expression_attribute_names(),
                    c.expression_attribute_values(),
                );
                actions.push(Value::Object(a));
            }
        }
        self.count("TransactWriteItems", |s| {
            s.puts += puts;
            s.updates += updates;
            s.deletes += deletes;
            s.condition_checks += checks;
        });
        self.emit(&json!({
            "op": "TransactWriteItems",
            "table": table,
            "token": token,
            "actions": actions,
        }));
    }

    pub(super) fn record_batch_write(&self, table: &str, chunk: &[WriteRequest]) {
        let (mut puts, mut deletes) = (0, 0);
        let requests: Vec<Value> = chunk
            .iter()
            .filter_map(|r| {
                if let Some(p) = r.put_request() {
                    puts += 1;
                    let mut a = action("Put", Some(p.item()));
                    a.insert("item".into(), item_json(p.item()));
                    Some(Value::Object(a))
                } else {
                    r.delete_request().map(|d| {
                        deletes += 1;
                        Value::Object(action("Delete", Some(d.key())))
                    })
                }
            })
            .collect();
        self.count("BatchWriteItem", |s| {
            s.puts += puts;
            s.deletes += deletes;
        });
        self.emit(&json!({
            "op": "BatchWriteItem",
            "table": table,
            "requests": requests,
        }));
    }

    pub(super) fn record_update(
        &self,
        table: &str,
        key: &crate::keys::Key,
        expr: &super::Expr,
        condition: Option<&str>,
    ) {
        self.count("UpdateItem", |s| s.updates += 1);
        let mut head = Map::new();
        head.insert("op".into(), "UpdateItem".into());
        head.insert("table".into(), table.into());
        let mut k = Map::new();
        k.insert("pk".into(), key.pk().into());
        k.insert("sk".into(), key.sk().into());
        head.insert("key".into(), Value::Object(k));
        let text = expr.text.clone();
        add_expr(
            &mut head,
            Some(text.as_str()),
            condition,
            Some(&expr.names),
            Some(&expr.values),
        );
        self.emit(&Value::Object(head));
    }

    pub(super) fn record_put(&self, table: &str, item: &Item, condition: Option<&str>) {
        self.count("PutItem", |s| s.puts += 1);
        let mut line = action("Put", Some(item));
        line.remove("action");
        let mut head = Map::new();
        head.insert("op".into(), "PutItem".into());
        head.insert("table".into(), table.into());
        head.extend(line);
        head.insert("item".into(), item_json(item));
        if let Some(c) = condition {
            head.insert("condition".into(), c.into());
        }
        self.emit(&Value::Object(head));
    }
}

/// `{"action": name, "key": {"pk": .., "sk": ..}}` (the key as plain strings).
fn action(name: &str, item: Option<&Item>) -> Map<String, Value> {
    let mut a = Map::new();
    a.insert("action".into(), name.into());
    if let Some(item) = item {
        let mut key = Map::new();
        for k in ["pk", "sk"] {
            match item.get(k) {
                Some(AttributeValue::S(s)) => {
                    key.insert(k.into(), s.as_str().into());
                }
                Some(other) => {
                    key.insert(k.into(), attr_json(other));
                }
                None => {}
            }
        }
        a.insert("key".into(), Value::Object(key));
    }
    a
}

fn add_expr(
    a: &mut Map<String, Value>,
    update: Option<&str>,
    condition: Option<&str>,
    names: Option<&HashMap<String, String>>,
    values: Option<&HashMap<String, AttributeValue>>,
) {
    if let Some(u) = update {
        a.insert("update".into(), u.into());
    }
    if let Some(c) = condition {
        a.insert("condition".into(), c.into());
    }
    if let Some(n) = names.filter(|n| !n.is_empty()) {
        let names: Map<String, Value> = n
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        a.insert("names".into(), Value::Object(names));
    }
    if let Some(v) = values.filter(|v| !v.is_empty()) {
        a.insert("values".into(), item_json(v));
    }
}

/// An item (or expression values) as DynamoDB JSON, keys sorted.
pub fn item_json(item: &HashMap<String, AttributeValue>) -> Value {
    serde_json::to_value(serde_dynamo::Item::from(item.clone())).unwrap_or(Value::Null)
}

/// One attribute value as DynamoDB JSON (`{"S": "x"}`, `{"N": "1"}`, ...),
/// by serde_dynamo (the same form stream images are read in).
pub fn attr_json(v: &AttributeValue) -> Value {
    serde_json::to_value(serde_dynamo::AttributeValue::from(v.clone())).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::executor::Expr;

    fn key(pk: &str) -> Key {
        Key::parse(pk, "GROUP").unwrap_or_else(|e| panic!("{e}"))
    }

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn dry_run_records_a_transaction_as_one_line() {
        let out = Shared::default();
        let dry = DryRun::new(Box::new(out.clone()));
        let tx = Tx {
            table: Arc::from("t"),
            items: Vec::new(),
            touched: Vec::new(),
        };
        let mut tx = tx;
        let k = key("GROUP#g1");
        let item = Item::from([
            ("pk".to_owned(), AttributeValue::S("GRP#u1".into())),
            ("sk".to_owned(), AttributeValue::S("2026#g1".into())),
            ("n".to_owned(), AttributeValue::N("3".into())),
        ]);
        tx.update(
            &k,
            Expr::new("SET a = :a").s(":a", "x"),
            Some(Expr::new("attribute_exists(pk)")),
        )
        .and_then(|t| t.put(item, None))
        .unwrap_or_else(|e| panic!("{e}"));
        dry.record_transaction("t", &tx.items, "tok");
        let stats = dry.finish().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stats.requests.get("TransactWriteItems"), Some(&1));
        assert_eq!((stats.puts, stats.updates), (1, 1));
        let text = String::from_utf8(out.0.lock().map(|b| b.clone()).unwrap_or_default())
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1);
        let v: Value = serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["op"], "TransactWriteItems");
        assert_eq!(v["token"], "tok");
        assert_eq!(v["actions"][0]["action"], "Update");
        assert_eq!(v["actions"][0]["key"]["pk"], "GROUP#g1");
        assert_eq!(v["actions"][0]["update"], "SET a = :a");
        assert_eq!(v["actions"][0]["condition"], "attribute_exists(pk)");
        assert_eq!(v["actions"][0]["values"][":a"]["S"], "x");
        assert_eq!(v["actions"][1]["action"], "Put");
        assert_eq!(v["actions"][1]["item"]["n"]["N"], "3");
    }

    #[test]
    fn dry_run_cache_answers_hits_and_misses_and_stays_bounded() {
        let dry = DryRun::new(Box::new(std::io::sink())).with_cache_max(3);
        let (a, b) = (key("GROUP#a"), key("GROUP#b"));
        let found = Item::from([
            ("pk".to_owned(), AttributeValue::S("GROUP#a".into())),
            ("sk".to_owned(), AttributeValue::S("GROUP".into())),
        ]);
        let (hit, missing) = dry.cached(&[a.clone(), b.clone()]);
        assert!(hit.is_empty());
        assert_eq!(missing.len(), 2);
        dry.remember(&missing, std::slice::from_ref(&found));
        let (hit, missing) = dry.cached(&[a.clone(), b.clone()]);
        assert_eq!(hit, vec![found]);
        assert!(missing.is_empty());
        // Past the limit the cache starts over.
        dry.remember(&[key("GROUP#c"), key("GROUP#d")], &[]);
        let (_, missing) = dry.cached(&[a, b]);
        assert_eq!(missing.len(), 2);
        assert_eq!(dry.stats().cache_hits, 2);
    }

    #[test]
    fn only_reads_pass_a_dry_run() {
        assert!(is_read("BatchGetItem") && is_read("Query"));
        assert!(!is_read("PutItem") && !is_read("TransactWriteItems"));
    }
}
