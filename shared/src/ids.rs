//! Validated identifiers and canonical timestamps.
//!
//! Every id that ends up inside a key goes through [`validate_id`]: non-empty,
//! at most [`MAX_ID_BYTES`] bytes, no `#` (the key-part separator) and no
//! control characters. The newtypes below can only be built through it, so a
//! key assembled from them can never collide with another entity's key.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
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

/// Checks the rules docs/design.md sets for ids that go into keys.
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

        /// An id is equal to its text.
        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
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
    /// A Connect username (the profile's `username`, gsi2): the key of an
    /// extension reservation.
    Username,
    "username"
);
id_type!(
    /// A Connect routing profile id: the last segment of its ARN.
    RoutingProfileId,
    "routing_profile_id"
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
        if let Some(ts) = Self::parse_utc_fast(value.as_bytes()) {
            return Ok(ts);
        }
        let parsed =
            DateTime::parse_from_rfc3339(value.trim()).map_err(|e| TimestampError::Invalid {
                shown: shown(value),
                reason: e.to_string(),
            })?;
        Self::from_datetime(parsed.with_timezone(&Utc)).ok_or_else(|| TimestampError::OutOfRange {
            shown: shown(value),
        })
    }

    /// The common shape `YYYY-MM-DDTHH:MM:SS[.f…]Z` without chrono's general
    /// parser; anything else (offsets, lower-case, a leap second, an invalid
    /// date) is left to it, so the result is always the same as chrono's.
    fn parse_utc_fast(b: &[u8]) -> Option<Self> {
        fn num(b: &[u8]) -> Option<u32> {
            b.iter().try_fold(0u32, |acc, &c| {
                c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
            })
        }
        if b.len() < 20 || b.last() != Some(&b'Z') {
            return None;
        }
        if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
            return None;
        }
        let (year, month, day) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
        let (hour, min, sec) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
        let frac = &b[19..b.len() - 1];
        let micros = match frac {
            [] => 0,
            [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
                let n = num(digits)?;
                // Truncated to microseconds, as from_datetime does.
                let scaled = u64::from(n) * 10u64.pow(9 - digits.len() as u32) / 1_000;
                u32::try_from(scaled).ok()?
            }
            _ => return None,
        };
        let year = i32::try_from(year).ok()?;
        let dt = NaiveDate::from_ymd_opt(year, month, day)?
            .and_hms_micro_opt(hour, min, sec, micros)?
            .and_utc();
        Self::from_datetime(dt)
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
        // `YYYY-MM-DDTHH:MM:SS.ffffffZ` written by hand: this runs for
        // every key and item the processors build. Years are 0000–9999.
        fn put(out: &mut [u8], mut n: u32) {
            for slot in out.iter_mut().rev() {
                *slot = b'0' + (n % 10) as u8;
                n /= 10;
            }
        }
        let (d, t) = (self.0.date_naive(), self.0.time());
        let mut buf = *b"0000-00-00T00:00:00.000000Z";
        put(&mut buf[0..4], u32::try_from(d.year()).unwrap_or(0));
        put(&mut buf[5..7], d.month());
        put(&mut buf[8..10], d.day());
        put(&mut buf[11..13], t.hour());
        put(&mut buf[14..16], t.minute());
        put(&mut buf[17..19], t.second());
        put(&mut buf[20..26], (t.nanosecond() / 1_000).min(999_999));
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
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

    /// What chrono's general parser makes of a value, as `parse` did before
    /// its fast path.
    fn by_chrono(value: &str) -> Option<Timestamp> {
        DateTime::parse_from_rfc3339(value.trim())
            .ok()
            .and_then(|d| Timestamp::from_datetime(d.with_timezone(&Utc)))
    }

    #[test]
    fn the_fast_parser_agrees_with_chrono() {
        for value in [
            "2019-05-25T18:43:59.049Z",
            "2019-05-25T18:43:59Z",
            "2019-05-25T18:43:59.1Z",
            "2019-05-25T18:43:59.123456789Z",
            "2019-05-25T18:43:59.1234567891Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "1969-12-31T23:59:59.999999Z",
            "2024-02-29T12:00:00Z",
            "2023-02-29T12:00:00Z",
            "2019-13-25T18:43:59Z",
            "2019-05-25T24:00:00Z",
            "2019-05-25T23:59:60Z",
            "2019-05-25T18:43:59.Z",
            "2019-05-25t18:43:59Z",
            "2019-05-25 18:43:59Z",
            "2019-05-25T18:43:59+02:00",
            "2019-05-25T18:43:59z",
            "2019-5-25T18:43:59Z",
            "+2019-05-25T18:43:59Z",
            "2019-05-25T18:43:5xZ",
            " 2019-05-25T18:43:59Z ",
        ] {
            assert_eq!(Timestamp::parse(value).ok(), by_chrono(value), "{value}");
        }
    }

    #[test]
    fn the_written_form_is_chronos_rfc3339_in_micros() {
        let mut micros: i64 = -62_167_219_200_000_000; // 0000-01-01
        while micros < 253_402_300_799_000_000 {
            let Some(ts) = Timestamp::from_epoch_micros(micros) else {
                break;
            };
            let chrono = ts
                .as_datetime()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            assert_eq!(ts.to_string(), chrono);
            micros += 123_456_789_012_345 + micros.rem_euclid(999_983);
        }
    }

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
