//! CSV: one row per event record, with a header row.
//!
//! | column | content |
//! |---|---|
//! | `ts_ms` | the envelope's `ts_ms` |
//! | `time` | the same instant in ISO 8601, UTC, to the millisecond (`2026-09-21T12:00:00.250Z`) |
//! | `topic` | the record's topic |
//! | `path` | the parameter path, `bus.N`, the level's source, the event `type` or the state `key` |
//! | `value` | `value` (params, mod) or `peak` (audio); empty for events and state |
//! | `value_mapped` | `value_mapped` of a parameter change; empty when nil or absent |
//! | `actor` | `actor` |
//! | `producer_id` | `producer_id` |
//! | `seq` | `seq` |
//! | `data` | a JSON object of the other fields: an event's own data (`note`, `preset`...), `source_type` of a mod value, `rms` of a level, `state` of a state message, and any field the topic does not define; empty when there are none |
//!
//! Snapshots are not rows (they are derived from the events); floats are
//! written as the shortest text that reads back as the same `f64`.

use std::io::{BufWriter, Write};
use std::path::Path;

use super::output::Staged;
use super::source::{pipelined, Batch, Item};
use super::{json, Control, ExportError, ExportOptions, ExportStats};
use crate::envelope::BodyView;

/// The header row.
pub const COLUMNS: [&str; 10] = [
    "ts_ms",
    "time",
    "topic",
    "path",
    "value",
    "value_mapped",
    "actor",
    "producer_id",
    "seq",
    "data",
];

/// Formats `ts_ms` as ISO 8601, remembering the last second's text.
#[derive(Default)]
pub(crate) struct IsoTime {
    second: Option<i64>,
    prefix: String,
}

impl IsoTime {
    /// Appends `ts_ms` as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub(crate) fn write(&mut self, ts_ms: i64, out: &mut Vec<u8>) {
        let secs = ts_ms.div_euclid(1000);
        let ms = ts_ms.rem_euclid(1000);
        if self.second != Some(secs) {
            self.second = Some(secs);
            self.prefix = match chrono::DateTime::from_timestamp(secs, 0) {
                Some(t) => t.format("%Y-%m-%dT%H:%M:%S").to_string(),
                None => String::new(),
            };
        }
        if self.prefix.is_empty() {
            return; // outside chrono's range: no time text
        }
        out.extend_from_slice(self.prefix.as_bytes());
        let ms = ms as u32; // 0..=999
        out.extend_from_slice(&[
            b'.',
            b'0' + (ms / 100) as u8,
            b'0' + (ms / 10 % 10) as u8,
            b'0' + (ms % 10) as u8,
            b'Z',
        ]);
    }
}

/// Where a field sits in a [`Rows`] batch's bytes.
#[derive(Clone, Copy)]
struct Span(usize, usize);

/// One CSV row as decoded on the reader thread; its numbers are spelled,
/// and the row quoted, on the writing thread.
struct Row {
    ts: i64,
    seq: u64,
    value: Option<f64>,
    mapped: Option<f64>,
    topic: Span,
    name: Span,
    actor: Span,
    producer: Span,
    data: Span,
}

#[derive(Default)]
struct Rows {
    bytes: Vec<u8>,
    rows: Vec<Row>,
}

impl Batch for Rows {
    fn clear(&mut self) {
        self.bytes.clear();
        self.rows.clear();
    }
}

impl Rows {
    fn put(&mut self, b: &[u8]) -> Span {
        let at = self.bytes.len();
        self.bytes.extend_from_slice(b);
        Span(at, b.len())
    }

    fn get(&self, s: Span) -> &[u8] {
        &self.bytes[s.0..s.0 + s.1]
    }
}

/// The reader thread's side: an event record to a row.
fn decode_row(stats: &mut ExportStats, rows: &mut Rows, item: Item<'_>) {
    let Item::Event(e) = item else {
        return;
    };
    let (value, mapped) = match e.view.as_ref().map(|v| v.body) {
        Some(BodyView::Param {
            value,
            value_mapped,
            ..
        }) => (Some(value), value_mapped),
        Some(BodyView::Mod { value, .. }) => (Some(value), None),
        Some(BodyView::Audio { peak, .. }) => (Some(peak), None),
        _ => (None, None),
    };
    let start = rows.bytes.len();
    e.own_fields_json(&mut rows.bytes);
    let data = Span(start, rows.bytes.len() - start);
    let row = Row {
        ts: e.fields.ts_ms,
        seq: e.fields.seq,
        value,
        mapped,
        topic: rows.put(e.topic.as_bytes()),
        name: rows.put(e.name().as_bytes()),
        actor: rows.put(e.actor().as_bytes()),
        producer: rows.put(e.producer_id().as_bytes()),
        data,
    };
    rows.rows.push(row);
    stats.events += 1;
}

pub(crate) fn write(
    input: &Path,
    staged: &Staged,
    opts: &ExportOptions,
    ctl: &mut Control<'_>,
) -> Result<ExportStats, ExportError> {
    let file = BufWriter::with_capacity(1 << 20, staged.file()?);
    let mut w = ::csv::WriterBuilder::new().from_writer(file);
    let csv_err = |e: ::csv::Error| match e.into_kind() {
        ::csv::ErrorKind::Io(io) => staged.io(io),
        other => staged.lib_error(format!("{other:?}")),
    };
    w.write_record(COLUMNS).map_err(csv_err)?;
    let mut time = IsoTime::default();
    let (mut ts, mut iso, mut value, mut mapped, mut seq) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // decoding on a reader thread; spelling and quoting here
    let (input_bytes, mut stats) = pipelined(
        input,
        staged.out(),
        opts,
        ctl,
        ExportStats::default(),
        |stats, rows: &mut Rows, item| {
            decode_row(stats, rows, item);
            Ok(())
        },
        |rows: &mut Rows| {
            for r in &rows.rows {
                for b in [&mut ts, &mut iso, &mut value, &mut mapped, &mut seq] {
                    b.clear();
                }
                json::write_int(&mut ts, r.ts);
                time.write(r.ts, &mut iso);
                seq.extend_from_slice(itoa::Buffer::new().format(r.seq).as_bytes());
                if let Some(v) = r.value {
                    json::write_f64(&mut value, v);
                }
                if let Some(m) = r.mapped {
                    json::write_f64(&mut mapped, m);
                }
                w.write_record([
                    &ts[..],
                    &iso[..],
                    rows.get(r.topic),
                    rows.get(r.name),
                    &value[..],
                    &mapped[..],
                    rows.get(r.actor),
                    rows.get(r.producer),
                    &seq[..],
                    rows.get(r.data),
                ])
                .map_err(csv_err)?;
            }
            Ok(())
        },
    )?;
    stats.input_bytes = input_bytes;
    stats.messages = stats.events;
    let mut file = w
        .into_inner()
        .map_err(|e| staged.io(std::io::Error::other(e.error().to_string())))?;
    file.flush().map_err(|e| staged.io(e))?;
    Ok(stats)
}
