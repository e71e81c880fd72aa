//! The wire protocol between a host and its remote workers (version 2),
//! as documented in `docs/PROTOCOL.md`: key expressions, and the JSON
//! messages carried on them. Anything a Zenoh client can publish and parse
//! can be a worker.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::message::{FieldValue, Message};

/// The protocol version, part of every key expression.
pub(crate) const VERSION: u32 = 2;

/// The shortest session lease a worker may advertise, in milliseconds.
pub(crate) const LEASE_FLOOR_MS: u64 = 50;

/// A fresh incarnation id: 128 random bits in 32 lowercase hex digits
/// (from the operating system's generator; when it cannot be read, a
/// 128-bit hash of the process id, the clocks and a counter).
pub(crate) fn new_incarnation() -> String {
    use std::io::Read as _;
    let mut bytes = [0_u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    let value = if read.is_ok() {
        u128::from_le_bytes(bytes)
    } else {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seed = format!(
            "{}-{:?}-{:?}-{}",
            std::process::id(),
            std::time::Instant::now(),
            std::time::SystemTime::now(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        xxhash_rust::xxh3::xxh3_128(seed.as_bytes())
    };
    format!("{value:032x}")
}

/// The stable id of a message: the incarnation of the host that accepted
/// it and its dispatch id.
pub(crate) fn message_id(host: &str, dispatch_id: u64) -> String {
    format!("{host}-{dispatch_id}")
}

/// Whether `chunk` can stand in a key expression (a group name, a consumer
/// id, an incarnation): non-empty, none of `/ * $ ? #`, no leading `@`.
pub(crate) fn valid_chunk(chunk: &str) -> bool {
    !chunk.is_empty() && !chunk.starts_with('@') && !chunk.contains(['/', '*', '$', '?', '#'])
}

/// The key expressions of one group.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(group: &str) -> Self {
        Self::of_version(group, VERSION)
    }

    /// The keys of another protocol version (to refuse its workers).
    pub(crate) fn of_version(group: &str, version: u32) -> Self {
        Self {
            prefix: format!("liminal/v{version}/{group}"),
        }
    }

    /// The liveliness token of host incarnation `incarnation`.
    pub(crate) fn host(&self, incarnation: &str) -> String {
        format!("{}/host/{incarnation}", self.prefix)
    }

    /// Every host incarnation's liveliness token.
    pub(crate) fn host_all(&self) -> String {
        format!("{}/host/*", self.prefix)
    }

    /// The host incarnation a host token names: its last chunk.
    pub(crate) fn host_of(key: &str) -> Option<String> {
        key.rsplit('/').next().map(str::to_owned)
    }

    /// A worker incarnation's liveliness token.
    pub(crate) fn alive(&self, id: &str, incarnation: &str) -> String {
        format!("{}/alive/{id}/{incarnation}", self.prefix)
    }

    /// Every worker's liveliness token.
    pub(crate) fn alive_all(&self) -> String {
        format!("{}/alive/*/*", self.prefix)
    }

    /// A worker incarnation's queryable telling what it is.
    pub(crate) fn info(&self, id: &str, incarnation: &str) -> String {
        format!("{}/info/{id}/{incarnation}", self.prefix)
    }

    /// Host → worker messages.
    pub(crate) fn host_to_worker(&self, id: &str, incarnation: &str) -> String {
        format!("{}/to/{id}/{incarnation}", self.prefix)
    }

    /// Worker → host messages.
    pub(crate) fn worker_to_host(&self, id: &str, incarnation: &str) -> String {
        format!("{}/from/{id}/{incarnation}", self.prefix)
    }

    /// Every worker → host message.
    pub(crate) fn all_worker_to_host(&self) -> String {
        format!("{}/from/*/*", self.prefix)
    }

    /// The (consumer id, incarnation) a worker key expression names: the
    /// last two chunks.
    pub(crate) fn worker_of(key: &str) -> Option<(String, String)> {
        let mut chunks = key.rsplit('/');
        let incarnation = chunks.next()?;
        let id = chunks.next()?;
        Some((id.to_owned(), incarnation.to_owned()))
    }
}

/// What a worker tells about itself when asked (its info queryable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WorkerInfo {
    pub(crate) max_in_flight: u32,
    pub(crate) tags: Vec<String>,
    /// The lease of its session: it sends a beat at least four times per lease.
    pub(crate) lease_ms: u64,
    /// The host incarnation this worker incarnation was joined by, if any:
    /// a worker incarnation serves one host incarnation only.
    pub(crate) host: Option<String>,
}

