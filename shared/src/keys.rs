//! The key codec of the single table: every item key docs/design.md defines, as a
//! typed value that renders to `pk`/`sk` and parses back from them.
//!
//! Keys are built only from validated parts ([`crate::ids`]), so no input can
//! form or overwrite another entity's key. [`Key::parse`] is the inverse of
//! [`Key::pk`]/[`Key::sk`] and refuses anything that is not exactly one of the
//! shapes below.

use std::collections::HashMap;
use std::fmt;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::NaiveDate;

use crate::ids::{
    AgentId, EventId, GroupId, IdError, MessageId, ProcessorName, RoutingProfileId, ShardId,
    Timestamp, TimestampError, UserId, Username, shown,
};

/// Why a `pk`/`sk` pair is not a key this table knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Id(#[from] IdError),
    #[error(transparent)]
    Timestamp(#[from] TimestampError),
    #[error("unknown key shape pk={pk} sk={sk}")]
    Unknown { pk: String, sk: String },
    #[error("{what} {shown} is malformed: {reason}")]
    Malformed {
        what: &'static str,
        shown: String,
        reason: &'static str,
    },
}

/// A phone extension: 1 to 8 ASCII digits, kept with its leading zeros.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Extension(String);

impl Extension {
    pub fn new(value: &str) -> Result<Self, KeyError> {
        if value.is_empty() || value.len() > 8 || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(KeyError::Malformed {
                what: "extension",
                shown: shown(value),
                reason: "expected 1 to 8 digits",
            });
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Extension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stream ARN (checkpoint keys): no `#`, no control characters, ≤ 2048 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamArn(String);

impl StreamArn {
    pub fn new(value: &str) -> Result<Self, KeyError> {
        let bad = value.is_empty()
            || value.len() > 2048
            || value.contains('#')
            || value.chars().any(char::is_control);
        if bad {
            return Err(KeyError::Malformed {
                what: "stream ARN",
                shown: shown(value),
                reason: "expected a non-empty ARN without '#' or control characters",
            });
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Every item key of the table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// `GROUP#{group}` / `GROUP`
    Group(GroupId),
    /// `MSG#{group}` / `{created_at}#{message}`
    Message {
        group: GroupId,
        created_at: Timestamp,
        message: MessageId,
    },
    /// `GRP#{owner}` / `{last_message_at}#{group}`
    Preview {
        owner: UserId,
        last_message_at: Timestamp,
        group: GroupId,
    },
    /// `AGENT#{agent}` / `PROFILE`
    Profile(AgentId),
    /// `AGENT#{agent}` / `ACT#{at}#{event}`
    Activity {
        agent: AgentId,
        at: Timestamp,
        event: EventId,
    },
    /// `AGENT#{agent}` / `DAY#{yyyy-mm-dd}`
    Daily { agent: AgentId, day: NaiveDate },
    /// `EXT#{nnnn}` / `EXT`
    Extension(Extension),
    /// `DEADLETTER#{processor}` / `{received_at}#{record}`
    DeadLetter {
        processor: ProcessorName,
        received_at: Timestamp,
        record: EventId,
    },
    /// `CHECKPOINT#{stream arn}` / `{shard}`
    Checkpoint { stream: StreamArn, shard: ShardId },
    /// `LOCK#{name}` / `LOCK`: a lease that keeps two runs of a job apart.
    Lock(ProcessorName),
    /// `RESERVATION#{username}` / `RESERVATION`: an extension kept for a
    /// Connect username that has no profile yet (`streamfold import
    /// extensions`); its ext item is out of the free queue meanwhile.
    Reservation(Username),
    /// `RP#{routing profile id}` / `RP`: a routing profile as the agent
    /// events show it (name, queues), agent-activity's roster.
    RoutingProfile(RoutingProfileId),
}

impl Key {
    pub fn pk(&self) -> String {
        match self {
            Key::Group(g) => format!("GROUP#{g}"),
            Key::Message { group, .. } => Key::messages_pk(group),
            Key::Preview { owner, .. } => format!("GRP#{owner}"),
            Key::Profile(a) | Key::Activity { agent: a, .. } | Key::Daily { agent: a, .. } => {
                format!("AGENT#{a}")
            }
            Key::Extension(e) => format!("EXT#{e}"),
            Key::DeadLetter { processor, .. } => format!("DEADLETTER#{processor}"),
            Key::Checkpoint { stream, .. } => format!("CHECKPOINT#{}", stream.as_str()),
            Key::Lock(name) => format!("LOCK#{name}"),
            Key::Reservation(u) => format!("RESERVATION#{u}"),
            Key::RoutingProfile(rp) => format!("RP#{rp}"),
        }
    }

    pub fn sk(&self) -> String {
        match self {
            Key::Group(_) => "GROUP".to_owned(),
            Key::Message {
                created_at,
                message,
                ..
            } => format!("{created_at}#{message}"),
            Key::Preview {
                last_message_at,
                group,
                ..
            } => format!("{last_message_at}#{group}"),
            Key::Profile(_) => "PROFILE".to_owned(),
            Key::Activity { at, event, .. } => format!("ACT#{at}#{event}"),
            Key::Daily { day, .. } => format!("DAY#{}", day.format("%Y-%m-%d")),
            Key::Extension(_) => "EXT".to_owned(),
            Key::DeadLetter {
                received_at,
                record,
                ..
            } => format!("{received_at}#{record}"),
            Key::Checkpoint { shard, .. } => shard.to_string(),
            Key::Lock(_) => "LOCK".to_owned(),
            Key::Reservation(_) => "RESERVATION".to_owned(),
            Key::RoutingProfile(_) => "RP".to_owned(),
        }
    }

    /// The key as a DynamoDB key map (`pk`, `sk`).
    pub fn to_key_map(&self) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S(self.pk())),
            ("sk".to_owned(), AttributeValue::S(self.sk())),
        ])
    }

