#!/usr/bin/env python3
"""Build the seed corpora of the fuzz targets from the golden sessions.

    python3 fuzz/make_corpus.py [--fixtures DIR] [--out DIR]

Reads the golden files in tests/data/v1 in place and writes small seed
files into fuzz/corpus/<target>/ (git-ignored): record-aligned slices of
small-60s.msgpack and snapshot-start.msgpack, the tail of a copy cut short
inside a record and the damaged stretch of a copy with garbage inserted at a
record boundary, single records of every kind, a few re-encoded
variants (bin strings, other key orders, unknown and invalid records), and
the envelopes of single events for `envelope_decode`. Needs Python `msgpack`.
"""
import argparse
import hashlib
import os

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_FIXTURES = os.path.join(HERE, "..", "tests", "data", "v1")


def records(path, limit=None):
    """(offset, raw bytes, decoded record) of the file's complete records."""
    with open(path, "rb") as f:
        blob = f.read()
    out = []
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    unpacker.feed(blob)
    start = 0
    while limit is None or len(out) < limit:
        try:
            rec = next(unpacker)
        except (StopIteration, msgpack.OutOfData):
            break
        except Exception:  # noqa: BLE001 - corrupt bytes end the walk
            break
        end = unpacker.tell()
        out.append((start, blob[start:end], rec))
        start = end
    return blob, out


def to_bin(v):
    """Every str as bin, as old producers without use_bin_type send them."""
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, dict):
        return {to_bin(k): to_bin(x) for k, x in v.items()}
    if isinstance(v, list):
        return [to_bin(x) for x in v]
    return v


class Corpus:
    def __init__(self, root, name, max_len):
        self.dir = os.path.join(root, name)
        self.max_len = max_len
        self.count = 0
        os.makedirs(self.dir, exist_ok=True)

    def add(self, data):
        if not data or len(data) > self.max_len:
            return
        name = hashlib.sha1(data).hexdigest()
        path = os.path.join(self.dir, name)
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(data)
            self.count += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", default=DEFAULT_FIXTURES)
    ap.add_argument("--out", default=os.path.join(HERE, "corpus"))
    args = ap.parse_args()
    fx = lambda name: os.path.join(args.fixtures, name)  # noqa: E731
    pack = msgpack.Packer(use_bin_type=True).pack

    session = Corpus(args.out, "session_reader", 8192)
    envelope = Corpus(args.out, "envelope_decode", 2048)

    blob, small = records(fx("small-60s.msgpack"))
    raws = [r for _, r, _ in small]
    _, start = records(fx("snapshot-start.msgpack"), limit=40)
    for k in (1, 2, 5, 40):
        session.add(b"".join(r for _, r, _ in start[:k]))

    # Record-aligned prefixes, and windows of a few records here and there.
    for k in (1, 2, 3, 5, 8, 13, 21):
        session.add(b"".join(raws[:k]))
    for i in range(0, len(raws) - 10, 397):
        session.add(b"".join(raws[i : i + 3]))
        session.add(b"".join(raws[i : i + 10]))

    # One record of each shape: per topic and event type, snapshots, nil and float value_mapped.
    shapes = {}
    for _, raw, rec in small:
        if rec.get("type") == "snapshot":
            shape = ("snapshot", len(rec["state"]) > 0)
        elif rec.get("type") != "event":
            shape = ("unknown record", rec.get("type"))
        else:
            d = rec["data"]
            shape = (rec["topic"], d.get("type"), d.get("value_mapped") is None, d.get("actor"))
        shapes.setdefault(shape, (raw, rec))
    for raw, rec in shapes.values():
        session.add(raw)
        session.add(raw[: len(raw) // 2])  # cut short
        if rec.get("type") == "event":
            envelope.add(pack(rec["data"]))
            envelope.add(pack(to_bin(rec["data"])))
        # the same record re-encoded: bin strings, and keys in another order
        session.add(pack(to_bin(rec)))
        session.add(pack(dict(reversed(list(rec.items())))))

    # Records the fixtures do not have: other topics, unknown and invalid records.
    base = next(rec["data"] for _, _, rec in small if rec.get("type") == "event")
    common = {k: base[k] for k in ("v", "session_id", "producer_id", "seq", "ts_ms")}
    audio = dict(common, path="master", peak=0.75, rms=None, actor="telemetry", source="python")
    state = dict(common, key="preset", state={"gen.1.cutoff": 0.5}, actor="preset", source="python")
    for topic, data in (("noise.audio", audio), ("noise.state", state), ("other.topic", common)):
        envelope.add(pack(data))
        session.add(pack({"type": "event", "topic": topic, "key": None, "data": data}) + raws[0])
    session.add(pack({"type": "marker", "note": "not a record kind"}) + raws[0])
    session.add(pack({"type": "event", "topic": "noise.params", "data": {"v": 1}}) + raws[0])
    session.add(pack({"type": "snapshot", "ts_ms": 1, "state": [1, 2]}) + raws[1])
    session.add(pack([1, 2, 3]) + raws[0])

    # A copy cut 37 bytes into record 20,000: the last complete records and the cut.
    cut_at = small[20_000][0] + 37
    session.add(blob[small[19_997][0] : cut_at])
    session.add(blob[small[20_000][0] : cut_at])

    # Garbage (never-used 0xc1 bytes) inserted where record 15,000 starts:
    # records before it, the garbage, records after.
    at = small[15_000][0]
    damaged = blob[:at] + b"\xc1" * 9 + blob[at:]
    before = max(o for o, _, _ in small if o <= at - 600)
    session.add(damaged[before : at + 9 + 700])
    session.add(damaged[at : at + 9 + 700])

    print(f"seed corpus: {session.count} new files in {session.dir}, "
          f"{envelope.count} new in {envelope.dir}")


if __name__ == "__main__":
    main()
