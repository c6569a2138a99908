#!/usr/bin/env python3
"""Writes Integr8tor's golden session files and their facts files.

    python3 tests/data/make_golden.py
        rewrites the committed golden files of the current format
        (tests/data/v1/*.msgpack and *.facts.json)
    python3 tests/data/make_golden.py OUT.msgpack [--seconds 3600] [--seed 7] [--facts OUT.json]
        writes one performance-like session of any length (the benchmarks
        make their 1-hour, ~1.8 M-record file this way)

It is an encoder of its own, independent of the Rust code, and needs only the
Python `msgpack` package. The files follow docs/formats.md: a session file is
a plain concatenation of MessagePack maps, `event` records in arrival order
and a `snapshot` record after every event more than 5000 ms past the previous
snapshot (the first event always qualifies). Everything is seeded, so a run
writes the same bytes every time.

A facts file states what any correct reader must report about its session
file: record counts by kind and topic, snapshot instants, time range, the
parameter paths, and the exact state at a few instants by the rule of
docs/formats.md ("State at time t").
"""
import argparse
import json
import os
import random
import uuid

import msgpack

SNAPSHOT_MS = 5000
HERE = os.path.dirname(os.path.abspath(__file__))
# The directory of the golden files of the current file format. When the
# format changes, the old directory stays (its files must keep loading) and a
# new one is written beside it.
CURRENT = "v1"
T0 = 1_790_000_000_000

ROUTES = ["gen.{g}.cutoff", "gen.{g}.resonance", "gen.{g}.frequency", "gen.{g}.drive"]


def standard_paths(n=24):
    paths = ["master.volume", "master.compressor.ratio", "mod.1.rate", "mod.2.depth"]
    g = 1
    while len(paths) < n:
        paths.extend(r.format(g=g) for r in ROUTES)
        g += 1
    return paths[:n]


def cutoff_hz(v):
    """value_mapped of a cutoff: 20 Hz .. 20 kHz, exponential."""
    return round(20.0 * (1000.0 ** v), 3)


class Performance:
    """Messages as the bus carried them. Each message is kept as a small tuple
    until it is written, so that an hour of them fits in memory."""

    def __init__(self, seed, t0):
        self.rng = random.Random(seed)
        self.session = str(uuid.UUID(int=self.rng.getrandbits(128)))
        self.t0 = t0
        self.msgs = []  # (arrival_ms, n, producer, ts_ms, topic, key, actor, source, body, extra, old)

    def add(self, arrival, producer, ts, topic, key, actor, source, body, extra=None, old=False):
        self.msgs.append((arrival, len(self.msgs), producer, ts, topic, key, actor, source,
                          body, extra, old))

    def param(self, arrival, producer, ts, actor, source, path, value, mapped=..., extra=None,
              old=False):
        body = [("path", path), ("value", float(value))]
        if mapped is not ...:
            body.append(("value_mapped", mapped))
        self.add(arrival, producer, ts, "noise.params", path, actor, source, body, extra, old)

    def arrival_order(self):
        """The messages in the order a recorder met them, each as
        (topic, key, data map), with seq numbers counted per producer in
        that order (a producer's messages arrive in the order it sent them)."""
        self.msgs.sort(key=lambda m: (m[0], m[1]))
        seqs = {}
        for (_, _, producer, ts, topic, key, actor, source, body, extra, old) in self.msgs:
            seqs[producer] = seqs.get(producer, 0) + 1
            s = (lambda x: x.encode()) if old else (lambda x: x)
            data = {"v": 1, "session_id": s(self.session), "producer_id": s(producer),
                    "seq": seqs[producer], "ts_ms": ts, "actor": s(actor), "source": s(source)}
            for k, v in body:
                data[k] = s(v) if isinstance(v, str) else v
            if extra:
                data.update(extra)
            yield topic, key, data


def text(x):
    return x.decode() if isinstance(x, bytes) else x


