//! Small helpers to read and write item attributes without ever leaking an
//! attribute's value into an error message (values can be message text or a
//! person's name; error messages are logged).

use aws_sdk_dynamodb::types::AttributeValue;

use crate::executor::Item;

/// Replaces every double-quoted part of an error text (serde quotes the
/// offending value, escaped as Rust's `{:?}` does) by `"…"`.
pub fn redact(text: impl std::fmt::Display) -> String {
    let text = text.to_string();
    let mut out = String::with_capacity(text.len());
    let mut quoted = false;
    let mut chars = text.chars();
    while let Some(ch) = chars.next() {
        if quoted && ch == '\\' {
            // An escaped character (`\"`, `\\`) is part of the value.
            chars.next();
        } else if ch == '"' {
            if quoted {
                out.push_str("…\"");
            } else {
                out.push('"');
            }
            quoted = !quoted;
        } else if !quoted {
            out.push(ch);
        }
    }
    out
}

/// A string attribute of an SDK item.
pub fn string<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v),
        _ => None,
    }
}

/// An attribute that must be there as a string is missing or is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("attribute {name} is missing or not a string")]
pub struct MissingAttribute {
    pub name: String,
}

/// A string attribute that must be present.
pub fn required_string<'a>(item: &'a Item, name: &str) -> Result<&'a str, MissingAttribute> {
    string(item, name).ok_or_else(|| MissingAttribute {
        name: name.to_owned(),
    })
}

/// A number attribute of an SDK item, as i64.
pub fn number(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

/// A string attribute value.
pub fn string_value(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A number attribute value.
pub fn number_value(value: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The short names these helpers had first (`s`, `n`, `req_s`, `sv`, `nv`),
/// kept for the code that uses them; new code uses the names above.
pub use self::{
    number as n, number_value as nv, required_string as req_s, string as s, string_value as sv,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_read_back_by_type() {
        let item = Item::from([
            ("name".to_owned(), string_value("Ada")),
            ("count".to_owned(), number_value(3)),
        ]);
        assert_eq!(string(&item, "name"), Some("Ada"));
        assert_eq!(string(&item, "count"), None);
        assert_eq!(number(&item, "count"), Some(3));
        assert_eq!(required_string(&item, "name"), Ok("Ada"));
        let missing = required_string(&item, "count").map_err(|e| e.to_string());
        assert_eq!(
            missing,
            Err("attribute count is missing or not a string".to_owned())
        );
        // The short names are the same functions.
        assert_eq!(s(&item, "name"), string(&item, "name"));
        assert_eq!(sv("x"), string_value("x"));
    }

    #[test]
    fn redact_hides_quoted_values() {
        assert_eq!(
            redact("invalid type: string \"Andrew Brown\", expected a map"),
            "invalid type: string \"…\", expected a map"
        );
        assert_eq!(
            redact("missing field `message_uuid`"),
            "missing field `message_uuid`"
        );
        // A value with escaped quotes stays hidden whole (found by fuzzing).
        let value = "Ada \"The Countess\" Lovelace \\";
        assert_eq!(
            redact(format!("invalid type: string {value:?}, expected a map")),
            "invalid type: string \"…\", expected a map"
        );
    }
}
