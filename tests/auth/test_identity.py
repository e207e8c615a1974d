"""Identities from verified claims, and identities an admin acts as."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from convex_backend.auth.identity import IdentityError, identity_from_claims, normalize_identity


class IdentityFromClaimsTests(SynchronousTestCase):
    def test_standard_claims_become_camel_case(self) -> None:
        claims = {
            "iss": "https://issuer.example.com",
            "sub": "user-1",
            "aud": "app",
            "exp": 2_000_000_000,
            "iat": 1_700_000_000,
            "nbf": 1_700_000_000,
            "jti": "abc",
            "nonce": "n",
            "azp": "client",
            "name": "Ada Lovelace",
            "given_name": "Ada",
            "family_name": "Lovelace",
            "nickname": "ada",
            "preferred_username": "ada_l",
            "profile": "https://example.com/ada",
            "picture": "https://example.com/ada.png",
            "email": "ada@example.com",
            "email_verified": True,
            "gender": "female",
            "birthdate": "1815-12-10",
            "zoneinfo": "Europe/London",
            "locale": "en-GB",
            "phone_number": "+44 20 0000 0000",
            "phone_number_verified": False,
            "address": {"formatted": "12 St James's Square, London"},
            "updated_at": 0,
            "org": "analytical-engines",
            "roles": ["admin", "author"],
            "meta": {"plan": "pro"},
            "middle_name": None,
        }
        self.assertEqual(
            identity_from_claims(claims),
            {
                "tokenIdentifier": "https://issuer.example.com|user-1",
                "subject": "user-1",
                "issuer": "https://issuer.example.com",
                "name": "Ada Lovelace",
                "givenName": "Ada",
                "familyName": "Lovelace",
                "nickname": "ada",
                "preferredUsername": "ada_l",
                "profileUrl": "https://example.com/ada",
                "pictureUrl": "https://example.com/ada.png",
                "email": "ada@example.com",
                "emailVerified": True,
                "gender": "female",
                "birthday": "1815-12-10",
                "timezone": "Europe/London",
                "language": "en-GB",
                "phoneNumber": "+44 20 0000 0000",
                "phoneNumberVerified": False,
                "address": "12 St James's Square, London",
                "updatedAt": "1970-01-01T00:00:00+00:00",
                "org": "analytical-engines",
                "roles": ["admin", "author"],
                "meta": {"plan": "pro"},
            },
        )

    def test_custom_claims_never_replace_identity_fields(self) -> None:
        identity = identity_from_claims(
            {
                "iss": "i",
                "sub": "s",
                "tokenIdentifier": "forged",
                "subject": "forged",
                "picture": "p",
                "pictureUrl": "custom",
            }
        )
        self.assertEqual(identity["tokenIdentifier"], "i|s")
        self.assertEqual(identity["subject"], "s")
        self.assertEqual(identity["pictureUrl"], "p")

    def test_unstructured_address_and_string_updated_at(self) -> None:
        identity = identity_from_claims(
            {"iss": "i", "sub": "s", "address": {"country": "UK"}, "updated_at": "yesterday"}
        )
        self.assertEqual(identity["address"], '{"country": "UK"}')
        self.assertEqual(identity["updatedAt"], "yesterday")


class NormalizeIdentityTests(SynchronousTestCase):
    def test_token_identifier_is_built(self) -> None:
        self.assertEqual(
            normalize_identity({"subject": "s", "issuer": "i", "name": "N"}),
            {"subject": "s", "issuer": "i", "name": "N", "tokenIdentifier": "i|s"},
        )

    def test_refused(self) -> None:
        for bad in ([], {"subject": "s"}, {"tokenIdentifier": 1}):
            self.assertRaises(IdentityError, normalize_identity, bad)
