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
use super::source::{each_record, Item};
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
        let _ = write!(out, ".{ms:03}Z");
    }
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
    let mut stats = ExportStats::default();
    let mut time = IsoTime::default();
    let (mut ts, mut iso, mut value, mut mapped, mut seq, mut data) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    stats.input_bytes = each_record(input, staged.out(), opts, ctl, |item| {
        let Item::Event(e) = item else {
            return Ok(());
        };
        for b in [
            &mut ts,
            &mut iso,
            &mut value,
            &mut mapped,
            &mut seq,
            &mut data,
        ] {
            b.clear();
        }
        json::write_int(&mut ts, e.fields.ts_ms);
        time.write(e.fields.ts_ms, &mut iso);
        seq.extend_from_slice(itoa::Buffer::new().format(e.fields.seq).as_bytes());
        match e.view.as_ref().map(|v| v.body) {
            Some(BodyView::Param {
                value: v,
                value_mapped,
                ..
            }) => {
                json::write_f64(&mut value, v);
                if let Some(m) = value_mapped {
                    json::write_f64(&mut mapped, m);
                }
            }
            Some(BodyView::Mod { value: v, .. }) => json::write_f64(&mut value, v),
            Some(BodyView::Audio { peak, .. }) => json::write_f64(&mut value, peak),
            _ => {}
        }
        e.own_fields_json(&mut data);
        let actor = e.actor();
        let producer = e.producer_id();
        let name = e.name();
        w.write_record([
            &ts[..],
            &iso[..],
            e.topic.as_bytes(),
            name.as_bytes(),
            &value[..],
            &mapped[..],
            actor.as_bytes(),
            producer.as_bytes(),
            &seq[..],
            &data[..],
        ])
        .map_err(csv_err)?;
        stats.events += 1;
        Ok(())
    })?;
    stats.messages = stats.events;
    let mut file = w
        .into_inner()
        .map_err(|e| staged.io(std::io::Error::other(e.error().to_string())))?;
    file.flush().map_err(|e| staged.io(e))?;
    Ok(stats)
}
