//! Borrowed decoding: an envelope whose strings point into its payload.
//!
//! [`EnvelopeView::decode`] checks a payload exactly as [`Envelope::decode`]
//! does (same rules, same errors) but allocates nothing, which is what the
//! subscriber and the recorder need at hundreds of thousands of messages a
//! second. [`EnvelopeView::to_envelope`] makes the owned form when a message
//! is kept or changed.

use super::{bus_number, Actor, ActorKind, Body, Envelope, EnvelopeError, RawValue, Topic};
use crate::msgpack::{Cursor, DecodeError, Kind};

/// An envelope decoded in place: strings and raw values borrow the payload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnvelopeView<'a> {
    /// Schema version (1 when absent).
    pub v: i64,
    /// One per performance.
    pub session_id: &'a str,
    /// One per producer.
    pub producer_id: &'a str,
    /// Strictly increasing per (session_id, producer_id).
    pub seq: u64,
    /// Wall-clock milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// The actor's wire name as sent, str or bin (`None` when absent).
    pub actor: Option<&'a [u8]>,
    /// Which program sent it.
    pub source: Option<&'a str>,
    /// The topic-specific fields.
    pub body: BodyView<'a>,
    /// The whole envelope map, walked again for its extra fields.
    map: &'a [u8],
    /// Fields the topic does not define.
    extra_count: u32,
}

/// The topic-specific part of an [`EnvelopeView`]; see [`Body`] for each field.
#[derive(Debug, Clone, Copy, PartialEq)]
#[allow(missing_docs)]
pub enum BodyView<'a> {
    Param {
        path: &'a str,
        value: f64,
        value_mapped: Option<f64>,
        has_value_mapped: bool,
    },
    Mod {
        path: &'a str,
        bus: i64,
        value: f64,
        source_type: Option<&'a str>,
    },
    Audio {
        path: &'a str,
        peak: f64,
        rms: Option<f64>,
        has_rms: bool,
    },
    Event {
        event_type: &'a str,
    },
    State {
        key: &'a str,
        /// The state map, raw MessagePack.
        state: &'a [u8],
    },
}

impl<'a> BodyView<'a> {
    /// The topic a message with this body belongs on.
    pub fn topic(&self) -> Topic {
        match self {
            BodyView::Param { .. } => Topic::Params,
            BodyView::Mod { .. } => Topic::Mod,
            BodyView::Audio { .. } => Topic::Audio,
            BodyView::Event { .. } => Topic::Events,
            BodyView::State { .. } => Topic::State,
        }
    }

    /// The Kafka key docs/formats.md section 1 assigns.
    pub fn kafka_key(&self) -> &'a str {
        match *self {
            BodyView::Param { path, .. }
            | BodyView::Mod { path, .. }
            | BodyView::Audio { path, .. } => path,
            BodyView::Event { event_type } => event_type,
            BodyView::State { key, .. } => key,
        }
    }

    /// The owned body.
    pub fn to_body(&self) -> Body {
        match *self {
            BodyView::Param {
                path,
                value,
                value_mapped,
                has_value_mapped,
            } => Body::Param {
                path: path.to_owned(),
                value,
                value_mapped,
                has_value_mapped,
            },
            BodyView::Mod {
                path,
                bus,
                value,
                source_type,
            } => Body::Mod {
                path: path.to_owned(),
                bus,
                value,
                source_type: source_type.map(str::to_owned),
            },
            BodyView::Audio {
                path,
                peak,
                rms,
                has_rms,
            } => Body::Audio {
                path: path.to_owned(),
                peak,
                rms,
                has_rms,
            },
            BodyView::Event { event_type } => Body::Event {
                event_type: event_type.to_owned(),
            },
            BodyView::State { key, state } => Body::State {
                key: key.to_owned(),
                state: RawValue(state.to_vec()),
            },
        }
    }
}

impl<'a> EnvelopeView<'a> {
    /// Decodes a payload received on `topic`. The whole slice must be one map.
    pub fn decode(topic: Topic, payload: &'a [u8]) -> Result<EnvelopeView<'a>, EnvelopeError> {
        let mut c = Cursor::new(payload);
        let view = Self::decode_from(topic, &mut c)?;
        if !c.is_empty() {
            return Err(EnvelopeError::Trailing(payload.len() - c.pos()));
        }
        Ok(view)
    }

    /// Decodes one envelope map at the cursor.
    pub fn decode_from(
        topic: Topic,
        c: &mut Cursor<'a>,
    ) -> Result<EnvelopeView<'a>, EnvelopeError> {
        let start = c.pos();
        let kind = c.peek_kind()?;
        if kind != Kind::Map {
            if kind == Kind::Invalid {
                // report the invalid byte itself
                c.skip_value()?;
            }
            return Err(EnvelopeError::NotAMap(kind));
        }
        let n = c.read_map_len()?;
        let mut f = Fields::default();
        let mut extra_count = 0;
        for _ in 0..n {
            let key = read_key(c)?;
            match Field::of(topic, key) {
                Some(field) => f.take(field, c)?,
                None => {
                    c.skip_value()?;
                    extra_count += 1;
                }
            }
        }
        f.finish(topic, c.since(start), extra_count)
    }

