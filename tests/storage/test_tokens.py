"""Upload tokens: genuine ones pass until they expire; anything else is refused."""

from __future__ import annotations

import base64

from twisted.trial.unittest import TestCase

from convex_backend.storage.errors import StorageError
from convex_backend.storage.tokens import TOKEN_LIFETIME_SECONDS, UploadTokens
from tests.helpers import TEST_SECRET
from tests.storage.fixtures import Clock


class UploadTokenTests(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.tokens = UploadTokens(TEST_SECRET, "convex-self-hosted", clock=self.clock)

    def refused(self, token, status: int, code: str, now: float | None = None) -> StorageError:
        with self.assertRaises(StorageError) as caught:
            self.tokens.check(token, now=now)
        self.assertEqual((caught.exception.status, caught.exception.code), (status, code))
        self.assertTrue(caught.exception.message)
        return caught.exception

    def test_a_fresh_token_is_accepted_and_unique(self) -> None:
        first, second = self.tokens.issue(), self.tokens.issue()
        self.assertNotEqual(first, second)  # the nonce
        self.tokens.check(first)
        self.tokens.check(second)
        # URL-safe: it goes into a query string unescaped.
        self.assertRegex(first, r"^[A-Za-z0-9_-]+$")

    def test_valid_for_one_hour(self) -> None:
        token = self.tokens.issue()
        self.clock.now += TOKEN_LIFETIME_SECONDS - 1
        self.tokens.check(token)
        self.clock.now += 2
        error = self.refused(token, 401, "UploadTokenExpired")
        self.assertIn("expired", error.message)
        # Checked as of an explicit moment (when an upload started), it passes.
        self.tokens.check(token, now=self.clock.now - 2)

    def test_every_tampered_byte_is_refused(self) -> None:
        token = self.tokens.issue()
        raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        for i in range(len(raw)):
            tampered = bytearray(raw)
            tampered[i] ^= 0x01
            text = base64.urlsafe_b64encode(bytes(tampered)).rstrip(b"=").decode()
            self.refused(text, 401, "InvalidUploadToken")

    def test_a_pushed_back_expiry_is_a_forgery(self) -> None:
        token = self.tokens.issue()
        raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        raw[1:9] = (2**63).to_bytes(8, "big")
        text = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
        self.clock.now += 10 * TOKEN_LIFETIME_SECONDS
        error = self.refused(text, 401, "InvalidUploadToken")
        self.assertNotIn("expired", error.message)

    def test_other_instances_tokens_are_refused(self) -> None:
        other_secret = UploadTokens("cd" * 32, "convex-self-hosted", clock=self.clock)
        other_name = UploadTokens(TEST_SECRET, "another-instance", clock=self.clock)
        for other in (other_secret, other_name):
            self.refused(other.issue(), 401, "InvalidUploadToken")

    def test_malformed_and_missing_tokens(self) -> None:
        self.refused(None, 400, "MissingUploadToken")
        self.refused("", 400, "MissingUploadToken")
        for bad in ("x", "a" * 55, "!!!!", "a" * 500, "é", 5, ["t"], self.tokens.issue()[:-1]):
            self.refused(bad, 401, "InvalidUploadToken")

    def test_the_key_stays_out_of_reprs(self) -> None:
        self.assertEqual(repr(self.tokens), "UploadTokens(<redacted>)")
