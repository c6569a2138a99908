//! The Kafka layer against the embedded broker (librdkafka's mock cluster, a
//! real Kafka-protocol broker in this process).

mod kafka_support;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use integr8tor::clock::VirtualClock;
use integr8tor::kafka::{
    Connection, ConnectionState, Draft, EmbeddedBroker, Endpoint, PublishOutcome, Publisher,
    PublisherConfig, PublisherEvent, StartFrom, Subscriber, SubscriberConfig,
};
use integr8tor::{Actor, Body, Envelope, RawValue, Topic};
use kafka_support::*;

fn broker() -> (EmbeddedBroker, Connection) {
    let broker = EmbeddedBroker::start(None).expect("embedded broker");
    let conn = Connection::to_embedded(&broker);
    (broker, conn)
}

fn value_of(e: &Envelope) -> f64 {
    match &e.body {
        Body::Param { value, .. } | Body::Mod { value, .. } => *value,
        Body::Audio { peak, .. } => *peak,
        Body::Event { .. } | Body::State { .. } => f64::NAN,
    }
}

#[test]
fn every_topic_round_trips_with_keys_and_per_key_order() {
    let (_broker, conn) = broker();
    let publisher = bulk_publisher(&conn, "test.roundtrip", "session-rt");
    let sub = subscriber(&conn, &Topic::ALL, &unique_group("rt"), StartFrom::Earliest);

    let mut sent: Vec<(Topic, String)> = Vec::new();
    for round in 0..25 {
        let v = round as f64 / 25.0;
        for p in 0..8 {
            let path = format!("gen.{p}.cutoff");
            assert!(matches!(
                publisher.publish(Draft::param(Actor::User, path.clone(), v)),
                PublishOutcome::Queued { .. }
            ));
            sent.push((Topic::Params, path));
        }
        for bus in 0..4 {
            publisher.publish(Draft::mod_value(bus, v, Some("lfo".into())));
            sent.push((Topic::Mod, format!("bus.{bus}")));
        }
        for src in ["gen.1", "master"] {
            publisher.publish(Draft::audio(src, v, Some(v / 2.0)));
            sent.push((Topic::Audio, src.to_owned()));
        }
        if round % 5 == 0 {
            for ty in ["note_on", "note_off", "preset_load"] {
                let fields = vec![
                    (
                        "note".to_owned(),
                        RawValue::from_value(&rmpv::Value::from(60 + round)),
                    ),
                    (
                        "velocity".to_owned(),
                        RawValue::from_value(&rmpv::Value::F64(v)),
                    ),
                ];
                publisher.publish(Draft::event(Actor::Midi, ty, fields));
                sent.push((Topic::Events, ty.to_owned()));
            }
            let state = RawValue::from_value(&rmpv::Value::Map(vec![(
                rmpv::Value::from("gen.1.cutoff"),
                rmpv::Value::F64(v),
            )]));
            publisher.publish(Draft::state("preset", state));
            sent.push((Topic::State, "preset".to_owned()));
        }
    }
    let total = sent.len();
    publisher.flush(Duration::from_secs(20)).expect("flush");
    assert_eq!(publisher.stats().delivered, total as u64);

    let mut got = Collected::default();
    collect_messages(&sub, &mut got, total, Duration::from_secs(30));
    assert_eq!(got.messages.len(), total);

    let mut per_topic_key: BTreeMap<(Topic, String), Vec<&integr8tor::kafka::Received>> =
        BTreeMap::new();
    for m in &got.messages {
        let key = m.key().map(str::to_owned).expect("every message has a key");
        assert_eq!(
            key,
            m.envelope().kafka_key(),
            "key follows docs/formats.md section 1"
        );
        let envelope = m.envelope();
        assert_eq!(envelope.topic(), m.topic);
        assert_eq!(envelope.session_id, "session-rt");
        assert_eq!(envelope.producer_id, "test.roundtrip");
        // the fields the subscriber keeps beside the payload are the envelope's
        assert_eq!(m.envelope_key(), envelope.kafka_key());
        assert_eq!(m.ts_ms, envelope.ts_ms);
        assert_eq!(m.actor, envelope.actor_kind());
        assert_eq!(m.param(), envelope.param());
        assert_eq!(m.view().to_envelope(), envelope);
        // the raw payload is what was on the wire and decodes to the same envelope
        assert_eq!(
            Envelope::decode(m.topic, m.payload()).unwrap(),
            m.envelope()
        );
        per_topic_key.entry((m.topic, key)).or_default().push(m);
    }
    let mut expected_counts: HashMap<(Topic, String), usize> = HashMap::new();
    for k in &sent {
        *expected_counts.entry(k.clone()).or_default() += 1;
    }
    assert_eq!(per_topic_key.len(), expected_counts.len());
    for (k, msgs) in &per_topic_key {
        assert_eq!(msgs.len(), expected_counts[k], "{k:?}");
        // per key: seq strictly increasing in arrival order, offsets too, values in publish order
        for w in msgs.windows(2) {
            assert!(
                w[0].envelope().seq < w[1].envelope().seq,
                "{k:?} out of order"
            );
            assert!(w[0].offset < w[1].offset);
            assert_eq!(w[0].partition, w[1].partition, "one key, one partition");
            let (a, b) = (value_of(&w[0].envelope()), value_of(&w[1].envelope()));
            assert!(a.is_nan() || a < b, "{k:?}: {a} then {b}");
        }
    }
    // params keys spread over the 4 partitions, extras survive the trip
    let params_partitions: std::collections::HashSet<i32> = got
        .messages
        .iter()
        .filter(|m| m.topic == Topic::Params)
        .map(|m| m.partition)
        .collect();
    assert!(params_partitions.len() > 1, "{params_partitions:?}");
    let note_on = got
        .messages
        .iter()
        .find(|m| m.key() == Some("note_on"))
        .unwrap();
    assert_eq!(
        note_on
            .envelope()
            .extra_field("note")
            .unwrap()
            .decode()
            .unwrap(),
        rmpv::Value::from(60)
    );
    assert_eq!(sub.stats().duplicates, 0);
    assert_eq!(sub.stats().malformed, 0);
}

