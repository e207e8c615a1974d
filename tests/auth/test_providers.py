"""The shapes of auth_config.py's ``providers`` list."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from convex_backend.auth.providers import (
    CustomJwtProvider,
    OidcProvider,
    ProviderConfigError,
    auth_info,
    parse_providers,
    same_issuer,
)

OIDC = {"domain": "https://issuer.example.com", "applicationID": "app"}
CUSTOM = {
    "type": "customJwt",
    "issuer": "https://auth.example.com",
    "jwks": "https://auth.example.com/jwks.json",
    "algorithm": "ES256",
}


class ParseProvidersTests(SynchronousTestCase):
    def test_none_is_no_providers(self) -> None:
        self.assertEqual(parse_providers(None), ())
        self.assertEqual(parse_providers([]), ())

    def test_oidc_and_custom(self) -> None:
        oidc, custom, custom_aud = parse_providers(
            [OIDC, CUSTOM, {**CUSTOM, "algorithm": "RS256", "applicationID": "a2"}]
        )
        self.assertEqual(oidc, OidcProvider("https://issuer.example.com", "app"))
        self.assertEqual(oidc.issuer, "https://issuer.example.com")
        self.assertEqual(
            custom,
            CustomJwtProvider(
                "https://auth.example.com", "https://auth.example.com/jwks.json", "ES256", None
            ),
        )
        self.assertEqual(custom_aud.application_id, "a2")
        self.assertEqual(parse_providers([{**OIDC, "type": "oidc"}])[0], oidc)

    def test_auth_info_round_trips(self) -> None:
        providers = parse_providers([OIDC, CUSTOM])
        self.assertEqual(auth_info(providers), [OIDC, CUSTOM])
        self.assertEqual(parse_providers(auth_info(providers)), providers)

    def test_jwks_data_uri(self) -> None:
        (provider,) = parse_providers([{**CUSTOM, "jwks": "data:text/plain;base64,e30="}])
        self.assertTrue(provider.jwks.startswith("data:"))

    def test_bad_shapes_say_what_is_wrong(self) -> None:
        cases = [
            ({"providers": OIDC}, "must be a list"),
            ("https://x", "must be a list"),
            (["https://x"], "providers[0] must be a dict"),
            ([{"applicationID": "app"}], "`domain`"),
            ([{"domain": "issuer.example.com", "applicationID": "a"}], "http(s) URL"),
            ([{"domain": "ftp://x.example.com", "applicationID": "a"}], "http(s) URL"),
            ([{"domain": "https://x.example.com"}], "`applicationID`"),
            ([{**OIDC, "applicationID": ""}], "`applicationID`"),
            ([{**OIDC, "applicationId": "typo"}], "unknown key(s) 'applicationId'"),
            ([OIDC, {**CUSTOM, "algorithm": "HS256"}], "providers[1]: `algorithm` must be"),
            ([{**CUSTOM, "algorithm": None}], "`algorithm` must be one of RS256, ES256"),
            ([{**CUSTOM, "jwks": "not a url"}], "`jwks`"),
            ([{**CUSTOM, "jwks": "data:nocomma"}], "data: URI without data"),
            ([{**CUSTOM, "issuer": 5}], "`issuer`"),
            ([{**CUSTOM, "applicationID": 7}], "`applicationID`"),
            ([{**CUSTOM, "type": "saml"}], "unknown provider `type` 'saml'"),
            ([{**CUSTOM, "extra": 1}], "unknown key(s) 'extra'"),
            ([OIDC] * 101, "too many providers"),
            ([{**OIDC, "domain": "https://" + "x" * 3000}], "too long"),
        ]
        for config, expected in cases:
            with self.assertRaises(ProviderConfigError, msg=config) as caught:
                parse_providers(config)
            self.assertIn(expected, str(caught.exception))

    def test_same_issuer_tolerates_a_trailing_slash(self) -> None:
        self.assertTrue(same_issuer("https://a.example.com/", "https://a.example.com"))
        self.assertTrue(same_issuer("https://a.example.com", "https://a.example.com/"))
        self.assertFalse(same_issuer("https://a.example.com", "https://b.example.com"))
        self.assertFalse(same_issuer("https://a.example.com", "https://a.example.com/x"))
