#!/usr/bin/env python3
"""A Python confluent-kafka client against a broker integr8tor serves.

Used by tests/python_client.rs, which starts `integr8tor broker` in another
process and publishes a few envelopes from Rust first. This script:

1. produces COUNT valid noise.params envelopes (docs/formats.md section 2) as
   producer `python.interop`, keyed by path, with an idempotent producer;
2. consumes noise.params from the beginning in a fresh group until it has
   read back all of its own messages and EXPECT messages of producer
   EXPECT_PRODUCER (what integr8tor's Publisher sent);
3. prints one JSON line describing what it saw and exits 0, or exits 1 with
   the reason on stderr.

usage: interop.py BOOTSTRAP SESSION_ID COUNT EXPECT_PRODUCER EXPECT
"""

import json
import sys
import time
import uuid

import msgpack
from confluent_kafka import Consumer, KafkaException, Producer

REQUIRED = ("v", "session_id", "producer_id", "seq", "ts_ms", "actor", "source", "path", "value")


def fail(reason):
    print(f"interop.py: {reason}", file=sys.stderr)
    sys.exit(1)


def main():
    if len(sys.argv) != 6:
        fail(__doc__.strip().splitlines()[-1])
    bootstrap, session_id, count, expect_producer, expect = sys.argv[1:]
    count, expect = int(count), int(expect)

    errors = []
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "error_cb": lambda e: errors.append(str(e)),
        }
    )
    delivered = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(f"delivery of {msg.key()!r}: {err}")
        else:
            delivered.append((msg.partition(), msg.offset()))

    for seq in range(1, count + 1):
        path = f"py.{seq % 4}.level"
        envelope = {
            "v": 1,
            "session_id": session_id,
            "producer_id": "python.interop",
            "seq": seq,
            "ts_ms": int(time.time() * 1000),
            "actor": "user",
            "source": "python",
            "path": path,
            "value": seq / 100.0,
            "value_mapped": None,
            # an unknown field: consumers must keep it
            "py_extra": [seq, "x"],
        }
        producer.produce(
            "noise.params",
            key=path.encode(),
            value=msgpack.packb(envelope, use_bin_type=True),
            on_delivery=on_delivery,
        )
    left = producer.flush(30)
    if left or len(delivered) != count:
        fail(f"{left} messages not flushed, {len(delivered)} of {count} delivered: {errors}")

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"python-interop-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            # the embedded broker holds an empty fetch for the whole wait
            "fetch.wait.max.ms": 5,
            "error_cb": lambda e: errors.append(str(e)),
        }
    )
    consumer.subscribe(["noise.params"])
    own = set()
    foreign = []
    deadline = time.monotonic() + 30
    try:
        while (len(own) < count or len(foreign) < expect) and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            data = msgpack.unpackb(msg.value(), raw=False)
            if not isinstance(data, dict):
                fail(f"offset {msg.offset()}: payload is not a map: {data!r}")
            missing = [f for f in REQUIRED if f not in data]
            if missing:
                fail(f"offset {msg.offset()}: missing {missing} in {data!r}")
            if msg.key() != data["path"].encode():
                fail(f"offset {msg.offset()}: key {msg.key()!r} is not the path {data['path']!r}")
            if data["producer_id"] == "python.interop" and data["session_id"] == session_id:
                if data["py_extra"] != [data["seq"], "x"]:
                    fail(f"extra field changed: {data!r}")
                own.add(data["seq"])
            elif data["producer_id"] == expect_producer:
                foreign.append(
                    {
                        "seq": data["seq"],
                        "session_id": data["session_id"],
                        "path": data["path"],
                        "value": data["value"],
                        "actor": data["actor"],
                        "partition": msg.partition(),
                    }
                )
    finally:
        consumer.close()
    if len(own) != count or len(foreign) != expect:
        fail(
            f"read back {len(own)} of {count} own and {len(foreign)} of {expect} "
            f"{expect_producer} messages within 30 s; client errors: {errors}"
        )
    print(json.dumps({"produced": count, "own_read_back": sorted(own), "foreign": foreign}))


if __name__ == "__main__":
    main()
