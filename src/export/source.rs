//! The session iteration every export shares: the file streamed in file
//! order on a reader thread, records filtered by time and topic, envelopes
//! decoded in place and handed to the writing thread in batches, progress
//! and cancel checked every few thousand records, and a truncated tail
//! turned into an error (an export is all of a file or nothing).

use std::borrow::Cow;
use std::path::Path;

use super::{json, Control, ExportError, ExportOptions, Progress, PROGRESS_EVERY};
use crate::envelope::{BodyView, EnvelopeView, Topic};
use crate::msgpack::Cursor;
use crate::session::reader::EventFields;
use crate::session::{ReadOptions, Reader, RecordRef};

/// One record handed to a format writer.
#[allow(clippy::large_enum_variant)] // passed by value, one at a time
pub(crate) enum Item<'a> {
    /// An event record.
    Event(Event<'a>),
    /// A snapshot record.
    Snapshot {
        /// Where the record starts in the file.
        offset: u64,
        /// Its instant.
        ts_ms: i64,
        /// The `state` map, raw MessagePack.
        state: &'a [u8],
        /// The whole record, raw.
        raw: &'a [u8],
    },
}

/// An event record with its envelope decoded in place.
pub(crate) struct Event<'a> {
    /// Where the record starts in the file.
    pub offset: u64,
    /// The topic name as stored.
    pub topic: Cow<'a, str>,
    /// The envelope's core fields.
    pub fields: EventFields<'a>,
    /// The full envelope, for the five topics (`None` for other topics).
    pub view: Option<EnvelopeView<'a>>,
    /// The envelope map, raw.
    pub data: &'a [u8],
    /// The whole record, raw.
    pub raw: &'a [u8],
}

impl<'a> Event<'a> {
    /// The topic, if it is one of the five.
    pub fn known_topic(&self) -> Option<Topic> {
        self.view.as_ref().map(EnvelopeView::topic)
    }

    /// The actor's name (empty when absent).
    pub fn actor(&self) -> Cow<'a, str> {
        match self.view.as_ref().and_then(|v| v.actor) {
            Some(a) => String::from_utf8_lossy(a),
            None => Cow::Borrowed(""),
        }
    }

    /// `producer_id` as text.
    pub fn producer_id(&self) -> Cow<'a, str> {
        String::from_utf8_lossy(self.fields.producer_id)
    }

    /// The name the event is filed under: path, event type or state key.
    pub fn name(&self) -> Cow<'a, str> {
        match self.fields.name {
            Some(n) => String::from_utf8_lossy(n),
            None => Cow::Borrowed(""),
        }
    }

    /// Appends, as a JSON object, the envelope's fields that have no column
    /// of their own in CSV and SQLite: an event's own data, `source_type` of
    /// a mod value, `rms` of a level, a state's `state`, and any field the
    /// topic does not define. Returns false (and writes nothing) when there
    /// are none.
    pub fn own_fields_json(&self, out: &mut Vec<u8>) -> bool {
        let Some(view) = &self.view else {
            return false;
        };
        let start = out.len();
        out.push(b'{');
        let mut first = true;
        let mut field = |out: &mut Vec<u8>, key: &[u8]| {
            if !first {
                out.push(b',');
            }
            first = false;
            json::write_str(out, &String::from_utf8_lossy(key));
            out.push(b':');
        };
        match view.body {
            BodyView::Mod {
                source_type: Some(s),
                ..
            } => {
                field(out, b"source_type");
                json::write_str(out, s);
            }
            BodyView::Audio {
                rms, has_rms: true, ..
            } => {
                field(out, b"rms");
                match rms {
                    Some(r) => json::write_f64(out, r),
                    None => out.extend_from_slice(b"null"),
                }
            }
            BodyView::State { state, .. } => {
                field(out, b"state");
                if json::write_json(state, out).is_err() {
                    out.extend_from_slice(b"null");
                }
            }
            _ => {}
        }
        if view.extra_count() > 0 {
            for (k, v) in view.extras() {
                field(out, k);
                if json::write_json(v, out).is_err() {
                    out.extend_from_slice(b"null");
                }
            }
        }
        if first {
            out.truncate(start);
            return false;
        }
        out.push(b'}');
        true
    }
}

/// Appends a snapshot's `state` map as a JSON object (path → value); an
/// error names the record.
pub(crate) fn snapshot_state_json(
    input: &Path,
    offset: u64,
    state: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), ExportError> {
    json::write_json(state, out)
        .map(drop)
        .map_err(|e| ExportError::Record {
            path: input.to_owned(),
            offset,
            reason: format!("snapshot state: {e}"),
        })
}

/// Does this record pass the options' time and topic filters?
fn wanted_ts(opts: &ExportOptions, ts: i64) -> bool {
    opts.from.is_none_or(|f| ts >= f) && opts.to.is_none_or(|t| ts <= t)
}

fn wanted_topic(opts: &ExportOptions, topic: &[u8]) -> bool {
    opts.topics.is_empty() || opts.topics.iter().any(|t| t.as_bytes() == topic)
}

fn wants_snapshots(opts: &ExportOptions) -> bool {
    wanted_topic(opts, b"noise.params")
}

/// A batch of converted records that a reader thread fills and the writing
/// thread drains (see [`pipelined`]).
pub(crate) trait Batch: Default + Send {
    /// Empties the batch, keeping its buffers for the next use.
    fn clear(&mut self);
}

