//! Reliability suite "bad input on the bus" (see RELIABILITY.md).
//!
//! A producer sends, to every one of the five topics, random bytes,
//! truncated MessagePack, arrays, maps with missing or mistyped fields,
//! payloads nested 65 levels deep, huge strings and keys, and messages too
//! large for the broker, interleaved with valid envelopes. A subscriber on
//! all five topics must count every bad message that reached the broker,
//! with its topic, partition and offset, and pass every valid one; a
//! recorder must record every valid message of the recorded topics byte for
//! byte and count the bad ones; the broker must refuse the oversized ones
//! with a size error. Nothing may panic. Deterministic: a fixed seed.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use integr8tor::engine::{Recorder, RecorderConfig, RecorderEvent};
use integr8tor::kafka::{
    unix_ms_now, Connection, EmbeddedBroker, StartFrom, Subscriber, SubscriberConfig,
    SubscriberEvent,
};
use integr8tor::session::{ReadOptions, Reader, RecordRef};
use integr8tor::Topic;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use rmpv::Value;

/// (topic, partition, offset) of each delivered message, or the error.
type Delivery = Result<(String, i32, i64), String>;

/// One message sent: what it is, topic, key, payload, and whether it is bad.
type Sent = (&'static str, Topic, Vec<u8>, Vec<u8>, bool);

#[derive(Default)]
struct Deliveries(Mutex<Vec<Delivery>>);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let r = match result {
            Ok(m) => Ok((m.topic().to_owned(), m.partition(), m.offset())),
            Err((e, _)) => Err(e.to_string()),
        };
        self.0.lock().unwrap().push(r);
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn valid(topic: Topic, seq: u64) -> Vec<u8> {
    let mut e: Vec<(Value, Value)> = vec![
        ("v".into(), 1.into()),
        ("session_id".into(), "s-bad-input".into()),
        (
            "producer_id".into(),
            format!("test.{}", topic.name()).into(),
        ),
        ("seq".into(), seq.into()),
        ("ts_ms".into(), (1_790_000_000_000i64 + seq as i64).into()),
    ];
    match topic {
        Topic::Params => {
            e.push(("actor".into(), "user".into()));
            e.push(("path".into(), format!("gen.{}.cutoff", seq % 8).into()));
            e.push(("value".into(), Value::F64(0.25)));
        }
        Topic::Mod => {
            e.push(("actor".into(), "mod".into()));
            e.push(("path".into(), "bus.3".into()));
            e.push(("bus".into(), 3.into()));
            e.push(("value".into(), Value::F64(0.5)));
        }
        Topic::Audio => {
            e.push(("actor".into(), "telemetry".into()));
            e.push(("path".into(), "master".into()));
            e.push(("peak".into(), Value::F64(0.9)));
        }
        Topic::Events => {
            e.push(("actor".into(), "midi".into()));
            e.push(("type".into(), "note_on".into()));
        }
        Topic::State => {
            e.push(("actor".into(), "preset".into()));
            e.push(("key".into(), "preset".into()));
            e.push((
                "state".into(),
                Value::Map(vec![("gen.1.cutoff".into(), Value::F64(0.5))]),
            ));
        }
    }
    encode(&Value::Map(e))
}

fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, v).unwrap();
    out
}

fn entries(payload: &[u8], key: &str) -> Vec<(Value, Value)> {
    match rmpv::decode::read_value(&mut &payload[..]).unwrap() {
        Value::Map(mut m) => {
            m.retain(|(k, _)| k.as_str() != Some(key));
            m
        }
        other => panic!("not a map: {other}"),
    }
}

fn with_field(payload: &[u8], key: &str, value: Value) -> Vec<u8> {
    let mut m = entries(payload, key);
    m.push((key.into(), value));
    encode(&Value::Map(m))
}

fn without_field(payload: &[u8], key: &str) -> Vec<u8> {
    encode(&Value::Map(entries(payload, key)))
}

/// `levels` nested arrays around 1: a payload field nesting that deep.
fn nested(levels: usize) -> Value {
    let mut v = Value::from(1);
    for _ in 0..levels {
        v = Value::Array(vec![v]);
    }
    v
}

