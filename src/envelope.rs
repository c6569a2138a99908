//! The message envelope of docs/formats.md section 2: typed access to the common
//! and per-topic fields, with unknown fields kept as raw MessagePack so they
//! are written back byte for byte.

use std::fmt;

use crate::msgpack::{self, Cursor, DecodeError, Kind};

mod view;

pub use view::{BodyView, EnvelopeView};

/// The five topics of the Noise Engine bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// `noise.params`: every parameter change.
    Params,
    /// `noise.mod`: mod bus values.
    Mod,
    /// `noise.audio`: level meters.
    Audio,
    /// `noise.events`: sparse events.
    Events,
    /// `noise.state`: full state per key (compacted).
    State,
}

impl Topic {
    /// Every topic, in a stable order.
    pub const ALL: [Topic; 5] = [
        Topic::Params,
        Topic::Mod,
        Topic::Audio,
        Topic::Events,
        Topic::State,
    ];

    /// The Kafka topic name.
    pub fn name(self) -> &'static str {
        match self {
            Topic::Params => "noise.params",
            Topic::Mod => "noise.mod",
            Topic::Audio => "noise.audio",
            Topic::Events => "noise.events",
            Topic::State => "noise.state",
        }
    }

    /// The topic with this Kafka name, if it is one of the five.
    pub fn from_name(name: &str) -> Option<Topic> {
        Self::from_name_bytes(name.as_bytes())
    }

    /// Like [`Topic::from_name`] on raw bytes (the session reader's hot path).
    #[inline]
    pub fn from_name_bytes(name: &[u8]) -> Option<Topic> {
        match name {
            b"noise.params" => Some(Topic::Params),
            b"noise.mod" => Some(Topic::Mod),
            b"noise.audio" => Some(Topic::Audio),
            b"noise.events" => Some(Topic::Events),
            b"noise.state" => Some(Topic::State),
            _ => None,
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Who caused a message; decides what is recorded and what replay republishes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Actor {
    /// A performer's hand on a control.
    User,
    /// A modulation source.
    Mod,
    /// A MIDI controller.
    Midi,
    /// A preset load.
    Preset,
    /// This project's player.
    Replay,
    /// Meters and other measurements.
    Telemetry,
    /// Any other actor, kept by name.
    Other(String),
}

impl Actor {
    /// The wire name.
    pub fn as_str(&self) -> &str {
        match self {
            Actor::User => "user",
            Actor::Mod => "mod",
            Actor::Midi => "midi",
            Actor::Preset => "preset",
            Actor::Replay => "replay",
            Actor::Telemetry => "telemetry",
            Actor::Other(s) => s,
        }
    }

    /// Parses a wire name.
    pub fn from_bytes(b: &[u8]) -> Actor {
        match ActorKind::from_bytes(b) {
            ActorKind::User => Actor::User,
            ActorKind::Mod => Actor::Mod,
            ActorKind::Midi => Actor::Midi,
            ActorKind::Preset => Actor::Preset,
            ActorKind::Replay => Actor::Replay,
            ActorKind::Telemetry => Actor::Telemetry,
            ActorKind::Other | ActorKind::Missing => {
                Actor::Other(String::from_utf8_lossy(b).into_owned())
            }
        }
    }

    /// The compact kind of this actor.
    pub fn kind(&self) -> ActorKind {
        ActorKind::from_bytes(self.as_str().as_bytes())
    }

    /// A recorder stores messages of this actor (docs/formats.md, actor rules).
    pub fn is_recorded(&self) -> bool {
        self.kind().is_recorded()
    }

    /// Replay republishes parameter changes of this actor.
    pub fn is_replayed(&self) -> bool {
        self.kind().is_replayed()
    }
}

/// A one-byte actor classification for compact in-memory tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ActorKind {
    /// `user`
    User,
    /// `mod`
    Mod,
    /// `midi`
    Midi,
    /// `preset`
    Preset,
    /// `replay`
    Replay,
    /// `telemetry`
    Telemetry,
    /// any other name
    Other,
    /// no `actor` field
    Missing,
}

impl ActorKind {
    /// Classifies a wire name.
    #[inline]
    pub fn from_bytes(b: &[u8]) -> ActorKind {
        match b {
            b"user" => ActorKind::User,
            b"mod" => ActorKind::Mod,
            b"midi" => ActorKind::Midi,
            b"preset" => ActorKind::Preset,
            b"replay" => ActorKind::Replay,
            b"telemetry" => ActorKind::Telemetry,
            _ => ActorKind::Other,
        }
    }

    /// A recorder stores it: everything but `replay` and `telemetry`.
    pub fn is_recorded(self) -> bool {
        !matches!(self, ActorKind::Replay | ActorKind::Telemetry)
    }

    /// Replay republishes a parameter change of it: `user`, `midi` and
    /// `preset` shaped the sound; `mod` is made again by the live modulation.
    pub fn is_replayed(self) -> bool {
        matches!(self, ActorKind::User | ActorKind::Midi | ActorKind::Preset)
    }

    /// A live message of it pins its path during replay: only a performer's hand (`user`).
    pub fn pins_replay(self) -> bool {
        self == ActorKind::User
    }
}

/// The topic-specific part of an envelope.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// `noise.params`
    Param {
        /// Canonical parameter path, e.g. `gen.1.cutoff`.
        path: String,
        /// Normalized 0..1 value, the authoritative one.
        value: f64,
        /// Derived value in real units, if the producer sent one (`None` when nil or absent).
        value_mapped: Option<f64>,
        /// Whether `value_mapped` was present on the wire (as nil or a number).
        has_value_mapped: bool,
    },
    /// `noise.mod`
    Mod {
        /// `bus.N`
        path: String,
        /// N
        bus: i64,
        /// The bus output.
        value: f64,
        /// e.g. `lfo`, `sloth`.
        source_type: Option<String>,
    },
    /// `noise.audio`
    Audio {
        /// The source, e.g. `gen.1`, `master`.
        path: String,
        /// Peak level.
        peak: f64,
        /// RMS level, if sent.
        rms: Option<f64>,
        /// Whether `rms` was present on the wire.
        has_rms: bool,
    },
    /// `noise.events`: the event's own fields stay in [`Envelope::extra`].
    Event {
        /// Event type, e.g. `note_on`.
        event_type: String,
    },
    /// `noise.state`
    State {
        /// State key, e.g. `preset`.
        key: String,
        /// The full state map, raw MessagePack.
        state: RawValue,
    },
}

