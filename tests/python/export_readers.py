#!/usr/bin/env python3
"""Reads an `integr8tor export` with independent readers and prints what it
found as one JSON object, for tests/export.rs to hold against the fixture's
facts file.

    python3 export_readers.py csv|sqlite|mcap FILE T1,T2,...

T1,T2,... are instants at which to compute the exact parameter state from
the export alone (FORMATS.md section 3: every params event with ts_ms <= t,
ordered by ts_ms, stably).
"""
import csv
import datetime
import json
import sqlite3
import sys


def state_at(events, instants):
    """events: (ts_ms, path, value) in file order."""
    ordered = sorted(events, key=lambda e: e[0])  # stable
    out = {}
    for t in instants:
        s = {}
        for ts, path, value in ordered:
            if ts <= t:
                s[path] = value
        out[str(t)] = s
    return out


def read_csv(path, instants):
    by_topic, params, paths, bad_time, events_data = {}, [], set(), 0, 0
    first = last = None
    with open(path, newline="") as f:
        r = csv.DictReader(f)
        columns = r.fieldnames
        for row in r:
            topic = row["topic"]
            ts = int(row["ts_ms"])
            by_topic[topic] = by_topic.get(topic, 0) + 1
            first = ts if first is None else min(first, ts)
            last = ts if last is None else max(last, ts)
            t = datetime.datetime.fromisoformat(row["time"].replace("Z", "+00:00"))
            if round(t.timestamp() * 1000) != ts:
                bad_time += 1
            if topic == "noise.params":
                params.append((ts, row["path"], float(row["value"])))
                paths.add(row["path"])
            if topic == "noise.events" and json.loads(row["data"]):
                events_data += 1
    return {
        "columns": columns,
        "event_records": sum(by_topic.values()),
        "by_topic": by_topic,
        "first_ts_ms": first,
        "last_ts_ms": last,
        "param_paths": sorted(paths),
        "bad_times": bad_time,
        "events_with_data": events_data,
        "exact_state_at": state_at(params, instants),
    }


def read_sqlite(path, instants):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    count = lambda t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
    indexes = sorted(
        ",".join(c[2] for c in db.execute(f"PRAGMA index_info({name})"))
        for (_, name, *_) in db.execute("PRAGMA index_list(params)")
    )
    params = db.execute("SELECT ts_ms, path, value FROM params ORDER BY rowid").fetchall()
    session = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM session")}
    snaps = [ts for (ts,) in db.execute("SELECT ts_ms FROM snapshots ORDER BY rowid")]
    states_ok = all(
        isinstance(json.loads(s), dict) for (s,) in db.execute("SELECT state FROM snapshots")
    )
    events_data = sum(
        1 for (d,) in db.execute("SELECT data FROM events") if d and json.loads(d)
    )
    ts = [t for (t,) in db.execute(
        "SELECT ts_ms FROM params UNION ALL SELECT ts_ms FROM mod UNION ALL SELECT ts_ms FROM events")]
    return {
        "event_records": count("params") + count("mod") + count("events"),
        "by_topic": {"noise.params": count("params"), "noise.mod": count("mod"),
                     "noise.events": count("events")},
        "snapshot_records": count("snapshots"),
        "snapshots": snaps,
        "snapshot_states_are_objects": states_ok,
        "first_ts_ms": min(ts),
        "last_ts_ms": max(ts),
        "param_paths": sorted({p for (_, p, _) in params}),
        "params_indexes": indexes,
        "events_with_data": events_data,
        "session": session,
        "exact_state_at": state_at(params, instants),
    }


def read_mcap(path, instants):
    from mcap.reader import make_reader

    with open(path, "rb") as f:
        reader = make_reader(f, validate_crcs=True)
        summary = reader.get_summary()
        assert summary is not None, "no summary section"
        schemas = {s.id: s for s in summary.schemas.values()}
        channels = {c.id: c for c in summary.channels.values()}
        by_channel, params, first, last = {}, [], None, None
        bad_json = 0
        for schema, channel, message in reader.iter_messages(log_time_order=False):
            try:
                body = json.loads(message.data)
            except ValueError:
                bad_json += 1
                continue
            topic = channel.topic
            by_channel[topic] = by_channel.get(topic, 0) + 1
            ts = message.log_time // 1_000_000
            if topic.startswith("/param/"):
                params.append((ts, topic[len("/param/"):], body["value"]))
            if topic.startswith("noise."):
                assert body["ts_ms"] == ts, (body, ts)
                first = ts if first is None else min(first, ts)
                last = ts if last is None else max(last, ts)
        # seeking through the indexes: one parameter's channel over a time window
        some = sorted(t for t in by_channel if t.startswith("/param/"))[0]
        window = sum(1 for _ in reader.iter_messages(
            topics=[some], start_time=first * 1_000_000, end_time=(last + 1) * 1_000_000))
    return {
        "message_count": summary.statistics.message_count,
        "chunk_indexes": len(summary.chunk_indexes),
        "chunk_compression": sorted({c.compression for c in summary.chunk_indexes}),
        "schema_encodings": sorted({s.encoding for s in schemas.values()}),
        "message_encodings": sorted({c.message_encoding for c in channels.values()}),
        "channels_without_schema": sum(1 for c in channels.values() if c.schema_id == 0),
        "by_channel": by_channel,
        "bad_json": bad_json,
        "first_ts_ms": first,
        "last_ts_ms": last,
        "seek_channel": some,
        "seek_count": window,
        "param_paths": sorted(t[len("/param/"):] for t in by_channel if t.startswith("/param/")),
        "exact_state_at": state_at(params, instants),
    }


def main():
    kind, path, instants = sys.argv[1], sys.argv[2], [int(t) for t in sys.argv[3].split(",")]
    read = {"csv": read_csv, "sqlite": read_sqlite, "mcap": read_mcap}[kind]
    print(json.dumps(read(path, instants)))


if __name__ == "__main__":
    main()
