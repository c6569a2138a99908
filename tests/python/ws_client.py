"""WebSocket clients for tests/bridge_ws.rs, on Python `websockets` (and
one on a raw socket). Each prints what it saw as JSON lines on stdout.

    ws_client.py feed URL MARKER_PATH [SUBSCRIBE_JSON]
        prints `ready` (after the subscription is acknowledged), then every
        frame, until a feed message whose envelope path is MARKER_PATH; `end`
    ws_client.py stall URL
        connects with a tiny receive buffer and reads nothing; prints
        `ready`; on a line on stdin it reads what it can and prints how the
        connection ended
    ws_client.py noping URL
        a raw-socket client that reads everything but never answers a
        ping; prints how the server closed it
    ws_client.py control URL PATH VALUE
        sends {"set": ...} and prints the answer (or the refused status)
"""
import base64
import json
import os
import socket
import sys
from urllib.parse import urlparse

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

TIMEOUT = 120  # a test that goes wrong must not leave this process behind


def out(obj):
    print(obj if isinstance(obj, str) else json.dumps(obj), flush=True)


def feed(url, marker, subscribe=None):
    with connect(url, open_timeout=30, max_queue=None) as ws:
        if subscribe:
            ws.send(subscribe)
            while True:
                m = json.loads(ws.recv(timeout=TIMEOUT))
                if "subscribed" in m or "error" in m:
                    out(m)
                    break
        out("ready")
        while True:
            text = ws.recv(timeout=TIMEOUT)
            out(text)
            m = json.loads(text)
            if m.get("envelope", {}).get("path") == marker:
                out("end")
                return


def stall(url):
    u = urlparse(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((u.hostname, u.port))
    ws = connect(url, sock=sock, open_timeout=30, max_queue=1)
    out("ready")
    sys.stdin.readline()
    received = 0
    try:
        while True:
            ws.recv(timeout=TIMEOUT)
            received += 1
    except ConnectionClosed as e:
        rcvd = e.rcvd
        out({"received": received, "closed": True,
             "code": rcvd.code if rcvd else None, "reason": rcvd.reason if rcvd else None})
    except TimeoutError:
        out({"received": received, "closed": False})


def read_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def noping(url):
    u = urlparse(url)
    s = socket.create_connection((u.hostname, u.port), timeout=TIMEOUT)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {u.path or '/'}{'?' + u.query if u.query else ''} HTTP/1.1\r\n"
               f"Host: {u.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += read_exact(s, 1)
    status = head.split(b"\r\n")[0].decode()
    if " 101 " not in status + " ":
        out({"refused": status})
        return
    out("ready")
    pings = 0
    try:
        while True:
            b0, b1 = read_exact(s, 2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = int.from_bytes(read_exact(s, 2), "big")
            elif n == 127:
                n = int.from_bytes(read_exact(s, 8), "big")
            payload = read_exact(s, n)
            if opcode == 0x9:
                pings += 1  # and no pong
            elif opcode == 0x8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                out({"closed": True, "code": code, "reason": payload[2:].decode(), "pings": pings})
                return
    except EOFError:
        out({"closed": True, "code": None, "reason": None, "pings": pings})


def control(url, path, value):
    try:
        with connect(url, open_timeout=30) as ws:
            ws.send(json.dumps({"set": {"path": path, "value": float(value)}}))
            while True:
                m = json.loads(ws.recv(timeout=TIMEOUT))
                if "set" in m or "error" in m:
                    out(m)
                    return
    except InvalidStatus as e:
        out({"refused": e.response.status_code})


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    {"feed": feed, "stall": stall, "noping": noping, "control": control}[mode](*args)
