//! MCAP for Foxglove: JSON-encoded messages, each channel with a JSON Schema,
//! in lz4-compressed chunks with message and chunk indexes and a summary
//! section, so readers seek instead of scanning.
//!
//! Channels:
//!
//! - one per topic (`noise.params`, `noise.mod`, `noise.events`...), each
//!   message the whole envelope as [`json`](super::json) spells it;
//! - one per parameter path, `/param/gen.1.cutoff`, each message
//!   `{"value": …, "value_mapped": …, "actor": …}`, so Foxglove's Plot panel
//!   plots `/param/gen.1.cutoff.value` directly;
//! - one per mod bus, `/mod/bus.3`, each message `{"value": …, "source_type": …}`;
//! - `/snapshot`, each message `{"ts_ms": …, "state": {path: value, …}}`.
//!
//! Log and publish time are the record's `ts_ms` (in nanoseconds, as MCAP
//! counts); each channel numbers its messages from 1.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufWriter, Write};
use std::path::Path;

use ::mcap::records::MessageHeader;
use ::mcap::{Compression, WriteOptions};

use super::output::Staged;
use super::source::{pipelined, Batch, Item};
use super::{json, Control, ExportError, ExportOptions, ExportStats};
use crate::envelope::{BodyView, Topic};

/// The JSON Schema of a topic channel's messages.
fn topic_schema(topic: Option<Topic>) -> String {
    let common = r#""v":{"type":"integer"},"session_id":{"type":"string"},"producer_id":{"type":"string"},"seq":{"type":"integer"},"ts_ms":{"type":"integer"},"actor":{"type":"string"},"source":{"type":"string"}"#;
    let own = match topic {
        Some(Topic::Params) => {
            r#","path":{"type":"string"},"value":{"type":"number"},"value_mapped":{"type":["number","null"]}"#
        }
        Some(Topic::Mod) => {
            r#","path":{"type":"string"},"bus":{"type":"integer"},"value":{"type":"number"},"source_type":{"type":"string"}"#
        }
        Some(Topic::Audio) => {
            r#","path":{"type":"string"},"peak":{"type":"number"},"rms":{"type":["number","null"]}"#
        }
        Some(Topic::Events) => r#","type":{"type":"string"}"#,
        Some(Topic::State) => r#","key":{"type":"string"},"state":{"type":"object"}"#,
        None => "",
    };
    format!(r#"{{"type":"object","properties":{{{common}{own}}}}}"#)
}

const PARAM_SCHEMA: &str = r#"{"type":"object","properties":{"value":{"type":"number"},"value_mapped":{"type":["number","null"]},"actor":{"type":"string"}}}"#;
const MOD_SCHEMA: &str = r#"{"type":"object","properties":{"value":{"type":"number"},"source_type":{"type":["string","null"]}}}"#;
const SNAPSHOT_SCHEMA: &str = r#"{"type":"object","properties":{"ts_ms":{"type":"integer"},"state":{"type":"object","additionalProperties":{"type":"number"}}}}"#;

/// The channel of the snapshots.
pub const SNAPSHOT_CHANNEL: &str = "/snapshot";

/// A channel and how many messages it has.
struct Channel {
    /// Numbered in order of first use from 0 (not the writer's id).
    id: usize,
    count: u32,
}

/// A channel first used in a batch: made by the writing thread before the
/// batch's messages are written.
struct NewChannel {
    name: String,
    schema_name: String,
    schema: String,
}

/// One message of a batch: its bytes are `bytes[start..start + len]`.
struct Msg {
    /// The channel, numbered in order of first use from 0.
    channel: usize,
    sequence: u32,
    ts_ms: i64,
    start: usize,
    len: usize,
}

/// Messages spelled on the reader thread, written on the writing thread.
#[derive(Default)]
struct Messages {
    channels: Vec<NewChannel>,
    bytes: Vec<u8>,
    messages: Vec<Msg>,
}

impl Batch for Messages {
    fn clear(&mut self) {
        self.channels.clear();
        self.bytes.clear();
        self.messages.clear();
    }
}

impl Messages {
    /// Ends the message whose bytes were appended since `start`.
    fn push(&mut self, (channel, sequence): (usize, u32), ts_ms: i64, start: usize) {
        self.messages.push(Msg {
            channel,
            sequence,
            ts_ms,
            start,
            len: self.bytes.len() - start,
        });
    }
}

/// The reader thread's side: channels by name, and what has been spelled.
struct Spell<'p> {
    input: &'p Path,
    by_name: HashMap<String, Channel>,
    name: String,
    stats: ExportStats,
}

