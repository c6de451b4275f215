#!/usr/bin/env python3
"""tests/rawclient.py: sends one raw message to a ZeroMQ ROUTER, as a DEALER
would, and prints the reply: the bytes the resv CLI can never send (a NUL in
a JSON string, invalid UTF-8, a 200 kB field, a message over the broker's
limit, a wrong number of frames).

    rawclient.py tcp://127.0.0.1:PORT TIMEOUT_MS FRAME...

Each FRAME is UTF-8 text in which \\xNN stands for the byte NN (all else,
a JSON escape such as \\u0000 included, is sent as it is); '@FILE' sends
FILE's bytes.
The reply's frames are printed one a line (decoded as UTF-8 with
replacement); exit 0. Exit 1 when the peer closed the connection, 2 when
no reply came within TIMEOUT_MS. ZMTP 3.0, NULL mechanism, standard
library only.
"""

import socket
import struct
import sys
import time


def frame_bytes(text):
    if text.startswith("@"):
        return open(text[1:], "rb").read()
    out = bytearray()
    i = 0
    while i < len(text):
        if text.startswith("\\x", i) and len(text) >= i + 4:
            out.append(int(text[i + 2:i + 4], 16))
            i += 4
            continue
        out += text[i].encode("utf-8")
        i += 1
    return bytes(out)


class Closed(Exception):
    pass


def recv_exact(sock, n, deadline):
    data = b""
    while len(data) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        sock.settimeout(left)
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise Closed
        data += chunk
    return data


def send_frame(sock, body, more=False, command=False):
    flags = (0x01 if more else 0) | (0x04 if command else 0)
    if len(body) > 255:
        sock.sendall(bytes([flags | 0x02]) + struct.pack(">Q", len(body)) + body)
    else:
        sock.sendall(bytes([flags, len(body)]) + body)


def recv_frame(sock, deadline):
    flags = recv_exact(sock, 1, deadline)[0]
    if flags & 0x02:
        size = struct.unpack(">Q", recv_exact(sock, 8, deadline))[0]
    else:
        size = recv_exact(sock, 1, deadline)[0]
    return flags, recv_exact(sock, size, deadline)


def main():
    if len(sys.argv) < 4:
        sys.stderr.write(__doc__)
        return 64
    endpoint, timeout = sys.argv[1], int(sys.argv[2])
    host, port = endpoint.replace("tcp://", "").rsplit(":", 1)
    frames = [frame_bytes(a) for a in sys.argv[3:]]
    deadline = time.monotonic() + timeout / 1000.0
    sock = socket.create_connection((host, int(port)), timeout=timeout / 1000.0)
    try:
        greeting = (b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00"
                    + b"NULL".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31)
        sock.sendall(greeting)
        recv_exact(sock, 64, deadline)

        def prop(name, value):
            return bytes([len(name)]) + name + struct.pack(">I", len(value)) + value

        send_frame(sock, b"\x05READY" + prop(b"Socket-Type", b"DEALER")
                   + prop(b"Identity", b"rawclient%d" % (time.time_ns() % 10**9)),
                   command=True)
        for i, body in enumerate(frames):
            send_frame(sock, body, more=i < len(frames) - 1)
        reply = []
        while True:
            flags, body = recv_frame(sock, deadline)
            if flags & 0x04:
                continue            # a command (READY, PING): not the reply
            reply.append(body)
            if not flags & 0x01:
                break
        for body in reply:
            print(body.decode("utf-8", "replace"))
        return 0
    except Closed:
        print("closed")
        return 1
    except (TimeoutError, socket.timeout):
        print("timeout")
        return 2
    except (ConnectionResetError, BrokenPipeError):
        print("closed")
        return 1
    finally:
        sock.close()


if __name__ == "__main__":
    sys.exit(main())
