"""The Authorization header forms Convex clients send."""

from __future__ import annotations

import base64
import json

from twisted.trial.unittest import SynchronousTestCase

from convex_backend.auth.header import (
    AdminCredentials,
    AuthorizationError,
    UserCredentials,
    parse_authorization,
)


class ParseAuthorizationTests(SynchronousTestCase):
    def test_absent(self) -> None:
        self.assertIsNone(parse_authorization(None))

    def test_admin(self) -> None:
        self.assertEqual(parse_authorization(b"Convex app|abcd"), AdminCredentials("app|abcd"))

    def test_admin_acting_as(self) -> None:
        identity = {"subject": "u1", "issuer": "iss"}
        encoded = base64.b64encode(json.dumps(identity).encode()).decode().rstrip("=")
        credentials = parse_authorization(f"Convex app|abcd:{encoded}")
        expected = {**identity, "tokenIdentifier": "iss|u1"}
        self.assertEqual(credentials, AdminCredentials("app|abcd", expected))

    def test_acting_as_needs_subject_and_issuer_or_token(self) -> None:
        for identity in ({"subject": "u1"}, {"issuer": "i"}, {"tokenIdentifier": 5}):
            encoded = base64.b64encode(json.dumps(identity).encode()).decode()
            self.assertRaises(AuthorizationError, parse_authorization, f"Convex k|ab:{encoded}")
        encoded = base64.b64encode(json.dumps({"tokenIdentifier": "t"}).encode()).decode()
        self.assertEqual(
            parse_authorization(f"Convex k|ab:{encoded}").acting_as, {"tokenIdentifier": "t"}
        )

    def test_user(self) -> None:
        self.assertEqual(parse_authorization("Bearer a.b.c"), UserCredentials("a.b.c"))

    def test_malformed(self) -> None:
        for bad in (
            "Basic xyz",
            "Convex",
            "Bearer   ",
            "Convex key:%%%",
            "Convex key:" + base64.b64encode(b"[1]").decode(),
            "Convex key:" + base64.b64encode(b"{not json").decode(),
            b"Convex \xff",
        ):
            self.assertRaises(AuthorizationError, parse_authorization, bad)

    def test_repr_redacts(self) -> None:
        self.assertNotIn("secret", repr(AdminCredentials("app|secret")))
        self.assertNotIn("secret", repr(UserCredentials("secret")))
