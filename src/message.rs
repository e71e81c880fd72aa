//! Messages: typed routing fields plus an optional opaque payload.

use std::sync::Arc;

use serde_json::{Map, Number, Value};

/// The value of one routing field.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// UTF-8 text.
    Text(String),
    /// A signed 64-bit integer.
    Int(i64),
    /// A double; non-finite values are encoded as JSON `null`.
    Double(f64),
    /// A boolean.
    Bool(bool),
    /// An explicit null.
    Null,
}

impl FieldValue {
    /// The text of a `Text` field.
    #[must_use]
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text),
            _ => None,
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Self::Text(text) => Value::String(text.clone()),
            Self::Int(value) => Value::Number((*value).into()),
            Self::Double(value) => Number::from_f64(*value).map_or(Value::Null, Value::Number),
            Self::Bool(value) => Value::Bool(*value),
            Self::Null => Value::Null,
        }
    }
}

/// A message: named routing fields (kept in insertion order, names unique)
/// and an optional payload of bytes. A dispatched message also carries its
/// ordering key, if it has one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Message {
    fields: Vec<(String, FieldValue)>,
    payload: Option<Vec<u8>>,
    ordering_key: Option<Arc<str>>,
    stable_id: Option<Arc<str>>,
}

impl Message {
    /// An empty message: no fields, no payload.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Set a field, replacing any field of the same name (which keeps its position).
    pub fn set(&mut self, name: impl Into<String>, value: FieldValue) -> &mut Self {
        let name = name.into();
        match self
            .fields
            .iter_mut()
            .find(|(existing, _)| *existing == name)
        {
            Some((_, slot)) => *slot = value,
            None => self.fields.push((name, value)),
        }
        self
    }

    /// Builder form of [`Message::set`].
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, value: FieldValue) -> Self {
        self.set(name, value);
        self
    }

    /// Set (or replace) the payload.
    pub fn set_payload(&mut self, payload: impl Into<Vec<u8>>) -> &mut Self {
        self.payload = Some(payload.into());
        self
    }

    /// Builder form of [`Message::set_payload`].
    #[must_use]
    pub fn with_payload(mut self, payload: impl Into<Vec<u8>>) -> Self {
        self.set_payload(payload);
        self
    }

    /// The value of field `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&FieldValue> {
        self.fields
            .iter()
            .find(|(existing, _)| existing == name)
            .map(|(_, value)| value)
    }

    /// All fields in insertion order.
    #[must_use]
    pub fn fields(&self) -> &[(String, FieldValue)] {
        &self.fields
    }

    /// The payload, if one was set.
    #[must_use]
    pub fn payload(&self) -> Option<&[u8]> {
        self.payload.as_deref()
    }

    /// The ordering key its dispatch gave it (the group's key field's value,
    /// or the key given with the dispatch); `None` before dispatch and for
    /// unordered messages. Routing functions, consumers and dead-letter
    /// handlers see it here.
    #[must_use]
    pub fn ordering_key(&self) -> Option<&str> {
        self.ordering_key.as_deref()
    }

    /// The ordering key as shared.
    pub(crate) fn ordering_key_arc(&self) -> Option<&Arc<str>> {
        self.ordering_key.as_ref()
    }

    /// `message` carrying `key` (copied only when shared and different).
    pub(crate) fn keyed(mut message: Arc<Self>, key: Option<Arc<str>>) -> Arc<Self> {
        if message.ordering_key != key {
            Arc::make_mut(&mut message).ordering_key = key;
        }
        message
    }

    /// `message` carrying `key`.
    pub(crate) fn with_key(mut message: Self, key: Option<Arc<str>>) -> Self {
        message.ordering_key = key;
        message
    }

    /// The stable id a durable group's store gave it (`None` for messages
    /// of groups without a store).
    pub(crate) fn stable_id(&self) -> Option<&Arc<str>> {
        self.stable_id.as_ref()
    }

    /// `message` carrying the stable id `id` (copied only when shared).
    pub(crate) fn identified(mut message: Arc<Self>, id: Arc<str>) -> Arc<Self> {
        Arc::make_mut(&mut message).stable_id = Some(id);
        message
    }

    /// The fields as a JSON object value (non-finite doubles become `null`).
    #[must_use]
    pub fn fields_json_value(&self) -> Value {
        let map: Map<String, Value> = self
            .fields
            .iter()
            .map(|(name, value)| (name.clone(), value.to_json()))
            .collect();
        Value::Object(map)
    }

    /// The fields as compact JSON object text.
    #[must_use]
    pub fn fields_json(&self) -> String {
        self.fields_json_value().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_order_and_replace_in_place() {
        let mut message = Message::new();
        message.set("a", FieldValue::Int(1));
        message.set("b", FieldValue::Bool(true));
        message.set("a", FieldValue::Text("x".into()));
        assert_eq!(message.fields().len(), 2);
        assert_eq!(message.fields()[0].0, "a");
        assert_eq!(message.get("a"), Some(&FieldValue::Text("x".into())));
    }

    #[test]
    fn json_encodes_every_type_and_nulls_non_finite_doubles() {
        let message = Message::new()
            .with("t", FieldValue::Text("hi \"q\"".into()))
            .with("i", FieldValue::Int(-7))
            .with("d", FieldValue::Double(1.5))
            .with("nan", FieldValue::Double(f64::NAN))
            .with("inf", FieldValue::Double(f64::INFINITY))
            .with("b", FieldValue::Bool(false))
            .with("n", FieldValue::Null)
            .with_payload(vec![1, 2, 3]);
        let json: Value = serde_json::from_str(&message.fields_json()).unwrap();
        assert_eq!(json["t"], "hi \"q\"");
        assert_eq!(json["i"], -7);
        assert_eq!(json["d"], 1.5);
        assert!(json["nan"].is_null());
        assert!(json["inf"].is_null());
        assert_eq!(json["b"], false);
        assert!(json["n"].is_null());
        assert_eq!(message.payload(), Some(&[1u8, 2, 3][..]));
    }
}
