"""A UDP OSC receiver decoded by python-osc, for tests/bridge_osc.rs.

Binds 127.0.0.1 on a free port, prints `port N`, then prints one JSON line
per OSC message received (bundles are opened): address, OSC type tags and
the values python-osc decoded, plus the datagram it came in. Stops after the
message whose address is argv[1] (the end marker), printing `end`.
"""
import json
import socket
import sys

from pythonosc.osc_packet import OscPacket


def type_tags(dgram: bytes) -> str:
    # a message: address string (0-padded to 4), then ",tags" (0-padded)
    end = dgram.index(b"\0")
    start = (end + 4) & ~3
    stop = dgram.index(b"\0", start)
    return dgram[start + 1:stop].decode()


def main():
    marker = sys.argv[1]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    # a test that goes wrong must not leave this process behind
    sock.settimeout(120)
    print("port", sock.getsockname()[1], flush=True)
    datagram = 0
    while True:
        data, _ = sock.recvfrom(65536)
        datagram += 1
        bundle = data.startswith(b"#bundle")
        for timed in OscPacket(data).messages:
            m = timed.message
            print(json.dumps({
                "address": m.address,
                "tags": type_tags(m.dgram),
                "args": list(m.params),
                "datagram": datagram,
                "bundle": bundle,
            }), flush=True)
            if m.address == marker:
                print("end", flush=True)
                return


if __name__ == "__main__":
    main()
