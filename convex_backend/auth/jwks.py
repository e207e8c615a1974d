"""The public keys of auth providers: JWKS documents, fetched and cached.

A provider's keys live at a JWKS URL: a customJwt provider names it (or embeds
the JWKS in a ``data:`` URI), an OIDC provider publishes it as ``jwks_uri`` in
``${domain}/.well-known/openid-configuration``. :class:`JwksCache` fetches them
with treq (never blocking the reactor; every fetch has a timeout and a size
limit) and keeps them in memory:

* keys are reused for :data:`MAX_AGE` seconds, then fetched again on next use
  (the old ones still serve if that fetch fails);
* a token naming a ``kid`` the cached set does not have makes the set be
  fetched again (providers rotate keys by publishing a new ``kid``), but at
  most once per :data:`MIN_REFRESH_INTERVAL` per provider, so tokens with made
  up ``kid``\\ s cannot make us hammer the provider;
* concurrent requests for one provider share one fetch.

Only asymmetric keys are kept (RSA, EC, OKP): a symmetric (``oct``) key in a
JWKS would let anyone who can read the JWKS sign tokens.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes, urljoin, urlsplit

import treq
from jwt import PyJWK
from jwt.exceptions import PyJWTError
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.client import HTTPConnectionPool, _HTTP11ClientFactory

log = Logger(namespace="convex.auth")

#: Algorithms a JWKS key may be used with: asymmetric signatures only.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
#: Seconds a fetched key set is used before it is fetched again.
MAX_AGE = 3600.0
#: The shortest time between two fetches of one provider's keys.
MIN_REFRESH_INTERVAL = 30.0
#: Seconds a discovery or JWKS fetch may take.
FETCH_TIMEOUT = 10.0
#: The largest discovery document or JWKS accepted.
MAX_DOCUMENT_BYTES = 1024 * 1024
#: Redirects followed when fetching a discovery document or a JWKS.
MAX_REDIRECTS = 5


class JwksError(Exception):
    """The provider's keys could not be had; the message says why."""


@dataclass
class _Entry:
    keys: list[PyJWK] = field(default_factory=list)
    fetched_at: float | None = None
    attempted_at: float | None = None
    error: str | None = None
    waiters: list[defer.Deferred] | None = None