/// Batches on their way from the reader thread to the writer: enough for
/// the reader to run ahead while the writer is busy, few enough that memory
/// stays small (a batch holds at most [`PROGRESS_EVERY`] records).
const BATCHES_IN_FLIGHT: usize = 4;

/// Streams `input` on two threads: a reader thread `fill`s batches with what
/// the format needs of each record that passes the filters (decoded,
/// converted, spelled), and the calling thread `drain`s each batch into the
/// output, so that the decoding and the format's own work overlap.
/// Progress and cancel are checked on the calling thread after each batch.
/// `fill` keeps its state in `reading`, which comes back with the input
/// bytes read.
pub(crate) fn pipelined<B, T>(
    input: &Path,
    out: &Path,
    opts: &ExportOptions,
    ctl: &mut Control<'_>,
    reading: T,
    mut fill: impl FnMut(&mut T, &mut B, Item<'_>) -> Result<(), ExportError> + Send,
    mut drain: impl FnMut(&mut B) -> Result<(), ExportError>,
) -> Result<(u64, T), ExportError>
where
    B: Batch,
    T: Send,
{
    let (full_tx, full_rx) = crossbeam_channel::bounded::<(B, Progress)>(BATCHES_IN_FLIGHT);
    let (empty_tx, empty_rx) = crossbeam_channel::bounded::<B>(BATCHES_IN_FLIGHT + 2);
    std::thread::scope(|scope| {
        let reader = std::thread::Builder::new()
            .name("export-read".into())
            .spawn_scoped(scope, move || {
                let mut state = (B::default(), reading);
                let read = scan(
                    input,
                    opts,
                    &mut state,
                    |(batch, _), p| {
                        let next = empty_rx.try_recv().unwrap_or_default();
                        let full = std::mem::replace(batch, next);
                        // a closed channel: the writer has stopped and says why
                        full_tx
                            .send((full, p))
                            .map_err(|_| ExportError::Cancelled(out.to_owned()))
                    },
                    |(batch, reading), item| fill(reading, batch, item),
                );
                (read, state.1)
            })
            .map_err(|e| ExportError::Io {
                path: out.to_owned(),
                source: e,
            })?;
        let mut failed = None;
        for (mut batch, progress) in full_rx.iter() {
            if let Err(e) = drain(&mut batch).and_then(|()| ctl.tick(progress, out)) {
                failed = Some(e);
                break;
            }
            batch.clear();
            let _ = empty_tx.try_send(batch);
        }
        // the reader's next send fails, and it stops
        drop(full_rx);
        let (read, reading) = match reader.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        match failed {
            Some(e) => Err(e),
            None => read.map(|done| (done, reading)),
        }
    })
}

/// The reader thread's loop under [`pipelined`]: `each` on every record
/// that passes the filters, `tick` with the progress every
/// [`PROGRESS_EVERY`] records and at both ends, both given `state`.
fn scan<S>(
    input: &Path,
    opts: &ExportOptions,
    state: &mut S,
    mut tick: impl FnMut(&mut S, Progress) -> Result<(), ExportError>,
    mut each: impl FnMut(&mut S, Item<'_>) -> Result<(), ExportError>,
) -> Result<u64, ExportError> {
    let total = std::fs::metadata(input)
        .map_err(|source| ExportError::Io {
            path: input.to_owned(),
            source,
        })?
        .len();
    let mut reader = Reader::open(input, ReadOptions::default())?;
    let snapshots = wants_snapshots(opts);
    let mut records: u64 = 0;
    let mut since_tick: u64 = 0;
    tick(
        state,
        Progress {
            done: 0,
            total,
            records: 0,
        },
    )?;
    loop {
        let position = reader.position();
        let Some(rec) = reader.next()? else { break };
        let offset = rec.offset;
        let raw = rec.raw;
        let item = match rec.record {
            RecordRef::Event {
                topic,
                known_topic,
                data,
                fields,
                ..
            } => {
                if !wanted_ts(opts, fields.ts_ms) || !wanted_topic(opts, topic) {
                    None
                } else {
                    let view = match known_topic {
                        Some(t) => Some(
                            EnvelopeView::decode_from(t, &mut Cursor::new(data)).map_err(|e| {
                                ExportError::Record {
                                    path: input.to_owned(),
                                    offset,
                                    reason: e.to_string(),
                                }
                            })?,
                        ),
                        None => None,
                    };
                    Some(Item::Event(Event {
                        offset,
                        topic: String::from_utf8_lossy(topic),
                        fields,
                        view,
                        data,
                        raw,
                    }))
                }
            }
            RecordRef::Snapshot { ts_ms, state } => (snapshots && wanted_ts(opts, ts_ms))
                .then_some(Item::Snapshot {
                    offset,
                    ts_ms,
                    state,
                    raw,
                }),
            RecordRef::Unknown => None,
        };
        if let Some(item) = item {
            each(state, item)?;
            records += 1;
        }
        since_tick += 1;
        if since_tick >= PROGRESS_EVERY {
            since_tick = 0;
            tick(
                state,
                Progress {
                    done: position,
                    total,
                    records,
                },
            )?;
        }
    }
    let report = reader.report();
    if let Some(offset) = report.truncated_at {
        return Err(ExportError::Truncated {
            path: input.to_owned(),
            offset,
            dropped: report.dropped_bytes,
        });
    }
    let done = reader.position();
    tick(
        state,
        Progress {
            done,
            total,
            records,
        },
    )?;
    Ok(done)
}