impl Body {
    /// The topic a message with this body belongs on.
    pub fn topic(&self) -> Topic {
        match self {
            Body::Param { .. } => Topic::Params,
            Body::Mod { .. } => Topic::Mod,
            Body::Audio { .. } => Topic::Audio,
            Body::Event { .. } => Topic::Events,
            Body::State { .. } => Topic::State,
        }
    }

    /// The Kafka key docs/formats.md section 1 assigns: path, bus, source, event type or state key.
    pub fn kafka_key(&self) -> &str {
        match self {
            Body::Param { path, .. } | Body::Mod { path, .. } | Body::Audio { path, .. } => path,
            Body::Event { event_type } => event_type,
            Body::State { key, .. } => key,
        }
    }
}

/// A MessagePack value kept as its exact bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct RawValue(pub Vec<u8>);

impl RawValue {
    /// Decodes the value for inspection.
    pub fn decode(&self) -> Result<rmpv::Value, EnvelopeError> {
        rmpv::decode::read_value(&mut &self.0[..]).map_err(|e| EnvelopeError::Field {
            field: "extra value".into(),
            reason: e.to_string(),
        })
    }

    /// Encodes a value.
    pub fn from_value(v: &rmpv::Value) -> RawValue {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, v).expect("writing to a Vec cannot fail");
        RawValue(out)
    }
}