/// Why an info reply is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InfoError {
    /// Another protocol version (the version it spoke).
    Version(u64),
    /// Anything else wrong with it.
    Bad(String),
}

impl WorkerInfo {
    pub(crate) fn encode(&self) -> Vec<u8> {
        json!({
            "protocol": VERSION,
            "max_in_flight": self.max_in_flight,
            "tags": self.tags,
            "lease_ms": self.lease_ms,
            "host": self.host,
        })
        .to_string()
        .into_bytes()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, InfoError> {
        let bad = |reason: &str| InfoError::Bad(reason.to_owned());
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| InfoError::Bad(format!("not JSON: {e}")))?;
        if !value.is_object() {
            return Err(bad("the info reply must be a JSON object"));
        }
        let protocol = value["protocol"]
            .as_u64()
            .ok_or_else(|| bad("no protocol version"))?;
        if protocol != u64::from(VERSION) {
            return Err(InfoError::Version(protocol));
        }
        let max_in_flight = value["max_in_flight"]
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .filter(|v| *v > 0)
            .ok_or_else(|| bad("max_in_flight must be an integer from 1 to 4294967295"))?;
        let tags = match &value["tags"] {
            Value::Null => Vec::new(),
            Value::Array(tags) => tags
                .iter()
                .map(|t| t.as_str().filter(|t| !t.is_empty()).map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad("tags must be non-empty strings"))?,
            _ => return Err(bad("tags must be an array")),
        };
        let lease_ms = value["lease_ms"]
            .as_u64()
            .ok_or_else(|| bad("lease_ms must be a non-negative integer"))?;
        let host = match &value["host"] {
            Value::Null => None,
            Value::String(host) => Some(host.clone()),
            _ => return Err(bad("host must be a string or null")),
        };
        Ok(Self {
            max_in_flight,
            tags,
            lease_ms,
            host,
        })
    }
}

/// One delivery, as sent to a worker.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WireDelivery {
    /// The host incarnation that sent it.
    pub(crate) host: String,
    pub(crate) delivery_id: u64,
    pub(crate) dispatch_id: u64,
    /// The message's stable id (see [`message_id`]).
    pub(crate) message_id: String,
    pub(crate) attempt: u32,
    pub(crate) redelivered: bool,
    pub(crate) crashed_handling: u32,
    pub(crate) crashed_holding: u32,
    /// The acknowledgement lease, from when the host sent it (none: no lease).
    pub(crate) lease_ms: Option<u64>,
    pub(crate) message: Arc<Message>,
}

fn field_json(name: &str, value: &FieldValue) -> Value {
    let (kind, value) = match value {
        FieldValue::Text(text) => ("text", json!(text)),
        FieldValue::Int(value) => ("int", json!(value)),
        FieldValue::Double(value) => (
            "double",
            serde_json::Number::from_f64(*value).map_or(Value::Null, Value::Number),
        ),
        FieldValue::Bool(value) => ("bool", json!(value)),
        FieldValue::Null => ("null", Value::Null),
    };
    json!({"name": name, "type": kind, "value": value})
}

fn field_from_json(field: &Value) -> Result<(String, FieldValue), String> {
    let name = field["name"].as_str().ok_or("a field without a name")?;
    let value = &field["value"];
    let parsed = match field["type"].as_str().ok_or("a field without a type")? {
        "text" => FieldValue::Text(value.as_str().ok_or("text field not a string")?.to_owned()),
        "int" => FieldValue::Int(value.as_i64().ok_or("int field not an integer")?),
        "double" => FieldValue::Double(value.as_f64().unwrap_or(f64::NAN)),
        "bool" => FieldValue::Bool(value.as_bool().ok_or("bool field not a boolean")?),
        "null" => FieldValue::Null,
        other => return Err(format!("unknown field type {other}")),
    };
    Ok((name.to_owned(), parsed))
}

/// What a refusal means for the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefusalKind {
    /// It will never be accepted as it is (bad info, another protocol
    /// version, a lease out of bounds, an id a local consumer holds): fix
    /// it, do not retry unchanged.
    Permanent,
    /// Not now (its id is held by an incarnation not yet declared dead):
    /// announce a new incarnation after `retry_after_ms`.
    Temporary,
    /// This incarnation was declared dead (or serves another host
    /// incarnation): drop what it held, announce a new one at once.
    Dead,
}