def parse_jwks(document: Any, where: str) -> list[PyJWK]:
    """The usable public keys of a JWKS document (``{"keys": [...]}``)."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError(f"{where} is not a JWKS document (an object with a `keys` list)")
    keys = []
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or jwk.get("kty") not in ("RSA", "EC", "OKP"):
            continue
        if jwk.get("use", "sig") != "sig":
            continue
        try:
            key = PyJWK(jwk)
        except (PyJWTError, ValueError, TypeError, KeyError):
            continue
        if key.algorithm_name in ASYMMETRIC_ALGORITHMS:
            keys.append(key)
    if not keys:
        raise JwksError(f"{where} holds no usable public signing key")
    return keys


def decode_data_uri(uri: str) -> bytes:
    """The bytes of a ``data:[<type>][;base64],<data>`` URI."""
    header, _, data = uri[len("data:") :].partition(",")
    if header.endswith(";base64"):
        try:
            return base64.b64decode(data + "=" * (-len(data) % 4), validate=False)
        except (binascii.Error, ValueError) as e:
            raise JwksError(f"the jwks data: URI is not valid base64: {e}")
    return unquote_to_bytes(data)


def matching_keys(keys: list[PyJWK], kid: str | None) -> list[PyJWK]:
    """The keys a token with header ``kid`` may be signed with."""
    if kid is None:
        return list(keys)
    named = [key for key in keys if key.key_id == kid]
    if named:
        return named
    # Keys published without a kid may sign any token.
    return [key for key in keys if key.key_id is None]


class JwksCache:
    """Keys by source: a JWKS URL, a ``data:`` URI, or an OIDC domain (``discovery``)."""

    def __init__(
        self,
        clock: Any = None,
        *,
        reactor: Any = None,
        min_refresh_interval: float = MIN_REFRESH_INTERVAL,
        max_age: float = MAX_AGE,
        fetch_timeout: float = FETCH_TIMEOUT,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor  # noqa: PLC0415
        self._reactor = reactor
        self._clock = clock if clock is not None else reactor
        self.min_refresh_interval = min_refresh_interval
        self.max_age = max_age
        self.fetch_timeout = fetch_timeout
        self._entries: dict[tuple[str, bool], _Entry] = {}
        #: How many documents were fetched over HTTP (discovery and JWKS), for tests.
        self.fetches = 0

    async def keys(self, source: str, kid: str | None, *, discovery: bool = False) -> list[PyJWK]:
        """The keys of ``source`` that may have signed a token with ``kid``.

        Raises :class:`JwksError` when there are none (the message says why).
        """
        entry = self._entries.setdefault((source, discovery), _Entry())
        now = self._clock.seconds()
        found = matching_keys(entry.keys, kid)
        fresh = entry.fetched_at is not None and now - entry.fetched_at < self.max_age
        if found and fresh:
            return found
        recently = (
            entry.attempted_at is not None and now - entry.attempted_at < self.min_refresh_interval
        )
        if not recently or entry.waiters is not None:
            await self._refresh(source, discovery, entry)
            found = matching_keys(entry.keys, kid)
        if found:
            return found
        if not entry.keys and entry.error:
            raise JwksError(entry.error)
        if kid is None:
            raise JwksError("the provider publishes no key for this token")
        raise JwksError(f"the provider publishes no key with kid {_show(kid)}")

    def _refresh(self, source: str, discovery: bool, entry: _Entry) -> defer.Deferred:
        """Fetch ``source`` again; concurrent callers share the one fetch."""
        waiter: defer.Deferred = defer.Deferred()
        if entry.waiters is not None:
            entry.waiters.append(waiter)
            return waiter
        entry.waiters = [waiter]
        entry.attempted_at = self._clock.seconds()
        d = defer.ensureDeferred(self._fetch(source, discovery))

        def done(result: Any) -> None:
            if isinstance(result, list):
                entry.keys, entry.error = result, None
                entry.fetched_at = self._clock.seconds()
            else:
                error = result.value if isinstance(result.value, JwksError) else None
                entry.error = (
                    str(error) if error else f"fetching the keys failed: {_describe(result)}"
                )
                if entry.keys:
                    log.warn(
                        "Could not refresh the auth keys of {source}, using the cached ones: "
                        "{error}",
                        source=_redact(source),
                        error=entry.error,
                    )
            waiters, entry.waiters = entry.waiters or [], None
            for w in waiters:
                w.callback(None)

        d.addBoth(done)
        return waiter

    async def _fetch(self, source: str, discovery: bool) -> list[PyJWK]:
        if source.startswith("data:"):
            try:
                document = json.loads(decode_data_uri(source))
            except ValueError:
                raise JwksError("the jwks data: URI does not hold JSON")
            return parse_jwks(document, "the jwks data: URI")
        url = source
        if discovery:
            config_url = source.rstrip("/") + "/.well-known/openid-configuration"
            config = await self._get_json(config_url)
            url = config.get("jwks_uri") if isinstance(config, dict) else None
            if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
                raise JwksError(f"{config_url} has no http(s) `jwks_uri`")
        return parse_jwks(await self._get_json(url), url)

    async def _get_json(self, url: str) -> Any:
        self.fetches += 1
        d = defer.ensureDeferred(self._download(url))
        timer = self._reactor.callLater(self.fetch_timeout, d.cancel)
        try:
            body = await d
        except JwksError:
            raise
        except Exception as e:
            if not timer.active():
                # Cancelled by the timer (treq reports that in several ways).
                raise JwksError(f"{url} did not answer within {self.fetch_timeout:g} s")
            raise JwksError(f"could not fetch {url}: {_describe_exception(e)}")
        finally:
            if timer.active():
                timer.cancel()
        try:
            return json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
            raise JwksError(f"{url} did not answer JSON")

    def _pool(self) -> HTTPConnectionPool:
        # Non-persistent, and quiet: the default client factory logs "Starting
        # factory"/"Stopping factory" at info level for every fetch.
        pool = HTTPConnectionPool(self._reactor, persistent=False)
        pool._factory = _QuietClientFactory
        return pool

    async def _download(self, url: str) -> bytes:
        # Redirects are followed by hand: a few at most, and never from https to
        # http, where anyone on the path could hand us their own keys.
        for _hop in range(MAX_REDIRECTS + 1):
            response = await treq.get(
                url,
                headers={"Accept": "application/json"},
                pool=self._pool(),
                allow_redirects=False,
            )
            location = response.headers.getRawHeaders(b"location", [None])[0]
            if response.code not in _REDIRECT_CODES or location is None:
                break
            await treq.collect(response, lambda _: None)
            target = urljoin(url, location.decode("latin-1"))
            if urlsplit(target).scheme not in ("http", "https") or (
                urlsplit(url).scheme == "https" and urlsplit(target).scheme != "https"
            ):
                raise JwksError(f"{url} redirects to a non-https URL")
            url = target
        else:
            raise JwksError(f"{url} redirects more than {MAX_REDIRECTS} times")
        if response.code != 200:
            await treq.collect(response, lambda _: None)
            raise JwksError(f"{url} answered HTTP {response.code}")
        chunks: list[bytes] = []
        size = 0

        def collect(data: bytes) -> None:
            nonlocal size
            size += len(data)
            if size > MAX_DOCUMENT_BYTES:
                raise JwksError(f"{url} answered more than {MAX_DOCUMENT_BYTES} bytes")
            chunks.append(data)

        await treq.collect(response, collect)
        return b"".join(chunks)


_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


class _QuietClientFactory(_HTTP11ClientFactory):
    noisy = False


def _describe(failure: Any) -> str:
    return _describe_exception(failure.value)


def _describe_exception(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _redact(source: str) -> str:
    return "a data: URI" if source.startswith("data:") else source


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "JwksCache",
    "JwksError",
    "decode_data_uri",
    "matching_keys",
    "parse_jwks",
]
