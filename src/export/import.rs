//! Imports an SQLite recording into a session file.
//!
//! The one table required is the first design's
//! `params(ts_ms INTEGER, path TEXT, value REAL, actor TEXT)`; the columns
//! `value_mapped`, `producer_id` and `seq` and the tables `mod`, `events`,
//! `snapshots` and `session` of an [SQLite export](super::sqlite) are used
//! when present, so that such an export comes back as the session it was
//! made from: the same counts, time range, paths, producers and session id,
//! and the same exact state at every instant.
//!
//! Rows become envelopes (FORMATS.md section 2) written in `ts_ms` order
//! (ties in table order: params, mod, events, then snapshots; each table
//! in `rowid` order):
//!
//! - `session_id`: the `session` table's first `session_ids` entry, else a new UUID;
//! - `producer_id`: the column, else `sqlite.import`;
//! - `seq`: the column, else 1, 2, 3... per producer;
//! - `source`: the `session` table's `producer_sources` entry, else `sqlite`;
//! - `actor` of mod values: the column, else `mod`.
//!
//! A `snapshots(ts_ms, state JSON)` table supplies the snapshot records; a
//! database without one gets snapshots by the recorder's rule (FORMATS.md
//! section 3), so the session file always has them.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags};

use super::output::Staged;
use super::{json, Control, ExportError, Progress, PROGRESS_EVERY};
use crate::msgpack::write as w;
use crate::session::SessionWriter;

/// What an import wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportStats {
    /// Event records written.
    pub events: u64,
    /// Snapshot records written.
    pub snapshots: u64,
    /// Bytes of the session file.
    pub output_bytes: u64,
}

/// The producer id of rows without one.
pub const DEFAULT_PRODUCER: &str = "sqlite.import";
/// The `source` of producers the database does not name one for.
pub const DEFAULT_SOURCE: &str = "sqlite";

/// What the first design's table must have.
const REQUIRED: [&str; 4] = ["ts_ms", "path", "value", "actor"];

/// One row of any table, as read.
struct Row {
    ts: i64,
    /// params 0, mod 1, events 2, snapshots 3: the order of ties.
    rank: u8,
    rowid: i64,
    cells: Vec<SqlValue>,
}

/// A table's rows in `(ts_ms, rowid)` order, read one at a time.
struct Stream<'c> {
    rows: rusqlite::Rows<'c>,
    rank: u8,
    table: &'static str,
}

impl Stream<'_> {
    fn next(&mut self, db: &Path) -> Result<Option<Row>, ExportError> {
        let bad = |e: rusqlite::Error| not_recording(db, format!("reading `{}`: {e}", self.table));
        let Some(r) = self.rows.next().map_err(bad)? else {
            return Ok(None);
        };
        let n = r.as_ref().column_count();
        let mut cells = Vec::with_capacity(n - 1);
        for i in 1..n - 1 {
            cells.push(r.get::<_, SqlValue>(i).map_err(bad)?);
        }
        let rowid: i64 = r.get(n - 1).map_err(bad)?;
        let ts = match r.get::<_, SqlValue>(0).map_err(bad)? {
            SqlValue::Integer(t) => t,
            SqlValue::Real(t) if t.fract() == 0.0 => t as i64,
            other => {
                return Err(not_recording(
                    db,
                    format!(
                        "`{}` row {rowid}: ts_ms is {}, not an integer",
                        self.table,
                        type_name(&other)
                    ),
                ))
            }
        };
        Ok(Some(Row {
            ts,
            rank: self.rank,
            rowid,
            cells,
        }))
    }
}

fn type_name(v: &SqlValue) -> &'static str {
    match v {
        SqlValue::Null => "NULL",
        SqlValue::Integer(_) => "an integer",
        SqlValue::Real(_) => "a real",
        SqlValue::Text(_) => "text",
        SqlValue::Blob(_) => "a blob",
    }
}

fn not_recording(db: &Path, message: String) -> ExportError {
    ExportError::NotARecording {
        path: db.to_owned(),
        message,
    }
}

