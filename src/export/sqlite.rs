//! SQLite: one table per kind of record, filled in one transaction with
//! prepared statements (SQLite is built into the binary; no system library).
//!
//! ```sql
//! params(ts_ms INTEGER, path TEXT, value REAL, value_mapped REAL, actor TEXT, producer_id TEXT, seq INTEGER)
//! mod(ts_ms INTEGER, bus INTEGER, value REAL, source_type TEXT, actor TEXT, producer_id TEXT, seq INTEGER)
//! events(ts_ms INTEGER, type TEXT, actor TEXT, producer_id TEXT, seq INTEGER, data JSON)
//! snapshots(ts_ms INTEGER, state JSON)
//! session(key TEXT PRIMARY KEY, value TEXT)
//! ```
//!
//! `params` is indexed on `ts_ms` and on `(path, ts_ms)`, `snapshots` on
//! `ts_ms`. Rows are in file order (`rowid`). `events.data` holds the
//! event's own fields (`note`, `velocity`, `preset`...) as a JSON object;
//! `snapshots.state` is the snapshot's path → value object. `session` holds
//! the fields `integr8tor info --json` prints (`event_records`, `by_topic`,
//! `first_ts_ms`, `param_paths`, `producers`, `session_ids`...), each value
//! as JSON, plus `producer_sources` (producer → `source`) and `format`, so
//! that [`import_sqlite`](super::import_sqlite) can rebuild the envelopes.
//!
//! Records on `noise.audio`, `noise.state` or other topics have no table and
//! are counted in [`ExportStats::skipped`]; fields of parameter and mod
//! envelopes that FORMATS.md does not define are not kept.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rusqlite::{params, Connection};

use super::output::Staged;
use super::source::{pipelined, snapshot_state_json, Batch, Item};
use super::{Control, ExportError, ExportOptions, ExportStats};
use crate::envelope::BodyView;

/// The `format` value in the `session` table of databases this module writes.
pub const FORMAT_TAG: &str = "integr8tor-sqlite-1";

/// The tables.
pub const SCHEMA: &str = "
CREATE TABLE params(ts_ms INTEGER, path TEXT, value REAL, value_mapped REAL, actor TEXT, producer_id TEXT, seq INTEGER);
CREATE TABLE mod(ts_ms INTEGER, bus INTEGER, value REAL, source_type TEXT, actor TEXT, producer_id TEXT, seq INTEGER);
CREATE TABLE events(ts_ms INTEGER, type TEXT, actor TEXT, producer_id TEXT, seq INTEGER, data JSON);
CREATE TABLE snapshots(ts_ms INTEGER, state JSON);
CREATE TABLE session(key TEXT PRIMARY KEY, value TEXT);
";

/// The indexes, made once the rows are in.
pub const INDEXES: &str = "
CREATE INDEX params_ts ON params(ts_ms);
CREATE INDEX params_path_ts ON params(path, ts_ms);
CREATE INDEX snapshots_ts ON snapshots(ts_ms);
";

/// The `info` fields, gathered while the rows go in.
#[derive(Default)]
struct Info {
    events: u64,
    snapshots: u64,
    by_topic: BTreeMap<String, u64>,
    first: Option<i64>,
    last: Option<i64>,
    paths: BTreeSet<String>,
    producers: BTreeMap<String, Option<String>>,
    session_ids: BTreeSet<String>,
}

/// Where a string sits in a [`Rows`] batch's text.
#[derive(Clone, Copy)]
struct Span(usize, usize);

/// One row for one of the tables, its strings in the batch's text.
enum Row {
    Param {
        ts: i64,
        path: Span,
        value: f64,
        mapped: Option<f64>,
        actor: Option<Span>,
        producer: Span,
        seq: i64,
    },
    Mod {
        ts: i64,
        bus: i64,
        value: f64,
        source_type: Option<Span>,
        actor: Option<Span>,
        producer: Span,
        seq: i64,
    },
    Event {
        ts: i64,
        event_type: Span,
        actor: Option<Span>,
        producer: Span,
        seq: i64,
        data: Option<Span>,
    },
    Snapshot {
        ts: i64,
        state: Span,
    },
}

/// Rows decoded on the reader thread, inserted on the writing thread.
#[derive(Default)]
struct Rows {
    text: String,
    rows: Vec<Row>,
}

impl Batch for Rows {
    fn clear(&mut self) {
        self.text.clear();
        self.rows.clear();
    }
}

impl Rows {
    fn put(&mut self, s: &str) -> Span {
        let at = self.text.len();
        self.text.push_str(s);
        Span(at, s.len())
    }

    fn put_bytes(&mut self, b: &[u8]) -> Span {
        match std::str::from_utf8(b) {
            Ok(s) => self.put(s),
            Err(_) => self.put(&String::from_utf8_lossy(b)),
        }
    }

    fn get(&self, s: Span) -> &str {
        &self.text[s.0..s.0 + s.1]
    }

    fn opt(&self, s: Option<Span>) -> Option<&str> {
        s.map(|s| self.get(s))
    }
}