impl Spell<'_> {
    /// The channel `name` (made with `schema` on first use, announced in
    /// `batch`) and the message's sequence number.
    fn channel(
        &mut self,
        batch: &mut Messages,
        name: &str,
        schema_name: &str,
        schema: impl FnOnce() -> String,
    ) -> (usize, u32) {
        if let Some(c) = self.by_name.get_mut(name) {
            c.count += 1;
            return (c.id, c.count);
        }
        let id = self.by_name.len();
        batch.channels.push(NewChannel {
            name: name.to_owned(),
            schema_name: schema_name.to_owned(),
            schema: schema(),
        });
        self.by_name
            .insert(name.to_owned(), Channel { id, count: 1 });
        (id, 1)
    }

    /// The path channel (`/param/...`, `/mod/...`) of a record.
    fn path_channel(
        &mut self,
        batch: &mut Messages,
        prefix: &str,
        path: &str,
        schema_name: &'static str,
        schema: &'static str,
    ) -> (usize, u32) {
        let mut name = std::mem::take(&mut self.name);
        name.clear();
        name.push_str(prefix);
        name.push_str(path);
        let c = self.channel(batch, &name, schema_name, || schema.to_owned());
        self.name = name;
        c
    }

    fn add(&mut self, batch: &mut Messages, item: Item<'_>) -> Result<(), ExportError> {
        match item {
            Item::Snapshot {
                ts_ms,
                state,
                offset,
                ..
            } => {
                let start = batch.bytes.len();
                let msg = &mut batch.bytes;
                msg.extend_from_slice(b"{\"ts_ms\":");
                json::write_int(msg, ts_ms);
                msg.extend_from_slice(b",\"state\":");
                json::write_json(state, msg).map_err(|e| ExportError::Record {
                    path: self.input.to_owned(),
                    offset,
                    reason: format!("snapshot state: {e}"),
                })?;
                msg.push(b'}');
                let c = self.channel(batch, SNAPSHOT_CHANNEL, "integr8tor.Snapshot", || {
                    SNAPSHOT_SCHEMA.to_owned()
                });
                batch.push(c, ts_ms, start);
                self.stats.snapshots += 1;
                self.stats.messages += 1;
            }
            Item::Event(e) => {
                let ts = e.fields.ts_ms;
                let start = batch.bytes.len();
                json::write_json(e.data, &mut batch.bytes).map_err(|err| ExportError::Record {
                    path: self.input.to_owned(),
                    offset: e.offset,
                    reason: format!("envelope has no JSON form: {err}"),
                })?;
                let known = e.known_topic();
                let c = match self.by_name.get_mut(&*e.topic) {
                    Some(c) => {
                        c.count += 1;
                        (c.id, c.count)
                    }
                    None => {
                        let name = e.topic.clone().into_owned();
                        // a topic's schema is named after it
                        self.channel(batch, &name, &name, || topic_schema(known))
                    }
                };
                batch.push(c, ts, start);
                self.stats.messages += 1;
                match e.view.as_ref().map(|v| v.body) {
                    Some(BodyView::Param {
                        path,
                        value,
                        value_mapped,
                        ..
                    }) => {
                        let start = batch.bytes.len();
                        let small = &mut batch.bytes;
                        small.extend_from_slice(b"{\"value\":");
                        json::write_f64(small, value);
                        small.extend_from_slice(b",\"value_mapped\":");
                        match value_mapped {
                            Some(m) => json::write_f64(small, m),
                            None => small.extend_from_slice(b"null"),
                        }
                        small.extend_from_slice(b",\"actor\":");
                        json::write_str(small, &e.actor());
                        small.push(b'}');
                        let c = self.path_channel(
                            batch,
                            "/param/",
                            path,
                            "integr8tor.ParamValue",
                            PARAM_SCHEMA,
                        );
                        batch.push(c, ts, start);
                        self.stats.messages += 1;
                    }
                    Some(BodyView::Mod {
                        path,
                        value,
                        source_type,
                        ..
                    }) => {
                        let start = batch.bytes.len();
                        let small = &mut batch.bytes;
                        small.extend_from_slice(b"{\"value\":");
                        json::write_f64(small, value);
                        small.extend_from_slice(b",\"source_type\":");
                        match source_type {
                            Some(s) => json::write_str(small, s),
                            None => small.extend_from_slice(b"null"),
                        }
                        small.push(b'}');
                        let c = self.path_channel(
                            batch,
                            "/mod/",
                            path,
                            "integr8tor.ModValue",
                            MOD_SCHEMA,
                        );
                        batch.push(c, ts, start);
                        self.stats.messages += 1;
                    }
                    _ => {}
                }
                self.stats.events += 1;
            }
        }
        Ok(())
    }
}

