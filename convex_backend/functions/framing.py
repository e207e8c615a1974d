"""Frames of the worker protocol: a 4-byte big-endian length, then one UTF-8 JSON object.

This module owns the byte-level transport of ``docs/function-abi.md`` and nothing
above it: encoding one frame (:func:`encode_frame`), the host's incremental
decoder that a Twisted protocol feeds with whatever bytes arrived
(:class:`FrameDecoder`), and the blocking reader and writer the worker uses on
its raw file descriptors (:class:`FrameReader`, :func:`write_frame`).

Anything that is not a well-formed frame (a length over :data:`MAX_FRAME_SIZE`,
bytes that are not UTF-8 JSON, JSON that is not an object) raises
:class:`FrameError`; the host treats that as a broken worker.

It imports only the standard library, so the worker can load it before anything
else (see :mod:`convex_backend.functions.worker`).
"""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = [
    "MAX_FRAME_SIZE",
    "FrameDecoder",
    "FrameError",
    "FrameReader",
    "decode_payload",
    "encode_frame",
    "write_bytes",
    "write_frame",
]

#: The largest payload of one frame, in bytes (the length prefix not included).
MAX_FRAME_SIZE = 64 * 1024 * 1024

_HEADER = 4
# One encoder instance: json.dumps() with non-default options builds a new
# JSONEncoder on every call, which shows up on the hot path. NaN and infinities
# are refused because they are not JSON (Convex-JSON spells them {"$float": ...}).
_encode = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False
).encode
_loads = json.loads


class FrameError(Exception):
    """A frame could not be encoded or decoded; the byte stream cannot be trusted."""


def encode_frame(obj: dict[str, Any]) -> bytes:
    """The bytes of one frame carrying ``obj``.

    Raises :class:`FrameError` if ``obj`` is not JSON-able (or holds NaN) or if
    its encoding is larger than :data:`MAX_FRAME_SIZE`.
    """
    try:
        payload = _encode(obj).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as e:
        raise FrameError(f"Cannot encode frame: {e}") from None
    n = len(payload)
    if n > MAX_FRAME_SIZE:
        raise FrameError(f"Frame of {n} bytes is larger than the limit of {MAX_FRAME_SIZE}")
    return n.to_bytes(4, "big") + payload


def decode_payload(payload: bytes | bytearray) -> dict[str, Any]:
    """The JSON object in a frame's payload; :class:`FrameError` if it is not one."""
    try:
        obj = _loads(payload)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise FrameError(f"Malformed frame: {e}") from None
    if type(obj) is not dict:
        raise FrameError(f"Malformed frame: expected a JSON object, got {type(obj).__name__}")
    return obj


def _check_length(n: int) -> None:
    if n > MAX_FRAME_SIZE:
        raise FrameError(f"Frame of {n} bytes is larger than the limit of {MAX_FRAME_SIZE}")


class FrameDecoder:
    """Incremental decoder: bytes in (in any pieces), whole frames out.

    After a :class:`FrameError` the stream is unusable and the decoder should be
    dropped along with the connection.
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes received that are not yet part of a whole frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Add ``data``; returns the frames it completed, in order (often none)."""
        buf = self._buf
        if not buf:
            # Fast path: the common case is exactly one whole frame per read.
            size = len(data)
            if size >= _HEADER:
                n = int.from_bytes(data[:_HEADER], "big")
                if size == _HEADER + n:
                    _check_length(n)
                    return [decode_payload(data[_HEADER:])]
        buf += data
        frames = []
        pos = 0
        end = len(buf)
        while end - pos >= _HEADER:
            n = int.from_bytes(buf[pos : pos + _HEADER], "big")
            _check_length(n)
            stop = pos + _HEADER + n
            if stop > end:
                break
            frames.append(decode_payload(buf[pos + _HEADER : stop]))
            pos = stop
        if pos:
            del buf[:pos]
        return frames


class FrameReader:
    """Blocking frame reader on a file descriptor (the worker's end of a pipe)."""

    __slots__ = ("_buf", "_fd")

    #: How much to ask the kernel for at a time; whole small frames in one read.
    CHUNK = 256 * 1024

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buf = bytearray()

    def _fill(self, need: int) -> bool:
        """Read until at least ``need`` bytes are buffered; False at end of file."""
        buf = self._buf
        while len(buf) < need:
            chunk = os.read(self._fd, max(self.CHUNK, need - len(buf)))
            if not chunk:
                return False
            buf += chunk
        return True

    def read(self) -> dict[str, Any] | None:
        """The next frame, or ``None`` at a clean end of file (between frames).

        Raises :class:`FrameError` for a malformed frame or for end of file in
        the middle of one.
        """
        if not self._fill(_HEADER):
            if self._buf:
                raise FrameError("End of file inside a frame header")
            return None
        buf = self._buf
        n = int.from_bytes(buf[:_HEADER], "big")
        _check_length(n)
        if not self._fill(_HEADER + n):
            raise FrameError("End of file inside a frame")
        frame = decode_payload(buf[_HEADER : _HEADER + n])
        del buf[: _HEADER + n]
        return frame


def write_frame(fd: int, obj: dict[str, Any]) -> None:
    """Encode ``obj`` and write the whole frame to ``fd``, blocking as needed."""
    write_bytes(fd, encode_frame(obj))


def write_bytes(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (a blocking pipe may take it in pieces)."""
    written = os.write(fd, data)
    if written == len(data):
        return
    view = memoryview(data)
    while written < len(data):
        written += os.write(fd, view[written:])