/// One bad message: a name for messages, the key and the payload.
fn bad_inputs(topic: Topic, rng: &mut Rng, seq: u64) -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    let key = b"k".to_vec();
    let good = valid(topic, seq);
    let n = 1 + (rng.next() % 300) as usize;
    let mut out = vec![
        ("random bytes", key.clone(), rng.bytes(n)),
        ("truncated", key.clone(), good[..good.len() / 2].to_vec()),
        (
            "array",
            key.clone(),
            encode(&Value::Array(vec![1.into(), "x".into()])),
        ),
        ("no seq", key.clone(), without_field(&good, "seq")),
        (
            "seq as text",
            key.clone(),
            with_field(&good, "seq", "seven".into()),
        ),
        (
            "ts_ms as float",
            key.clone(),
            with_field(&good, "ts_ms", Value::F64(1.5)),
        ),
        // the envelope map is level 1: a field of 64 nested arrays makes 65
        (
            "65 levels",
            key.clone(),
            with_field(&good, "deep", nested(64)),
        ),
        (
            "trailing bytes",
            key.clone(),
            [good.clone(), vec![0xc0]].concat(),
        ),
        ("empty", key.clone(), Vec::new()),
    ];
    match topic {
        Topic::Params | Topic::Mod => out.push((
            "value as text",
            key.clone(),
            with_field(&good, "value", "loud".into()),
        )),
        Topic::Audio => out.push(("no peak", key, without_field(&good, "peak"))),
        Topic::Events => out.push(("type as int", key, with_field(&good, "type", 5.into()))),
        Topic::State => out.push(("state as array", key, with_field(&good, "state", nested(1)))),
    }
    out
}