    /// The actor kind (`Missing` when absent).
    pub fn actor_kind(&self) -> ActorKind {
        self.actor.map_or(ActorKind::Missing, ActorKind::from_bytes)
    }

    /// The topic this envelope belongs on.
    pub fn topic(&self) -> Topic {
        self.body.topic()
    }

    /// The Kafka key docs/formats.md section 1 assigns.
    pub fn kafka_key(&self) -> &'a str {
        self.body.kafka_key()
    }

    /// Path and value of a `noise.params` message.
    pub fn param(&self) -> Option<(&'a str, f64)> {
        match self.body {
            BodyView::Param { path, value, .. } => Some((path, value)),
            _ => None,
        }
    }

    /// How many fields the topic does not define.
    pub fn extra_count(&self) -> usize {
        self.extra_count as usize
    }

    /// The fields the topic does not define, in wire order: name bytes and raw value.
    pub fn extras(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let topic = self.topic();
        let mut c = Cursor::new(self.map);
        // the map was checked when the view was made, so the walk cannot fail
        let mut left = if self.extra_count == 0 {
            0
        } else {
            c.read_map_len().unwrap_or(0)
        };
        std::iter::from_fn(move || {
            while left > 0 {
                left -= 1;
                let key = read_key(&mut c).ok()?;
                let raw = c.raw_value().ok()?;
                if Field::of(topic, key).is_none() {
                    return Some((key, raw));
                }
            }
            None
        })
    }

    /// The owned envelope, extras included.
    pub fn to_envelope(&self) -> Envelope {
        Envelope {
            v: self.v,
            session_id: self.session_id.to_owned(),
            producer_id: self.producer_id.to_owned(),
            seq: self.seq,
            ts_ms: self.ts_ms,
            actor: self.actor.map(Actor::from_bytes),
            source: self.source.map(str::to_owned),
            body: self.body.to_body(),
            extra: self
                .extras()
                .map(|(k, v)| {
                    (
                        String::from_utf8_lossy(k).into_owned(),
                        RawValue(v.to_vec()),
                    )
                })
                .collect(),
        }
    }
}

#[inline]
fn read_key<'a>(c: &mut Cursor<'a>) -> Result<&'a [u8], EnvelopeError> {
    let key_at = c.abs_pos();
    match c.peek_kind()? {
        Kind::Str | Kind::Bin => Ok(c.read_bytes_str()?),
        other => Err(EnvelopeError::Field {
            field: format!("key at byte {key_at}"),
            reason: format!("map keys must be strings, found {other}"),
        }),
    }
}

/// The fields docs/formats.md section 2 defines, common and per topic.
#[derive(Clone, Copy)]
enum Field {
    V,
    SessionId,
    ProducerId,
    Seq,
    TsMs,
    Actor,
    Source,
    Path,
    Value,
    ValueMapped,
    Bus,
    SourceType,
    Peak,
    Rms,
    Type,
    Key,
    State,
}

impl Field {
    /// The field `key` names on `topic`; `None` for an extra.
    #[inline]
    fn of(topic: Topic, key: &[u8]) -> Option<Field> {
        Some(match (key, topic) {
            (b"v", _) => Field::V,
            (b"session_id", _) => Field::SessionId,
            (b"producer_id", _) => Field::ProducerId,
            (b"seq", _) => Field::Seq,
            (b"ts_ms", _) => Field::TsMs,
            (b"actor", _) => Field::Actor,
            (b"source", _) => Field::Source,
            (b"path", Topic::Params | Topic::Mod | Topic::Audio) => Field::Path,
            (b"value", Topic::Params | Topic::Mod) => Field::Value,
            (b"value_mapped", Topic::Params) => Field::ValueMapped,
            (b"bus", Topic::Mod) => Field::Bus,
            (b"source_type", Topic::Mod) => Field::SourceType,
            (b"peak", Topic::Audio) => Field::Peak,
            (b"rms", Topic::Audio) => Field::Rms,
            (b"type", Topic::Events) => Field::Type,
            (b"key", Topic::State) => Field::Key,
            (b"state", Topic::State) => Field::State,
            _ => return None,
        })
    }
}