def perform(p, seconds, paths, *, drag_hz=60, mod_hz=30, buses=16, presets=True, notes=True,
            old_producer=True, mod_params=True, extras=True):
    """A performance: user drags, preset loads, MIDI changes and notes from a
    bridge whose clock is skewed, mod buses, and a few odd messages."""
    rng, t0 = p.rng, p.t0
    end = t0 + seconds * 1000

    # User drags from the GUI: bursts on one path at drag_hz, now and then.
    t = t0 + 200
    gesture = 0
    while t < end:
        path = rng.choice(paths)
        v = rng.random()
        gesture += 1
        for k in range(rng.randrange(3, 40)):
            if t >= end:
                break
            v = min(1.0, max(0.0, v + rng.uniform(-0.05, 0.05)))
            mapped = cutoff_hz(v) if path.endswith("cutoff") else None
            extra = None
            if extras and gesture % 7 == 0:
                # fields no reader knows: they must survive storing and replay
                extra = {"gesture": gesture, "ui": {"widget": "knob", "page": k % 3}}
            p.param(t, "python.gui", t, "user", "python", path, v, mapped, extra)
            t += int(1000 / drag_hz)
        t += rng.randrange(200, 1500)

    # Preset loads: a preset_load event and, at the same ts_ms, the burst of
    # every parameter the preset sets.
    if presets:
        count = max(1, seconds // 20)
        slot = seconds * 1000 // count
        for k in range(count):
            ts = t0 + k * slot + rng.randrange(1000, slot - 1000)
            name = f"preset {k + 1:02d} {rng.choice(['glass', 'drone', 'pulse', 'dust'])}"
            p.add(ts, "python.gui", ts, "noise.events", "preset_load", "preset", "python",
                  [("type", "preset_load"), ("preset", name)])
            for path in paths:
                v = round(rng.random(), 6)
                p.param(ts, "python.gui", ts, "preset", "python", path, v,
                        cutoff_hz(v) if path.endswith("cutoff") else None)

    # The SuperCollider bridge: MIDI controller changes and notes. Its clock
    # runs ahead, so its ts_ms lie after the moment its messages arrive.
    skew = 29
    for _ in range(seconds):
        arrival = t0 + rng.randrange(0, seconds * 1000 - 600)
        path = rng.choice(paths)
        p.param(arrival, "sc.bridge", arrival + skew, "midi", "supercollider", path,
                rng.randrange(128) / 127.0, None)
    if notes:
        for _ in range(seconds // 2):
            arrival = t0 + rng.randrange(0, seconds * 1000 - 600)
            note, velocity = rng.randrange(36, 96), rng.randrange(1, 128)
            p.add(arrival, "sc.bridge", arrival + skew, "noise.events", "note_on", "midi",
                  "supercollider", [("type", "note_on"), ("note", note), ("velocity", velocity)])
            off = arrival + rng.randrange(80, 500)
            p.add(off, "sc.bridge", off + skew, "noise.events", "note_off", "midi",
                  "supercollider", [("type", "note_off"), ("note", note), ("velocity", 0)])

    # Parameter changes made by the modulation itself (actor mod): recorded,
    # never republished by replay.
    if mod_params:
        for _ in range(max(1, seconds // 6)):
            arrival = t0 + rng.randrange(0, seconds * 1000 - 600)
            p.param(arrival, "sc.bridge", arrival + skew, "mod", "supercollider",
                    rng.choice(paths), rng.random(), None)

    # An old Python producer whose strings arrive bin-typed; its messages
    # carry no value_mapped at all.
    if old_producer:
        for i in range(max(1, seconds // 2)):
            ts = t0 + (seconds * 1000 * (i + 1)) // (seconds // 2 + 2)
            p.param(ts, "python.legacy", ts, "user", "python", paths[i % 3], rng.random(),
                    old=True)

    # Mod buses at mod_hz.
    step = int(1000 / mod_hz)
    for ts in range(t0, end, step):
        secs = (ts - t0) / 1000.0
        for bus in range(buses):
            phase = secs * (0.1 + bus * 0.07)
            if bus % 2:
                val = phase % 1.0  # saw
            else:
                val = abs((phase % 2.0) - 1.0)  # triangle
            p.add(ts, "sc.bridge", ts + skew, "noise.mod", f"bus.{bus}", "mod", "supercollider",
                  [("path", f"bus.{bus}"), ("bus", bus), ("value", round(val, 5)),
                   ("source_type", "lfo" if bus < 8 else "sloth")])


def write_session(out, perf, initial_state=None, unknown_after=None):
    """Writes the records in arrival order as a recorder does (docs/formats.md),
    and returns what the file holds for the facts."""
    packer = msgpack.Packer(use_bin_type=True)
    state = dict(initial_state or {})
    last_snap = None
    facts = {"event_records": 0, "snapshot_records": 0, "unknown_records": 0,
             "by_topic": {}, "snapshots": [], "snapshot_paths": []}
    events, snaps = [], []  # for the exact state: (ts, path, value) / (ts, state)
    stats = {"params_by_actor": {}, "events_by_type": {}, "preset_loads": [],
             "bin_string_events": 0, "params_with_extra_fields": 0,
             "params_with_value_mapped": 0, "producers": set()}
    offset = 0
    with open(out, "wb") as f:
        def put(record):
            nonlocal offset
            b = packer.pack(record)
            f.write(b)
            offset += len(b)

        for n, (topic, key, data) in enumerate(perf.arrival_order()):
            put({"type": "event", "topic": topic, "key": key, "data": data})
            facts["event_records"] += 1
            facts["by_topic"][topic] = facts["by_topic"].get(topic, 0) + 1
            ts = data["ts_ms"]
            actor = text(data["actor"])
            stats["producers"].add(text(data["producer_id"]))
            if isinstance(data["producer_id"], bytes):
                stats["bin_string_events"] += 1
            if topic == "noise.params":
                path = text(data["path"])
                state[path] = data["value"]
                events.append((ts, path, data["value"]))
                if any(k not in PARAM_FIELDS for k in data):
                    stats["params_with_extra_fields"] += 1
                if "value_mapped" in data and data["value_mapped"] is not None:
                    stats["params_with_value_mapped"] += 1
                stats["params_by_actor"][actor] = stats["params_by_actor"].get(actor, 0) + 1
            elif topic == "noise.events":
                kind = data["type"]
                stats["events_by_type"][kind] = stats["events_by_type"].get(kind, 0) + 1
                if kind == "preset_load":
                    stats["preset_loads"].append({"ts_ms": ts, "preset": data["preset"]})
            if last_snap is None or ts - last_snap > SNAPSHOT_MS:
                put({"type": "snapshot", "ts_ms": ts, "state": dict(state)})
                facts["snapshot_records"] += 1
                facts["snapshots"].append(ts)
                facts["snapshot_paths"].append(len(state))
                snaps.append((ts, dict(state)))
                last_snap = ts
            if unknown_after is not None and n + 1 == unknown_after:
                # a record kind from a later writer: readers skip and count it
                put({"type": "marker", "ts_ms": ts, "label": "verse 2", "colour": "#ffaa00"})
                facts["unknown_records"] += 1
    facts["records"] = (facts["event_records"] + facts["snapshot_records"]
                        + facts["unknown_records"])
    facts["file_bytes"] = offset
    stats["producers"] = sorted(stats["producers"])
    facts.update(stats)
    facts["session_id"] = perf.session
    facts["session_ids"] = [perf.session]
    all_ts = sorted(m[3] for m in perf.msgs)
    facts["first_ts_ms"], facts["last_ts_ms"] = all_ts[0], all_ts[-1]
    paths = {p for _, p, _ in events}
    for _, s in snaps:
        paths.update(s)
    facts["param_paths"] = sorted(paths)
    facts["event_param_paths"] = sorted({p for _, p, _ in events})
    return facts, events, snaps


PARAM_FIELDS = {"v", "session_id", "producer_id", "seq", "ts_ms", "actor", "source", "path",
                "value", "value_mapped"}


def exact_state(events, snaps, t):
    """The state at t by docs/formats.md: the last snapshot with ts_ms <= t
    (empty if none), overlaid by every params event with ts_ms <= t in ts_ms
    order (stable: ties keep file order). Events win over the snapshot."""
    state = {}
    for ts, s in snaps:
        if ts <= t:
            state = dict(s)
    for ts, path, value in sorted(events, key=lambda e: e[0]):
        if ts <= t:
            state[path] = value
    return state


def events_only_state(events, t):
    state = {}
    for ts, path, value in sorted(events, key=lambda e: e[0]):
        if ts <= t:
            state[path] = value
    return state


def add_probes(facts, events, snaps, probes):
    facts["exact_state_at"] = {str(t): exact_state(events, snaps, t) for t in probes}


def write_facts(path, facts):
    with open(path, "w") as f:
        json.dump(facts, f, indent=1, sort_keys=True)
        f.write("\n")


def small_60s(out_dir):
    """60 s of a performance: everything a recorder meets."""
    perf = Performance(seed=7, t0=T0 + 810_111)
    perform(perf, 60, standard_paths())
    out = os.path.join(out_dir, "small-60s.msgpack")
    facts, events, snaps = write_session(out, perf, unknown_after=9_000)
    first, last = facts["first_ts_ms"], facts["last_ts_ms"]
    probes = [first - 1, first, first + 4_000, first + 20_000 - 35, first + 30_000 + 1, snaps[-1][0], last]
    add_probes(facts, events, snaps, probes)
    # Until a reader counts snapshot-only values, the two rules agree on this
    # file's probes; say so if a change of the generator breaks that.
    for t in probes:
        if exact_state(events, snaps, t) != events_only_state(events, t):
            print(f"note: small-60s probe {t} depends on a snapshot-only value")
    write_facts(os.path.join(out_dir, "small-60s.facts.json"), facts)
    return out


def snapshot_start(out_dir):
    """A recording started mid-performance: its first snapshot holds the whole
    known state, and most of those paths no event in the file sets."""
    perf = Performance(seed=11, t0=T0 + 5_000_123)
    live = standard_paths(6)[2:]  # the paths the performer touches while recording
    perform(perf, 20, live, buses=2, presets=False, notes=False, old_producer=False,
            mod_params=False, extras=False)
    rng = random.Random(1100)
    known = standard_paths(24) + ["fx.1.mix", "fx.1.time", "fx.2.feedback", "master.eq.low"]
    initial = {p: rng.random() for p in known}
    out = os.path.join(out_dir, "snapshot-start.msgpack")
    facts, events, snaps = write_session(out, perf, initial_state=initial)
    first, last = facts["first_ts_ms"], facts["last_ts_ms"]
    facts["snapshot_only_paths"] = sorted(set(initial) - {p for _, p, _ in events})
    probes = [first - 1, snaps[0][0], snaps[0][0] + 3_000, snaps[1][0] + 1, last]
    add_probes(facts, events, snaps, probes)
    write_facts(os.path.join(out_dir, "snapshot-start.facts.json"), facts)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", help="write one session here instead of the golden set")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--facts", help="with OUT: also write its facts here")
    args = ap.parse_args()
    if args.out is None:
        out_dir = os.path.join(HERE, CURRENT)
        os.makedirs(out_dir, exist_ok=True)
        for make in (small_60s, snapshot_start):
            print(make(out_dir))
        return
    if args.seconds < 10:
        ap.error("--seconds must be at least 10")
    perf = Performance(seed=args.seed, t0=T0 + 810_111)
    perform(perf, args.seconds, standard_paths())
    facts, events, snaps = write_session(args.out, perf, unknown_after=9_000)
    if args.facts:
        first, last = facts["first_ts_ms"], facts["last_ts_ms"]
        add_probes(facts, events, snaps, [first, (first + last) // 2, last])
        write_facts(args.facts, facts)


if __name__ == "__main__":
    main()
