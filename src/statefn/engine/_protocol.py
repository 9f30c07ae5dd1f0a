"""What crosses between the engine and its processes: frames, and nothing else.

A worker's socket carries frames: an 8-byte header (the lengths of the head and the blob),
a head (one orjson-encoded object whose ``"t"`` names the message) and an optional blob
(raw bytes, in practice an encoded state). States travel as blobs so that the engine can
record them without decoding them, and decode them only for whoever reads events.

    engine -> worker   run        the run: plan, input state, options, credentials
    worker -> engine   event      a section 3 event; its state, if any, is the blob
                       input      a step run began: its key, step id; with a ledger, its
                                  input state as the blob (sent before the step's work,
                                  on the run's thread, so a step held in C code is known)
                       record     a runtime log record (level, message, step)
                       outcome    how the run ended; its result state is the blob

A blob of ``BLOB_IN_FILE`` bytes or more leaves a worker in a sealed memory file (a memfd
that can no longer be written, grown or shrunk) passed with its frame, whose head then says
its size as ``"blob_file"``: the worker writes it once and goes on, and the engine reads it
in one call when it gets to it, rather than the two taking turns through a socket buffer of
a few megabytes.

The template's control socket (``SOCK_SEQPACKET``) carries one small frame per packet:

    engine -> template   fork     {"token"}, with the new worker's socket as an fd
    template -> engine   ready    the template has imported statefn and can fork
                         forked   {"token", "pid"}
                         exited   {"pid", "code"} or {"pid", "signal"}
"""

from __future__ import annotations

import array
import collections
import fcntl
import os
import socket
import struct
from dataclasses import dataclass
from typing import Any

import orjson

from .._state import decode, dumps

__all__ = [
    "BLOB_IN_FILE",
    "FILES_SPACE",
    "NO_FRAME_LIMIT",
    "WITHHELD",
    "Frame",
    "FrameReader",
    "decode_packet",
    "encode_frame",
    "encode_state",
    "frame_parts",
    "read_frame",
    "send_frame",
]

_HEADER = struct.Struct("!II")
# A frame head is small JSON; a blob may be a state as large as the state limit allows.
_MAX_HEAD = 64 * 1024 * 1024
BLOB_IN_FILE = 1024 * 1024
_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
# Files a reader holds for frames not yet complete; a worker that sends more is refused.
_MAX_FILES = 4
FILES_SPACE = socket.CMSG_SPACE(_MAX_FILES * array.array("i").itemsize)


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
    blob = state if isinstance(state, bytes) else dumps(state)
    if len(blob) > limit_bytes:
        return None, WITHHELD
    return blob, None


def frame_parts(head: dict[str, Any], blob: bytes | None = None) -> list[bytes]:
    """A frame as the buffers to send one after another: its header, its head, its blob.
    A head holding a large state (a run's input) is sent as orjson made it, not copied
    into one buffer with the rest."""
    encoded = orjson.dumps(head)
    return [_HEADER.pack(len(encoded), len(blob or b"")), encoded, *([blob] if blob else [])]


def encode_frame(head: dict[str, Any], blob: bytes | None = None) -> bytes:
    return b"".join(frame_parts(head, blob))


def decode_packet(packet: bytes) -> dict[str, Any]:
    """The head of a control-socket packet (one whole frame without a blob)."""
    head: dict[str, Any] = orjson.loads(packet[_HEADER.size :])
    return head


def send_frame(sock: socket.socket, head: dict[str, Any], blob: bytes | None = None) -> None:
    if blob is None or len(blob) < BLOB_IN_FILE:
        sock.sendall(encode_frame(head, blob))
        return
    fd = os.memfd_create("statefn-blob", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        with memoryview(blob) as view:
            written = 0
            while written < len(blob):
                written += os.write(fd, view[written:])
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
        frame = encode_frame({**head, "blob_file": len(blob)})
        files = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
        sent = sock.sendmsg([frame], files)
        sock.sendall(frame[sent:])
    finally:
        os.close(fd)


def _read_sealed(fd: int, size: int) -> bytes:
    """The ``size`` bytes of a sealed memory file (``ValueError`` for any other file)."""
    try:
        if fcntl.fcntl(fd, fcntl.F_GET_SEALS) & _SEALS != _SEALS:
            raise ValueError("a blob in a file that is not sealed")
        status = os.fstat(fd)
        if status.st_size != size:
            raise ValueError("a blob in a file of another size than its frame says")
        # A file with holes costs its maker nothing and the engine its whole size to read.
        if status.st_blocks * 512 < size:
            raise ValueError("a blob in a file with holes")
        blob = os.pread(fd, size, 0)
    except OSError as error:
        raise ValueError(f"a blob in a file that cannot be read ({error})") from None
    finally:
        os.close(fd)
    if len(blob) != size:
        raise ValueError("a blob in a file that could not be read whole")
    return blob


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


def received_files(ancillary: list[tuple[int, int, bytes]], flags: int) -> list[int]:
    """The file descriptors passed with what ``recvmsg`` (with ``FILES_SPACE`` for them)
    received; ``ValueError`` when more came than there was room for (the kernel closed
    those)."""
    files = array.array("i")
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            files.frombytes(payload[: len(payload) - len(payload) % files.itemsize])
    if flags & socket.MSG_CTRUNC:
        for fd in files:
            os.close(fd)
        raise ValueError("more files passed at once than a worker may pass")
    return list(files)


class FrameReader:
    """Frames from a socket, fed whatever bytes (and files) have arrived. A frame whose
    blob is larger than ``max_blob`` is refused before it is buffered (``ValueError``), as
    is a blob in a file that is not a sealed memory file of the size its frame says.
    ``close`` closes the files of frames that never came."""

    def __init__(self, max_blob: int = NO_FRAME_LIMIT) -> None:
        self._buffer = bytearray()
        self._files: collections.deque[int] = collections.deque()
        self.max_blob = max_blob

    def close(self) -> None:
        while self._files:
            os.close(self._files.popleft())

    def feed(self, data: bytes, files: list[int] | None = None) -> list[Frame]:
        self._buffer += data
        self._files.extend(files or ())
        if len(self._files) > _MAX_FILES:
            raise ValueError(f"more than {_MAX_FILES} files passed ahead of their frames")
        frames: list[Frame] = []
        while len(self._buffer) >= _HEADER.size:
            head_size, blob_size = _HEADER.unpack_from(self._buffer)
            if head_size > _MAX_HEAD or blob_size > self.max_blob:
                raise ValueError(f"a frame of {head_size} + {blob_size} bytes is over the limit")
            end = _HEADER.size + head_size + blob_size
            if len(self._buffer) < end:
                break
            with memoryview(self._buffer) as view:  # one copy of the blob, not two
                head = orjson.loads(view[_HEADER.size : _HEADER.size + head_size])
                blob = bytes(view[_HEADER.size + head_size : end]) if blob_size else None
            del self._buffer[:end]
            if "blob_file" in head:
                blob = self._blob_in_file(head.pop("blob_file"), blob)
            frames.append(Frame(head, blob))
        return frames

    def _blob_in_file(self, size: Any, inline: bytes | None) -> bytes:
        if type(size) is not int or not BLOB_IN_FILE <= size <= self.max_blob or inline:
            raise ValueError(f"a frame whose blob in a file is not one ({size!r:.40})")
        if not self._files:
            raise ValueError("a frame whose blob is in a file that was not passed")
        return _read_sealed(self._files.popleft(), size)