/// Known fields collected while walking the map.
#[derive(Default)]
struct Fields<'a> {
    v: Option<i64>,
    session_id: Option<&'a str>,
    producer_id: Option<&'a str>,
    seq: Option<u64>,
    ts_ms: Option<i64>,
    actor: Option<&'a [u8]>,
    source: Option<&'a str>,
    path: Option<&'a str>,
    value: Option<f64>,
    value_mapped: Option<Option<f64>>,
    bus: Option<i64>,
    source_type: Option<&'a str>,
    peak: Option<f64>,
    rms: Option<Option<f64>>,
    event_type: Option<&'a str>,
    key: Option<&'a str>,
    state: Option<&'a [u8]>,
}

fn field_err(field: &str, e: DecodeError) -> EnvelopeError {
    if e.is_eof() || matches!(e, DecodeError::InvalidMarker { .. }) {
        EnvelopeError::Msgpack(e)
    } else {
        EnvelopeError::Field {
            field: field.to_owned(),
            reason: e.to_string(),
        }
    }
}

fn string<'a>(c: &mut Cursor<'a>, field: &str) -> Result<&'a str, EnvelopeError> {
    c.read_str().map_err(|e| field_err(field, e))
}

impl<'a> Fields<'a> {
    fn take(&mut self, field: Field, c: &mut Cursor<'a>) -> Result<(), EnvelopeError> {
        match field {
            Field::V => self.v = Some(c.read_i64().map_err(|e| field_err("v", e))?),
            Field::SessionId => self.session_id = Some(string(c, "session_id")?),
            Field::ProducerId => self.producer_id = Some(string(c, "producer_id")?),
            Field::Seq => self.seq = Some(c.read_u64().map_err(|e| field_err("seq", e))?),
            Field::TsMs => self.ts_ms = Some(c.read_i64().map_err(|e| field_err("ts_ms", e))?),
            Field::Actor => {
                self.actor = Some(c.read_bytes_str().map_err(|e| field_err("actor", e))?)
            }
            Field::Source => self.source = Some(string(c, "source")?),
            Field::Path => self.path = Some(string(c, "path")?),
            Field::Value => self.value = Some(c.read_f64().map_err(|e| field_err("value", e))?),
            Field::ValueMapped => {
                self.value_mapped =
                    Some(c.read_opt_f64().map_err(|e| field_err("value_mapped", e))?)
            }
            Field::Bus => self.bus = Some(c.read_i64().map_err(|e| field_err("bus", e))?),
            Field::SourceType => self.source_type = Some(string(c, "source_type")?),
            Field::Peak => self.peak = Some(c.read_f64().map_err(|e| field_err("peak", e))?),
            Field::Rms => self.rms = Some(c.read_opt_f64().map_err(|e| field_err("rms", e))?),
            Field::Type => self.event_type = Some(string(c, "type")?),
            Field::Key => self.key = Some(string(c, "key")?),
            Field::State => {
                let at = c.abs_pos();
                if c.peek_kind()? != Kind::Map {
                    return Err(EnvelopeError::Field {
                        field: "state".into(),
                        reason: format!("expected a map at byte {at}"),
                    });
                }
                self.state = Some(c.raw_value()?)
            }
        }
        Ok(())
    }