#[test]
fn a_triple_delivered_twice_reaches_the_subscriber_once() {
    let (_broker, conn) = broker();
    let sub = subscriber(
        &conn,
        &[Topic::Events, Topic::Params],
        &unique_group("dup"),
        StartFrom::Earliest,
    );
    let raw = raw_producer(&conn);
    let a = envelope_bytes(Topic::Events, "s", "py", 1);
    let b = envelope_bytes(Topic::Events, "s", "py", 2);
    send_raw(&raw, Topic::Events, "note_on", &a);
    send_raw(&raw, Topic::Events, "note_on", &a);
    send_raw(&raw, Topic::Events, "note_on", &b);
    send_raw(&raw, Topic::Events, "note_on", &a);
    // the same triple on another topic is the same message re-sent: dropped too
    send_raw(
        &raw,
        Topic::Params,
        "gen.1.cutoff",
        &envelope_bytes(Topic::Params, "s", "py", 2),
    );
    // same seq, another producer or session: different messages
    send_raw(
        &raw,
        Topic::Events,
        "note_on",
        &envelope_bytes(Topic::Events, "s", "other", 1),
    );
    send_raw(
        &raw,
        Topic::Events,
        "note_on",
        &envelope_bytes(Topic::Events, "s2", "py", 1),
    );

    let mut got = Collected::default();
    let all_read = collect_until(&sub, &mut got, Duration::from_secs(20), |_| {
        sub.stats().received >= 7
    });
    assert!(all_read, "{:?}", sub.stats());
    // a marker behind them on each partition used: once both are in, every
    // copy sent before them has been delivered or dropped
    send_raw(
        &raw,
        Topic::Events,
        "note_on",
        &envelope_bytes(Topic::Events, "marker", "py", 1),
    );
    send_raw(
        &raw,
        Topic::Params,
        "gen.1.cutoff",
        &envelope_bytes(Topic::Params, "marker", "py", 2),
    );
    let markers = collect_until(&sub, &mut got, Duration::from_secs(20), |c| {
        c.messages
            .iter()
            .filter(|m| m.envelope().session_id == "marker")
            .count()
            == 2
    });
    assert!(markers, "{:?}", sub.stats());
    let triples: Vec<(String, String, u64)> = got
        .messages
        .iter()
        .filter(|m| m.envelope().session_id != "marker")
        .map(|m| {
            (
                m.envelope().session_id.clone(),
                m.envelope().producer_id.clone(),
                m.envelope().seq,
            )
        })
        .collect();
    assert_eq!(
        triples,
        vec![
            ("s".into(), "py".into(), 1),
            ("s".into(), "py".into(), 2),
            ("s".into(), "other".into(), 1),
            ("s2".into(), "py".into(), 1),
        ]
    );
    let stats = sub.stats();
    assert_eq!(stats.duplicates, 3);
    assert_eq!(stats.delivered, 4 + 2, "the four, and the markers");
}

