//! Arbitrary bytes as an envelope on each of the five topics.
//!
//! Whatever the bytes, decoding returns (an envelope or an error) without
//! panicking. When it decodes: encoding and decoding again gives an equal
//! envelope and the same bytes; the session reader's in-place field parser
//! agrees with it field for field; and the session writer accepts the payload
//! and the reader reads it back byte for byte.

#![no_main]

use std::path::Path;

use integr8tor::envelope::{Actor, Body, Envelope, Topic};
use integr8tor::msgpack::Cursor;
use integr8tor::session::reader::{snapshot_entries, EventFields};
use integr8tor::session::{ReadOptions, Reader, RecordRef, SessionWriter};
use libfuzzer_sys::fuzz_target;

fn bits(v: Option<f64>) -> Option<u64> {
    v.map(f64::to_bits)
}

/// Equality with floats compared bit for bit (NaN equals itself).
fn same(a: &Envelope, b: &Envelope) -> bool {
    let body = match (&a.body, &b.body) {
        (
            Body::Param {
                path: p1,
                value: v1,
                value_mapped: m1,
                has_value_mapped: h1,
            },
            Body::Param {
                path: p2,
                value: v2,
                value_mapped: m2,
                has_value_mapped: h2,
            },
        ) => p1 == p2 && v1.to_bits() == v2.to_bits() && bits(*m1) == bits(*m2) && h1 == h2,
        (
            Body::Mod {
                path: p1,
                bus: b1,
                value: v1,
                source_type: s1,
            },
            Body::Mod {
                path: p2,
                bus: b2,
                value: v2,
                source_type: s2,
            },
        ) => p1 == p2 && b1 == b2 && v1.to_bits() == v2.to_bits() && s1 == s2,
        (
            Body::Audio {
                path: p1,
                peak: k1,
                rms: r1,
                has_rms: h1,
            },
            Body::Audio {
                path: p2,
                peak: k2,
                rms: r2,
                has_rms: h2,
            },
        ) => p1 == p2 && k1.to_bits() == k2.to_bits() && bits(*r1) == bits(*r2) && h1 == h2,
        (x, y) => x == y,
    };
    body && a.v == b.v
        && a.session_id == b.session_id
        && a.producer_id == b.producer_id
        && a.seq == b.seq
        && a.ts_ms == b.ts_ms
        && a.actor == b.actor
        && a.source == b.source
        && a.extra == b.extra
}

/// The name and value the session core files an envelope under.
fn name_and_value(env: &Envelope) -> (&str, Option<f64>) {
    match &env.body {
        Body::Param { path, value, .. } | Body::Mod { path, value, .. } => (path, Some(*value)),
        Body::Audio { path, peak, .. } => (path, Some(*peak)),
        Body::Event { event_type } => (event_type, None),
        Body::State { key, .. } => (key, None),
    }
}

fn check(topic: Topic, data: &[u8]) {
    let Ok(env) = Envelope::decode(topic, data) else {
        return;
    };
    assert_eq!(env.topic(), topic);

    // encode → decode round-trips, and the encoding is stable
    let bytes = env.encode();
    let again = Envelope::decode(topic, &bytes)
        .unwrap_or_else(|e| panic!("re-decoding {env:?} from {bytes:?} failed: {e}"));
    assert!(same(&env, &again), "{env:?}\n!=\n{again:?}");
    assert_eq!(again.encode(), bytes, "encoding is not stable");
    assert_eq!(env.actor_kind(), again.actor_kind());
    if let Some(Actor::Other(name)) = &env.actor {
        assert!(
            !matches!(
                name.as_str(),
                "user" | "mod" | "midi" | "preset" | "replay" | "telemetry"
            ),
            "a known actor decoded as Other({name})"
        );
    }

    // the reader's in-place field parser accepts what the decoder accepts, and agrees
    let mut c = Cursor::new(data);
    let f = EventFields::parse(Some(topic), &mut c)
        .unwrap_or_else(|e| panic!("Envelope::decode accepted what EventFields refuses: {e:?}"));
    assert_eq!(c.pos(), data.len(), "EventFields read a different extent");
    assert_eq!(f.ts_ms, env.ts_ms);
    assert_eq!(f.seq, env.seq);
    assert_eq!(f.session_id, env.session_id.as_bytes());
    assert_eq!(f.producer_id, env.producer_id.as_bytes());
    assert_eq!(f.actor, env.actor_kind());
    let (name, value) = name_and_value(&env);
    assert_eq!(f.name, Some(name.as_bytes()));
    match value {
        Some(v) => assert_eq!(f.value.to_bits(), v.to_bits()),
        None => assert!(f.value.is_nan()),
    }

    // the writer takes it as it is, and the reader gives the same bytes back
    let mut file = Vec::new();
    {
        let mut w = SessionWriter::new(&mut file, Path::new("fuzz"));
        w.append_event(topic.name(), Some(env.kafka_key()), data)
            .unwrap_or_else(|e| panic!("the writer refused a valid envelope: {e}"));
        w.flush().unwrap();
    }
    let mut r = Reader::new(&file[..], Path::new("fuzz"), ReadOptions::default());
    match r
        .next()
        .expect("reading the writer's record")
        .map(|l| l.record)
    {
        Some(RecordRef::Event {
            topic: t,
            known_topic,
            key,
            data: back,
            fields,
        }) => {
            assert_eq!(t, topic.name().as_bytes());
            assert_eq!(known_topic, Some(topic));
            assert_eq!(key, Some(env.kafka_key().as_bytes()));
            assert_eq!(back, data);
            assert_eq!(fields.ts_ms, env.ts_ms);
        }
        other => panic!("expected the event back, got {other:?}"),
    }
    // the first event is always followed by a snapshot of the state
    match r.next().expect("reading the snapshot").map(|l| l.record) {
        Some(RecordRef::Snapshot { ts_ms, state }) => {
            assert_eq!(ts_ms, env.ts_ms);
            let mut entries = Vec::new();
            snapshot_entries(state, |p, v| entries.push((p.to_vec(), v.to_bits()))).unwrap();
            match env.param() {
                Some((p, v)) => assert_eq!(entries, vec![(p.as_bytes().to_vec(), v.to_bits())]),
                None => assert!(entries.is_empty()),
            }
        }
        other => panic!("expected a snapshot, got {other:?}"),
    }
    assert!(r.next().unwrap().is_none());
    assert!(r.report().is_clean());
    assert_eq!(r.report().good_bytes, file.len() as u64);
}

fuzz_target!(|data: &[u8]| {
    for topic in Topic::ALL {
        check(topic, data);
    }
});