    fn finish(
        self,
        topic: Topic,
        map: &'a [u8],
        extra_count: u32,
    ) -> Result<EnvelopeView<'a>, EnvelopeError> {
        use EnvelopeError::Missing;
        let session_id = self.session_id.ok_or(Missing("session_id"))?;
        let producer_id = self.producer_id.ok_or(Missing("producer_id"))?;
        let seq = self.seq.ok_or(Missing("seq"))?;
        let ts_ms = self.ts_ms.ok_or(Missing("ts_ms"))?;
        let body = match topic {
            Topic::Params => BodyView::Param {
                path: self.path.ok_or(Missing("path"))?,
                value: self.value.ok_or(Missing("value"))?,
                has_value_mapped: self.value_mapped.is_some(),
                value_mapped: self.value_mapped.flatten(),
            },
            Topic::Mod => {
                let path = self.path.ok_or(Missing("path"))?;
                let bus = match self.bus {
                    Some(b) => b,
                    None => bus_number(path).ok_or(Missing("bus"))?,
                };
                BodyView::Mod {
                    path,
                    bus,
                    value: self.value.ok_or(Missing("value"))?,
                    source_type: self.source_type,
                }
            }
            Topic::Audio => BodyView::Audio {
                path: self.path.ok_or(Missing("path"))?,
                peak: self.peak.ok_or(Missing("peak"))?,
                has_rms: self.rms.is_some(),
                rms: self.rms.flatten(),
            },
            Topic::Events => BodyView::Event {
                event_type: self.event_type.ok_or(Missing("type"))?,
            },
            Topic::State => BodyView::State {
                key: self.key.ok_or(Missing("key"))?,
                state: self.state.ok_or(Missing("state"))?,
            },
        };
        Ok(EnvelopeView {
            v: self.v.unwrap_or(1),
            session_id,
            producer_id,
            seq,
            ts_ms,
            actor: self.actor,
            source: self.source,
            body,
            map,
            extra_count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmpv::Value;

    fn map(entries: &[(&str, Value)]) -> Vec<u8> {
        let v = Value::Map(
            entries
                .iter()
                .map(|(k, v)| (Value::from(*k), v.clone()))
                .collect(),
        );
        RawValue::from_value(&v).0
    }

    fn event(extra: &[(&str, Value)]) -> Vec<u8> {
        let mut e = vec![
            ("ui", Value::from("knob")),
            ("v", Value::from(1)),
            ("session_id", Value::from("s-1")),
            ("producer_id", Value::from("python.gui")),
            ("seq", Value::from(7)),
            ("ts_ms", Value::from(1_790_000_000_000i64)),
            ("type", Value::from("note_on")),
            ("actor", Value::Binary(vec![0xff, b'x'])),
        ];
        e.extend(extra.iter().cloned());
        map(&e)
    }

    #[test]
    fn strings_point_into_the_payload() {
        let bytes = event(&[]);
        let view = EnvelopeView::decode(Topic::Events, &bytes).unwrap();
        let range = bytes.as_ptr_range();
        for s in [view.session_id, view.producer_id, view.kafka_key()] {
            assert!(range.contains(&s.as_ptr()), "{s} was copied");
        }
        assert_eq!(view.kafka_key(), "note_on");
        assert_eq!(view.seq, 7);
        assert_eq!(view.actor_kind(), ActorKind::Other);
    }

    #[test]
    fn extras_come_in_wire_order_and_survive_the_owned_copy() {
        let bytes = event(&[("note", Value::from(60)), ("vel", Value::F64(0.5))]);
        let view = EnvelopeView::decode(Topic::Events, &bytes).unwrap();
        assert_eq!(view.extra_count(), 3);
        let names: Vec<&[u8]> = view.extras().map(|(k, _)| k).collect();
        assert_eq!(names, [&b"ui"[..], b"note", b"vel"]);
        let owned = view.to_envelope();
        assert_eq!(owned.extra.len(), 3);
        assert_eq!(
            owned.extra_field("note").unwrap().decode().unwrap(),
            Value::from(60)
        );
        // a non-UTF-8 actor is kept by name, lossily
        assert_eq!(owned.actor, Some(Actor::Other("\u{fffd}x".into())));
        // and the owned form encodes back to the same fields
        let again = owned.encode();
        let a = rmpv::decode::read_value(&mut &bytes[..]).unwrap();
        let b = rmpv::decode::read_value(&mut &again[..]).unwrap();
        let sorted = |v: Value| {
            let mut m = v.as_map().unwrap().clone();
            m.sort_by_key(|(k, _)| k.to_string());
            m
        };
        let mut a = sorted(a);
        let b = sorted(b);
        // the non-UTF-8 actor is the one field that comes back different
        a.retain(|(k, _)| k.as_str() != Some("actor"));
        assert_eq!(
            a,
            b.into_iter()
                .filter(|(k, _)| k.as_str() != Some("actor"))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_field_of_another_topic_is_an_extra() {
        // `path` is not a field of noise.events, `type` is not one of noise.params
        let bytes = event(&[("path", Value::from("gen.1.cutoff"))]);
        let view = EnvelopeView::decode(Topic::Events, &bytes).unwrap();
        assert_eq!(view.extra_count(), 2);
        assert!(view.extras().any(|(k, _)| k == b"path"));
        assert_eq!(
            EnvelopeView::decode(Topic::Params, &bytes),
            Err(EnvelopeError::Missing("value"))
        );
    }

    #[test]
    fn bad_payloads_are_located_errors() {
        let trailing = [event(&[]), vec![0xc0]].concat();
        assert_eq!(
            EnvelopeView::decode(Topic::Events, &trailing),
            Err(EnvelopeError::Trailing(1))
        );
        assert!(matches!(
            EnvelopeView::decode(Topic::Events, &event(&[("seq", Value::from("seven"))])),
            Err(EnvelopeError::Field { field, .. }) if field == "seq"
        ));
        assert!(matches!(
            EnvelopeView::decode(Topic::Events, &[0x81, 0x01, 0x02]),
            Err(EnvelopeError::Field { field, .. }) if field == "key at byte 1"
        ));
        assert_eq!(
            EnvelopeView::decode(Topic::Events, &[0x93, 1, 2, 3]),
            Err(EnvelopeError::NotAMap(Kind::Array))
        );
    }
}