fn nanos(ts_ms: i64) -> u64 {
    (ts_ms.max(0) as u64).saturating_mul(1_000_000)
}

pub(crate) fn write(
    input: &Path,
    staged: &Staged,
    opts: &ExportOptions,
    ctl: &mut Control<'_>,
) -> Result<ExportStats, ExportError> {
    let mcap_err = |e: ::mcap::McapError| match e {
        ::mcap::McapError::Io(io) => staged.io(io),
        other => staged.lib_error(format!("MCAP: {other}")),
    };
    let file = BufWriter::with_capacity(1 << 20, staged.file()?);
    let options = WriteOptions::new()
        .compression(Some(Compression::Lz4))
        .chunk_size(Some(4 << 20))
        .library(concat!("integr8tor ", env!("CARGO_PKG_VERSION")))
        .profile("");
    let mut w = options.create(file).map_err(mcap_err)?;
    let spell = Spell {
        input,
        by_name: HashMap::new(),
        name: String::new(),
        stats: ExportStats::default(),
    };
    // the writer's id of each channel, by order of first use
    let mut ids: Vec<u16> = Vec::new();
    let (input_bytes, spell) = pipelined(
        input,
        staged.out(),
        opts,
        ctl,
        spell,
        |spell, batch: &mut Messages, item| spell.add(batch, item),
        |batch: &mut Messages| {
            for c in &batch.channels {
                // the writer gives a schema already added its existing id
                let schema_id = w
                    .add_schema(&c.schema_name, "jsonschema", c.schema.as_bytes())
                    .map_err(mcap_err)?;
                let id = w
                    .add_channel(schema_id, &c.name, "json", &BTreeMap::new())
                    .map_err(mcap_err)?;
                ids.push(id);
            }
            for m in &batch.messages {
                let t = nanos(m.ts_ms);
                let data = &batch.bytes[m.start..m.start + m.len];
                w.write_to_known_channel(
                    &MessageHeader {
                        channel_id: ids[m.channel],
                        sequence: m.sequence,
                        log_time: t,
                        publish_time: t,
                    },
                    data,
                )
                .map_err(mcap_err)?;
            }
            Ok(())
        },
    )?;
    w.finish().map_err(mcap_err)?;
    let mut file = w.into_inner();
    file.flush().map_err(|e| staged.io(e))?;
    let mut stats = spell.stats;
    stats.input_bytes = input_bytes;
    Ok(stats)
}
