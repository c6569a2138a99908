#!/usr/bin/env python3
"""A straightforward Python exporter of the same design as `integr8tor export`,
for the export benchmark (benches/export.rs) to compare against.

    python3 export_baseline.py csv|sqlite IN.msgpack OUT

Streams the session with msgpack's Unpacker and writes the same CSV columns
(csv.writer) or the same SQLite tables and indexes (sqlite3.executemany in
one transaction). Prints one JSON line: seconds, records, peak RSS.
"""
import csv
import datetime
import json
import resource
import sqlite3
import sys
import time

import msgpack

OWN = {
    "noise.params": {"v", "session_id", "producer_id", "seq", "ts_ms", "actor", "source",
                     "path", "value", "value_mapped"},
    "noise.mod": {"v", "session_id", "producer_id", "seq", "ts_ms", "actor", "source",
                  "path", "bus", "value"},
    "noise.events": {"v", "session_id", "producer_id", "seq", "ts_ms", "actor", "source", "type"},
}
COMMON = {"v", "session_id", "producer_id", "seq", "ts_ms", "actor", "source"}


def records(path):
    with open(path, "rb") as f:
        for rec in msgpack.Unpacker(f, raw=False, strict_map_key=False):
            yield rec


def text(x):
    """A string field: old producers send strings as bin (FORMATS.md)."""
    return x.decode("utf-8", "replace") if isinstance(x, bytes) else x


def data_json(topic, d):
    defined = OWN.get(topic, COMMON | {"path"})
    own = {k: v for k, v in d.items() if k not in defined}
    return json.dumps(own, separators=(",", ":")) if own else ""


def iso(ts):
    t = datetime.datetime.fromtimestamp(ts / 1000, tz=datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ts % 1000)


def fmt(x):
    return "" if x is None else repr(float(x))


def export_csv(src, out):
    n = 0
    with open(out, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["ts_ms", "time", "topic", "path", "value", "value_mapped", "actor",
                    "producer_id", "seq", "data"])
        for rec in records(src):
            if rec.get("type") != "event":
                continue
            topic, d = rec["topic"], rec["data"]
            name = text(d.get("path", d.get("type", d.get("key", ""))))
            value = d.get("value", d.get("peak"))
            w.writerow([d["ts_ms"], iso(d["ts_ms"]), topic, name, fmt(value),
                        fmt(d.get("value_mapped")), text(d.get("actor", "")),
                        text(d["producer_id"]), d["seq"], data_json(topic, d)])
            n += 1
    return n


SCHEMA = """
CREATE TABLE params(ts_ms INTEGER, path TEXT, value REAL, value_mapped REAL, actor TEXT, producer_id TEXT, seq INTEGER);
CREATE TABLE mod(ts_ms INTEGER, bus INTEGER, value REAL, source_type TEXT, actor TEXT, producer_id TEXT, seq INTEGER);
CREATE TABLE events(ts_ms INTEGER, type TEXT, actor TEXT, producer_id TEXT, seq INTEGER, data JSON);
CREATE TABLE snapshots(ts_ms INTEGER, state JSON);
CREATE TABLE session(key TEXT PRIMARY KEY, value TEXT);
"""
INDEXES = """
CREATE INDEX params_ts ON params(ts_ms);
CREATE INDEX params_path_ts ON params(path, ts_ms);
CREATE INDEX snapshots_ts ON snapshots(ts_ms);
"""
BATCH = 10000


def run_script(db, script):
    for stmt in script.split(";"):
        if stmt.strip():
            db.execute(stmt)


def export_sqlite(src, out):
    db = sqlite3.connect(out, isolation_level=None)
    db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-32768;")
    db.execute("BEGIN")
    run_script(db, SCHEMA)
    rows = {"params": [], "mod": [], "events": [], "snapshots": []}
    sql = {
        "params": "INSERT INTO params VALUES (?,?,?,?,?,?,?)",
        "mod": "INSERT INTO mod VALUES (?,?,?,?,?,?,?)",
        "events": "INSERT INTO events VALUES (?,?,?,?,?,?)",
        "snapshots": "INSERT INTO snapshots VALUES (?,?)",
    }
    by_topic, paths, producers, sessions = {}, set(), {}, set()
    first = last = None
    n = 0

    def put(table, row):
        rows[table].append(row)
        if len(rows[table]) >= BATCH:
            db.executemany(sql[table], rows[table])
            rows[table].clear()

    for rec in records(src):
        kind = rec.get("type")
        if kind == "snapshot":
            put("snapshots", (rec["ts_ms"], json.dumps(rec["state"], separators=(",", ":"))))
            n += 1
            continue
        if kind != "event":
            continue
        topic, d = rec["topic"], rec["data"]
        ts = d["ts_ms"]
        actor, producer = text(d.get("actor")), text(d["producer_id"])
        if topic == "noise.params":
            path = text(d["path"])
            put("params", (ts, path, d["value"], d.get("value_mapped"), actor, producer,
                           d["seq"]))
            paths.add(path)
        elif topic == "noise.mod":
            put("mod", (ts, d["bus"], d["value"], text(d.get("source_type")), actor, producer,
                        d["seq"]))
        elif topic == "noise.events":
            put("events", (ts, text(d["type"]), actor, producer, d["seq"],
                           data_json(topic, d) or None))
        else:
            continue
        n += 1
        by_topic[topic] = by_topic.get(topic, 0) + 1
        first = ts if first is None else min(first, ts)
        last = ts if last is None else max(last, ts)
        producers.setdefault(producer, text(d.get("source")))
        sessions.add(text(d["session_id"]))
    for table, pending in rows.items():
        if pending:
            db.executemany(sql[table], pending)
    run_script(db, INDEXES)
    info = {"event_records": sum(by_topic.values()), "by_topic": by_topic, "first_ts_ms": first,
            "last_ts_ms": last, "param_paths": sorted(paths), "producers": sorted(producers),
            "session_ids": sorted(sessions), "producer_sources": producers}
    db.executemany("INSERT INTO session VALUES (?, ?)",
                   [(k, json.dumps(v)) for k, v in info.items()])
    db.execute("COMMIT")
    db.close()
    return n


def main():
    fmt_name, src, out = sys.argv[1:4]
    start = time.perf_counter()
    n = {"csv": export_csv, "sqlite": export_sqlite}[fmt_name](src, out)
    secs = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": secs, "records": n, "peak_rss_bytes": peak}))


if __name__ == "__main__":
    main()
