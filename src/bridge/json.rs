//! The WebSocket feed's frames, spelled with the project's one JSON
//! transcoder ([`crate::export::json`]): envelopes exactly as JSON Lines
//! exports and `info --json` spell them, every field in wire order, unknown
//! fields included.

use crate::export::json::{write_int, write_json, write_str, JsonError};
use crate::kafka::Received;

/// One received message as the WebSocket feed sends it:
/// `{"topic", "key", "partition", "offset", "envelope"}`, written straight
/// from the payload's MessagePack (no value tree in between).
pub fn feed_json(m: &Received) -> String {
    let mut out = Vec::with_capacity(m.payload().len() * 2 + 96);
    out.extend_from_slice(b"{\"topic\":");
    write_str(&mut out, m.topic.name());
    out.extend_from_slice(b",\"key\":");
    match m.key() {
        Some(k) => write_str(&mut out, k),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"partition\":");
    write_int(&mut out, i64::from(m.partition));
    out.extend_from_slice(b",\"offset\":");
    write_int(&mut out, m.offset);
    out.extend_from_slice(b",\"envelope\":");
    let mark = out.len();
    // a Received holds only payloads that decoded as envelopes (maps nested
    // at most 64 levels), so this does not fail; if it ever did, the frame
    // says null rather than holding half a value
    if write_json(m.payload(), &mut out).is_err() {
        out.truncate(mark);
        out.extend_from_slice(b"null");
    }
    out.push(b'}');
    // the transcoder writes only UTF-8
    String::from_utf8(out).unwrap_or_default()
}

/// A MessagePack value (an event field) as JSON text.
pub fn value_text(raw: &[u8]) -> Result<String, JsonError> {
    let mut out = Vec::with_capacity(raw.len() * 2);
    write_json(raw, &mut out)?;
    Ok(String::from_utf8(out).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_fields_read_as_json_text() {
        let mut raw = Vec::new();
        rmpv::encode::write_value(
            &mut raw,
            &rmpv::Value::Map(vec![("note".into(), 60.into()), ("v".into(), 0.5.into())]),
        )
        .unwrap();
        assert_eq!(value_text(&raw).unwrap(), r#"{"note":60,"v":0.5}"#);
        assert!(value_text(&[0xc1]).is_err());
    }
}
