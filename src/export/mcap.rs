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
use ::mcap::{Compression, WriteOptions, Writer};

use super::output::Staged;
use super::source::{each_record, Item};
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
    id: u16,
    count: u32,
}

struct Channels {
    by_name: HashMap<String, Channel>,
}

impl Channels {
    /// The channel `name`, made with `schema` on first use; returns its id
    /// and the message's sequence number.
    fn get<W: Write + std::io::Seek>(
        &mut self,
        w: &mut Writer<W>,
        name: &str,
        schema_name: &str,
        schema: impl FnOnce() -> String,
    ) -> Result<(u16, u32), ::mcap::McapError> {
        if let Some(c) = self.by_name.get_mut(name) {
            c.count += 1;
            return Ok((c.id, c.count));
        }
        // the writer gives a schema already added its existing id
        let schema_id = w.add_schema(schema_name, "jsonschema", schema().as_bytes())?;
        let id = w.add_channel(schema_id, name, "json", &BTreeMap::new())?;
        self.by_name
            .insert(name.to_owned(), Channel { id, count: 1 });
        Ok((id, 1))
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
    let mut channels = Channels {
        by_name: HashMap::new(),
    };
    let mut stats = ExportStats::default();
    let mut msg = Vec::with_capacity(1024);
    let mut small = Vec::with_capacity(128);
    let mut name = String::new();
    stats.input_bytes = each_record(input, staged.out(), opts, ctl, |item| {
        match item {
            Item::Snapshot {
                ts_ms,
                state,
                offset,
                ..
            } => {
                msg.clear();
                msg.extend_from_slice(b"{\"ts_ms\":");
                json::write_int(&mut msg, ts_ms);
                msg.extend_from_slice(b",\"state\":");
                json::write_json(state, &mut msg).map_err(|e| ExportError::Record {
                    path: input.to_owned(),
                    offset,
                    reason: format!("snapshot state: {e}"),
                })?;
                msg.push(b'}');
                let (id, seq) = channels
                    .get(&mut w, SNAPSHOT_CHANNEL, "integr8tor.Snapshot", || {
                        SNAPSHOT_SCHEMA.to_owned()
                    })
                    .map_err(mcap_err)?;
                put(&mut w, id, seq, ts_ms, &msg).map_err(mcap_err)?;
                stats.snapshots += 1;
                stats.messages += 1;
            }
            Item::Event(e) => {
                let ts = e.fields.ts_ms;
                msg.clear();
                json::write_json(e.data, &mut msg).map_err(|err| ExportError::Record {
                    path: input.to_owned(),
                    offset: e.offset,
                    reason: format!("envelope has no JSON form: {err}"),
                })?;
                let known = e.known_topic();
                let (id, seq) = channels
                    .get(&mut w, &e.topic, &e.topic, || topic_schema(known))
                    .map_err(mcap_err)?;
                put(&mut w, id, seq, ts, &msg).map_err(mcap_err)?;
                stats.messages += 1;
                match e.view.as_ref().map(|v| v.body) {
                    Some(BodyView::Param {
                        path,
                        value,
                        value_mapped,
                        ..
                    }) => {
                        small.clear();
                        small.extend_from_slice(b"{\"value\":");
                        json::write_f64(&mut small, value);
                        small.extend_from_slice(b",\"value_mapped\":");
                        match value_mapped {
                            Some(m) => json::write_f64(&mut small, m),
                            None => small.extend_from_slice(b"null"),
                        }
                        small.extend_from_slice(b",\"actor\":");
                        json::write_str(&mut small, &e.actor());
                        small.push(b'}');
                        name.clear();
                        name.push_str("/param/");
                        name.push_str(path);
                        let (id, seq) = channels
                            .get(&mut w, &name, "integr8tor.ParamValue", || {
                                PARAM_SCHEMA.to_owned()
                            })
                            .map_err(mcap_err)?;
                        put(&mut w, id, seq, ts, &small).map_err(mcap_err)?;
                        stats.messages += 1;
                    }
                    Some(BodyView::Mod {
                        path,
                        value,
                        source_type,
                        ..
                    }) => {
                        small.clear();
                        small.extend_from_slice(b"{\"value\":");
                        json::write_f64(&mut small, value);
                        small.extend_from_slice(b",\"source_type\":");
                        match source_type {
                            Some(s) => json::write_str(&mut small, s),
                            None => small.extend_from_slice(b"null"),
                        }
                        small.push(b'}');
                        name.clear();
                        name.push_str("/mod/");
                        name.push_str(path);
                        let (id, seq) = channels
                            .get(&mut w, &name, "integr8tor.ModValue", || {
                                MOD_SCHEMA.to_owned()
                            })
                            .map_err(mcap_err)?;
                        put(&mut w, id, seq, ts, &small).map_err(mcap_err)?;
                        stats.messages += 1;
                    }
                    _ => {}
                }
                stats.events += 1;
            }
        }
        Ok(())
    })?;
    w.finish().map_err(mcap_err)?;
    let mut file = w.into_inner();
    file.flush().map_err(|e| staged.io(e))?;
    Ok(stats)
}

fn put<W: Write + std::io::Seek>(
    w: &mut Writer<W>,
    channel_id: u16,
    sequence: u32,
    ts_ms: i64,
    data: &[u8],
) -> Result<(), ::mcap::McapError> {
    let t = nanos(ts_ms);
    w.write_to_known_channel(
        &MessageHeader {
            channel_id,
            sequence,
            log_time: t,
            publish_time: t,
        },
        data,
    )
}
