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
pub fn s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v),
        _ => None,
    }
}

/// A string attribute that must be present.
pub fn req_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, String> {
    s(item, name).ok_or_else(|| format!("attribute {name} is missing or not a string"))
}

/// A number attribute of an SDK item, as i64.
pub fn n(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

/// A string attribute value.
pub fn sv(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A number attribute value.
pub fn nv(value: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

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
