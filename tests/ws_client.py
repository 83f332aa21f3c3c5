#!/usr/bin/env python3
"""Independent WebSocket client for the interop test (tests/tests/interop.rs).

Uses Python's `websockets` library (PyPI) and its own TamTam frame v1 codec (48-byte
little-endian header, CRC32C over every byte but the CRC field), written from
spec/wire/Frame-v1.md, not from the Rust code.

Usage: ws_client.py URL STATION_ID HEARTBEAT_HEX REQUEST_HEX EXPECTED_REPLY_HEX

It connects, sends the heartbeat and the request (built by the Rust test, ACK-required),
then reads frames until it has both the station's ACK of the request and the reply whose
payload must equal EXPECTED_REPLY; it acknowledges the reply with an ACK frame it builds
itself, waits for the close, and prints `OK <reply payload hex>`. Exit status 0 on success.
"""

import struct
import sys

from websockets.sync.client import connect

HEADER = struct.Struct("<HBBBBHIIHHIQIBBBBII")
assert HEADER.size == 48
MAGIC = 0x5454  # "TT"
LANE_FAST = 0
TYPE_DATA, TYPE_ACK = 0, 1
FLAG_ACK_REQUIRED, FLAG_REPLY = 1 << 0, 1 << 5


def _crc_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC_TABLE = _crc_table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def frame_crc(frame):
    return crc32c(frame[48:], crc32c(frame[:44]))


def decode(frame):
    if len(frame) < 48:
        raise ValueError(f"short frame ({len(frame)} bytes)")
    f = dict(zip(
        ("magic", "version", "lane", "type", "rkind", "flags", "sender", "recipient",
         "recipient_port", "sender_port", "route", "request_id", "sequence", "attempt",
         "hops", "lifetime", "priority", "payload_len", "crc"),
        HEADER.unpack_from(frame)))
    if f["magic"] != MAGIC or f["version"] != 1:
        raise ValueError("not a v1 frame")
    if frame_crc(frame) != f["crc"]:
        raise ValueError("CRC32C mismatch")
    header_len = 64 if f["flags"] & (1 << 2) else 48
    if len(frame) != header_len + f["payload_len"]:
        raise ValueError("length mismatch")
    f["payload"] = bytes(frame[header_len:])
    return f


def encode(lane, ptype, flags, sender, recipient, sequence, payload, hops=16):
    header = HEADER.pack(MAGIC, 1, lane, ptype, 0, flags, sender, recipient, 0, 0, 0, 0,
                         sequence, 0, hops, 0, 0, len(payload), 0)
    frame = bytearray(header + payload)
    struct.pack_into("<I", frame, 44, frame_crc(frame))
    return bytes(frame)


def main():
    url, station = sys.argv[1], int(sys.argv[2])
    heartbeat, request, expected = (bytes.fromhex(a) for a in sys.argv[3:6])
    ours = decode(request)
    acked = reply = None
    with connect(url, open_timeout=20, close_timeout=5, max_size=1 << 20) as ws:
        ws.send(heartbeat)
        ws.send(request)
        while acked is None or reply is None:
            message = ws.recv(timeout=20)
            if isinstance(message, str):
                raise SystemExit(f"unexpected text message {message!r}")
            f = decode(message)
            if f["recipient"] != ours["sender"] and f["rkind"] == 0:
                continue
            if f["type"] == TYPE_ACK:
                count = struct.unpack_from("<H", f["payload"])[0]
                seqs = struct.unpack_from(f"<{count}I", f["payload"], 2)
                if f["sequence"] == ours["request_id"] >> 32 and ours["sequence"] in seqs:
                    acked = f
            elif f["type"] == TYPE_DATA and f["flags"] & FLAG_REPLY and f["route"] == ours["route"]:
                if f["payload"] != expected:
                    raise SystemExit(f"reply payload {f['payload']!r} != {expected!r}")
                reply = f
                if f["flags"] & FLAG_ACK_REQUIRED:
                    # Acknowledge on the channel (epoch, sequence) the reply came on.
                    ack = encode(LANE_FAST, TYPE_ACK, 0, ours["sender"], station,
                                 f["request_id"] >> 32,
                                 struct.pack("<HI", 1, f["sequence"]))
                    ws.send(ack)
        ws.close()
    print("OK", reply["payload"].hex(), flush=True)


if __name__ == "__main__":
    main()
