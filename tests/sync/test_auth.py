"""User tokens on the sync socket: Authenticate(User), AuthError, expiry.

The session runs over the in-memory fakes (tests/sync/fakes.py); tokens come
from a real local issuer (tests/auth/issuer.py) and are verified for real, OIDC
keys fetched over loopback HTTP, customJwt keys from a ``data:`` URI.
"""

from __future__ import annotations

import base64
import json
import time

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from convex_backend.auth.jwks import JwksCache
from convex_backend.auth.jwt import TokenVerifier
from convex_backend.auth.users import UserAuthenticator
from convex_backend.sync.session import MAX_HELD_MESSAGES
from tests.auth.issuer import CUSTOM_AUDIENCE, LocalIssuer
from tests.sync.fakes import ADMIN_KEY, Harness
from tests.sync.test_session import add, modify, mutation


def authenticate(base: int, token: str) -> dict:
    return {"type": "Authenticate", "baseVersion": base, "tokenType": "User", "value": token}


class SyncAuthTests(TestCase):
    timeout = 60

    async def setUp(self) -> None:
        self.issuer = await LocalIssuer().start()
        self.addCleanup(self.issuer.stop)
        self.h = Harness()
        self.sessions: list = []
        self.addCleanup(lambda: self.h.close(*self.sessions))
        # The customJwt provider's keys inline (data: URI): verified without I/O.
        custom = self.issuer.providers()[1]
        custom["jwks"] = (
            "data:application/json;base64,"
            + base64.b64encode(json.dumps(self.issuer.document("custom")).encode()).decode()
        )
        self.h.deployment.deployer = type(
            "Deployer", (), {"analysis": {"authConfig": [self.issuer.providers()[0], custom]}}
        )()
        self.cache = JwksCache(fetch_timeout=5.0)
        self.h.deployment.user_auth = UserAuthenticator(
            self.h.deployment, TokenVerifier(self.cache)
        )
        self.h.runner.define("kv:whoami_mutation", "mutation", lambda w, a, c: c.identity)

    def open(self):
        session, client = self.h.session()
        self.sessions.append(session)
        return session, client

    async def until(self, condition, what: str, seconds: float = 10.0) -> None:
        """Pump the session's clock and let real I/O (key fetches) happen."""
        deadline = time.monotonic() + seconds
        while True:
            self.h.pump()
            if condition():
                return
            if time.monotonic() > deadline:
                self.fail(f"timed out waiting for {what}")
            await deferLater(reactor, 0.01, lambda: None)

    async def test_oidc_token_identity_reaches_queries_and_mutations(self) -> None:
        session, client = self.open()
        token = self.issuer.token(claims={"name": "Ada"})
        # Sent together, as the client does on connect: the query and the
        # mutation must already run as the user (they wait for the key fetch).
        for message in (
            authenticate(0, token),
            modify(0, add(0, "kv:whoami")),
            mutation(0, "kv:whoami_mutation", {}),
        ):
            session.receive(json.dumps(message))
        await self.until(
            lambda: (
                any(m["type"] == "MutationResponse" for m in client.messages)
                and client.messages[-1]["type"] == "Transition"
            ),
            "the transitions",
        )
        messages = client.take()
        transitions = [m for m in messages if m["type"] == "Transition"]
        first = transitions[0]
        self.assertEqual(
            (first["startVersion"]["identity"], first["endVersion"]["identity"]), (0, 1)
        )
        (updated,) = first["modifications"]
        expected = {
            "tokenIdentifier": f"{self.issuer.url}|user-1",
            "subject": "user-1",
            "issuer": self.issuer.url,
            "name": "Ada",
        }
        self.assertEqual(updated["value"], expected)
        (response,) = [m for m in messages if m["type"] == "MutationResponse"]
        self.assertEqual(response["result"], expected)
        self.assertEqual(session.identity, expected)
        self.assertEqual(self.issuer.requests["jwks"], 1)

    async def test_refresh_with_a_new_token_reruns_queries(self) -> None:
        session, client = self.open()
        self.h.feed(session, modify(0, add(0, "kv:whoami")))
        for base, name in enumerate(["first", "second"]):
            token = self.issuer.token(kind="custom", claims={"name": name})
            self.h.feed(session, authenticate(base, token))
        first, second, third = client.take()
        self.assertEqual(first["modifications"][0]["value"], None)
        self.assertEqual(second["endVersion"]["identity"], 1)
        self.assertEqual(second["modifications"][0]["value"]["name"], "first")
        self.assertEqual(third["startVersion"]["identity"], 1)
        self.assertEqual(third["endVersion"]["identity"], 2)
        self.assertEqual(third["modifications"][0]["value"]["name"], "second")
        # Logging out goes back to no identity.
        self.h.feed(session, {"type": "Authenticate", "baseVersion": 2, "tokenType": "None"})
        (fourth,) = client.take()
        self.assertEqual(fourth["modifications"][0]["value"], None)

    async def test_bad_tokens_get_auth_error_and_close(self) -> None:
        cases = {
            "wrong_aud": "No auth provider found matching the given token",
            "wrong_iss": "issuer (iss) 'https://evil.example.com'",
            "expired": "Token expired",
            "tampered": "signature does not verify",
        }
        for variant, expected in cases.items():
            for kind in ("oidc", "custom"):
                session, client = self.open()
                token = self.issuer.token(kind=kind, variant=variant)
                session.receive(json.dumps(authenticate(0, token)))
                session.receive(json.dumps(modify(0, add(0, "kv:whoami"))))
                await self.until(lambda c=client: c.closed is not None, f"{kind} {variant}")
                (error,) = client.take()
                self.assertEqual(error["type"], "AuthError", error)
                self.assertIn(expected, error["error"])
                self.assertNotIn(token, error["error"])
                self.assertEqual((error["baseVersion"], error["authUpdateAttempted"]), (0, True))
                self.assertEqual(client.closed, (1000, "AuthError"))
        for token in (self.issuer.none_token(), self.issuer.hs256_with_public_key(), "x.y"):
            session, client = self.open()
            self.h.feed(session, authenticate(0, token))
            (error,) = client.take()
            self.assertEqual(error["type"], "AuthError")

    async def test_auth_error_after_an_accepted_token_names_its_base_version(self) -> None:
        session, client = self.open()
        self.h.feed(session, authenticate(0, self.issuer.token(kind="custom")))
        self.h.feed(session, authenticate(1, self.issuer.token(kind="custom", variant="expired")))
        transition, error = client.take()
        self.assertEqual(transition["endVersion"]["identity"], 1)
        self.assertEqual(error["type"], "AuthError")
        self.assertEqual((error["baseVersion"], error["authUpdateAttempted"]), (1, True))

    async def test_expiry_closes_with_auth_error(self) -> None:
        session, client = self.open()
        self.h.feed(session, authenticate(0, self.issuer.token(kind="custom", ttl=5)))
        client.take()
        # The token expires in 5 s; it is refused 10 s (the leeway) later.
        self.h.clock.advance(13)
        self.assertEqual(client.take(), [])
        self.h.clock.advance(4)
        (error,) = client.take()
        self.assertEqual(error["type"], "AuthError")
        self.assertIn("Token expired", error["error"])
        self.assertEqual((error["baseVersion"], error["authUpdateAttempted"]), (0, False))
        self.assertEqual(client.closed, (1000, "AuthError"))

    async def test_a_fresh_token_or_other_auth_cancels_the_expiry(self) -> None:
        for follow_up in ("fresh", "admin", "none"):
            session, client = self.open()
            self.h.feed(session, authenticate(0, self.issuer.token(kind="custom", ttl=5)))
            if follow_up == "fresh":
                self.h.feed(session, authenticate(1, self.issuer.token(kind="custom", ttl=600)))
            elif follow_up == "admin":
                self.h.feed(
                    session,
                    {
                        "type": "Authenticate",
                        "baseVersion": 1,
                        "tokenType": "Admin",
                        "value": ADMIN_KEY,
                    },
                )
            else:
                self.h.feed(
                    session, {"type": "Authenticate", "baseVersion": 1, "tokenType": "None"}
                )
            self.h.clock.advance(60)
            self.assertNotIn("AuthError", [m["type"] for m in client.take()], follow_up)
            self.assertIsNone(client.closed)

    async def test_too_many_messages_while_verifying(self) -> None:
        session, client = self.open()
        session.receive(json.dumps(authenticate(0, self.issuer.token())))
        for i in range(MAX_HELD_MESSAGES + 1):
            session.receive(json.dumps({"type": "Event", "eventType": "x", "event": i}))
        self.h.pump()
        (error,) = client.take()
        self.assertEqual(error["type"], "FatalError")
        self.assertIn("while authenticating", error["error"])
        await self.until(lambda: self.issuer.requests["jwks"] == 1, "the key fetch to end")

    async def test_connection_lost_while_verifying(self) -> None:
        session, client = self.open()
        session.receive(json.dumps(authenticate(0, self.issuer.token())))
        session.receive(json.dumps(modify(0, add(0, "kv:whoami"))))
        session.connection_lost()
        await self.until(lambda: self.issuer.requests["jwks"] == 1, "the key fetch")
        await deferLater(reactor, 0.05, lambda: None)
        self.h.pump()
        self.assertEqual(client.take(), [])
        self.assertEqual(self.h.runner.calls, [])

    async def test_audience_is_checked_for_custom_jwt(self) -> None:
        session, client = self.open()
        token = self.issuer.token(kind="custom", claims={"aud": CUSTOM_AUDIENCE + "x"})
        self.h.feed(session, authenticate(0, token))
        (error,) = client.take()
        self.assertIn("audience", error["error"])