    /// The partition holding a group's messages (the `pk` of its
    /// [`Key::Message`]s), for a Query of them.
    pub fn messages_pk(group: &GroupId) -> String {
        format!("MSG#{group}")
    }

    /// The key of a table item (its `pk` and `sk`), refusing an item
    /// without them or with any shape [`Key::parse`] refuses.
    pub fn from_item(item: &HashMap<String, AttributeValue>) -> Result<Key, KeyError> {
        let part = |name: &str| match item.get(name) {
            Some(AttributeValue::S(s)) => s.as_str(),
            _ => "",
        };
        Key::parse(part("pk"), part("sk"))
    }

    /// Parses a `pk`/`sk` pair back into a key, refusing every other shape.
    pub fn parse(pk: &str, sk: &str) -> Result<Key, KeyError> {
        let unknown = || KeyError::Unknown {
            pk: shown(pk),
            sk: shown(sk),
        };
        let (prefix, rest) = pk.split_once('#').ok_or_else(unknown)?;
        match prefix {
            "GROUP" if sk == "GROUP" => Ok(Key::Group(GroupId::new(rest)?)),
            "MSG" => {
                let group = GroupId::new(rest)?;
                let (at, id) = split_ts(sk, "message sort key")?;
                Ok(Key::Message {
                    group,
                    created_at: at,
                    message: MessageId::new(id)?,
                })
            }
            "GRP" => {
                let owner = UserId::new(rest)?;
                let (at, id) = split_ts(sk, "preview sort key")?;
                Ok(Key::Preview {
                    owner,
                    last_message_at: at,
                    group: GroupId::new(id)?,
                })
            }
            "AGENT" => {
                let agent = AgentId::new(rest)?;
                if sk == "PROFILE" {
                    Ok(Key::Profile(agent))
                } else if let Some(act) = sk.strip_prefix("ACT#") {
                    let (at, event) = split_ts(act, "activity sort key")?;
                    Ok(Key::Activity {
                        agent,
                        at,
                        event: EventId::new(event)?,
                    })
                } else if let Some(day) = sk.strip_prefix("DAY#") {
                    let parsed = NaiveDate::parse_from_str(day, "%Y-%m-%d")
                        .ok()
                        .filter(|d| d.format("%Y-%m-%d").to_string() == day)
                        .ok_or_else(|| KeyError::Malformed {
                            what: "daily sort key",
                            shown: shown(sk),
                            reason: "expected DAY#yyyy-mm-dd",
                        })?;
                    Ok(Key::Daily { agent, day: parsed })
                } else {
                    Err(unknown())
                }
            }
            "EXT" if sk == "EXT" => Ok(Key::Extension(Extension::new(rest)?)),
            "DEADLETTER" => {
                let processor = ProcessorName::new(rest)?;
                let (at, record) = split_ts(sk, "dead-letter sort key")?;
                Ok(Key::DeadLetter {
                    processor,
                    received_at: at,
                    record: EventId::new(record)?,
                })
            }
            "CHECKPOINT" => Ok(Key::Checkpoint {
                stream: StreamArn::new(rest)?,
                shard: ShardId::new(sk)?,
            }),
            "LOCK" if sk == "LOCK" => Ok(Key::Lock(ProcessorName::new(rest)?)),
            "RESERVATION" if sk == "RESERVATION" => Ok(Key::Reservation(Username::new(rest)?)),
            "RP" if sk == "RP" => Ok(Key::RoutingProfile(RoutingProfileId::new(rest)?)),
            _ => Err(unknown()),
        }
    }
}

