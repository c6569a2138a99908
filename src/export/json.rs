//! The JSON spelling of session records and envelopes, shared by JSON Lines
//! exports, MCAP messages, the SQLite `data` columns and any JSON feed.
//!
//! MessagePack is transcoded straight to JSON text, keys in wire order, with
//! no intermediate value tree:
//!
//! - nil, booleans, integers and strings map to their JSON counterparts;
//! - floats are printed as the shortest text that reads back as the same
//!   `f64` (always with a `.` or an exponent, so `0.0` stays a float); NaN
//!   and infinities, which JSON cannot hold, become `null`;
//! - bin values are strings when they are UTF-8 (FORMATS.md lets old
//!   producers send strings as bin), arrays of byte values otherwise;
//! - ext values become `{"ext": TYPE, "data": [bytes]}`;
//! - a map key that is not a string is spelled as its JSON text.
//!
//! [`json_to_msgpack`] goes the other way for imports.

use std::fmt;

use crate::msgpack::{Cursor, DecodeError, Kind};

/// Containers nested deeper than this are refused (FORMATS.md section 2).
pub const MAX_DEPTH: usize = 64;

/// Why a MessagePack value has no JSON spelling.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonError {
    /// The bytes are not valid MessagePack.
    Decode(DecodeError),
    /// Containers nested more than [`MAX_DEPTH`] levels.
    TooDeep,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::Decode(e) => write!(f, "not valid MessagePack: {e}"),
            JsonError::TooDeep => write!(f, "nested more than {MAX_DEPTH} levels"),
        }
    }
}

impl std::error::Error for JsonError {}

impl From<DecodeError> for JsonError {
    fn from(e: DecodeError) -> Self {
        JsonError::Decode(e)
    }
}

/// The JSON text of one envelope map (a record's `data`), as JSON Lines,
/// MCAP topic channels and JSON feeds spell it: every field, in wire order.
pub fn envelope_json(data: &[u8]) -> Result<String, JsonError> {
    let mut out = Vec::with_capacity(data.len() * 2);
    write_json(data, &mut out)?;
    // the transcoder writes only UTF-8
    Ok(String::from_utf8(out).unwrap_or_default())
}