/// The columns of `table` (empty when there is no such table).
fn columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare("SELECT name FROM pragma_table_info(?1)")?;
    let names = st
        .query_map([table], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(names)
}

/// `col` when `cols` has it, else `NULL`: a select list for optional columns.
fn col_or_null(cols: &[String], col: &str) -> String {
    if cols.iter().any(|c| c == col) {
        format!("\"{col}\"")
    } else {
        "NULL".to_owned()
    }
}

/// A `SELECT` of `wanted` columns of `table` (`NULL` for each it lacks),
/// then its rowid.
fn select(table: &str, cols: &[String], wanted: &[&str]) -> String {
    let list: Vec<String> = wanted.iter().map(|c| col_or_null(cols, c)).collect();
    format!("SELECT {}, rowid FROM \"{table}\"", list.join(", "))
}

fn has_all(cols: &[String], want: &[&str]) -> bool {
    want.iter().all(|w| cols.iter().any(|c| c == w))
}

/// Text of a cell, if it is text (or a blob that is UTF-8).
fn text(v: &SqlValue) -> Option<&str> {
    match v {
        SqlValue::Text(s) => Some(s),
        SqlValue::Blob(b) => std::str::from_utf8(b).ok(),
        _ => None,
    }
}

fn real(v: &SqlValue) -> Option<f64> {
    match v {
        SqlValue::Real(f) => Some(*f),
        SqlValue::Integer(i) => Some(*i as f64),
        _ => None,
    }
}

fn integer(v: &SqlValue) -> Option<i64> {
    match v {
        SqlValue::Integer(i) => Some(*i),
        SqlValue::Real(f) if f.fract() == 0.0 => Some(*f as i64),
        _ => None,
    }
}

/// What the `session` table says, when there is one.
#[derive(Default)]
struct Meta {
    session_id: Option<String>,
    sources: HashMap<String, String>,
}

fn read_meta(conn: &Connection) -> Meta {
    let mut meta = Meta::default();
    let Ok(cols) = columns(conn, "session") else {
        return meta;
    };
    if !has_all(&cols, &["key", "value"]) {
        return meta;
    }
    let get = |key: &str| -> Option<serde_json::Value> {
        let text: String = conn
            .query_row("SELECT value FROM session WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .ok()?;
        serde_json::from_str(&text).ok()
    };
    meta.session_id = get("session_ids").and_then(|v| v.get(0)?.as_str().map(str::to_owned));
    if let Some(serde_json::Value::Object(m)) = get("producer_sources") {
        for (p, s) in m {
            if let Some(s) = s.as_str() {
                meta.sources.insert(p, s.to_owned());
            }
        }
    }
    meta
}

/// A snapshot's state object, path → value, in the order it is written.
struct OrderedState(Vec<(String, f64)>);

impl<'de> serde::Deserialize<'de> for OrderedState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = OrderedState;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of path: number")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<OrderedState, A::Error> {
                let mut v = Vec::new();
                while let Some((k, x)) = map.next_entry::<String, f64>()? {
                    v.push((k, x));
                }
                Ok(OrderedState(v))
            }
        }
        d.deserialize_map(Entries)
    }
}

/// Envelope fields a data object may not override.
const ENVELOPE_FIELDS: [&str; 8] = [
    "v",
    "session_id",
    "producer_id",
    "seq",
    "ts_ms",
    "actor",
    "source",
    "type",
];

struct Encoder {
    session_id: String,
    sources: HashMap<String, String>,
    seqs: HashMap<String, u64>,
    buf: Vec<u8>,
}

impl Encoder {
    fn seq(&mut self, producer: &str, cell: &SqlValue) -> u64 {
        match integer(cell) {
            Some(s) if s >= 0 => s as u64,
            _ => {
                let n = self.seqs.entry(producer.to_owned()).or_insert(0);
                *n += 1;
                *n
            }
        }
    }