impl fmt::Debug for RawValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.decode() {
            Ok(v) => write!(f, "{v}"),
            Err(_) => write!(f, "<{} raw bytes>", self.0.len()),
        }
    }
}

/// Why a payload is not a valid envelope.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnvelopeError {
    /// The bytes are not MessagePack, or end too early.
    #[error("not valid MessagePack: {0}")]
    Msgpack(#[from] DecodeError),
    /// The payload is MessagePack but not a map.
    #[error("payload is {0}, not a map")]
    NotAMap(Kind),
    /// A required field is absent.
    #[error("missing field `{0}`")]
    Missing(&'static str),
    /// A field has the wrong type or value.
    #[error("field `{field}`: {reason}")]
    Field {
        /// Field name.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// Bytes follow the envelope map.
    #[error("{0} unexpected bytes after the envelope")]
    Trailing(usize),
}

/// One message on the bus.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Schema version (1).
    pub v: i64,
    /// One per performance.
    pub session_id: String,
    /// One per producer.
    pub producer_id: String,
    /// Strictly increasing per (session_id, producer_id), from 1.
    pub seq: u64,
    /// Wall-clock milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// Who caused it (`None` when the producer sent no actor).
    pub actor: Option<Actor>,
    /// Which program sent it (`None` when absent).
    pub source: Option<String>,
    /// The topic-specific fields.
    pub body: Body,
    /// Every other field, in wire order, as raw MessagePack.
    pub extra: Vec<(String, RawValue)>,
}

impl Envelope {
    /// The actor kind (`Missing` when absent).
    pub fn actor_kind(&self) -> ActorKind {
        self.actor.as_ref().map_or(ActorKind::Missing, Actor::kind)
    }

    /// The topic this envelope belongs on.
    pub fn topic(&self) -> Topic {
        self.body.topic()
    }

    /// The Kafka key docs/formats.md section 1 assigns: path, bus, source, event type or state key.
    pub fn kafka_key(&self) -> &str {
        self.body.kafka_key()
    }

    /// The parameter path of a `noise.params` message.
    pub fn param(&self) -> Option<(&str, f64)> {
        match &self.body {
            Body::Param { path, value, .. } => Some((path, *value)),
            _ => None,
        }
    }

    /// An extra field by name.
    pub fn extra_field(&self, name: &str) -> Option<&RawValue> {
        self.extra.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// A new `noise.params` envelope with no extras.
    pub fn param_change(
        session_id: &str,
        producer_id: &str,
        seq: u64,
        ts_ms: i64,
        actor: Actor,
        path: &str,
        value: f64,
    ) -> Envelope {
        Envelope {
            v: 1,
            session_id: session_id.to_owned(),
            producer_id: producer_id.to_owned(),
            seq,
            ts_ms,
            actor: Some(actor),
            source: Some("integr8tor".to_owned()),
            body: Body::Param {
                path: path.to_owned(),
                value,
                value_mapped: None,
                has_value_mapped: true,
            },
            extra: Vec::new(),
        }
    }

    /// Decodes a payload received on `topic`. The whole slice must be one map.
    pub fn decode(topic: Topic, payload: &[u8]) -> Result<Envelope, EnvelopeError> {
        Ok(EnvelopeView::decode(topic, payload)?.to_envelope())
    }

    /// Decodes one envelope map at the cursor.
    pub fn decode_from(topic: Topic, c: &mut Cursor<'_>) -> Result<Envelope, EnvelopeError> {
        Ok(EnvelopeView::decode_from(topic, c)?.to_envelope())
    }

    /// Encodes as a MessagePack map: known fields first, then extras in their order.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        use msgpack::write as w;
        let body_fields = match &self.body {
            Body::Param {
                has_value_mapped, ..
            } => 2 + usize::from(*has_value_mapped),
            Body::Mod { source_type, .. } => 3 + usize::from(source_type.is_some()),
            Body::Audio { has_rms, .. } => 2 + usize::from(*has_rms),
            Body::Event { .. } => 1,
            Body::State { .. } => 2,
        };
        let n = 5
            + body_fields
            + usize::from(self.actor.is_some())
            + usize::from(self.source.is_some())
            + self.extra.len();
        w::map_len(out, n);
        w::str(out, "v");
        w::int(out, self.v);
        w::str(out, "session_id");
        w::str(out, &self.session_id);
        w::str(out, "producer_id");
        w::str(out, &self.producer_id);
        w::str(out, "seq");
        w::uint(out, self.seq);
        w::str(out, "ts_ms");
        w::int(out, self.ts_ms);
        match &self.body {
            Body::Param {
                path,
                value,
                value_mapped,
                has_value_mapped,
            } => {
                w::str(out, "path");
                w::str(out, path);
                w::str(out, "value");
                w::f64(out, *value);
                if *has_value_mapped {
                    w::str(out, "value_mapped");
                    w::opt_f64(out, *value_mapped);
                }
            }
            Body::Mod {
                path,
                bus,
                value,
                source_type,
            } => {
                w::str(out, "path");
                w::str(out, path);
                w::str(out, "bus");
                w::int(out, *bus);
                w::str(out, "value");
                w::f64(out, *value);
                if let Some(s) = source_type {
                    w::str(out, "source_type");
                    w::str(out, s);
                }
            }
            Body::Audio {
                path,
                peak,
                rms,
                has_rms,
            } => {
                w::str(out, "path");
                w::str(out, path);
                w::str(out, "peak");
                w::f64(out, *peak);
                if *has_rms {
                    w::str(out, "rms");
                    w::opt_f64(out, *rms);
                }
            }
            Body::Event { event_type } => {
                w::str(out, "type");
                w::str(out, event_type);
            }
            Body::State { key, state } => {
                w::str(out, "key");
                w::str(out, key);
                w::str(out, "state");
                out.extend_from_slice(&state.0);
            }
        }
        if let Some(a) = &self.actor {
            w::str(out, "actor");
            w::str(out, a.as_str());
        }
        if let Some(s) = &self.source {
            w::str(out, "source");
            w::str(out, s);
        }
        for (k, v) in &self.extra {
            w::str(out, k);
            out.extend_from_slice(&v.0);
        }
    }
}

/// N of a `bus.N` path.
pub fn bus_number(path: &str) -> Option<i64> {
    path.strip_prefix("bus.")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmpv::Value;

    fn map(entries: Vec<(&str, Value)>) -> Vec<u8> {
        let v = Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (Value::from(k), v))
                .collect(),
        );
        RawValue::from_value(&v).0
    }

    fn common() -> Vec<(&'static str, Value)> {
        vec![
            ("v", Value::from(1)),
            ("session_id", Value::from("s-1")),
            ("producer_id", Value::from("python.gui")),
            ("seq", Value::from(7)),
            ("ts_ms", Value::from(1_790_000_000_000i64)),
        ]
    }

    #[test]
    fn param_fields_are_typed_and_extras_kept() {
        let mut e = common();
        e.extend([
            ("path", Value::from("gen.1.cutoff")),
            ("value", Value::F64(0.25)),
            ("value_mapped", Value::Nil),
            ("actor", Value::from("user")),
            ("source", Value::from("python")),
            ("ui_widget", Value::from("knob-3")),
            ("nested", Value::Array(vec![Value::from(1), Value::Nil])),
        ]);
        let bytes = map(e);
        let env = Envelope::decode(Topic::Params, &bytes).unwrap();
        assert_eq!(env.param(), Some(("gen.1.cutoff", 0.25)));
        assert_eq!(env.actor, Some(Actor::User));
        assert_eq!(env.kafka_key(), "gen.1.cutoff");
        assert_eq!(env.extra.len(), 2);
        // re-encoding keeps every field and value
        let again = env.encode();
        assert_eq!(again.len(), bytes.len());
        let a = rmpv::decode::read_value(&mut &bytes[..]).unwrap();
        let b = rmpv::decode::read_value(&mut &again[..]).unwrap();
        assert_eq!(a, b);
        assert_eq!(Envelope::decode(Topic::Params, &again).unwrap(), env);
    }

    #[test]
    fn bin_strings_from_old_producers_are_accepted() {
        let mut e = common();
        e[1] = ("session_id", Value::Binary(b"s-1".to_vec()));
        e.push(("type", Value::Binary(b"note_on".to_vec())));
        e.push(("note", Value::from(60)));
        e.push(("actor", Value::Binary(b"midi".to_vec())));
        let env = Envelope::decode(Topic::Events, &map(e)).unwrap();
        assert_eq!(env.session_id, "s-1");
        assert_eq!(env.actor, Some(Actor::Midi));
        assert_eq!(
            env.body,
            Body::Event {
                event_type: "note_on".into()
            }
        );
        assert_eq!(
            env.extra_field("note").unwrap().decode().unwrap(),
            Value::from(60)
        );
    }

    #[test]
    fn every_required_field_is_named_when_missing() {
        for missing in ["session_id", "producer_id", "seq", "ts_ms"] {
            let mut e = common();
            e.retain(|(k, _)| *k != missing);
            e.push(("type", Value::from("x")));
            let err = Envelope::decode(Topic::Events, &map(e)).unwrap_err();
            assert_eq!(err, EnvelopeError::Missing(missing));
            assert!(err.to_string().contains(missing));
        }
    }

    #[test]
    fn garbage_is_a_typed_error() {
        assert!(matches!(
            Envelope::decode(Topic::Params, b"\xc1\xc1garbage"),
            Err(EnvelopeError::Msgpack(DecodeError::InvalidMarker {
                at: 0,
                ..
            }))
        ));
        assert_eq!(
            Envelope::decode(Topic::Params, &[0x93, 1, 2, 3]),
            Err(EnvelopeError::NotAMap(Kind::Array))
        );
        assert!(matches!(
            Envelope::decode(Topic::Params, &[0x85, 0xa1]),
            Err(EnvelopeError::Msgpack(DecodeError::Eof { .. }))
        ));
        assert!(matches!(
            Envelope::decode(Topic::Params, &[]),
            Err(EnvelopeError::Msgpack(DecodeError::Eof { .. }))
        ));
        let mut e = common();
        e[3] = ("seq", Value::from("seven"));
        assert!(matches!(
            Envelope::decode(Topic::Events, &map(e)),
            Err(EnvelopeError::Field { field, .. }) if field == "seq"
        ));
    }

    #[test]
    fn each_topic_has_its_key() {
        let mut m = common();
        m.extend([
            ("path", Value::from("bus.3")),
            ("bus", Value::from(3)),
            ("value", Value::F64(0.5)),
            ("source_type", Value::from("lfo")),
            ("actor", Value::from("mod")),
        ]);
        let env = Envelope::decode(Topic::Mod, &map(m)).unwrap();
        assert_eq!(env.kafka_key(), "bus.3");
        assert_eq!(env.topic(), Topic::Mod);

        let mut a = common();
        a.extend([
            ("path", Value::from("master")),
            ("peak", Value::F64(0.9)),
            ("rms", Value::Nil),
        ]);
        let env = Envelope::decode(Topic::Audio, &map(a)).unwrap();
        assert_eq!(env.kafka_key(), "master");

        let mut s = common();
        s.extend([
            ("key", Value::from("preset")),
            (
                "state",
                Value::Map(vec![(Value::from("gen.1.cutoff"), Value::F64(0.1))]),
            ),
        ]);
        let env = Envelope::decode(Topic::State, &map(s.clone())).unwrap();
        assert_eq!(env.kafka_key(), "preset");
        let back = rmpv::decode::read_value(&mut &env.encode()[..]).unwrap();
        let orig = rmpv::decode::read_value(&mut &map(s)[..]).unwrap();
        assert_eq!(back, orig);
    }
}