/// The envelope map as a [`serde_json::Value`] (keys sorted), for callers
/// that inspect fields rather than print them.
pub fn envelope_value(data: &[u8]) -> Result<serde_json::Value, JsonError> {
    let text = envelope_json(data)?;
    Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

/// Appends the JSON spelling of the single MessagePack value at the start
/// of `bytes` to `out`; returns the number of bytes it took.
pub fn write_json(bytes: &[u8], out: &mut Vec<u8>) -> Result<usize, JsonError> {
    let mut c = Cursor::new(bytes);
    write_value(&mut c, out, 0)?;
    Ok(c.pos())
}

/// Appends the JSON spelling of the value at the cursor to `out`.
pub fn write_value(c: &mut Cursor<'_>, out: &mut Vec<u8>, depth: usize) -> Result<(), JsonError> {
    match c.peek_kind()? {
        Kind::Nil => {
            c.read_nil()?;
            out.extend_from_slice(b"null");
        }
        Kind::Bool => {
            let raw = c.raw_value()?;
            out.extend_from_slice(if raw[0] == 0xc3 { b"true" } else { b"false" });
        }
        Kind::Int => {
            let mut probe = c.clone();
            match probe.read_i64() {
                Ok(v) => {
                    *c = probe;
                    write_int(out, v);
                }
                Err(DecodeError::Range { .. }) => {
                    let v = c.read_u64()?;
                    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
                }
                Err(e) => return Err(e.into()),
            }
        }
        Kind::Float => write_f64(out, c.read_f64()?),
        Kind::Str | Kind::Bin => {
            let b = c.read_bytes_str()?;
            write_bytes_as_str(out, b);
        }
        Kind::Array => {
            if depth >= MAX_DEPTH {
                return Err(JsonError::TooDeep);
            }
            let n = c.read_array_len()?;
            out.push(b'[');
            for i in 0..n {
                if i > 0 {
                    out.push(b',');
                }
                write_value(c, out, depth + 1)?;
            }
            out.push(b']');
        }
        Kind::Map => {
            if depth >= MAX_DEPTH {
                return Err(JsonError::TooDeep);
            }
            let n = c.read_map_len()?;
            out.push(b'{');
            for i in 0..n {
                if i > 0 {
                    out.push(b',');
                }
                write_key(c, out, depth)?;
                out.push(b':');
                write_value(c, out, depth + 1)?;
            }
            out.push(b'}');
        }
        Kind::Ext => {
            let raw = c.raw_value()?;
            let (ty, data) = ext_parts(raw);
            out.extend_from_slice(b"{\"ext\":");
            write_int(out, ty as i64);
            out.extend_from_slice(b",\"data\":");
            write_byte_array(out, data);
            out.push(b'}');
        }
        Kind::Invalid => {
            // the cursor names the byte and its offset
            c.skip_value()?;
            return Err(JsonError::Decode(DecodeError::InvalidMarker {
                at: c.abs_pos(),
                byte: 0xc1,
            }));
        }
    }
    Ok(())
}

/// Writes a map key: strings as themselves, anything else as its JSON text.
fn write_key(c: &mut Cursor<'_>, out: &mut Vec<u8>, depth: usize) -> Result<(), JsonError> {
    match c.peek_kind()? {
        Kind::Str | Kind::Bin => {
            let b = c.read_bytes_str()?;
            write_bytes_as_str(out, b);
        }
        _ => {
            let mut text = Vec::new();
            write_value(c, &mut text, depth + 1)?;
            write_str(out, &String::from_utf8_lossy(&text));
        }
    }
    Ok(())
}

/// The type and payload of a raw ext value.
fn ext_parts(raw: &[u8]) -> (i8, &[u8]) {
    let (ty_at, data_at) = match raw[0] {
        0xd4..=0xd8 => (1, 2),
        0xc7 => (2, 3),
        0xc8 => (3, 4),
        _ => (5, 6), // 0xc9
    };
    (
        raw.get(ty_at).map_or(0, |&t| t as i8),
        raw.get(data_at..).unwrap_or(&[]),
    )
}

/// An integer as JSON.
pub fn write_int(out: &mut Vec<u8>, v: i64) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(v).as_bytes());
}

/// A float as JSON: the shortest text that reads back as the same value,
/// `null` for NaN and infinities.
pub fn write_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        let mut b = ryu::Buffer::new();
        out.extend_from_slice(b.format_finite(v).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// Is every byte printable ASCII that JSON takes as it is? (No early exit,
/// so the loop is vectorised.)
#[inline]
fn is_plain(b: &[u8]) -> bool {
    b.iter().fold(true, |ok, &c| {
        ok & (0x20..0x7f).contains(&c) & (c != b'"') & (c != b'\\')
    })
}

/// A string as a JSON string literal.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    if is_plain(s.as_bytes()) {
        // the common case: nothing to escape
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // serde_json's escaping, straight into the buffer
        serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
    }
}

/// Bytes of a str or bin value: a JSON string when UTF-8, an array of byte
/// values otherwise.
fn write_bytes_as_str(out: &mut Vec<u8>, b: &[u8]) {
    if is_plain(b) {
        // plain ASCII is UTF-8 with nothing to escape: one pass, one copy
        out.reserve(b.len() + 2);
        out.push(b'"');
        out.extend_from_slice(b);
        out.push(b'"');
        return;
    }
    match std::str::from_utf8(b) {
        Ok(s) => write_str(out, s),
        Err(_) => write_byte_array(out, b),
    }
}

fn write_byte_array(out: &mut Vec<u8>, b: &[u8]) {
    out.push(b'[');
    for (i, byte) in b.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(byte.to_string().as_bytes());
    }
    out.push(b']');
}