    /// Starts an envelope map of `n` fields besides the common five.
    fn head(&mut self, extra_fields: usize, producer: &str, seq: u64, ts: i64) {
        self.buf.clear();
        w::map_len(&mut self.buf, 5 + extra_fields);
        w::str(&mut self.buf, "v");
        w::int(&mut self.buf, 1);
        w::str(&mut self.buf, "session_id");
        w::str(&mut self.buf, &self.session_id);
        w::str(&mut self.buf, "producer_id");
        w::str(&mut self.buf, producer);
        w::str(&mut self.buf, "seq");
        w::uint(&mut self.buf, seq);
        w::str(&mut self.buf, "ts_ms");
        w::int(&mut self.buf, ts);
    }

    fn tail(&mut self, actor: Option<&str>, producer: &str) {
        if let Some(a) = actor {
            w::str(&mut self.buf, "actor");
            w::str(&mut self.buf, a);
        }
        let source = self
            .sources
            .get(producer)
            .map_or(DEFAULT_SOURCE, String::as_str);
        w::str(&mut self.buf, "source");
        w::str(&mut self.buf, source);
    }
}

/// Imports the SQLite recording `db` into the session file `out` (replaced
/// only when `force`).
pub fn import_sqlite(
    db: &Path,
    out: &Path,
    force: bool,
    ctl: &mut Control<'_>,
) -> Result<ImportStats, ExportError> {
    let meta = std::fs::metadata(db).map_err(|source| ExportError::Io {
        path: db.to_owned(),
        source,
    })?;
    if !meta.is_file() {
        return Err(not_recording(db, "not a file".into()));
    }
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| not_recording(db, format!("cannot be opened as SQLite: {e}")))?;
    let Some(cancel) = ctl.cancel else {
        return import_from(&conn, db, out, force, ctl);
    };
    // SQLite's own long steps (sorting an unindexed table for the first
    // row) see a cancel through the connection's interrupt
    let interrupt = conn.get_interrupt_handle();
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
    std::thread::scope(|scope| {
        scope.spawn(move || loop {
            match done_rx.recv_timeout(std::time::Duration::from_millis(20)) {
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    if cancel.load(std::sync::atomic::Ordering::Relaxed) {
                        interrupt.interrupt();
                        return;
                    }
                }
                _ => return,
            }
        });
        let imported = import_from(&conn, db, out, force, ctl);
        drop(done_tx);
        match imported {
            // what SQLite says of an interrupted step
            Err(_) if ctl.cancelled() => Err(ExportError::Cancelled(out.to_owned())),
            other => other,
        }
    })
}