#[test]
fn bad_input_on_every_topic_is_counted_with_its_location_and_every_valid_message_is_recorded() {
    let broker = EmbeddedBroker::start(None).expect("embedded broker");
    let conn = Connection::to_embedded(&broker);
    let group = |n: &str| format!("bad-input-{n}-{}-{}", std::process::id(), unix_ms_now());
    let sub = Subscriber::start(
        &conn,
        SubscriberConfig::new(group("sub"), &Topic::ALL).start_from(StartFrom::Earliest),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::start(
        &conn,
        RecorderConfig {
            start: StartFrom::Earliest,
            group_id: group("rec"),
            ..RecorderConfig::new(dir.path())
        },
    )
    .unwrap();
    let path = recorder.path().to_owned();

    let p: BaseProducer<Deliveries> = conn
        .client_config(&[
            ("linger.ms", "5".to_owned()),
            ("message.max.bytes", "4000000".to_owned()),
            ("batch.size", "500000".to_owned()),
        ])
        .create_with_context(Deliveries::default())
        .unwrap();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    // (name, topic, key, payload, bad)
    let mut sent: Vec<Sent> = Vec::new();
    let mut seq = 0;
    for round in 0..3 {
        for topic in Topic::ALL {
            for (name, key, payload) in bad_inputs(topic, &mut rng, 10_000 + round) {
                seq += 1;
                sent.push(("valid", topic, b"k".to_vec(), valid(topic, seq), false));
                sent.push((name, topic, key, payload, true));
            }
            // huge but valid: a 300 KB key and a 400 KB string field
            seq += 1;
            sent.push((
                "huge key",
                topic,
                vec![b'K'; 300_000],
                valid(topic, seq),
                false,
            ));
            seq += 1;
            let big = with_field(&valid(topic, seq), "blob", "b".repeat(400_000).into());
            sent.push(("huge string", topic, b"k".to_vec(), big, false));
            // too large for the broker: refused, never delivered
            seq += 1;
            let over = with_field(&valid(topic, seq), "blob", "o".repeat(1_500_000).into());
            sent.push(("oversized", topic, b"k".to_vec(), over, false));
        }
    }
    for (_, topic, key, payload, _) in &sent {
        let mut record = BaseRecord::to(topic.name()).key(&key[..]);
        if !payload.is_empty() {
            record = record.payload(&payload[..]);
        }
        p.send(record).map_err(|(e, _)| e).expect("enqueue");
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(60)).expect("flush");
    let reports = p.context().0.lock().unwrap().clone();
    assert_eq!(reports.len(), sent.len());

    // librdkafka reports deliveries per partition in order; match them up by
    // payload is not possible, so count: every oversized one is refused with
    // a size error and every other one delivered
    let refused: Vec<&String> = reports.iter().filter_map(|r| r.as_ref().err()).collect();
    let oversized = sent.iter().filter(|s| s.0 == "oversized").count();
    assert_eq!(refused.len(), oversized, "{refused:?}");
    assert!(refused.iter().all(|e| e.contains("size")), "{refused:?}");
    let delivered: Vec<&(String, i32, i64)> =
        reports.iter().filter_map(|r| r.as_ref().ok()).collect();
    let bad_count = sent.iter().filter(|s| s.4).count();
    let valid_count = sent.iter().filter(|s| !s.4 && s.0 != "oversized").count();
    assert_eq!(delivered.len(), bad_count + valid_count);

    // the subscriber: every bad one counted, located at a delivered offset
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut good, mut malformed) = (Vec::new(), Vec::new());
    while good.len() + malformed.len() < bad_count + valid_count && Instant::now() < deadline {
        match sub.events().recv_timeout(Duration::from_millis(100)) {
            Ok(SubscriberEvent::Messages(batch)) => good.extend(batch),
            Ok(SubscriberEvent::Malformed(m)) => malformed.push(m),
            _ => {}
        }
    }
    assert_eq!(malformed.len(), bad_count, "bad ones counted");
    assert_eq!(good.len(), valid_count, "valid ones passed");
    assert_eq!(sub.stats().malformed, bad_count as u64);
    let at: BTreeSet<(String, i32, i64)> = delivered.iter().map(|d| (*d).clone()).collect();
    let mut located = BTreeSet::new();
    for m in &malformed {
        let loc = (m.topic.clone(), m.partition, m.offset);
        assert!(
            at.contains(&loc),
            "{m:?} is not where a message was delivered"
        );
        assert!(!m.error.is_empty());
        located.insert(loc);
    }
    assert_eq!(located.len(), bad_count, "each bad message once");
    assert!(
        malformed.iter().any(|m| m.error.contains("64 levels")),
        "nesting is named as the reason"
    );

    // the recorder: every valid recordable message, byte for byte
    let recorded_topic = |t: Topic| matches!(t, Topic::Params | Topic::Mod | Topic::Events);
    let expected: Vec<&Vec<u8>> = sent
        .iter()
        .filter(|s| !s.4 && s.0 != "oversized" && recorded_topic(s.1))
        .map(|s| &s.3)
        .collect();
    let bad_recorded_topics = sent.iter().filter(|s| s.4 && recorded_topic(s.1)).count();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = None;
    while Instant::now() < deadline {
        for e in recorder.events().try_iter() {
            if let RecorderEvent::Stats(s) = e {
                last = Some(s);
            }
        }
        if last.is_some_and(|s| {
            s.events >= expected.len() as u64 && s.malformed >= bad_recorded_topics as u64
        }) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let summary = recorder.stop().unwrap();
    assert_eq!(summary.stats.events, expected.len() as u64, "{summary:?}");
    assert_eq!(summary.stats.malformed, bad_recorded_topics as u64);
    let mut reader = Reader::open(&path, ReadOptions::default()).unwrap();
    let mut in_file: Vec<Vec<u8>> = Vec::new();
    while let Some(rec) = reader.next().unwrap() {
        if let RecordRef::Event { data, .. } = rec.record {
            in_file.push(data.to_vec());
        }
    }
    assert!(reader.report().is_clean());
    let mut want: Vec<Vec<u8>> = expected.into_iter().cloned().collect();
    want.sort();
    in_file.sort();
    assert_eq!(in_file.len(), want.len());
    assert!(in_file == want, "the file holds exactly the valid payloads");
    println!(
        "bad input on the bus: {} messages sent, {bad_count} bad counted and located, \
         {valid_count} valid passed, {oversized} oversized refused, {} recorded",
        sent.len(),
        summary.stats.events
    );
}