/// A MessagePack array header.
fn array_len(out: &mut Vec<u8>, n: usize) {
    if n < 16 {
        out.push(0x90 | n as u8);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(0xdc);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(0xdd);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// Appends the MessagePack encoding of a JSON value: integers stay
/// integers, other numbers become float64, strings are str, objects are maps
/// with str keys.
pub fn json_to_msgpack(v: &serde_json::Value, out: &mut Vec<u8>) {
    use crate::msgpack::write as w;
    use serde_json::Value;
    match v {
        Value::Null => w::nil(out),
        Value::Bool(b) => {
            out.push(if *b { 0xc3 } else { 0xc2 });
        }
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                w::int(out, i);
            } else if let Some(u) = n.as_u64() {
                w::uint(out, u);
            } else {
                w::f64(out, n.as_f64().unwrap_or(f64::NAN));
            }
        }
        Value::String(s) => w::str(out, s),
        Value::Array(items) => {
            array_len(out, items.len());
            for item in items {
                json_to_msgpack(item, out);
            }
        }
        Value::Object(map) => {
            w::map_len(out, map.len());
            for (k, item) in map {
                w::str(out, k);
                json_to_msgpack(item, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmpv::Value;

    fn pack(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, v).unwrap();
        out
    }

    fn json(v: &Value) -> String {
        let mut out = Vec::new();
        write_json(&pack(v), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn scalars_are_spelled_as_json() {
        assert_eq!(json(&Value::Nil), "null");
        assert_eq!(json(&Value::Boolean(true)), "true");
        assert_eq!(json(&Value::from(-5)), "-5");
        assert_eq!(json(&Value::from(u64::MAX)), u64::MAX.to_string());
        assert_eq!(json(&Value::F64(0.0)), "0.0");
        assert_eq!(json(&Value::F64(0.1)), "0.1");
        assert_eq!(json(&Value::F64(f64::NAN)), "null");
        assert_eq!(json(&Value::from("a\"b\n")), r#""a\"b\n""#);
        assert_eq!(json(&Value::from("Größe é")), "\"Größe é\"");
        assert_eq!(json(&Value::from("a\\b\u{1}")), r#""a\\b\u0001""#);
        assert_eq!(
            json(&Value::Binary("bin é".as_bytes().to_vec())),
            "\"bin é\""
        );
        assert_eq!(json(&Value::Binary(b"note_on".to_vec())), r#""note_on""#);
        assert_eq!(json(&Value::Binary(vec![0xff, 1])), "[255,1]");
        assert_eq!(
            json(&Value::Ext(5, vec![1, 2])),
            r#"{"ext":5,"data":[1,2]}"#
        );
    }

    #[test]
    fn maps_keep_wire_order_and_floats_round_trip() {
        let v = Value::Map(vec![
            (Value::from("z"), Value::F64(0.5315445854819442)),
            (
                Value::from("a"),
                Value::Array(vec![Value::from(1), Value::Nil]),
            ),
            (Value::from(3), Value::from("int key")),
        ]);
        let text = json(&v);
        assert_eq!(
            text,
            r#"{"z":0.5315445854819442,"a":[1,null],"3":"int key"}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["z"].as_f64(), Some(0.5315445854819442));
    }

    #[test]
    fn json_back_to_msgpack_keeps_types() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"note":60,"vel":0.0,"name":"x","ok":true,"l":[null]}"#)
                .unwrap();
        let mut out = Vec::new();
        json_to_msgpack(&v, &mut out);
        let back = rmpv::decode::read_value(&mut &out[..]).unwrap();
        let get = |k: &str| {
            back.as_map()
                .unwrap()
                .iter()
                .find(|(key, _)| key.as_str() == Some(k))
                .unwrap()
                .1
                .clone()
        };
        assert_eq!(get("note"), Value::from(60));
        assert_eq!(get("vel"), Value::F64(0.0));
        assert_eq!(get("ok"), Value::Boolean(true));
    }

    #[test]
    fn broken_and_deep_input_is_an_error() {
        let mut out = Vec::new();
        assert!(matches!(
            write_json(&[0xc1], &mut out),
            Err(JsonError::Decode(_))
        ));
        assert!(matches!(
            write_json(&[0x92, 0x01], &mut out),
            Err(JsonError::Decode(_))
        ));
        let mut deep = Value::Nil;
        for _ in 0..70 {
            deep = Value::Array(vec![deep]);
        }
        assert_eq!(
            write_json(&pack(&deep), &mut Vec::new()),
            Err(JsonError::TooDeep)
        );
    }
}
