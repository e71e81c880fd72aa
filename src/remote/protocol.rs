//! The wire protocol between a host and its remote workers (version 1),
//! as documented in `docs/PROTOCOL.md`: key expressions, and the JSON
//! messages carried on them. Anything a Zenoh client can publish and parse
//! can be a worker.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::message::{FieldValue, Message};

/// The protocol version, part of every key expression.
pub(crate) const VERSION: u32 = 1;

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
        Self {
            prefix: format!("liminal/v{VERSION}/{group}"),
        }
    }

    /// The host's liveliness token.
    pub(crate) fn host(&self) -> String {
        format!("{}/host", self.prefix)
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
}

impl WorkerInfo {
    pub(crate) fn encode(&self) -> Vec<u8> {
        json!({
            "protocol": VERSION,
            "max_in_flight": self.max_in_flight,
            "tags": self.tags,
            "lease_ms": self.lease_ms,
        })
        .to_string()
        .into_bytes()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, String> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        let protocol = value["protocol"].as_u64().ok_or("no protocol version")?;
        if protocol != u64::from(VERSION) {
            return Err(format!("protocol {protocol}, this host speaks {VERSION}"));
        }
        let max_in_flight = value["max_in_flight"]
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .filter(|v| *v > 0)
            .ok_or("max_in_flight must be a positive integer")?;
        let tags = match &value["tags"] {
            Value::Null => Vec::new(),
            Value::Array(tags) => tags
                .iter()
                .map(|t| t.as_str().filter(|t| !t.is_empty()).map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or("tags must be non-empty strings")?,
            _ => return Err("tags must be an array".into()),
        };
        let lease_ms = value["lease_ms"]
            .as_u64()
            .filter(|v| *v > 0)
            .ok_or("lease_ms must be a positive integer")?;
        Ok(Self {
            max_in_flight,
            tags,
            lease_ms,
        })
    }
}

/// One delivery, as sent to a worker.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WireDelivery {
    pub(crate) delivery_id: u64,
    pub(crate) dispatch_id: u64,
    pub(crate) attempt: u32,
    pub(crate) redelivered: bool,
    pub(crate) crashed_handling: u32,
    pub(crate) crashed_holding: u32,
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

/// Host → worker messages.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ToWorker {
    /// The worker is a consumer of the group now.
    Joined,
    /// The worker is not a consumer: it will not become one as it is
    /// (`dead` false: fix the reason), or this incarnation was declared dead
    /// (`dead` true: start a new incarnation).
    Refused { reason: String, dead: bool },
    /// A delivery to answer.
    Delivery(WireDelivery),
    /// The host is closing: no more deliveries; what the worker held was
    /// (or will be) re-routed.
    Bye,
}

impl ToWorker {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let value = match self {
            Self::Joined => json!({"type": "joined"}),
            Self::Refused { reason, dead } => {
                json!({"type": "refused", "reason": reason, "dead": dead})
            }
            Self::Bye => json!({"type": "bye"}),
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
                    "delivery_id": d.delivery_id,
                    "dispatch_id": d.dispatch_id,
                    "attempt": d.attempt,
                    "redelivered": d.redelivered,
                    "crashed_handling": d.crashed_handling,
                    "crashed_holding": d.crashed_holding,
                    "fields": fields,
                    "payload": payload,
                })
            }
        };
        value.to_string().into_bytes()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, String> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        match value["type"].as_str().ok_or("no type")? {
            "joined" => Ok(Self::Joined),
            "bye" => Ok(Self::Bye),
            "refused" => Ok(Self::Refused {
                reason: value["reason"].as_str().unwrap_or("refused").to_owned(),
                dead: value["dead"].as_bool().unwrap_or(false),
            }),
            "delivery" => {
                let number = |name: &str| value[name].as_u64().ok_or(format!("no {name}"));
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
                let small = |name: &str| {
                    number(name)
                        .and_then(|v| u32::try_from(v).map_err(|_| format!("{name} too big")))
                };
                Ok(Self::Delivery(WireDelivery {
                    delivery_id: number("delivery_id")?,
                    dispatch_id: number("dispatch_id")?,
                    attempt: small("attempt")?,
                    redelivered: value["redelivered"].as_bool().unwrap_or(false),
                    crashed_handling: small("crashed_handling").unwrap_or(0),
                    crashed_holding: small("crashed_holding").unwrap_or(0),
                    message: Arc::new(message),
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
    /// An answer to delivery `delivery_id`.
    Answer { delivery_id: u64, answer: Answer },
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
            Self::Answer {
                delivery_id,
                answer,
            } => {
                let mut map = Map::new();
                map.insert("type".into(), json!("answer"));
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
        match value["type"].as_str().ok_or("no type")? {
            "beat" => Ok(Self::Beat),
            "leave" => Ok(Self::Leave),
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
            delivery_id: 9,
            dispatch_id: 4,
            attempt: 2,
            redelivered: true,
            crashed_handling: 1,
            crashed_holding: 0,
            message: Arc::new(message),
        });
        assert_eq!(ToWorker::decode(&delivery.encode()).unwrap(), delivery);
        for answer in [
            Answer::Ack,
            Answer::Crash("boom".into()),
            Answer::Release { delay_ms: 5 },
            Answer::Extend { lease_ms: 7 },
        ] {
            let m = FromWorker::Answer {
                delivery_id: 3,
                answer,
            };
            assert_eq!(FromWorker::decode(&m.encode()).unwrap(), m);
        }
        let info = WorkerInfo {
            max_in_flight: 4,
            tags: vec!["gpu".into()],
            lease_ms: 500,
        };
        assert_eq!(WorkerInfo::decode(&info.encode()).unwrap(), info);
        assert!(valid_chunk("worker-1") && !valid_chunk("a/b") && !valid_chunk(""));
        assert_eq!(
            Keys::worker_of("liminal/v1/g/alive/w1/abc"),
            Some(("w1".into(), "abc".into()))
        );
    }
}