/// [`import_sqlite`] on the opened database.
fn import_from(
    conn: &Connection,
    db: &Path,
    out: &Path,
    force: bool,
    ctl: &mut Control<'_>,
) -> Result<ImportStats, ExportError> {
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .and_then(|mut st| {
            st.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
        })
        .map_err(|e| not_recording(db, format!("not an SQLite database ({e})")))?;
    let sql = |e: rusqlite::Error| not_recording(db, format!("SQLite: {e}"));
    let wanted =
        "a recording needs a table params(ts_ms INTEGER, path TEXT, value REAL, actor TEXT)";
    if !tables.iter().any(|t| t == "params") {
        let has = if tables.is_empty() {
            "it has no tables".to_owned()
        } else {
            format!("it has {}", tables.join(", "))
        };
        return Err(not_recording(
            db,
            format!("no `params` table; {wanted} ({has})"),
        ));
    }
    let pcols = columns(conn, "params").map_err(sql)?;
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|r| !pcols.iter().any(|c| c == r))
        .collect();
    if !missing.is_empty() {
        return Err(not_recording(
            db,
            format!(
                "table `params` has no column {}; {wanted} (it has {})",
                missing
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                pcols.join(", ")
            ),
        ));
    }
    let has_mapped = pcols.iter().any(|c| c == "value_mapped");
    let mcols = columns(conn, "mod").map_err(sql)?;
    let ecols = columns(conn, "events").map_err(sql)?;
    let scols = columns(conn, "snapshots").map_err(sql)?;
    let use_mod = has_all(&mcols, &["ts_ms", "bus", "value"]);
    let use_events = has_all(&ecols, &["ts_ms", "type"]);
    let use_snaps = has_all(&scols, &["ts_ms", "state"]);

    let m = read_meta(conn);
    let mut enc = Encoder {
        session_id: m
            .session_id
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        sources: m.sources,
        seqs: HashMap::new(),
        buf: Vec::with_capacity(256),
    };

    let mut queries: Vec<(String, u8, &'static str)> = vec![(
        select(
            "params",
            &pcols,
            &[
                "ts_ms",
                "path",
                "value",
                "value_mapped",
                "actor",
                "producer_id",
                "seq",
            ],
        ),
        0,
        "params",
    )];
    if use_mod {
        queries.push((
            select(
                "mod",
                &mcols,
                &[
                    "ts_ms",
                    "bus",
                    "value",
                    "source_type",
                    "actor",
                    "producer_id",
                    "seq",
                ],
            ),
            1,
            "mod",
        ));
    }
    if use_events {
        queries.push((
            select(
                "events",
                &ecols,
                &["ts_ms", "type", "actor", "producer_id", "seq", "data"],
            ),
            2,
            "events",
        ));
    }
    if use_snaps {
        queries.push((
            select("snapshots", &scols, &["ts_ms", "state"]),
            3,
            "snapshots",
        ));
    }
    let mut total: u64 = 0;
    for (_, _, table) in &queries {
        let n: i64 = conn
            .query_row(&format!("SELECT COUNT(*) FROM \"{table}\""), [], |r| {
                r.get(0)
            })
            .map_err(sql)?;
        total += n.max(0) as u64;
    }

    let staged = Staged::create(out, None, force)?;
    let file = staged.file()?;
    let mut writer = SessionWriter::new(file, out);
    if use_snaps {
        writer = writer.without_automatic_snapshots();
    }
    let mut statements = Vec::new();
    for (q, rank, table) in &queries {
        statements.push((
            conn.prepare(&format!("{q} ORDER BY ts_ms, rowid"))
                .map_err(sql)?,
            *rank,
            *table,
        ));
    }
    let mut streams = Vec::new();
    for (st, rank, table) in statements.iter_mut() {
        streams.push(Stream {
            rows: st.query([]).map_err(sql)?,
            rank: *rank,
            table,
        });
    }
    let mut heads: Vec<Option<Row>> = Vec::with_capacity(streams.len());
    for s in streams.iter_mut() {
        heads.push(s.next(db)?);
    }
    let mut stats = ImportStats::default();
    let mut done: u64 = 0;
    ctl.tick(
        Progress {
            done,
            total,
            records: 0,
        },
        out,
    )?;
    let write_err = |e: crate::session::WriteError| match e {
        crate::session::WriteError::Io { source, .. } => staged.io(source),
        other => staged.lib_error(other),
    };
    // each time, the stream whose head comes first
    while let Some(i) = heads
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.as_ref().map(|r| (i, (r.ts, r.rank))))
        .min_by_key(|&(_, k)| k)
        .map(|(i, _)| i)
    {
        let row = heads[i].take().expect("chosen head is present");
        heads[i] = streams[i].next(db)?;
        let bad = |what: String| {
            not_recording(
                db,
                format!("`{}` row {}: {what}", streams[i].table, row.rowid),
            )
        };
        let c = &row.cells;
        // an event's topic and key, or None for a snapshot
        let event = match row.rank {
            0 => {
                let path = text(&c[0]).ok_or_else(|| bad("path is not text".into()))?;
                let value = real(&c[1]).ok_or_else(|| bad("value is not a number".into()))?;
                let actor = text(&c[3]);
                let producer = text(&c[4]).unwrap_or(DEFAULT_PRODUCER).to_owned();
                let seq = enc.seq(&producer, &c[5]);
                let fields = 2 + usize::from(has_mapped) + 1 + usize::from(actor.is_some());
                enc.head(fields, &producer, seq, row.ts);
                w::str(&mut enc.buf, "path");
                w::str(&mut enc.buf, path);
                w::str(&mut enc.buf, "value");
                w::f64(&mut enc.buf, value);
                if has_mapped {
                    w::str(&mut enc.buf, "value_mapped");
                    w::opt_f64(&mut enc.buf, real(&c[2]));
                }
                enc.tail(actor, &producer);
                Some(("noise.params", std::borrow::Cow::Borrowed(path)))
            }
            1 => {
                let bus = integer(&c[0]).ok_or_else(|| bad("bus is not an integer".into()))?;
                let value = real(&c[1]).ok_or_else(|| bad("value is not a number".into()))?;
                let source_type = text(&c[2]);
                let actor = text(&c[3]).unwrap_or("mod").to_owned();
                let producer = text(&c[4]).unwrap_or(DEFAULT_PRODUCER).to_owned();
                let seq = enc.seq(&producer, &c[5]);
                let path = format!("bus.{bus}");
                enc.head(
                    3 + usize::from(source_type.is_some()) + 2,
                    &producer,
                    seq,
                    row.ts,
                );
                w::str(&mut enc.buf, "path");
                w::str(&mut enc.buf, &path);
                w::str(&mut enc.buf, "bus");
                w::int(&mut enc.buf, bus);
                w::str(&mut enc.buf, "value");
                w::f64(&mut enc.buf, value);
                if let Some(s) = source_type {
                    w::str(&mut enc.buf, "source_type");
                    w::str(&mut enc.buf, s);
                }
                enc.tail(Some(&actor), &producer);
                Some(("noise.mod", std::borrow::Cow::Owned(path)))
            }
            2 => {
                let event_type = text(&c[0]).ok_or_else(|| bad("type is not text".into()))?;
                let actor = text(&c[1]);
                let producer = text(&c[2]).unwrap_or(DEFAULT_PRODUCER).to_owned();
                let seq = enc.seq(&producer, &c[3]);
                let data: serde_json::Map<String, serde_json::Value> = match text(&c[4]) {
                    None => serde_json::Map::new(),
                    Some(t) => match serde_json::from_str(t) {
                        Ok(serde_json::Value::Object(m)) => m,
                        _ => return Err(bad("data is not a JSON object".into())),
                    },
                };
                let own: Vec<(&String, &serde_json::Value)> = data
                    .iter()
                    .filter(|(k, _)| !ENVELOPE_FIELDS.contains(&k.as_str()))
                    .collect();
                enc.head(
                    1 + own.len() + 1 + usize::from(actor.is_some()),
                    &producer,
                    seq,
                    row.ts,
                );
                w::str(&mut enc.buf, "type");
                w::str(&mut enc.buf, event_type);
                for (k, v) in own {
                    w::str(&mut enc.buf, k);
                    json::json_to_msgpack(v, &mut enc.buf);
                }
                enc.tail(actor, &producer);
                Some(("noise.events", std::borrow::Cow::Borrowed(event_type)))
            }
            _ => {
                let state = text(&c[0]).ok_or_else(|| bad("state is not text".into()))?;
                let entries = serde_json::from_str::<OrderedState>(state)
                    .map_err(|e| bad(format!("state is not a JSON object of numbers ({e})")))?
                    .0;
                writer
                    .append_snapshot_state(row.ts, &entries)
                    .map_err(write_err)?;
                stats.snapshots += 1;
                None
            }
        };
        if let Some((topic, key)) = event {
            writer
                .append_event(topic, Some(&key), &enc.buf)
                .map_err(|e| match e {
                    crate::session::WriteError::InvalidEnvelope(r) => bad(r),
                    other => write_err(other),
                })?;
            stats.events += 1;
        }
        done += 1;
        if done % PROGRESS_EVERY == 0 {
            // keeps the writer's buffer small
            writer.flush().map_err(write_err)?;
            ctl.tick(
                Progress {
                    done,
                    total,
                    records: done,
                },
                out,
            )?;
        }
    }
    ctl.tick(
        Progress {
            done,
            total,
            records: done,
        },
        out,
    )?;
    writer.finish().map_err(write_err)?;
    drop(streams);
    stats.output_bytes = staged.commit()?;
    Ok(stats)
}
