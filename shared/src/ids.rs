//! Validated identifiers and canonical timestamps.
//!
//! Every id that ends up inside a key goes through [`validate_id`]: non-empty,
//! at most [`MAX_ID_BYTES`] bytes, no `#` (the key-part separator) and no
//! control characters. The newtypes below can only be built through it, so a
//! key assembled from them can never collide with another entity's key.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// The longest id accepted in a key, in bytes.
pub const MAX_ID_BYTES: usize = 128;

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} is empty")]
    Empty { kind: &'static str },
    #[error("{kind} is {len} bytes long; at most {MAX_ID_BYTES} are allowed")]
    TooLong { kind: &'static str, len: usize },
    #[error("{kind} {shown} contains '#', which separates key parts")]
    Separator { kind: &'static str, shown: String },
    #[error("{kind} {shown} contains a control character")]
    Control { kind: &'static str, shown: String },
}

/// Shows at most 64 characters of an untrusted value, escaped.
pub(crate) fn shown(value: &str) -> String {
    let mut out: String = value.chars().take(64).collect();
    if out.len() < value.len() {
        out.push('…');
    }
    format!("{out:?}")
}

/// Checks the rules DESIGN.md sets for ids that go into keys.
pub fn validate_id(kind: &'static str, value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if value.len() > MAX_ID_BYTES {
        return Err(IdError::TooLong {
            kind,
            len: value.len(),
        });
    }
    if value.contains('#') {
        return Err(IdError::Separator {
            kind,
            shown: shown(value),
        });
    }
    if value.chars().any(char::is_control) {
        return Err(IdError::Control {
            kind,
            shown: shown(value),
        });
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// What this id is called in error messages.
            pub const KIND: &'static str = $kind;

            /// Validates `value` (see [`validate_id`]).
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                validate_id($kind, &value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A message group (conversation) id: `message_group_uuid`.
    GroupId,
    "message_group_uuid"
);
id_type!(
    /// A message id: `message_uuid`.
    MessageId,
    "message_uuid"
);
id_type!(
    /// A messaging user id: `user_uuid`.
    UserId,
    "user_uuid"
);
id_type!(
    /// A Connect agent id: the last path segment of the AgentARN.
    AgentId,
    "agent_id"
);
id_type!(
    /// A source event id (Connect EventId, stream eventID).
    EventId,
    "event_id"
);
id_type!(
    /// The name of a processor, as used in dead-letter keys.
    ProcessorName,
    "processor"
);
id_type!(
    /// A stream shard id.
    ShardId,
    "shard_id"
);

/// Why a timestamp was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("{shown} is not an RFC 3339 timestamp: {reason}")]
    Invalid { shown: String, reason: String },
    #[error("{shown} is outside the years 0000 to 9999")]
    OutOfRange { shown: String },
    #[error(
        "{shown} is not in the canonical key form (UTC, six fractional digits, Z), e.g. 2026-11-21T05:07:26.747689Z"
    )]
    NotCanonical { shown: String },
}

/// A UTC instant with microsecond precision.
///
/// Its [`Display`](fmt::Display) form is the canonical key form
/// `2026-11-21T05:07:26.747689Z`, whose string order is time order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// Parses any RFC 3339 form and normalises it to UTC microseconds.
    pub fn parse(value: &str) -> Result<Self, TimestampError> {
        let parsed =
            DateTime::parse_from_rfc3339(value.trim()).map_err(|e| TimestampError::Invalid {
                shown: shown(value),
                reason: e.to_string(),
            })?;
        Self::from_datetime(parsed.with_timezone(&Utc)).ok_or_else(|| TimestampError::OutOfRange {
            shown: shown(value),
        })
    }

    /// Parses a timestamp that must already be in canonical key form.
    pub fn parse_canonical(value: &str) -> Result<Self, TimestampError> {
        let ts = Self::parse(value)?;
        if value.len() != 27 || ts.to_string() != value {
            return Err(TimestampError::NotCanonical {
                shown: shown(value),
            });
        }
        Ok(ts)
    }

    /// Truncates to microseconds; `None` outside the years 0000–9999.
    pub fn from_datetime(dt: DateTime<Utc>) -> Option<Self> {
        let micros = dt.timestamp_micros();
        let dt = DateTime::<Utc>::from_timestamp_micros(micros)?;
        let year = chrono::Datelike::year(&dt);
        (0..=9999).contains(&year).then_some(Self(dt))
    }

    pub fn from_epoch_millis(ms: i64) -> Option<Self> {
        DateTime::<Utc>::from_timestamp_millis(ms).and_then(Self::from_datetime)
    }

    /// From fractional epoch seconds (stream `ApproximateCreationDateTime`).
    pub fn from_epoch_seconds_f64(secs: f64) -> Option<Self> {
        if !secs.is_finite() {
            return None;
        }
        Self::from_epoch_micros((secs * 1_000_000.0).round() as i64)
    }

    pub fn from_epoch_micros(micros: i64) -> Option<Self> {
        DateTime::<Utc>::from_timestamp_micros(micros).and_then(Self::from_datetime)
    }

    pub fn now() -> Self {
        Self::from_datetime(Utc::now()).unwrap_or(Self(DateTime::<Utc>::UNIX_EPOCH))
    }

    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }

    pub fn epoch_seconds(&self) -> i64 {
        self.0.timestamp()
    }

    pub fn epoch_millis(&self) -> i64 {
        self.0.timestamp_millis()
    }

    pub fn epoch_micros(&self) -> i64 {
        self.0.timestamp_micros()
    }

    /// The UTC calendar day.
    pub fn date(&self) -> NaiveDate {
        self.0.date_naive()
    }

    /// This instant plus whole seconds, saturating at the representable range.
    pub fn plus_seconds(&self, secs: i64) -> Self {
        self.0
            .checked_add_signed(chrono::TimeDelta::seconds(secs))
            .and_then(Self::from_datetime)
            .unwrap_or(*self)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Micros, true))
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(s: &str) -> Result<Self, TimestampError> {
        Self::parse(s)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_rules() {
        assert!(GroupId::new("5ae290ed-55d1-47a0-bc6d-fe2bc2700399").is_ok());
        assert_eq!(
            GroupId::new(""),
            Err(IdError::Empty {
                kind: "message_group_uuid"
            })
        );
        assert!(matches!(
            GroupId::new("not#a-valid-id"),
            Err(IdError::Separator { .. })
        ));
        assert!(matches!(
            UserId::new("a\u{0}b"),
            Err(IdError::Control { .. })
        ));
        assert!(matches!(
            UserId::new("line\nbreak"),
            Err(IdError::Control { .. })
        ));
        assert!(UserId::new("x".repeat(128)).is_ok());
        assert!(matches!(
            UserId::new("x".repeat(129)),
            Err(IdError::TooLong { len: 129, .. })
        ));
        // 10 KB strings are refused, and the message stays short.
        let err = UserId::new("#".repeat(10_240)).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.len() < 200));
    }

    #[test]
    fn serde_validates_ids() {
        let ok: Result<GroupId, _> = serde_json::from_str("\"abc\"");
        assert!(ok.is_ok());
        let bad: Result<GroupId, _> = serde_json::from_str("\"a#b\"");
        assert!(bad.is_err());
    }

    #[test]
    fn timestamps_are_normalised() {
        let t = Timestamp::parse("2026-11-20T14:00:01.001Z").ok();
        assert_eq!(
            t.map(|t| t.to_string()).as_deref(),
            Some("2026-11-20T14:00:01.001000Z")
        );
        let t = Timestamp::parse("2026-11-20T15:00:01+01:00").ok();
        assert_eq!(
            t.map(|t| t.to_string()).as_deref(),
            Some("2026-11-20T14:00:01.000000Z")
        );
        // Nanoseconds are truncated to microseconds.
        let t = Timestamp::parse("2026-11-21T05:07:26.747689999Z").ok();
        assert_eq!(
            t.map(|t| t.to_string()).as_deref(),
            Some("2026-11-21T05:07:26.747689Z")
        );
        assert!(Timestamp::parse("yesterday").is_err());
        assert!(Timestamp::parse("").is_err());
    }

    #[test]
    fn canonical_form_is_strict() {
        assert!(Timestamp::parse_canonical("2026-11-21T05:07:26.747689Z").is_ok());
        assert!(matches!(
            Timestamp::parse_canonical("2026-11-21T05:07:26.747Z"),
            Err(TimestampError::NotCanonical { .. })
        ));
        assert!(matches!(
            Timestamp::parse_canonical("2026-11-21T06:07:26.747689+01:00"),
            Err(TimestampError::NotCanonical { .. })
        ));
    }

    #[test]
    fn string_order_is_time_order() {
        let a = Timestamp::parse("2026-11-20T09:59:59.999999Z").ok();
        let b = Timestamp::parse("2026-11-20T10:00:00Z").ok();
        assert!(a < b);
        let (a, b) = (a.map(|t| t.to_string()), b.map(|t| t.to_string()));
        assert!(a < b);
    }
}