impl RefusalKind {
    fn name(self) -> &'static str {
        match self {
            Self::Permanent => "permanent",
            Self::Temporary => "temporary",
            Self::Dead => "dead",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        match name {
            "permanent" => Some(Self::Permanent),
            "temporary" => Some(Self::Temporary),
            "dead" => Some(Self::Dead),
            _ => None,
        }
    }
}

/// What `joined` tells a worker about its leases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JoinTerms {
    /// The group's acknowledgement lease (none: deliveries are never taken
    /// back for being slow).
    pub(crate) ack_lease_ms: Option<u64>,
    /// What an expired acknowledgement lease does: `crash` (the whole
    /// incarnation is declared dead) or `quarantine` (only the late
    /// delivery is taken back; nothing new until the worker answers).
    pub(crate) lease_policy: &'static str,
    /// The session lease the host accepted (the worker's own).
    pub(crate) lease_ms: u64,
    /// Silence after which the host declares the worker dead: 7/8 of its
    /// lease, rounded down to the millisecond.
    pub(crate) silence_ms: u64,
}

/// Host → worker messages. Each names the host incarnation that sent it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ToWorker {
    /// The worker is a consumer of the group now.
    Joined { host: String, terms: JoinTerms },
    /// The worker is not a consumer (see [`RefusalKind`]).
    Refused {
        host: String,
        kind: RefusalKind,
        reason: String,
        retry_after_ms: Option<u64>,
    },
    /// A delivery to answer.
    Delivery(WireDelivery),
    /// A message from the worker was wrong (e.g. `extend` without a lease);
    /// nothing changed.
    Error {
        host: String,
        delivery_id: Option<u64>,
        reason: String,
    },
    /// The host is closing: no more deliveries; what the worker held was
    /// (or will be) re-routed.
    Bye { host: String },
    /// A refusal to a worker of protocol version 1, in that version's
    /// shape. Sent only.
    OldVersionRefused { reason: String },
}

impl ToWorker {
    /// The host incarnation that sent it.
    pub(crate) fn host(&self) -> &str {
        match self {
            Self::Joined { host, .. }
            | Self::Refused { host, .. }
            | Self::Error { host, .. }
            | Self::Bye { host } => host,
            Self::Delivery(d) => &d.host,
            Self::OldVersionRefused { .. } => "",
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let value = match self {
            Self::Joined { host, terms } => json!({
                "type": "joined",
                "host": host,
                "ack_lease_ms": terms.ack_lease_ms,
                "lease_policy": terms.lease_policy,
                "lease_ms": terms.lease_ms,
                "silence_ms": terms.silence_ms,
            }),
            Self::Refused {
                host,
                kind,
                reason,
                retry_after_ms,
            } => {
                let mut map = Map::new();
                map.insert("type".into(), json!("refused"));
                map.insert("host".into(), json!(host));
                map.insert("kind".into(), json!(kind.name()));
                map.insert("reason".into(), json!(reason));
                if let Some(after) = retry_after_ms {
                    map.insert("retry_after_ms".into(), json!(after));
                }
                Value::Object(map)
            }
            Self::Error {
                host,
                delivery_id,
                reason,
            } => json!({
                "type": "error", "host": host, "delivery_id": delivery_id, "reason": reason,
            }),
            Self::Bye { host } => json!({"type": "bye", "host": host}),
            Self::OldVersionRefused { reason } => {
                json!({"type": "refused", "reason": reason, "dead": false})
            }
            Self::Delivery(d) => {
                let fields: Vec<Value> = d
                    .message
                    .fields()
                    .iter()
                    .map(|(name, value)| field_json(name, value))
                    .collect();
                let payload = d
                    .message
                    .payload()
                    .map(|p| base64::engine::general_purpose::STANDARD.encode(p));
                json!({
                    "type": "delivery",
                    "host": d.host,
                    "delivery_id": d.delivery_id,
                    "dispatch_id": d.dispatch_id,
                    "message_id": d.message_id,
                    "attempt": d.attempt,
                    "redelivered": d.redelivered,
                    "crashed_handling": d.crashed_handling,
                    "crashed_holding": d.crashed_holding,
                    "lease_ms": d.lease_ms,
                    "key": d.message.ordering_key(),
                    "fields": fields,
                    "payload": payload,
                })
            }
        };
        value.to_string().into_bytes()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, String> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        let host = value["host"].as_str().ok_or("no host")?.to_owned();
        let number = |name: &str| value[name].as_u64().ok_or(format!("no {name}"));
        match value["type"].as_str().ok_or("no type")? {
            "joined" => Ok(Self::Joined {
                host,
                terms: JoinTerms {
                    ack_lease_ms: value["ack_lease_ms"].as_u64(),
                    lease_policy: match value["lease_policy"].as_str() {
                        Some("quarantine") => "quarantine",
                        _ => "crash",
                    },
                    lease_ms: number("lease_ms")?,
                    silence_ms: number("silence_ms")?,
                },
            }),
            "bye" => Ok(Self::Bye { host }),
            "error" => Ok(Self::Error {
                host,
                delivery_id: value["delivery_id"].as_u64(),
                reason: value["reason"].as_str().unwrap_or("error").to_owned(),
            }),
            "refused" => Ok(Self::Refused {
                host,
                kind: value["kind"]
                    .as_str()
                    .and_then(RefusalKind::parse)
                    .ok_or("refused without a known kind")?,
                reason: value["reason"].as_str().unwrap_or("refused").to_owned(),
                retry_after_ms: value["retry_after_ms"].as_u64(),
            }),
            "delivery" => {
                let mut message = Message::new();
                for field in value["fields"].as_array().ok_or("no fields")? {
                    let (name, field) = field_from_json(field)?;
                    message.set(name, field);
                }
                if let Some(payload) = value["payload"].as_str() {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(payload)
                        .map_err(|e| format!("payload not base64: {e}"))?;
                    message.set_payload(bytes);
                }
                let key = match &value["key"] {
                    Value::Null => None,
                    Value::String(key) if !key.is_empty() => Some(Arc::from(key.as_str())),
                    other => return Err(format!("key not a non-empty text: {other}")),
                };
                let small = |name: &str| {
                    number(name)
                        .and_then(|v| u32::try_from(v).map_err(|_| format!("{name} too big")))
                };
                Ok(Self::Delivery(WireDelivery {
                    host,
                    delivery_id: number("delivery_id")?,
                    dispatch_id: number("dispatch_id")?,
                    message_id: value["message_id"]
                        .as_str()
                        .ok_or("no message_id")?
                        .to_owned(),
                    attempt: small("attempt")?,
                    redelivered: value["redelivered"].as_bool().unwrap_or(false),
                    crashed_handling: small("crashed_handling").unwrap_or(0),
                    crashed_holding: small("crashed_holding").unwrap_or(0),
                    lease_ms: value["lease_ms"].as_u64(),
                    message: Message::keyed(Arc::new(message), key),
                }))
            }
            other => Err(format!("unknown message type {other}")),
        }
    }
}

/// A worker's answer to one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    Ack,
    Crash(String),
    Release { delay_ms: u64 },
    Extend { lease_ms: u64 },
}

