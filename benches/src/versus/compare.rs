//! Comparing the two sides' views: the projection items of both tables,
//! attribute by attribute, leaving out processing-time stamps. Differences
//! the naive way has by design are named with the reason; anything else is
//! reported as unexpected.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use aws_sdk_dynamodb::types::AttributeValue;
use streamfold_shared::executor::Executor;

type Stored = BTreeMap<String, AttributeValue>;
type ItemKey = (String, String);

/// What one attribute's differences come to.
#[derive(Debug, Clone)]
pub struct AttrDiff {
    /// Items where the attribute differs (value, or present on one side).
    pub items: usize,
    /// One of them.
    pub example: ItemKey,
}

/// The result of comparing two views.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// The item types compared.
    pub types: Vec<String>,
    /// Attributes left out everywhere (processing-time stamps).
    pub ignored: Vec<String>,
    /// Items on both sides.
    pub common: usize,
    /// Items equal on both sides.
    pub identical: usize,
    pub only_streamfold: Vec<ItemKey>,
    pub only_naive: Vec<ItemKey>,
    /// Differences by attribute name.
    pub attrs: BTreeMap<String, AttrDiff>,
    /// Attribute → why the naive way differs there by design.
    pub expected: BTreeMap<String, String>,
}

/// Reads both tables and compares the items of `types`.
pub async fn compare_tables(
    streamfold: &Executor,
    naive: &Executor,
    types: &[&str],
    ignored: &[&str],
    expected: &[(&str, &str)],
) -> Result<Verdict> {
    let a = projection(streamfold, types).await?;
    let b = projection(naive, types).await?;
    let mut v = compare(&a, &b, ignored);
    v.types = types.iter().map(|t| (*t).to_owned()).collect();
    v.expected = expected
        .iter()
        .map(|(k, why)| ((*k).to_owned(), (*why).to_owned()))
        .collect();
    Ok(v)
}

/// The items of the given types, by key.
async fn projection(exec: &Executor, types: &[&str]) -> Result<BTreeMap<ItemKey, Stored>> {
    let items = streamfold::table::scan(exec.client(), exec.table(), None).await?;
    Ok(items
        .into_iter()
        .filter(
            |i| matches!(i.get("type"), Some(AttributeValue::S(t)) if types.contains(&t.as_str())),
        )
        .map(|i| ((text(&i, "pk"), text(&i, "sk")), i))
        .collect())
}

fn text(item: &Stored, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::S(s)) => s.clone(),
        _ => String::new(),
    }
}

/// Sets compare as sets (the endpoint returns them in any order).
fn normalised(v: &AttributeValue) -> AttributeValue {
    match v {
        AttributeValue::Ss(s) => {
            let mut s = s.clone();
            s.sort();
            AttributeValue::Ss(s)
        }
        AttributeValue::Ns(n) => {
            let mut n = n.clone();
            n.sort();
            AttributeValue::Ns(n)
        }
        AttributeValue::L(l) => AttributeValue::L(l.iter().map(normalised).collect()),
        AttributeValue::M(m) => {
            AttributeValue::M(m.iter().map(|(k, v)| (k.clone(), normalised(v))).collect())
        }
        other => other.clone(),
    }
}

/// Compares two keyed item sets, attribute by attribute (pure).
fn compare(
    a: &BTreeMap<ItemKey, Stored>,
    b: &BTreeMap<ItemKey, Stored>,
    ignored: &[&str],
) -> Verdict {
    let mut v = Verdict {
        ignored: ignored.iter().map(|s| (*s).to_owned()).collect(),
        ..Verdict::default()
    };
    v.only_streamfold = a.keys().filter(|k| !b.contains_key(*k)).cloned().collect();
    v.only_naive = b.keys().filter(|k| !a.contains_key(*k)).cloned().collect();
    for (key, x) in a {
        let Some(y) = b.get(key) else { continue };
        v.common += 1;
        let names: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
        let mut same = true;
        for name in names {
            if ignored.contains(&name.as_str()) {
                continue;
            }
            if x.get(name).map(normalised) != y.get(name).map(normalised) {
                same = false;
                v.attrs
                    .entry(name.clone())
                    .or_insert_with(|| AttrDiff {
                        items: 0,
                        example: key.clone(),
                    })
                    .items += 1;
            }
        }
        v.identical += usize::from(same);
    }
    v
}

impl Verdict {
    /// True when nothing differs beyond the differences named as by design.
    pub fn agrees(&self) -> bool {
        self.only_streamfold.is_empty()
            && self.only_naive.is_empty()
            && self.attrs.keys().all(|a| self.expected.contains_key(a))
    }

    /// One word for the summary table.
    pub fn short(&self) -> &'static str {
        match (self.attrs.is_empty() && self.agrees(), self.agrees()) {
            (true, _) => "agree",
            (false, true) => "agree, except by design",
            (false, false) => "DIFFER",
        }
    }

    /// The verdict as printed lines.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "views ({}; ignoring {}): {} items on both sides, {} identical; {}",
            self.types.join(", "),
            if self.ignored.is_empty() {
                "nothing".to_owned()
            } else {
                self.ignored.join(", ")
            },
            self.common,
            self.identical,
            self.short()
        )];
        for (side, keys) in [
            ("only in streamfold's table", &self.only_streamfold),
            ("only in the naive table", &self.only_naive),
        ] {
            if let Some(first) = keys.first() {
                out.push(format!(
                    "  {} items {side} (UNEXPECTED), e.g. {} / {}",
                    keys.len(),
                    first.0,
                    first.1
                ));
            }
        }
        for (name, d) in &self.attrs {
            let why = match self.expected.get(name) {
                Some(why) => format!("by design: {why}"),
                None => "UNEXPECTED".to_owned(),
            };
            out.push(format!(
                "  `{name}` differs on {} items ({why}); e.g. {} / {}",
                d.items, d.example.0, d.example.1
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> Stored {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_owned())
    }

    #[test]
    fn stamps_are_ignored_sets_are_unordered_and_the_rest_is_reported() {
        let k = ("P".to_owned(), "S".to_owned());
        let a = BTreeMap::from([(
            k.clone(),
            item(&[
                ("at", s("1")),
                ("ids", AttributeValue::Ss(vec!["a".into(), "b".into()])),
                ("x", s("1")),
            ]),
        )]);
        let b = BTreeMap::from([(
            k,
            item(&[
                ("at", s("2")),
                ("ids", AttributeValue::Ss(vec!["b".into(), "a".into()])),
                ("x", s("2")),
            ]),
        )]);
        let mut v = compare(&a, &b, &["at"]);
        assert_eq!(v.common, 1);
        assert_eq!(v.identical, 0);
        assert_eq!(v.attrs.keys().collect::<Vec<_>>(), ["x"]);
        assert!(!v.agrees());
        v.expected.insert("x".into(), "why".into());
        assert!(v.agrees());
        assert_eq!(v.short(), "agree, except by design");
    }
}
