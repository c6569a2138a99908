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

// foldhash: channel names are looked up twice a record
use hashbrown::HashMap;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::mcap_file::{McapFile, McapFileError};
use super::output::Staged;
use super::source::{pipelined, snapshot_state_json, Batch, Item};
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
    /// Where the bytes are a record's envelope in MessagePack, to be
    /// spelled as JSON by the writing thread: the record's offset.
    envelope_at: Option<u64>,
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
            envelope_at: None,
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
                snapshot_state_json(self.input, offset, state, msg)?;
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
                // the envelope as it is: the writing thread spells it, which
                // shares the work between the two threads
                let start = batch.bytes.len();
                batch.bytes.extend_from_slice(e.data);
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
                if let Some(m) = batch.messages.last_mut() {
                    m.envelope_at = Some(e.offset);
                }
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
    let mcap_err = |e: McapFileError| match e {
        McapFileError::Io(io) => staged.io(io),
        other => staged.lib_error(other),
    };
    let file = BufWriter::with_capacity(1 << 20, staged.file()?);
    let mut w = McapFile::new(file, "", concat!("integr8tor ", env!("CARGO_PKG_VERSION")))
        .map_err(mcap_err)?;
    let spell = Spell {
        input,
        by_name: HashMap::new(),
        name: String::new(),
        stats: ExportStats::default(),
    };
    // the file's id of each channel, by order of first use
    let mut ids: Vec<u16> = Vec::new();
    let mut envelope = Vec::with_capacity(1024);
    let (input_bytes, spell) = pipelined(
        input,
        staged.out(),
        opts,
        ctl,
        spell,
        |spell, batch: &mut Messages, item| spell.add(batch, item),
        |batch: &mut Messages| {
            for c in &batch.channels {
                let schema_id = w.schema(&c.schema_name, "jsonschema", c.schema.as_bytes());
                ids.push(w.channel(schema_id, &c.name, "json").map_err(mcap_err)?);
            }
            for m in &batch.messages {
                let mut data = &batch.bytes[m.start..m.start + m.len];
                if let Some(offset) = m.envelope_at {
                    envelope.clear();
                    json::write_json(data, &mut envelope).map_err(|err| ExportError::Record {
                        path: input.to_owned(),
                        offset,
                        reason: format!("envelope has no JSON form: {err}"),
                    })?;
                    data = &envelope;
                }
                w.message(ids[m.channel], m.sequence, nanos(m.ts_ms), data)
                    .map_err(mcap_err)?;
            }
            Ok(())
        },
    )?;
    let mut file = w.finish().map_err(mcap_err)?;
    file.flush().map_err(|e| staged.io(e))?;
    let mut stats = spell.stats;
    stats.input_bytes = input_bytes;
    Ok(stats)
}
