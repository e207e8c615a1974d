"""Frames: encoding, the incremental decoder, the blocking reader and writer."""

from __future__ import annotations

import os
import threading

from twisted.trial.unittest import TestCase

from convex_backend.functions import framing
from convex_backend.functions.framing import (
    FrameDecoder,
    FrameError,
    FrameReader,
    decode_payload,
    encode_frame,
    write_frame,
)


class EncodeTests(TestCase):
    def test_length_prefix_and_utf8(self) -> None:
        data = encode_frame({"a": "é"})
        payload = '{"a":"é"}'.encode()
        self.assertEqual(data, len(payload).to_bytes(4, "big") + payload)

    def test_unencodable(self) -> None:
        self.assertRaises(FrameError, encode_frame, {"a": object()})
        self.assertRaises(FrameError, encode_frame, {"a": float("nan")})

    def test_too_large(self) -> None:
        self.patch(framing, "MAX_FRAME_SIZE", 10)
        self.assertRaises(FrameError, encode_frame, {"a": "x" * 20})

    def test_payload_must_be_an_object(self) -> None:
        self.assertEqual(decode_payload(b'{"x":1}'), {"x": 1})
        for bad in (b"[1]", b"1", b"{", b"\xff\xfe", b""):
            self.assertRaises(FrameError, decode_payload, bad)


class DecoderTests(TestCase):
    def test_whole_frames(self) -> None:
        decoder = FrameDecoder()
        self.assertEqual(decoder.feed(encode_frame({"n": 1})), [{"n": 1}])
        both = encode_frame({"n": 2}) + encode_frame({"n": 3})
        self.assertEqual(decoder.feed(both), [{"n": 2}, {"n": 3}])
        self.assertEqual(decoder.buffered, 0)

    def test_byte_by_byte(self) -> None:
        decoder = FrameDecoder()
        data = encode_frame({"n": 1, "s": "text"}) + encode_frame({"n": 2})
        frames = []
        for i in range(len(data)):
            frames += decoder.feed(data[i : i + 1])
        self.assertEqual(frames, [{"n": 1, "s": "text"}, {"n": 2}])
        self.assertEqual(decoder.buffered, 0)

    def test_split_across_reads(self) -> None:
        decoder = FrameDecoder()
        data = encode_frame({"n": 1}) + encode_frame({"n": 2})
        self.assertEqual(decoder.feed(data[:7]), [])
        self.assertEqual(decoder.feed(data[7:-2]), [{"n": 1}])
        self.assertEqual(decoder.feed(data[-2:]), [{"n": 2}])

    def test_oversized_length_fails_at_once(self) -> None:
        decoder = FrameDecoder()
        header = (framing.MAX_FRAME_SIZE + 1).to_bytes(4, "big")
        self.assertRaises(FrameError, decoder.feed, header)

    def test_malformed_payload(self) -> None:
        self.assertRaises(FrameError, FrameDecoder().feed, b"\x00\x00\x00\x03abc")
        self.assertRaises(FrameError, FrameDecoder().feed, b"\x00\x00\x00\x02[]")


class BlockingTests(TestCase):
    def pipe(self) -> tuple[int, int]:
        r, w = os.pipe()
        self.open_fds = getattr(self, "open_fds", set()) | {r, w}
        self.addCleanup(lambda: [os.close(fd) for fd in self.open_fds & {r, w}])
        return r, w

    def close(self, fd: int) -> None:
        os.close(fd)
        self.open_fds.discard(fd)

    def test_round_trip(self) -> None:
        r, w = self.pipe()
        write_frame(w, {"type": "ready", "pid": 1})
        write_frame(w, {"type": "x"})
        reader = FrameReader(r)
        self.assertEqual(reader.read(), {"type": "ready", "pid": 1})
        self.assertEqual(reader.read(), {"type": "x"})
        self.close(w)
        self.assertIsNone(reader.read())

    def test_large_frame_through_a_pipe(self) -> None:
        # Larger than the pipe buffer: the writer blocks until the reader drains.
        r, w = self.pipe()
        big = {"s": "x" * (3 * 1024 * 1024)}
        thread = threading.Thread(target=write_frame, args=(w, big))
        thread.start()
        self.assertEqual(FrameReader(r).read(), big)
        thread.join()

    def test_eof_inside_a_frame(self) -> None:
        r, w = self.pipe()
        os.write(w, encode_frame({"a": 1})[:-1])
        self.close(w)
        self.assertRaises(FrameError, FrameReader(r).read)

    def test_eof_inside_a_header(self) -> None:
        r, w = self.pipe()
        os.write(w, b"\x00\x00")
        self.close(w)
        self.assertRaises(FrameError, FrameReader(r).read)