/// The reader thread's side: records to rows, and the `info` fields.
struct Decode<'p> {
    input: &'p Path,
    info: Info,
    stats: ExportStats,
    json: Vec<u8>,
}

impl Decode<'_> {
    fn add(&mut self, rows: &mut Rows, item: Item<'_>) -> Result<(), ExportError> {
        match item {
            Item::Snapshot {
                ts_ms,
                state,
                offset,
                ..
            } => {
                self.json.clear();
                snapshot_state_json(self.input, offset, state, &mut self.json)?;
                let state = rows.put_bytes(&self.json);
                rows.rows.push(Row::Snapshot { ts: ts_ms, state });
                self.stats.snapshots += 1;
                self.info.snapshots += 1;
            }
            Item::Event(e) => {
                let Some(view) = e.view.as_ref() else {
                    self.stats.skipped += 1;
                    return Ok(());
                };
                let f = &e.fields;
                let actor = view.actor.map(|a| rows.put_bytes(a));
                let producer = rows.put(view.producer_id);
                let seq = f.seq as i64;
                let ts = f.ts_ms;
                let row = match view.body {
                    BodyView::Param {
                        path,
                        value,
                        value_mapped,
                        ..
                    } => {
                        if !self.info.paths.contains(path) {
                            self.info.paths.insert(path.to_owned());
                        }
                        Row::Param {
                            ts,
                            path: rows.put(path),
                            value,
                            mapped: value_mapped,
                            actor,
                            producer,
                            seq,
                        }
                    }
                    BodyView::Mod {
                        bus,
                        value,
                        source_type,
                        ..
                    } => Row::Mod {
                        ts,
                        bus,
                        value,
                        source_type: source_type.map(|s| rows.put(s)),
                        actor,
                        producer,
                        seq,
                    },
                    BodyView::Event { event_type } => {
                        self.json.clear();
                        let data = e
                            .own_fields_json(&mut self.json)
                            .then(|| rows.put_bytes(&self.json));
                        Row::Event {
                            ts,
                            event_type: rows.put(event_type),
                            actor,
                            producer,
                            seq,
                            data,
                        }
                    }
                    BodyView::Audio { .. } | BodyView::State { .. } => {
                        self.stats.skipped += 1;
                        return Ok(());
                    }
                };
                rows.rows.push(row);
                self.stats.events += 1;
                self.info
                    .note_event(&e.topic, ts, view.producer_id, view.source, view.session_id);
            }
        }
        Ok(())
    }
}

/// The pragmas for the fresh output file. It is renamed into place only
/// when complete, so no journal is needed for safety; without one the
/// inserts go at SQLite's full speed.
const PRAGMAS: &str = "PRAGMA page_size=65536; PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; \
     PRAGMA locking_mode=EXCLUSIVE; PRAGMA temp_store=MEMORY; PRAGMA cache_size=-65536;";

