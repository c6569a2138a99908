//! Reliability suite "names and paths" (see RELIABILITY.md).
//!
//! File names never derive from data, and nothing a recorder writes escapes
//! its sessions folder: messages whose paths, keys, event types, session and
//! producer ids look like file paths (`../../x`, `/tmp/evil`, NUL bytes,
//! separators) are recorded into one file named by the start time, inside
//! the folder, and nothing else appears anywhere beside it.

use std::time::{Duration, Instant};

use integr8tor::engine::{new_session_path, Recorder, RecorderConfig, RecorderEvent};
use integr8tor::kafka::{unix_ms_now, Connection, EmbeddedBroker, StartFrom};
use integr8tor::Topic;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rmpv::Value;

fn hostile(topic: Topic, seq: u64, text: &str) -> Vec<u8> {
    let mut e: Vec<(Value, Value)> = vec![
        ("session_id".into(), text.into()),
        ("producer_id".into(), format!("{text}/producer").into()),
        ("seq".into(), seq.into()),
        ("ts_ms".into(), (1_790_000_000_000i64 + seq as i64).into()),
        ("actor".into(), "user".into()),
    ];
    match topic {
        Topic::Params => {
            e.push(("path".into(), text.into()));
            e.push(("value".into(), Value::F64(0.5)));
        }
        _ => e.push(("type".into(), text.into())),
    }
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &Value::Map(e)).unwrap();
    out
}

fn tree(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn file_names_never_derive_from_data_and_nothing_escapes_the_sessions_folder() {
    let broker = EmbeddedBroker::start(None).expect("embedded broker");
    let conn = Connection::to_embedded(&broker);
    let root = tempfile::tempdir().unwrap();
    let sessions = root.path().join("sessions");
    let texts = [
        "../../escaped",
        "/tmp/integr8tor-evil",
        "a/b/../../../c",
        "nul\0byte",
        "..",
        "con:aux|*?",
        "session-2026-01-01-000000.msgpack",
    ];
    let p: BaseProducer = conn
        .client_config(&[("linger.ms", "0".to_owned())])
        .create()
        .unwrap();
    let mut seq = 0;
    for text in texts {
        for topic in [Topic::Params, Topic::Events] {
            seq += 1;
            let payload = hostile(topic, seq, text);
            p.send(BaseRecord::to(topic.name()).key(text).payload(&payload))
                .map_err(|(e, _)| e)
                .unwrap();
        }
    }
    p.flush(Duration::from_secs(10)).unwrap();

    let recorder = Recorder::start(
        &conn,
        RecorderConfig {
            start: StartFrom::Earliest,
            group_id: format!("paths-{}-{}", std::process::id(), unix_ms_now()),
            ..RecorderConfig::new(&sessions)
        },
    )
    .unwrap();
    let path = recorder.path().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut events = 0;
    while events < seq && Instant::now() < deadline {
        if let Ok(RecorderEvent::Stats(s)) =
            recorder.events().recv_timeout(Duration::from_millis(100))
        {
            events = s.events;
        }
    }
    let summary = recorder.stop().unwrap();
    assert_eq!(
        summary.stats.events, seq,
        "every hostile message is data, recorded"
    );

    // one file, in the folder, named by its start time only
    assert_eq!(path.parent(), Some(sessions.as_path()));
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with("session-") && name.ends_with(".msgpack"),
        "{name}"
    );
    let stamp = &name["session-".len()..name.len() - ".msgpack".len()];
    assert!(
        stamp.chars().all(|c| c.is_ascii_digit() || c == '-'),
        "{name} holds only the time"
    );
    assert_eq!(tree(root.path()), [sessions.clone(), path.clone()]);

    // a name that is taken gets a suffix, never an overwrite
    let next = new_session_path(&sessions, unix_ms_now());
    assert_eq!(next.parent(), Some(sessions.as_path()));
    assert!(!next.exists());
}
