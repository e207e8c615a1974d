"""Tests for convex_backend.values.ids: Convex v6 document ids."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from convex_backend.values.errors import ConvexValueError, InvalidIdError
from convex_backend.values.ids import (
    DocumentId,
    base32_decode,
    base32_encode,
    decode_id,
    encode_id,
    is_id,
    new_internal_id,
)
from tests.values.test_order import SETTINGS

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"

# document-ids.md: b[0] = 251, b[i] = b[i-1] * 251 mod 256.
VECTOR_INTERNAL_ID = bytes(pow(251, i + 1, 256) for i in range(16))
VECTOR_ID = "z43zp6c3e75gkmz1kfwj6mbbx5sw281h"

table_numbers = st.one_of(
    st.sampled_from([1, 127, 128, 16383, 16384, 2**21 - 1, 2**21, 2**28 - 1, 2**28, 2**32 - 1]),
    st.integers(1, 2**32 - 1),
)
internal_ids = st.binary(min_size=16, max_size=16)
ids = st.builds(encode_id, table_numbers, internal_ids)


def reference_base32(data: bytes) -> str:
    """The definition, bit by bit: MSB-first 5-bit groups, zero padded."""
    bits = "".join(f"{b:08b}" for b in data)
    bits += "0" * (-len(bits) % 5)
    return "".join(ALPHABET[int(bits[i : i + 5], 2)] for i in range(0, len(bits), 5))


def fletcher16(data: bytes) -> bytes:
    c0 = c1 = 0
    for b in data:
        c0 = (c0 + b) % 256
        c1 = (c1 + c0) % 256
    return bytes([c0, c1])  # (c1 << 8 | c0) little-endian


def raw_id(body: bytes) -> str:
    """An id string for arbitrary VInt/body bytes with a correct footer."""
    return base32_encode(body + fletcher16(body))


class TestVectorTests(SynchronousTestCase):
    def test_vector_encodes(self) -> None:
        self.assertEqual(encode_id(1017, VECTOR_INTERNAL_ID), VECTOR_ID)

    def test_vector_decodes(self) -> None:
        self.assertEqual(decode_id(VECTOR_ID), DocumentId(1017, VECTOR_INTERNAL_ID))
        self.assertTrue(is_id(VECTOR_ID))

    def test_lengths(self) -> None:
        internal = new_internal_id()
        for table, length in [
            (1, 31),
            (127, 31),
            (128, 32),
            (16383, 32),
            (16384, 34),
            (2**21, 36),
            (2**28, 37),
            (2**32 - 1, 37),
        ]:
            self.assertEqual(len(encode_id(table, internal)), length, table)

    def test_document_id(self) -> None:
        doc = decode_id(VECTOR_ID)
        self.assertEqual(doc.table_number, 1017)
        self.assertEqual(doc.internal_id, VECTOR_INTERNAL_ID)
        self.assertEqual(doc.encode(), VECTOR_ID)
        self.assertEqual(hash(doc), hash(DocumentId(1017, VECTOR_INTERNAL_ID)))

    def test_new_internal_id(self) -> None:
        a, b = new_internal_id(), new_internal_id()
        self.assertEqual((type(a), len(a)), (bytes, 16))
        self.assertNotEqual(a, b)

    def test_invalid_id_error_is_a_value_error(self) -> None:
        self.assertTrue(issubclass(InvalidIdError, ConvexValueError))


class RoundTripTests(SynchronousTestCase):
    @SETTINGS
    @given(table_numbers, internal_ids)
    def test_round_trip(self, table: int, internal: bytes) -> None:
        s = encode_id(table, internal)
        self.assertTrue(set(s) <= set(ALPHABET))
        self.assertEqual(decode_id(s), DocumentId(table, internal))
        self.assertTrue(is_id(s))

    @SETTINGS
    @given(st.binary(max_size=40))
    def test_base32_matches_definition(self, data: bytes) -> None:
        encoded = base32_encode(data)
        self.assertEqual(encoded, reference_base32(data))
        self.assertEqual(len(encoded), 8 * (len(data) // 5) + (0, 2, 4, 5, 7)[len(data) % 5])
        self.assertEqual(base32_decode(encoded), data)


class CorruptionTests(SynchronousTestCase):
    def assertInvalid(self, s: object, message: str | None = None) -> None:
        error = self.assertRaises(InvalidIdError, decode_id, s)
        if message is not None:
            self.assertIn(message, str(error))
        self.assertFalse(is_id(s))

    @SETTINGS
    @given(ids, st.data())
    def test_replaced_character(self, s: str, data: st.DataObject) -> None:
        i = data.draw(st.integers(0, len(s) - 1))
        others = sorted(set(ALPHABET + "ILOUAZ01-_=é\x00 ") - {s[i]})
        c = data.draw(st.sampled_from(others))
        self.assertInvalid(s[:i] + c + s[i + 1 :])

    @SETTINGS
    @given(ids, st.data())
    def test_flipped_bit(self, s: str, data: st.DataObject) -> None:
        i = data.draw(st.integers(0, len(s) - 1))
        bit = data.draw(st.sampled_from([1, 2, 4, 8, 16]))
        c = ALPHABET[ALPHABET.index(s[i]) ^ bit]
        self.assertInvalid(s[:i] + c + s[i + 1 :])

    @SETTINGS
    @given(ids, st.data())
    def test_uppercase(self, s: str, data: st.DataObject) -> None:
        i = data.draw(st.integers(0, len(s) - 1))
        c = data.draw(st.sampled_from([x.upper() for x in ALPHABET if x.isalpha()]))
        self.assertInvalid(s[:i] + c + s[i + 1 :], "Invalid character")

    @SETTINGS
    @given(ids, st.integers(1, 0xFFFF))
    def test_wrong_checksum(self, s: str, delta: int) -> None:
        data = bytearray(base32_decode(s))
        data[-2] ^= delta & 0xFF
        data[-1] ^= delta >> 8
        self.assertInvalid(base32_encode(bytes(data)), "Invalid ID checksum")

    @SETTINGS
    @given(ids, st.data())
    def test_inserted_or_deleted_character(self, s: str, data: st.DataObject) -> None:
        i = data.draw(st.integers(0, len(s)))
        if data.draw(st.booleans()):
            mutated = s[:i] + data.draw(st.sampled_from(ALPHABET)) + s[i:]
        else:
            mutated = s[:i] + s[i + 1 :]
        self.assertStrict(mutated)

    @SETTINGS
    @given(
        st.one_of(
            st.text(max_size=40),
            st.text(alphabet=ALPHABET, min_size=30, max_size=38),
            st.binary(max_size=40),
            st.integers(),
            st.none(),
        )
    )
    def test_random_input(self, s: object) -> None:
        self.assertStrict(s)

    def assertStrict(self, s: object) -> None:
        """Either InvalidIdError, or ``s`` is exactly an id encode_id makes
        (a 16-bit checksum lets about 1 in 65536 random strings through)."""
        try:
            doc = decode_id(s)
        except InvalidIdError:
            self.assertFalse(is_id(s))
            return
        self.assertEqual(encode_id(doc.table_number, doc.internal_id), s)

    def test_messages(self) -> None:
        self.assertInvalid("abc", "Invalid ID length 3")
        self.assertInvalid(VECTOR_ID + "00000000", "Invalid ID length 40")
        self.assertInvalid("U" + VECTOR_ID[1:], "Invalid character 'U' in ID")
        self.assertInvalid(VECTOR_ID[:-1] + "j", "Invalid ID checksum")

    def test_not_a_string(self) -> None:
        for bad in (None, 1017, VECTOR_ID.encode(), [VECTOR_ID]):
            self.assertInvalid(bad)

    def test_impossible_lengths(self) -> None:
        # 33 and 35 characters decode to no whole number of bytes.
        self.assertInvalid(VECTOR_ID + "0", "length")
        self.assertInvalid(VECTOR_ID + "000", "length")

    def test_non_zero_padding_bits(self) -> None:
        s = encode_id(1, VECTOR_INTERNAL_ID)  # 19 bytes: 3 padding bits
        last = ALPHABET.index(s[-1])
        self.assertEqual(last & 0b111, 0)
        self.assertInvalid(s[:-1] + ALPHABET[last | 1], "padding")

    def test_table_number_zero(self) -> None:
        self.assertInvalid(raw_id(b"\x00" + VECTOR_INTERNAL_ID), "table number 0")

    def test_overlong_vint(self) -> None:
        self.assertInvalid(raw_id(b"\x81\x00" + VECTOR_INTERNAL_ID), "canonical")
        self.assertInvalid(raw_id(b"\x80\x80\x00" + VECTOR_INTERNAL_ID), "canonical")

    def test_table_number_over_32_bits(self) -> None:
        self.assertInvalid(raw_id(b"\xff\xff\xff\xff\x1f" + VECTOR_INTERNAL_ID))
        self.assertInvalid(raw_id(b"\x80\x80\x80\x80\x10" + VECTOR_INTERNAL_ID))

    def test_vint_too_long(self) -> None:
        # Five continuation bytes, then 15 more: 22 bytes, a valid 36-char length.
        self.assertInvalid(raw_id(b"\x81" * 5 + VECTOR_INTERNAL_ID[:-1]), "long")

    def test_vint_and_length_disagree(self) -> None:
        # A 2-byte VInt in a 19-byte id leaves only 15 bytes of internal id.
        self.assertInvalid(raw_id(b"\x81\x01" + VECTOR_INTERNAL_ID[:-1]), "length")


class EncodeErrorTests(SynchronousTestCase):
    def test_bad_table_numbers(self) -> None:
        for table in (0, -1, 2**32, True, 1.0, "1", None):
            self.assertRaises(InvalidIdError, encode_id, table, VECTOR_INTERNAL_ID)

    def test_bad_internal_ids(self) -> None:
        for internal in (b"", b"x" * 15, b"x" * 17, "x" * 16, None):
            self.assertRaises(InvalidIdError, encode_id, 1, internal)


class Base32Tests(SynchronousTestCase):
    def test_examples(self) -> None:
        self.assertEqual(base32_encode(b""), "")
        self.assertEqual(base32_encode(b"\x00"), "00")
        self.assertEqual(base32_encode(b"\xff"), "zw")
        self.assertEqual(base32_decode("zw"), b"\xff")

    def test_strict_decode(self) -> None:
        for bad in ("ZW", "zx", "z", "0o", "0i", "0l", "0u", "0=", "000", "z w", b"zw"):
            self.assertRaises(InvalidIdError, base32_decode, bad)