pub(crate) fn write(
    input: &Path,
    staged: &Staged,
    opts: &ExportOptions,
    ctl: &mut Control<'_>,
) -> Result<ExportStats, ExportError> {
    let db_err = |e: rusqlite::Error| staged.lib_error(format!("SQLite: {e}"));
    let conn = Connection::open(staged.tmp_path()).map_err(db_err)?;
    conn.execute_batch(PRAGMAS).map_err(db_err)?;
    conn.execute_batch("BEGIN").map_err(db_err)?;
    conn.execute_batch(SCHEMA).map_err(db_err)?;
    let decode = Decode {
        input,
        info: Info::default(),
        stats: ExportStats::default(),
        json: Vec::with_capacity(256),
    };
    let (input_bytes, decode) = {
        let mut ins_param = conn
            .prepare("INSERT INTO params VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
            .map_err(db_err)?;
        let mut ins_mod = conn
            .prepare("INSERT INTO mod VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
            .map_err(db_err)?;
        let mut ins_event = conn
            .prepare("INSERT INTO events VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .map_err(db_err)?;
        let mut ins_snap = conn
            .prepare("INSERT INTO snapshots VALUES (?1, ?2)")
            .map_err(db_err)?;
        let (bytes, decode) = pipelined(
            input,
            staged.out(),
            opts,
            ctl,
            decode,
            |decode, rows: &mut Rows, item| decode.add(rows, item),
            |rows: &mut Rows| {
                // each value bound in place: no parameter slice, no copy
                // but SQLite's own
                for row in &rows.rows {
                    match *row {
                        Row::Param {
                            ts,
                            path,
                            value,
                            mapped,
                            actor,
                            producer,
                            seq,
                        } => {
                            let st = &mut ins_param;
                            st.raw_bind_parameter(1, ts).map_err(db_err)?;
                            st.raw_bind_parameter(2, rows.get(path)).map_err(db_err)?;
                            st.raw_bind_parameter(3, value).map_err(db_err)?;
                            st.raw_bind_parameter(4, mapped).map_err(db_err)?;
                            st.raw_bind_parameter(5, rows.opt(actor)).map_err(db_err)?;
                            st.raw_bind_parameter(6, rows.get(producer))
                                .map_err(db_err)?;
                            st.raw_bind_parameter(7, seq).map_err(db_err)?;
                            st.raw_execute().map_err(db_err)?;
                        }
                        Row::Mod {
                            ts,
                            bus,
                            value,
                            source_type,
                            actor,
                            producer,
                            seq,
                        } => {
                            let st = &mut ins_mod;
                            st.raw_bind_parameter(1, ts).map_err(db_err)?;
                            st.raw_bind_parameter(2, bus).map_err(db_err)?;
                            st.raw_bind_parameter(3, value).map_err(db_err)?;
                            st.raw_bind_parameter(4, rows.opt(source_type))
                                .map_err(db_err)?;
                            st.raw_bind_parameter(5, rows.opt(actor)).map_err(db_err)?;
                            st.raw_bind_parameter(6, rows.get(producer))
                                .map_err(db_err)?;
                            st.raw_bind_parameter(7, seq).map_err(db_err)?;
                            st.raw_execute().map_err(db_err)?;
                        }
                        Row::Event {
                            ts,
                            event_type,
                            actor,
                            producer,
                            seq,
                            data,
                        } => {
                            let st = &mut ins_event;
                            st.raw_bind_parameter(1, ts).map_err(db_err)?;
                            st.raw_bind_parameter(2, rows.get(event_type))
                                .map_err(db_err)?;
                            st.raw_bind_parameter(3, rows.opt(actor)).map_err(db_err)?;
                            st.raw_bind_parameter(4, rows.get(producer))
                                .map_err(db_err)?;
                            st.raw_bind_parameter(5, seq).map_err(db_err)?;
                            st.raw_bind_parameter(6, rows.opt(data)).map_err(db_err)?;
                            st.raw_execute().map_err(db_err)?;
                        }
                        Row::Snapshot { ts, state } => {
                            let st = &mut ins_snap;
                            st.raw_bind_parameter(1, ts).map_err(db_err)?;
                            st.raw_bind_parameter(2, rows.get(state)).map_err(db_err)?;
                            st.raw_execute().map_err(db_err)?;
                        }
                    }
                }
                Ok(())
            },
        )?;
        (bytes, decode)
    };
    conn.execute_batch(INDEXES).map_err(db_err)?;
    {
        let mut ins = conn
            .prepare("INSERT INTO session VALUES (?1, ?2)")
            .map_err(db_err)?;
        for (k, v) in decode.info.rows(input, input_bytes, opts) {
            ins.execute(params![k, v.to_string()]).map_err(db_err)?;
        }
    }
    conn.execute_batch("COMMIT").map_err(db_err)?;
    conn.close().map_err(|(_, e)| db_err(e))?;
    let mut stats = decode.stats;
    stats.input_bytes = input_bytes;
    stats.messages = stats.events + stats.snapshots;
    Ok(stats)
}

impl Info {
    fn note_event(
        &mut self,
        topic: &str,
        ts: i64,
        producer: &str,
        source: Option<&str>,
        session: &str,
    ) {
        self.events += 1;
        match self.by_topic.get_mut(topic) {
            Some(n) => *n += 1,
            None => {
                self.by_topic.insert(topic.to_owned(), 1);
            }
        }
        self.first = Some(self.first.map_or(ts, |f| f.min(ts)));
        self.last = Some(self.last.map_or(ts, |l| l.max(ts)));
        if !self.producers.contains_key(producer) {
            self.producers
                .insert(producer.to_owned(), source.map(str::to_owned));
        }
        if !self.session_ids.contains(session) {
            self.session_ids.insert(session.to_owned());
        }
    }

    fn rows(
        &self,
        input: &Path,
        bytes: u64,
        opts: &ExportOptions,
    ) -> Vec<(&'static str, serde_json::Value)> {
        use serde_json::json;
        let sources: serde_json::Map<String, serde_json::Value> = self
            .producers
            .iter()
            .map(|(p, s)| (p.clone(), json!(s)))
            .collect();
        vec![
            ("format", json!(FORMAT_TAG)),
            ("file", json!(input.display().to_string())),
            ("event_records", json!(self.events)),
            ("snapshot_records", json!(self.snapshots)),
            ("by_topic", json!(self.by_topic)),
            ("first_ts_ms", json!(self.first)),
            ("last_ts_ms", json!(self.last)),
            (
                "duration_ms",
                json!(self.last.zip(self.first).map_or(0, |(l, f)| l - f)),
            ),
            ("param_paths", json!(self.paths)),
            (
                "producers",
                json!(self.producers.keys().collect::<Vec<_>>()),
            ),
            ("session_ids", json!(self.session_ids)),
            ("dropped_bytes", json!(0)),
            ("file_bytes", json!(bytes)),
            ("producer_sources", serde_json::Value::Object(sources)),
            ("from_ts_ms", json!(opts.from)),
            ("to_ts_ms", json!(opts.to)),
            ("topics", json!(opts.topics)),
        ]
    }
}
