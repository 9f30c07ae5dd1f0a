"""What crosses between the engine and its processes: frames, and nothing else.

A worker's socket carries frames: an 8-byte header (the lengths of the head and the blob),
a head (one orjson-encoded object whose ``"t"`` names the message) and an optional blob
(raw bytes, in practice an encoded state). States travel as blobs so that the engine can
record them without decoding them, and decode them only for whoever reads events.

    engine -> worker   run        the run: plan, input state, options, credentials
    worker -> engine   event      a section 3 event; its state, if any, is the blob
                       input      a step run was queued: its key, step id; input state blob
                       record     a runtime log record (level, message, step)
                       outcome    how the run ended; its result state is the blob

The template's control socket (``SOCK_SEQPACKET``) carries one small frame per packet:

    engine -> template   fork     {"token"}, with the new worker's socket as an fd
    template -> engine   ready    the template has imported statefn and can fork
                         forked   {"token", "pid"}
                         exited   {"pid", "code"} or {"pid", "signal"}
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Any

import orjson

from .._state import decode

__all__ = [
    "NO_FRAME_LIMIT",
    "WITHHELD",
    "Frame",
    "FrameReader",
    "decode_packet",
    "encode_frame",
    "encode_state",
    "read_frame",
    "send_frame",
]

_HEADER = struct.Struct("!II")
# A frame head is small JSON; a blob may be a state as large as the state limit allows.
_MAX_HEAD = 64 * 1024 * 1024


@dataclass(slots=True)
class Frame:
    head: dict[str, Any]
    blob: bytes | None = None

    @property
    def kind(self) -> str:
        kind: str = self.head["t"]
        return kind


NO_FRAME_LIMIT = 1 << 62  # a blob size no frame reaches

# What stands where a state over the payload limit would be: it is withheld, never cut.
WITHHELD = "too large"


def encode_state(state: Any, limit_bytes: int) -> tuple[bytes | None, str | None]:
    """A state (or its JSON, as bytes) as a blob, or ``(None, "too large")`` when its
    encoding is over the limit."""
    blob = state if isinstance(state, bytes) else orjson.dumps(state)
    if len(blob) > limit_bytes:
        return None, WITHHELD
    return blob, None


def encode_frame(head: dict[str, Any], blob: bytes | None = None) -> bytes:
    encoded = orjson.dumps(head)
    return _HEADER.pack(len(encoded), len(blob or b"")) + encoded + (blob or b"")


def decode_packet(packet: bytes) -> dict[str, Any]:
    """The head of a control-socket packet (one whole frame without a blob)."""
    head: dict[str, Any] = orjson.loads(packet[_HEADER.size :])
    return head


def send_frame(sock: socket.socket, head: dict[str, Any], blob: bytes | None = None) -> None:
    sock.sendall(encode_frame(head, blob))


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        count = sock.recv_into(view[got:], size - got)
        if count == 0:
            return None
        got += count
    return bytes(buffer)


def read_frame(sock: socket.socket) -> Frame | None:
    """Block for one frame; ``None`` when the other end closed the socket."""
    header = _read_exactly(sock, _HEADER.size)
    if header is None:
        return None
    head_size, blob_size = _HEADER.unpack(header)
    head = _read_exactly(sock, head_size)
    blob = _read_exactly(sock, blob_size) if blob_size else b""
    if head is None or blob is None:
        return None
    return Frame(decode(head), blob if blob_size else None)


class FrameReader:
    """Frames from a socket, fed whatever bytes have arrived. A frame whose blob is larger
    than ``max_blob`` is refused before it is buffered (``ValueError``)."""

    def __init__(self, max_blob: int = NO_FRAME_LIMIT) -> None:
        self._buffer = bytearray()
        self.max_blob = max_blob

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= _HEADER.size:
            head_size, blob_size = _HEADER.unpack_from(self._buffer)
            if head_size > _MAX_HEAD or blob_size > self.max_blob:
                raise ValueError(f"a frame of {head_size} + {blob_size} bytes is over the limit")
            end = _HEADER.size + head_size + blob_size
            if len(self._buffer) < end:
                break
            head = orjson.loads(bytes(self._buffer[_HEADER.size : _HEADER.size + head_size]))
            blob = bytes(self._buffer[_HEADER.size + head_size : end]) if blob_size else None
            del self._buffer[:end]
            frames.append(Frame(head, blob))
        return frames