/// Splits `{canonical timestamp}#{id}`; the timestamp has no `#` in it.
fn split_ts<'a>(sk: &'a str, what: &'static str) -> Result<(Timestamp, &'a str), KeyError> {
    let (at, id) = sk.split_once('#').ok_or_else(|| KeyError::Malformed {
        what,
        shown: shown(sk),
        reason: "expected {timestamp}#{id}",
    })?;
    Ok((Timestamp::parse_canonical(at)?, id))
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} / {}", self.pk(), self.sk())
    }
}

/// Fuzz bodies: the cargo-fuzz target `key_codec` (fuzz/) and the proptests
/// below run exactly these. An `Err` is a broken invariant (the fuzz target
/// panics with it); a panic inside is a codec bug.
#[doc(hidden)]
pub mod fuzz {
    use super::*;

    /// Arbitrary bytes as a `pk`/`sk` pair: the text up to the first
    /// newline is `pk`, the rest `sk` (no valid key contains a newline).
    pub fn key_bytes(data: &[u8]) -> Result<(), String> {
        let text = String::from_utf8_lossy(data);
        let (pk, sk) = text.split_once('\n').unwrap_or((&text, ""));
        key_pair(pk, sk)
    }

    /// [`Key::parse`] never panics, and a pair it accepts renders back to
    /// exactly the same `pk`/`sk` (one key, one spelling), also as a key map.
    pub fn key_pair(pk: &str, sk: &str) -> Result<(), String> {
        let Ok(key) = Key::parse(pk, sk) else {
            return Ok(());
        };
        if key.pk() != pk || key.sk() != sk {
            return Err(format!(
                "{} / {} parsed as {key:?}, which renders as {key}",
                shown(pk),
                shown(sk)
            ));
        }
        let map = key.to_key_map();
        let rendered = |name: &str| match map.get(name) {
            Some(AttributeValue::S(s)) => Some(s.as_str()),
            _ => None,
        };
        if map.len() != 2 || rendered("pk") != Some(pk) || rendered("sk") != Some(sk) {
            return Err(format!("the key map of {key} differs from its pk/sk"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn id<T: std::str::FromStr>(s: &str) -> T
    where
        T::Err: fmt::Debug,
    {
        s.parse().unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn every_key_round_trips() {
        let keys = vec![
            Key::Group(id("g1")),
            Key::Message {
                group: id("g1"),
                created_at: ts("2026-11-20T10:00:00Z"),
                message: id("m1"),
            },
            Key::Preview {
                owner: id("u1"),
                last_message_at: ts("2026-11-20T10:00:00Z"),
                group: id("g1"),
            },
            Key::Profile(id("a1")),
            Key::Lock(id("extensions-init")),
            Key::Reservation(id("ada.lovelace@example.com")),
            Key::RoutingProfile(id("rp-basic")),
            Key::Activity {
                agent: id("a1"),
                at: ts("2026-11-20T10:00:00.5Z"),
                event: id("e1"),
            },
            Key::Daily {
                agent: id("a1"),
                day: ts("2026-11-20T10:00:00Z").date(),
            },
            Key::Extension(Extension::new("0042").unwrap_or_else(|e| panic!("{e}"))),
            Key::DeadLetter {
                processor: id("message-groups"),
                received_at: ts("2026-11-20T10:00:00Z"),
                record: id("shardId-000000000000:4959"),
            },
            Key::Checkpoint {
                stream: StreamArn::new("arn:aws:dynamodb:us-east-1:1:table/t/stream/x")
                    .unwrap_or_else(|e| panic!("{e}")),
                shard: id("shardId-0001"),
            },
        ];
        for key in keys {
            let parsed = Key::parse(&key.pk(), &key.sk());
            assert_eq!(parsed.as_ref(), Ok(&key), "{key}");
        }
    }

    #[test]
    fn message_key_has_canonical_sort_key() {
        let key = Key::Message {
            group: id("g"),
            created_at: ts("2026-11-20T10:00:00Z"),
            message: id("m"),
        };
        assert_eq!(key.sk(), "2026-11-20T10:00:00.000000Z#m");
    }

    #[test]
    fn foreign_shapes_are_refused() {
        assert!(matches!(
            Key::parse("MSG#not#a-valid-id", "2026-11-20T10:02:00.000000Z#x"),
            Err(KeyError::Id(IdError::Separator { .. }))
        ));
        assert!(Key::parse("MSG#g", "2026-11-20T10:02:00Z#x").is_err());
        assert!(Key::parse("GROUP#g", "PROFILE").is_err());
        assert!(Key::parse("NOPE#g", "GROUP").is_err());
        assert!(Key::parse("AGENT#a", "DAY#2026-2-1").is_err());
        assert!(Key::parse("EXT#12a", "EXT").is_err());
        assert!(Key::parse("RESERVATION#ada", "EXT").is_err());
        assert!(Key::parse("RESERVATION#", "RESERVATION").is_err());
        assert!(Key::parse("RESERVATION#a#b", "RESERVATION").is_err());
        assert!(Key::parse("", "").is_err());
        // An id cannot smuggle a second key part in.
        assert!(Key::parse("GRP#u", "2026-11-20T10:02:00.000000Z#g#extra").is_err());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any pk/sk: parsing never panics, and whatever parses renders back
        /// to exactly the same pk/sk (one key, one spelling).
        #[test]
        fn parse_never_panics_and_round_trips(pk in ".{0,300}", sk in ".{0,300}") {
            fuzz::key_pair(&pk, &sk).map_err(TestCaseError::fail)?;
        }

        /// Arbitrary bytes through the fuzz target's own body.
        #[test]
        fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..400)) {
            fuzz::key_bytes(&data).map_err(TestCaseError::fail)?;
        }

        /// Key-shaped pairs (a known prefix and sort-key shape around
        /// arbitrary parts), so the round trip is checked on keys that parse,
        /// not only on noise that is refused.
        #[test]
        fn key_shaped_pairs_round_trip(
            prefix in prop::sample::select(vec!["GROUP#", "MSG#", "GRP#", "AGENT#", "EXT#", "DEADLETTER#", "CHECKPOINT#", "LOCK#", "RESERVATION#", ""]),
            id in prop_oneof!["[a-zA-Z0-9:/._-]{1,20}", "[0-9]{1,9}", ".{0,12}"],
            sk_prefix in prop::sample::select(vec!["", "ACT#", "DAY#"]),
            at in prop_oneof![
                Just("2026-11-20T10:00:00.000000Z".to_owned()),
                "20[0-9]{2}-[01][0-9]-[0-3][0-9](T[0-2][0-9]:[0-5][0-9]:[0-6][0-9](\\.[0-9]{0,7})?(Z|[+-][0-9]{2}:[0-9]{2}))?",
                Just(String::new()),
            ],
            tail in prop_oneof![
                Just(String::new()),
                "#[a-zA-Z0-9:._-]{0,10}",
                prop::sample::select(vec!["GROUP", "PROFILE", "EXT", "LOCK", "RESERVATION", "shardId-0001"]).prop_map(str::to_owned),
            ],
        ) {
            let pk = format!("{prefix}{id}");
            let sk = format!("{sk_prefix}{at}{tail}");
            fuzz::key_pair(&pk, &sk).map_err(TestCaseError::fail)?;
        }

        /// Key-shaped input with hostile ids.
        #[test]
        fn hostile_ids_never_form_a_foreign_key(
            prefix in prop::sample::select(vec!["GROUP", "MSG", "GRP", "AGENT", "EXT", "DEADLETTER", "CHECKPOINT"]),
            id in "[a-z#\\x00-\\x1f\u{7f}-\u{9f}]{0,20}",
            sk in prop::sample::select(vec!["GROUP", "PROFILE", "EXT", "2026-11-20T10:00:00.000000Z#x", "ACT#2026-11-20T10:00:00.000000Z#e", "DAY#2026-11-20", "shard-1"]),
        ) {
            let pk = format!("{prefix}#{id}");
            if let Ok(key) = Key::parse(&pk, sk) {
                prop_assert!(!id.contains('#'));
                prop_assert!(!id.chars().any(char::is_control));
                prop_assert_eq!(key.pk(), pk);
            }
        }

        /// Ids of any length and content: validation never panics, and a
        /// valid id is short and free of separators.
        #[test]
        fn id_validation(s in ".{0,200}") {
            if let Ok(id) = crate::ids::GroupId::new(s.clone()) {
                prop_assert!(id.as_str().len() <= crate::ids::MAX_ID_BYTES);
                prop_assert!(!id.as_str().contains('#'));
            }
        }

        /// Timestamps: any text parses or fails cleanly; the canonical form
        /// of what parses is itself canonical.
        #[test]
        fn timestamps(s in ".{0,40}") {
            if let Ok(t) = Timestamp::parse(&s) {
                let c = t.to_string();
                prop_assert_eq!(Timestamp::parse_canonical(&c), Ok(t));
            }
        }
    }

    #[test]
    fn valid_keys_pass_the_fuzz_body() {
        let valid = [
            ("GROUP#g1", "GROUP"),
            ("MSG#g1", "2026-11-20T10:00:00.000000Z#m1"),
            ("GRP#u1", "2026-11-20T10:00:00.000000Z#g1"),
            ("AGENT#a1", "PROFILE"),
            ("AGENT#a1", "ACT#2026-11-20T10:00:00.500000Z#e1"),
            ("AGENT#a1", "DAY#2026-11-20"),
            ("EXT#0042", "EXT"),
            (
                "DEADLETTER#message-groups",
                "2026-11-20T10:00:00.000000Z#r:1",
            ),
            (
                "CHECKPOINT#arn:aws:dynamodb:us-east-1:1:table/t/stream/x",
                "shardId-0001",
            ),
            ("LOCK#extensions-init", "LOCK"),
            ("RESERVATION#ada@example.com", "RESERVATION"),
        ];
        for (pk, sk) in valid {
            assert!(Key::parse(pk, sk).is_ok(), "{pk} / {sk}");
            assert_eq!(fuzz::key_pair(pk, sk), Ok(()));
            assert_eq!(fuzz::key_bytes(format!("{pk}\n{sk}").as_bytes()), Ok(()));
        }
        // Not canonical, so refused rather than re-spelt.
        assert!(Key::parse("MSG#g1", "2026-11-20T10:00:00Z#m1").is_err());
        assert!(Key::parse("AGENT#a1", "DAY#2026-11-2").is_err());
    }

    #[test]
    fn a_ten_kilobyte_id_is_refused_everywhere() {
        let big = "x".repeat(10 * 1024);
        assert!(Key::parse(&format!("GROUP#{big}"), "GROUP").is_err());
        assert!(Key::parse("GRP#u", &format!("2026-11-20T10:00:00.000000Z#{big}")).is_err());
        assert!(Key::parse(&format!("AGENT#{big}"), "PROFILE").is_err());
    }
}