#[test]
fn malformed_messages_are_counted_located_and_skipped() {
    let (_broker, conn) = broker();
    let sub = subscriber(
        &conn,
        &[Topic::Events],
        &unique_group("bad"),
        StartFrom::Earliest,
    );
    let raw = raw_producer(&conn);
    send_raw(
        &raw,
        Topic::Events,
        "note_on",
        &envelope_bytes(Topic::Events, "s", "py", 1),
    );
    send_raw(
        &raw,
        Topic::Events,
        "note_on",
        b"\xc1\xc1 this is not msgpack",
    );
    let mut no_seq = envelope_bytes(Topic::Events, "s", "py", 99);
    // rebuild without seq
    {
        let mut v = rmpv::decode::read_value(&mut &no_seq[..]).unwrap();
        if let rmpv::Value::Map(entries) = &mut v {
            entries.retain(|(k, _)| k.as_str() != Some("seq"));
        }
        no_seq.clear();
        rmpv::encode::write_value(&mut no_seq, &v).unwrap();
    }
    send_raw(&raw, Topic::Events, "note_on", &no_seq);
    send_raw(
        &raw,
        Topic::Events,
        "note_on",
        &envelope_bytes(Topic::Events, "s", "py", 2),
    );

    let mut got = Collected::default();
    let done = collect_until(&sub, &mut got, Duration::from_secs(20), |c| {
        c.messages.len() >= 2 && c.malformed.len() >= 2
    });
    assert!(done, "{got:?}");
    assert_eq!(
        got.messages
            .iter()
            .map(|m| m.envelope().seq)
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(got.malformed.len(), 2);
    let bad = &got.malformed[0];
    assert_eq!(
        (bad.topic.as_str(), bad.partition, bad.offset),
        ("noise.events", 0, 1)
    );
    assert!(bad.error.contains("MessagePack"), "{}", bad.error);
    let no_seq = &got.malformed[1];
    assert_eq!(no_seq.offset, 2);
    assert!(no_seq.error.contains("seq"), "{}", no_seq.error);
    assert_eq!(no_seq.key.as_deref(), Some("note_on"));
    // arrival order is kept: message, bad, bad, message
    assert_eq!(got.order.replace('C', ""), "MXXM");
    assert_eq!(sub.stats().malformed, 2);
}

/// Publishes one marker per key after everything else and waits until all
/// have arrived: per key (one partition) order means that every message sent
/// before them has arrived too. Returns the markers' seqs.
fn publish_markers_and_wait(
    publisher: &Publisher,
    sub: &Subscriber,
    got: &mut Collected,
    keys: &[String],
) -> Vec<u64> {
    let seqs: Vec<u64> = keys
        .iter()
        .map(
            |k| match publisher.publish(Draft::param(Actor::User, k.clone(), 1.0)) {
                PublishOutcome::Queued { seq } => seq,
                other => panic!("marker on {k}: {other:?}"),
            },
        )
        .collect();
    let all = collect_until(sub, got, Duration::from_secs(60), |c| {
        seqs.iter()
            .all(|s| c.messages.iter().any(|m| m.envelope().seq == *s))
    });
    assert!(
        all,
        "markers {seqs:?} did not all arrive: {:?}",
        sub.stats()
    );
    seqs
}

#[test]
fn an_outage_loses_nothing_and_publishing_goes_on_queueing() {
    let (broker, conn) = broker();
    let publisher = bulk_publisher(&conn, "test.outage", "session-out");
    let sub = subscriber(
        &conn,
        &[Topic::Params],
        &unique_group("out"),
        StartFrom::Earliest,
    );
    let mut got = Collected::default();

    let mut accepted = Vec::new();
    for i in 0..100 {
        if let PublishOutcome::Queued { seq } =
            publisher.publish(Draft::param(Actor::User, format!("p.{}", i % 10), 0.5))
        {
            accepted.push(seq);
        }
    }
    collect_messages(&sub, &mut got, 100, Duration::from_secs(20));

    broker.set_down().expect("down");
    // publish through the outage until the subscriber has reported it and
    // 300 messages wait in the queue: every one is queued, none dropped
    // (how long a publish call takes during an outage is measured by
    // benches/kafka_throughput.rs)
    let retrying = |c: &Collected| {
        c.states
            .iter()
            .any(|s| matches!(s, ConnectionState::Retrying { .. }))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut during = 0;
    while during < 300 || !retrying(&got) {
        assert!(
            Instant::now() < deadline,
            "the outage was never reported: {:?}",
            got.states
        );
        let path = format!("p.{}", during % 10);
        match publisher.publish(Draft::param(Actor::User, path, 0.25)) {
            PublishOutcome::Queued { seq } => accepted.push(seq),
            other => panic!("publish {during} during the outage: {other:?}"),
        }
        during += 1;
        // keep draining so the subscriber is never blocked by us
        while let Ok(e) = sub.events().try_recv() {
            got.absorb(e);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    broker.set_up().expect("up");

    let n = accepted.len();
    collect_messages(&sub, &mut got, n, Duration::from_secs(60));
    let keys: Vec<String> = (0..10).map(|k| format!("p.{k}")).collect();
    let markers = publish_markers_and_wait(&publisher, &sub, &mut got, &keys);
    let mut seqs: Vec<u64> = got
        .messages
        .iter()
        .map(|m| m.envelope().seq)
        .filter(|s| !markers.contains(s))
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, accepted, "every accepted message exactly once");

    publisher.flush(Duration::from_secs(10)).unwrap();
    let stats = publisher.stats();
    assert_eq!(stats.delivered, (n + markers.len()) as u64);
    assert_eq!(stats.delivery_failed, 0);
    assert_eq!(stats.queue_full, 0);
    // the subscriber noticed, and came back
    let retry_at = got
        .states
        .iter()
        .position(|s| matches!(s, ConnectionState::Retrying { .. }))
        .expect("the outage is reported as retrying");
    assert!(
        got.states[retry_at..].contains(&ConnectionState::Connected),
        "{:?}",
        got.states
    );
    if let ConnectionState::Retrying { error } = &got.states[retry_at] {
        assert!(!error.is_empty());
    }
}

#[test]
fn a_full_queue_drops_and_counts_instead_of_waiting() {
    let (broker, conn) = broker();
    let conn = conn.with_option("queue.buffering.max.messages", "10");
    let publisher = bulk_publisher(&conn, "test.full", "s");
    broker.set_down().unwrap();
    let mut outcomes = Vec::new();
    for i in 0..50 {
        outcomes.push(publisher.publish(Draft::param(Actor::User, format!("p{i}"), 0.1)));
    }
    let queued = outcomes
        .iter()
        .filter(|o| matches!(o, PublishOutcome::Queued { .. }))
        .count();
    let full = outcomes
        .iter()
        .filter(|o| **o == PublishOutcome::QueueFull)
        .count();
    assert_eq!((queued, full), (10, 40));
    // dropped messages do not use up seq numbers
    assert_eq!(publisher.next_seq(), 11);
    assert_eq!(publisher.stats().queue_full, 40);
    broker.set_up().unwrap();
    publisher.flush(Duration::from_secs(30)).unwrap();
    assert_eq!(publisher.stats().delivered, 10);
}

#[test]
fn delivery_failures_arrive_as_counted_events() {
    let (broker, conn) = broker();
    let conn = conn.with_option("message.timeout.ms", "1500");
    let publisher = bulk_publisher(&conn, "test.fail", "s");
    broker.set_down().unwrap();
    for i in 0..3 {
        assert!(matches!(
            publisher.publish(Draft::param(Actor::User, format!("p{i}"), 0.1)),
            PublishOutcome::Queued { .. }
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut failed = Vec::new();
    while failed.len() < 3 && Instant::now() < deadline {
        if let Ok(PublisherEvent::DeliveryFailed {
            seq, topic, error, ..
        }) = publisher.events().recv_timeout(Duration::from_millis(200))
        {
            assert_eq!(topic, "noise.params");
            assert!(error.contains("timed out"), "{error}");
            failed.push(seq);
        }
    }
    failed.sort_unstable();
    assert_eq!(failed, vec![1, 2, 3]);
    assert_eq!(publisher.stats().delivery_failed, 3);
    assert_eq!(publisher.stats().delivered, 0);
}

#[test]
fn rate_limits_drop_the_excess_and_keep_the_last_value() {
    let (_broker, conn) = broker();
    let clock = VirtualClock::new();
    let publisher = Publisher::new(
        &conn,
        PublisherConfig::new("test.rate", "s"),
        Arc::new(clock.clone()),
    )
    .unwrap();
    let sub = subscriber(
        &conn,
        &[Topic::Params],
        &unique_group("rate"),
        StartFrom::Earliest,
    );

    // a fast gesture: 10 values at one instant on one path
    let outcomes: Vec<_> = (1..=10)
        .map(|i| publisher.publish(Draft::param(Actor::User, "gen.1.cutoff", i as f64 / 10.0)))
        .collect();
    let queued = outcomes
        .iter()
        .filter(|o| matches!(o, PublishOutcome::Queued { .. }))
        .count();
    assert_eq!(queued, 2, "60 Hz with a burst of two");
    assert!(matches!(outcomes[2], PublishOutcome::RateLimited { .. }));
    assert_eq!(publisher.stats().rate_limited, 8);
    // replay is never limited
    for i in 0..20 {
        assert!(matches!(
            publisher.publish(Draft::param(Actor::Replay, "gen.2.cutoff", i as f64 / 20.0)),
            PublishOutcome::Queued { .. }
        ));
    }
    // nothing is released before the key opens; then the last value goes
    assert_eq!(publisher.flush_rate_limited(), 0);
    clock.advance(Duration::from_millis(17));
    assert_eq!(publisher.flush_rate_limited(), 1);
    assert_eq!(publisher.held_count(), 0);

    let mut got = Collected::default();
    collect_messages(&sub, &mut got, 23, Duration::from_secs(20));
    let cutoff: Vec<f64> = got
        .messages
        .iter()
        .filter_map(|m| {
            m.envelope()
                .param()
                .filter(|(p, _)| *p == "gen.1.cutoff")
                .map(|(_, v)| v)
        })
        .collect();
    assert_eq!(cutoff, vec![0.1, 0.2, 1.0]);
}

#[test]
fn a_new_session_restarts_seq_and_is_not_taken_for_a_duplicate() {
    let (_broker, conn) = broker();
    let publisher = bulk_publisher(&conn, "test.session", "first");
    let sub = subscriber(
        &conn,
        &[Topic::Events],
        &unique_group("sess"),
        StartFrom::Earliest,
    );
    for _ in 0..3 {
        publisher.publish(Draft::event(Actor::User, "marker", vec![]));
    }
    publisher.set_session("second");
    assert_eq!(publisher.next_seq(), 1);
    for _ in 0..2 {
        publisher.publish(Draft::event(Actor::User, "marker", vec![]));
    }
    let mut got = Collected::default();
    collect_messages(&sub, &mut got, 5, Duration::from_secs(20));
    let ids: Vec<(String, u64)> = got
        .messages
        .iter()
        .map(|m| (m.envelope().session_id.clone(), m.envelope().seq))
        .collect();
    assert_eq!(
        ids,
        vec![
            ("first".into(), 1),
            ("first".into(), 2),
            ("first".into(), 3),
            ("second".into(), 1),
            ("second".into(), 2)
        ]
    );
}

#[test]
fn a_restarted_subscriber_resumes_where_it_committed() {
    let (_broker, conn) = broker();
    let publisher = bulk_publisher(&conn, "test.resume", "s");
    let group = unique_group("resume");
    for i in 0..10 {
        publisher.publish(Draft::param(Actor::User, format!("p{}", i % 3), 0.1));
    }
    publisher.flush(Duration::from_secs(10)).unwrap();
    let first = subscriber(&conn, &[Topic::Params], &group, StartFrom::Earliest);
    let mut got = Collected::default();
    collect_messages(&first, &mut got, 10, Duration::from_secs(20));
    first.stop();

    for i in 10..15 {
        publisher.publish(Draft::param(Actor::User, format!("p{}", i % 3), 0.2));
    }
    publisher.flush(Duration::from_secs(10)).unwrap();
    let second = subscriber(&conn, &[Topic::Params], &group, StartFrom::Earliest);
    let mut again = Collected::default();
    collect_messages(&second, &mut again, 5, Duration::from_secs(20));
    let keys: Vec<String> = (0..3).map(|k| format!("p{k}")).collect();
    let markers = publish_markers_and_wait(&publisher, &second, &mut again, &keys);
    let mut seqs: Vec<u64> = again
        .messages
        .iter()
        .map(|m| m.envelope().seq)
        .filter(|s| !markers.contains(s))
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (11..=15).collect::<Vec<_>>());
    assert_eq!(
        second.stats().received,
        5 + 3,
        "nothing before the commit is read again (five, and the markers)"
    );
}

#[test]
fn a_latest_subscriber_sees_only_what_comes_after_it_joined() {
    let (_broker, conn) = broker();
    let publisher = bulk_publisher(&conn, "test.latest", "s");
    publisher.publish(Draft::event(Actor::User, "before", vec![]));
    publisher.flush(Duration::from_secs(10)).unwrap();
    let sub = subscriber(
        &conn,
        &[Topic::Events],
        &unique_group("latest"),
        StartFrom::Latest,
    );
    let mut got = Collected::default();
    wait_connected(&sub, &mut got, Duration::from_secs(20));
    // "Latest" is resolved just after the assignment, so the first "after"
    // may still fall before it: keep publishing until one arrives.
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.messages.is_empty() && Instant::now() < deadline {
        publisher.publish(Draft::event(Actor::User, "after", vec![]));
        collect_until(&sub, &mut got, Duration::from_millis(300), |c| {
            !c.messages.is_empty()
        });
    }
    assert!(!got.messages.is_empty(), "nothing arrived after joining");
    assert!(
        got.messages.iter().all(|m| m.key() == Some("after")),
        "a latest subscriber read what came before it joined"
    );
}

#[test]
fn errors_from_librdkafka_are_in_words() {
    let conn = Connection::new("127.0.0.1:1").with_option("no.such.option", "1");
    let err = Publisher::new(&conn, PublisherConfig::new("p", "s"), clock()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("no.such.option") && text.contains("creating the producer"),
        "{text}"
    );
    let err = Subscriber::start(
        &Connection::new("127.0.0.1:1").with_option("security.protocol", "carrier-pigeon"),
        SubscriberConfig::new("g", &[Topic::Params]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("carrier-pigeon"), "{err}");

    // an unreachable broker is reported on the channel with librdkafka's words
    let sub = subscriber(
        &Connection::new("127.0.0.1:1"),
        &[Topic::Params],
        "g",
        StartFrom::Latest,
    );
    let mut got = Collected::default();
    let seen = collect_until(&sub, &mut got, Duration::from_secs(10), |c| {
        c.states
            .iter()
            .any(|s| matches!(s, ConnectionState::Retrying { error } if error.contains("refused")))
    });
    assert!(seen, "{:?}", got.states);
}

#[test]
fn no_brokers_means_the_embedded_broker() {
    let endpoint = Endpoint::open(None, vec![], None).unwrap();
    let broker = endpoint.embedded().expect("embedded broker started");
    assert!(broker.bootstrap().starts_with("127.0.0.1:"));
    assert!(endpoint.connection().is_embedded());
    let outcomes =
        integr8tor::kafka::create_topics(endpoint.connection(), 1, Duration::from_secs(10))
            .unwrap();
    assert_eq!(outcomes.len(), 5);
    assert!(outcomes
        .iter()
        .all(|(_, o)| matches!(o, integr8tor::kafka::TopicOutcome::Existed { .. })));
    assert_eq!(
        outcomes[0].1,
        integr8tor::kafka::TopicOutcome::Existed {
            partitions: Some(4)
        }
    );
    let external = Endpoint::open(Some("h:1"), vec![], None).unwrap();
    assert!(external.embedded().is_none());
}

#[test]
fn a_chosen_port_is_served_and_refused_when_taken() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let broker = EmbeddedBroker::start(Some(port)).unwrap();
    assert_eq!(broker.bootstrap(), format!("127.0.0.1:{port}"));
    let conn = Connection::to_embedded(&broker);
    let publisher = bulk_publisher(&conn, "test.port", "s");
    let sub = subscriber(
        &conn,
        &[Topic::Events],
        &unique_group("port"),
        StartFrom::Earliest,
    );
    publisher.publish(Draft::event(Actor::User, "hello", vec![]));
    let mut got = Collected::default();
    collect_messages(&sub, &mut got, 1, Duration::from_secs(20));

    let err = EmbeddedBroker::start(Some(port)).unwrap_err();
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn batches_stay_under_their_byte_budget_and_lose_nothing() {
    use integr8tor::kafka::SubscriberEvent;
    let (_broker, conn) = broker();
    let publisher = bulk_publisher(&conn, "test.budget", "s");
    for i in 0..300 {
        publisher.publish(Draft::param(Actor::User, format!("p{}", i % 5), 0.5));
    }
    publisher.flush(Duration::from_secs(10)).unwrap();
    let budget = 1_000;
    let sub = Subscriber::start(
        &conn,
        SubscriberConfig {
            max_batch_bytes: budget,
            ..SubscriberConfig::new(unique_group("budget"), &[Topic::Params])
                .start_from(StartFrom::Earliest)
        },
    )
    .unwrap();
    let mut seqs = Vec::new();
    let mut batches = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while seqs.len() < 300 && Instant::now() < deadline {
        if let Ok(SubscriberEvent::Messages(batch)) =
            sub.events().recv_timeout(Duration::from_millis(100))
        {
            batches += 1;
            let bytes: usize = batch.iter().map(|m| m.payload().len()).sum();
            assert!(bytes <= budget, "a batch of {bytes} bytes");
            for m in &batch {
                // every payload is its own, whole envelope
                let e = Envelope::decode(Topic::Params, m.payload()).unwrap();
                assert_eq!(m.param(), e.param());
                seqs.push(e.seq);
            }
        }
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=300).collect::<Vec<_>>());
    // one backlog of about 33 KB, so without the budget a few batches would do
    assert!(batches >= 30, "{batches} batches");
}

#[test]
fn a_caught_up_latest_subscriber_gets_every_new_producers_first_batch() {
    let (_broker, conn) = broker();
    let sub = subscriber(
        &conn,
        &[Topic::Params],
        &unique_group("first-batch"),
        StartFrom::Latest,
    );
    let mut got = Collected::default();
    wait_connected(&sub, &mut got, Duration::from_secs(20));
    // each round a producer that has never published sends one burst over
    // every partition; the subscriber is idle at the end of each partition
    for round in 0..4 {
        let before = got.messages.len();
        let p = bulk_publisher(&conn, &format!("test.first.{round}"), &format!("s-{round}"));
        for i in 0..63 {
            p.publish(Draft::param(
                Actor::User,
                format!("gen.{}.cutoff", i % 9),
                f64::from(i) / 63.0,
            ));
        }
        p.flush(Duration::from_secs(10)).unwrap();
        collect_messages(&sub, &mut got, before + 63, Duration::from_secs(30));
        assert_eq!(got.messages.len(), before + 63, "round {round}");
    }
}

/// A live view's subscriber takes its partitions directly (no group, so
/// nothing to rebalance): from the earliest it reads what the broker holds,
/// from the latest only what comes after it is connected, and both read on
/// across an outage.
#[test]
fn a_direct_subscriber_reads_from_where_it_starts_and_on_across_an_outage() {
    use integr8tor::kafka::Assignment;
    let (broker, conn) = broker();
    let publish = |producer: &str, n: u32| {
        let p = bulk_publisher(&conn, producer, producer);
        for i in 0..n {
            p.publish(Draft::param(
                Actor::User,
                format!("gen.{}.cutoff", i % 9),
                f64::from(i) / f64::from(n),
            ));
        }
        p.flush(Duration::from_secs(20)).unwrap();
    };
    publish("test.before", 40);
    let direct = |start: StartFrom| {
        Subscriber::start(
            &conn,
            SubscriberConfig {
                assignment: Assignment::Direct,
                ..SubscriberConfig::new(unique_group("direct"), &[Topic::Params]).start_from(start)
            },
        )
        .expect("subscriber")
    };
    let (earliest, latest) = (direct(StartFrom::Earliest), direct(StartFrom::Latest));
    let (mut from_start, mut from_now) = (Collected::default(), Collected::default());
    wait_connected(&latest, &mut from_now, Duration::from_secs(20));
    collect_messages(&earliest, &mut from_start, 40, Duration::from_secs(20));

    broker.set_down().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    broker.set_up().unwrap();
    publish("test.after", 30);
    collect_messages(&earliest, &mut from_start, 70, Duration::from_secs(30));
    collect_messages(&latest, &mut from_now, 30, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(300));
    for e in earliest.events().try_iter() {
        from_start.absorb(e);
    }
    for e in latest.events().try_iter() {
        from_now.absorb(e);
    }
    assert_eq!(from_start.messages.len(), 70, "everything once");
    assert_eq!(from_now.messages.len(), 30, "only what came after it");
    assert!(from_now
        .messages
        .iter()
        .all(|m| m.view().producer_id == "test.after"));
    assert!(
        from_now.states.contains(&ConnectionState::Connected),
        "{:?}",
        from_now.states
    );
}
