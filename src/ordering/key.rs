//! What a message's ordering key is, and which keys are accepted.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::message::{FieldValue, Message};

/// The longest ordering key accepted, in bytes of UTF-8.
pub const ORDERING_KEY_MAX: usize = 256;

/// Check an ordering key: non-empty, at most [`ORDERING_KEY_MAX`] bytes, no NUL.
pub(crate) fn validate(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidArgument("ordering key is empty".into()));
    }
    if key.len() > ORDERING_KEY_MAX {
        return Err(Error::InvalidArgument(format!(
            "ordering key is {} bytes; the limit is {ORDERING_KEY_MAX}",
            key.len()
        )));
    }
    if key.contains('\0') {
        return Err(Error::InvalidArgument(
            "ordering key contains a NUL character".into(),
        ));
    }
    Ok(())
}

/// The key of `message`: `explicit` if given, else the value of the group's
/// key `field` (text as is, an integer in decimal). No field: no key. A
/// field of another type, or a key that fails [`validate`]: an error.
pub(crate) fn key_of(
    message: &Message,
    explicit: Option<&str>,
    field: Option<&str>,
) -> Result<Option<Arc<str>>> {
    if let Some(key) = explicit {
        validate(key)?;
        return Ok(Some(Arc::from(key)));
    }
    let Some(field) = field else {
        return Ok(None);
    };
    let key = match message.get(field) {
        None => return Ok(None),
        Some(FieldValue::Text(text)) => Arc::from(text.as_str()),
        Some(FieldValue::Int(value)) => Arc::from(value.to_string()),
        Some(other) => {
            let kind = match other {
                FieldValue::Double(_) => "a double",
                FieldValue::Bool(_) => "a boolean",
                _ => "null",
            };
            return Err(Error::InvalidArgument(format!(
                "ordering key field `{field}` is {kind}; it must be text or an integer"
            )));
        }
    };
    validate(&key).map_err(|error| match error {
        Error::InvalidArgument(detail) => {
            Error::InvalidArgument(format!("field `{field}`: {detail}"))
        }
        other => other,
    })?;
    Ok(Some(key))
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn explicit_keys_win_and_fields_give_text_or_decimal() {
        let message = Message::new()
            .with("account", FieldValue::Int(-42))
            .with("name", FieldValue::Text("a".into()))
            .with("ratio", FieldValue::Double(0.5));
        let key = |explicit, field| key_of(&message, explicit, field);
        assert_eq!(
            key(Some("x"), Some("account")).unwrap().as_deref(),
            Some("x")
        );
        assert_eq!(key(None, Some("account")).unwrap().as_deref(), Some("-42"));
        assert_eq!(key(None, Some("name")).unwrap().as_deref(), Some("a"));
        assert_eq!(key(None, Some("missing")).unwrap(), None);
        assert_eq!(key(None, None).unwrap(), None);
        assert!(
            matches!(key(None, Some("ratio")), Err(Error::InvalidArgument(d)) if d.contains("double"))
        );
        assert!(key(Some(""), None).is_err());
        let long = "k".repeat(ORDERING_KEY_MAX + 1);
        assert!(key(Some(&long), None).is_err());
        assert!(key(Some(&long[..ORDERING_KEY_MAX]), None).is_ok());
        assert!(key(Some("a\0b"), None).is_err());
    }
}