/// Worker → host messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FromWorker {
    /// An answer to delivery `delivery_id` of host incarnation `host`
    /// (absent on the wire: stale, never applied).
    Answer {
        host: Option<String>,
        delivery_id: u64,
        answer: Answer,
    },
    /// The worker begins work on delivery `delivery_id`: dying from now on
    /// counts as dying *handling* it.
    Started {
        host: Option<String>,
        delivery_id: u64,
    },
    /// The worker's code handed delivery `delivery_id` on to be answered
    /// later (a deferring callback): dying from now on counts as dying
    /// merely *holding* it again.
    Deferred {
        host: Option<String>,
        delivery_id: u64,
    },
    /// A sign of life (at least four per lease).
    Beat,
    /// The worker leaves gracefully (not a crash).
    Leave,
}

impl FromWorker {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let value = match self {
            Self::Beat => json!({"type": "beat"}),
            Self::Leave => json!({"type": "leave"}),
            Self::Started { host, delivery_id } => {
                json!({"type": "started", "host": host, "delivery_id": delivery_id})
            }
            Self::Deferred { host, delivery_id } => {
                json!({"type": "deferred", "host": host, "delivery_id": delivery_id})
            }
            Self::Answer {
                host,
                delivery_id,
                answer,
            } => {
                let mut map = Map::new();
                map.insert("type".into(), json!("answer"));
                map.insert("host".into(), json!(host));
                map.insert("delivery_id".into(), json!(delivery_id));
                match answer {
                    Answer::Ack => {
                        map.insert("verdict".into(), json!("ack"));
                    }
                    Answer::Crash(reason) => {
                        map.insert("verdict".into(), json!("crash"));
                        map.insert("reason".into(), json!(reason));
                    }
                    Answer::Release { delay_ms } => {
                        map.insert("verdict".into(), json!("release"));
                        map.insert("delay_ms".into(), json!(delay_ms));
                    }
                    Answer::Extend { lease_ms } => {
                        map.insert("verdict".into(), json!("extend"));
                        map.insert("lease_ms".into(), json!(lease_ms));
                    }
                }
                Value::Object(map)
            }
        };
        value.to_string().into_bytes()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, String> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        let host = value["host"].as_str().map(str::to_owned);
        match value["type"].as_str().ok_or("no type")? {
            "beat" => Ok(Self::Beat),
            "leave" => Ok(Self::Leave),
            "started" => Ok(Self::Started {
                host,
                delivery_id: value["delivery_id"].as_u64().ok_or("no delivery_id")?,
            }),
            "deferred" => Ok(Self::Deferred {
                host,
                delivery_id: value["delivery_id"].as_u64().ok_or("no delivery_id")?,
            }),
            "answer" => {
                let delivery_id = value["delivery_id"].as_u64().ok_or("no delivery_id")?;
                let answer = match value["verdict"].as_str().ok_or("no verdict")? {
                    "ack" => Answer::Ack,
                    "crash" => Answer::Crash(
                        value["reason"]
                            .as_str()
                            .unwrap_or("the worker answered crash")
                            .to_owned(),
                    ),
                    "release" => Answer::Release {
                        delay_ms: value["delay_ms"].as_u64().unwrap_or(0),
                    },
                    "extend" => Answer::Extend {
                        lease_ms: value["lease_ms"]
                            .as_u64()
                            .filter(|v| *v > 0)
                            .ok_or("extend needs a positive lease_ms")?,
                    },
                    other => return Err(format!("unknown verdict {other}")),
                };
                Ok(Self::Answer {
                    host,
                    delivery_id,
                    answer,
                })
            }
            other => Err(format!("unknown message type {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let message = Message::new()
            .with("t", FieldValue::Text("x".into()))
            .with("i", FieldValue::Int(-3))
            .with("d", FieldValue::Double(1.5))
            .with("b", FieldValue::Bool(true))
            .with("n", FieldValue::Null)
            .with_payload(vec![0, 1, 255]);
        let delivery = ToWorker::Delivery(WireDelivery {
            host: "h1".into(),
            delivery_id: 9,
            dispatch_id: 4,
            message_id: message_id("h1", 4),
            lease_ms: Some(250),
            attempt: 2,
            redelivered: true,
            crashed_handling: 1,
            crashed_holding: 0,
            message: Message::keyed(Arc::new(message), Some("account-7".into())),
        });
        assert_eq!(ToWorker::decode(&delivery.encode()).unwrap(), delivery);
        for answer in [
            Answer::Ack,
            Answer::Crash("boom".into()),
            Answer::Release { delay_ms: 5 },
            Answer::Extend { lease_ms: 7 },
        ] {
            let m = FromWorker::Answer {
                host: Some("h1".into()),
                delivery_id: 3,
                answer,
            };
            assert_eq!(FromWorker::decode(&m.encode()).unwrap(), m);
        }
        let info = WorkerInfo {
            max_in_flight: 4,
            tags: vec!["gpu".into()],
            lease_ms: 500,
            host: None,
        };
        assert_eq!(WorkerInfo::decode(&info.encode()).unwrap(), info);
        let v1 = br#"{"protocol": 1, "max_in_flight": 1, "lease_ms": 500}"#;
        assert_eq!(WorkerInfo::decode(v1), Err(InfoError::Version(1)));
        let extra = br#"{"protocol": 2, "max_in_flight": 1, "lease_ms": 500, "zone": "eu"}"#;
        assert!(
            WorkerInfo::decode(extra).is_ok(),
            "unknown fields are ignored"
        );
        for message in [
            ToWorker::Joined {
                host: "h1".into(),
                terms: JoinTerms {
                    ack_lease_ms: None,
                    lease_policy: "crash",
                    lease_ms: 1000,
                    silence_ms: 875,
                },
            },
            ToWorker::Refused {
                host: "h1".into(),
                kind: RefusalKind::Temporary,
                reason: "duplicate".into(),
                retry_after_ms: Some(1000),
            },
            ToWorker::Bye { host: "h1".into() },
        ] {
            assert_eq!(ToWorker::decode(&message.encode()).unwrap(), message);
        }
        assert_eq!(new_incarnation().len(), 32);
        assert_ne!(new_incarnation(), new_incarnation());
        assert!(valid_chunk("worker-1") && !valid_chunk("a/b") && !valid_chunk(""));
        assert_eq!(
            Keys::worker_of("liminal/v2/g/alive/w1/abc"),
            Some(("w1".into(), "abc".into()))
        );
    }
}
