//! The JSON spelling of envelopes, shared by the WebSocket feed and any
//! other JSON output.
//!
//! It follows `integr8tor info --json`: field names as on the wire
//! (`session_id`, `ts_ms`, ...), numbers as serde_json writes them (the
//! shortest text that reads back as the same `f64`), and `null` where a
//! float is not finite. The envelope is converted field by field from its
//! MessagePack map, so fields unknown to this project come along. Other
//! MessagePack values are spelled as follows: `bin` that is UTF-8 becomes a
//! string (older producers send strings as bin), other `bin` an array of
//! byte values; a map key that is not a string becomes its JSON text; an
//! extension value becomes `{"ext": TYPE, "data": [bytes]}`.

use serde_json::{Map, Number, Value};

use crate::envelope::EnvelopeError;
use crate::kafka::Received;

/// A float as JSON: a number, or `null` when it is NaN or infinite.
pub fn json_number(v: f64) -> Value {
    Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// Any MessagePack value as JSON (see the module docs for the spelling).
pub fn msgpack_to_json(value: &rmpv::Value) -> Value {
    use rmpv::Value as M;
    match value {
        M::Nil => Value::Null,
        M::Boolean(b) => Value::Bool(*b),
        M::Integer(i) => match (i.as_i64(), i.as_u64()) {
            (Some(n), _) => Value::from(n),
            (None, Some(n)) => Value::from(n),
            (None, None) => Value::Null,
        },
        M::F32(f) => json_number(f64::from(*f)),
        M::F64(f) => json_number(*f),
        M::String(s) => Value::String(match s.as_str() {
            Some(text) => text.to_owned(),
            None => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        }),
        M::Binary(b) => match std::str::from_utf8(b) {
            Ok(text) => Value::String(text.to_owned()),
            Err(_) => Value::Array(b.iter().map(|&x| Value::from(x)).collect()),
        },
        M::Array(items) => Value::Array(items.iter().map(msgpack_to_json).collect()),
        M::Map(entries) => {
            let mut map = Map::new();
            for (k, v) in entries {
                map.insert(key_text(k), msgpack_to_json(v));
            }
            Value::Object(map)
        }
        M::Ext(kind, data) => {
            let mut map = Map::new();
            map.insert("ext".to_owned(), Value::from(*kind));
            map.insert(
                "data".to_owned(),
                Value::Array(data.iter().map(|&x| Value::from(x)).collect()),
            );
            Value::Object(map)
        }
    }
}

fn key_text(key: &rmpv::Value) -> String {
    match key {
        rmpv::Value::String(s) => match s.as_str() {
            Some(text) => text.to_owned(),
            None => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        },
        rmpv::Value::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        other => msgpack_to_json(other).to_string(),
    }
}

/// An envelope payload as one JSON object with its wire field names.
pub fn envelope_to_json(payload: &[u8]) -> Result<Value, EnvelopeError> {
    let value = rmpv::decode::read_value(&mut &payload[..]).map_err(|e| EnvelopeError::Field {
        field: "envelope".into(),
        reason: e.to_string(),
    })?;
    match &value {
        rmpv::Value::Map(_) => Ok(msgpack_to_json(&value)),
        _ => Err(EnvelopeError::Field {
            field: "envelope".into(),
            reason: "not a map".into(),
        }),
    }
}

/// One received message as the WebSocket feed sends it:
/// `{"topic", "key", "partition", "offset", "envelope"}`.
pub fn feed_json(m: &Received) -> Value {
    let mut map = Map::new();
    map.insert("topic".to_owned(), Value::from(m.topic.name()));
    map.insert(
        "key".to_owned(),
        m.key().map_or(Value::Null, |k| Value::from(k)),
    );
    map.insert("partition".to_owned(), Value::from(m.partition));
    map.insert("offset".to_owned(), Value::from(m.offset));
    // a Received holds only payloads that decoded as envelopes, which are maps
    let envelope = envelope_to_json(m.payload()).unwrap_or(Value::Null);
    map.insert("envelope".to_owned(), envelope);
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Actor, Envelope, RawValue};

    #[test]
    fn an_envelope_keeps_its_wire_names_and_unknown_fields() {
        let mut env = Envelope::param_change(
            "s-1",
            "p-1",
            7,
            1_790_000_000_123,
            Actor::User,
            "gen.1.cutoff",
            0.75,
        );
        env.extra
            .push(("ui".to_owned(), RawValue::from_value(&"knob".into())));
        let json = envelope_to_json(&env.encode()).unwrap();
        assert_eq!(json["session_id"], "s-1");
        assert_eq!(json["producer_id"], "p-1");
        assert_eq!(json["seq"], 7);
        assert_eq!(json["ts_ms"], 1_790_000_000_123i64);
        assert_eq!(json["path"], "gen.1.cutoff");
        assert_eq!(json["value"], 0.75);
        assert_eq!(json["actor"], "user");
        assert_eq!(json["ui"], "knob");
    }

    #[test]
    fn odd_values_have_a_spelling() {
        use rmpv::Value as M;
        assert_eq!(msgpack_to_json(&M::F64(f64::NAN)), Value::Null);
        assert_eq!(msgpack_to_json(&M::Binary(b"abc".to_vec())), "abc");
        assert_eq!(
            msgpack_to_json(&M::Binary(vec![0xff, 1])),
            serde_json::json!([255, 1])
        );
        assert_eq!(
            msgpack_to_json(&M::Map(vec![(M::from(3), M::from(true))])),
            serde_json::json!({"3": true})
        );
        assert_eq!(
            msgpack_to_json(&M::Ext(5, vec![1])),
            serde_json::json!({"ext": 5, "data": [1]})
        );
        assert_eq!(
            msgpack_to_json(&M::from(u64::MAX)),
            serde_json::json!(u64::MAX)
        );
        assert!(envelope_to_json(&[0x01]).is_err());
    }
}
