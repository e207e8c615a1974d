"""File storage over a real loopback port: uploads, downloads, ranges, admin routes.

The site is the daemon's (ConvexSite, CORS, the root app) with file storage
attached as in convex_backend/service.py, so upload bodies stream to spool
files exactly as in production; cut-off and oversized uploads use a raw TCP
client.
"""

from __future__ import annotations

import hashlib
import json
import time

import treq
from twisted.internet import reactor
from twisted.internet.protocol import ClientFactory
from twisted.internet.task import deferLater

from convex_backend.http.cors import CorsResource
from convex_backend.http.root import RootApp
from convex_backend.http.site import ConvexSite
from convex_backend.http.storage_api import UNSATISFIABLE, parse_range
from tests.http.fixtures import ApiTestCase
from tests.storage.fixtures import (
    Clock,
    RawClient,
    blob_ids,
    every_byte,
    make_storage,
    storage_rows,
    tmp_files,
)

REQUEST_LIMIT = 64 * 1024
FILE_LIMIT = 512 * 1024


async def sleep(seconds: float) -> None:
    await deferLater(reactor, seconds, lambda: None)


class StorageApiTests(ApiTestCase):
    modules = None
    timeout = 60

    async def setUp(self) -> None:
        await super().setUp()
        site = ConvexSite(
            CorsResource(RootApp(self.deployment).resource()), max_request_bytes=REQUEST_LIMIT
        )
        self.port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.url = f"http://127.0.0.1:{self.port.getHost().port}"
        self.clock = Clock(time.time())
        self.storage = make_storage(
            self, self.db, max_file_bytes=FILE_LIMIT, origin=self.url, clock=self.clock
        )
        self.deployment.storage = self.storage
        site.upload_body = self.storage.upload_body
        site.max_upload_bytes = FILE_LIMIT

    # -- helpers -------------------------------------------------------------------

    async def http(self, method: str, path_or_url: str, data: bytes | None = None, **headers):
        url = path_or_url if path_or_url.startswith("http") else self.url + path_or_url
        hdrs = {k.replace("_", "-"): v for k, v in headers.items()}
        response = await treq.request(method, url, data=data, headers=hdrs, persistent=False)
        return response, await response.content()

    async def admin(self, method: str, path: str, body: object = None):
        data = json.dumps(body).encode() if body is not None else None
        return await self.http(
            method,
            path,
            data,
            Authorization=f"Convex {self.key}",
            Content_Type="application/json",
        )

    async def upload(self, data: bytes, content_type: str = "application/octet-stream") -> str:
        response, body = await self.http(
            "POST", self.storage.upload_url(), data, Content_Type=content_type
        )
        self.assertEqual(response.code, 200, body)
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"application/json"])
        return json.loads(body)["storageId"]

    async def raw(self, payload: bytes, hang_up: bool = False) -> bytes:
        factory = ClientFactory()
        client = RawClient(payload, hang_up)
        factory.protocol = lambda: client
        reactor.connectTCP("127.0.0.1", self.port.getHost().port, factory)
        return await client.done

    def upload_path(self) -> str:
        return self.storage.upload_url()[len(self.url) :]

    def assertNothingStored(self) -> None:
        self.assertEqual(storage_rows(self.db), [])
        self.assertEqual(blob_ids(self.storage), [])
        self.assertEqual(tmp_files(self.storage), [])

    # -- round trip ----------------------------------------------------------------

    async def test_upload_and_download_round_trip(self) -> None:
        # Larger than the site's request limit: uploads have their own.
        data = every_byte(1200)
        self.assertGreater(len(data), REQUEST_LIMIT)
        storage_id = await self.upload(data, "image/png")
        [row] = storage_rows(self.db)
        self.assertEqual(row["_id"], storage_id)
        self.assertEqual(row["size"], float(len(data)))
        self.assertEqual(self.storage.blobs.read(storage_id), data)
        self.assertEqual(tmp_files(self.storage), [])
        response, body = await self.http("GET", f"/api/storage/{storage_id}")
        self.assertEqual(response.code, 200)
        self.assertEqual(body, data)
        headers = response.headers
        self.assertEqual(headers.getRawHeaders(b"content-type"), [b"image/png"])
        self.assertEqual(response.length, len(data))  # Content-Length
        self.assertEqual(headers.getRawHeaders(b"accept-ranges"), [b"bytes"])
        etag = f'"{hashlib.sha256(data).hexdigest()}"'.encode()
        self.assertEqual(headers.getRawHeaders(b"etag"), [etag])
        # The URL is what ctx.storage.get_url() gives.
        self.assertEqual(self.storage.file_url(storage_id), f"{self.url}/api/storage/{storage_id}")
        response, body = await self.http("GET", f"/api/storage/{storage_id}", If_None_Match=etag)
        self.assertEqual((response.code, body), (304, b""))

    async def test_head_and_default_content_type(self) -> None:
        response, body = await self.http("POST", self.storage.upload_url(), b"abc")
        storage_id = json.loads(body)["storageId"]
        answer = await self.raw(
            f"HEAD /api/storage/{storage_id} HTTP/1.1\r\nHost: t\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 "), answer)
        self.assertIn(b"\r\nContent-Length: 3\r\n", answer)
        self.assertTrue(answer.endswith(b"\r\n\r\n"), answer)
        response, body = await self.http("GET", f"/api/storage/{storage_id}")
        self.assertEqual(body, b"abc")
        self.assertEqual(
            response.headers.getRawHeaders(b"content-type"), [b"application/octet-stream"]
        )

    async def test_empty_file(self) -> None:
        storage_id = await self.upload(b"", "text/plain")
        response, body = await self.http("GET", f"/api/storage/{storage_id}")
        self.assertEqual((response.code, body), (200, b""))

    # -- ranges --------------------------------------------------------------------

    async def test_range_requests(self) -> None:
        data = every_byte(4)
        size = len(data)
        storage_id = await self.upload(data)
        path = f"/api/storage/{storage_id}"
        cases = [
            ("bytes=10-19", 10, 19),
            ("bytes=-5", size - 5, size - 1),
            (f"bytes={size - 3}-", size - 3, size - 1),
            (f"bytes=0-{size * 2}", 0, size - 1),
        ]
        for header, start, end in cases:
            response, body = await self.http("GET", path, Range=header)
            self.assertEqual(response.code, 206, header)
            self.assertEqual(body, data[start : end + 1], header)
            self.assertEqual(
                response.headers.getRawHeaders(b"content-range"),
                [f"bytes {start}-{end}/{size}".encode()],
            )
        for header in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0"):
            response, body = await self.http("GET", path, Range=header)
            self.assertEqual(response.code, 416, header)
            self.assertEqual(json.loads(body)["code"], "RangeNotSatisfiable")
            self.assertEqual(
                response.headers.getRawHeaders(b"content-range"), [f"bytes */{size}".encode()]
            )
        # Several ranges or nonsense: the whole file.
        for header in ("bytes=0-1,5-6", "lines=1-2", "bytes=5-2"):
            response, body = await self.http("GET", path, Range=header)
            self.assertEqual((response.code, body), (200, data), header)

    def test_parse_range(self) -> None:
        self.assertIsNone(parse_range(None, 10))
        self.assertEqual(parse_range(b"bytes=2-4", 10), (2, 3))
        self.assertEqual(parse_range(b"bytes=-20", 10), (0, 10))
        self.assertEqual(parse_range(b"bytes=0-0", 1), (0, 1))
        self.assertEqual(parse_range(b"bytes=0-", 0), UNSATISFIABLE)
        self.assertEqual(parse_range(b"bytes=-1", 0), UNSATISFIABLE)
        self.assertIsNone(parse_range(b"bytes=-", 10))

    # -- refused uploads -----------------------------------------------------------

    async def test_tampered_expired_and_missing_tokens(self) -> None:
        url = self.storage.upload_url()
        tampered = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
        response, body = await self.http("POST", tampered, b"data")
        self.assertJsonError(response, body, 401, "InvalidUploadToken")
        response, body = await self.http("POST", "/api/storage/upload", b"data")
        self.assertJsonError(response, body, 400, "MissingUploadToken")
        self.clock.now += 3601
        response, body = await self.http("POST", url, b"data")
        self.assertJsonError(response, body, 401, "UploadTokenExpired")
        self.assertNothingStored()
        # And the deployment keeps serving.
        await self.upload(b"fine")

    async def test_size_limit_by_content_length(self) -> None:
        response, body = await self.http("POST", self.storage.upload_url(), b"x" * (FILE_LIMIT + 1))
        self.assertJsonError(response, body, 413, "PayloadTooLarge")
        self.assertNothingStored()
        storage_id = await self.upload(b"x" * FILE_LIMIT)
        self.assertEqual(len(self.storage.blobs.read(storage_id)), FILE_LIMIT)

    async def test_size_limit_while_receiving_chunks(self) -> None:
        chunk = b"y" * 100_000
        payload = (
            f"POST {self.upload_path()} HTTP/1.1\r\nHost: t\r\n".encode()
            + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            + (b"%x\r\n%s\r\n" % (len(chunk), chunk)) * 6
            + b"0\r\n\r\n"
        )
        answer = await self.raw(payload)
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 "), answer[:200])
        self.assertIn(b'"PayloadTooLarge"', answer)
        self.assertNothingStored()

    async def test_an_upload_cut_off_halfway_leaves_nothing(self) -> None:
        total = 400_000
        head = (
            f"POST {self.upload_path()} HTTP/1.1\r\nHost: t\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {total}\r\n\r\n"
        ).encode()
        factory = ClientFactory()
        client = RawClient(head + b"z" * (total // 2))
        factory.protocol = lambda: client
        reactor.connectTCP("127.0.0.1", self.port.getHost().port, factory)
        # The first half arrives in a spool file on disk...
        for _ in range(500):
            files = list(self.storage.blobs.tmp.iterdir())
            if files and files[0].stat().st_size >= total // 2:
                break
            await sleep(0.01)
        else:
            self.fail("the body never reached a spool file")
        # ...then the client goes away.
        client.transport.loseConnection()
        await client.done
        for _ in range(500):
            if not tmp_files(self.storage):
                break
            await sleep(0.01)
        self.assertNothingStored()
        await self.upload(b"still serving")

    async def test_a_bad_token_never_spools(self) -> None:
        payload = (
            b"POST /api/storage/upload?token=forged HTTP/1.1\r\nHost: t\r\n"
            b"Content-Length: 300000\r\n\r\n" + b"q" * 150_000
        )
        factory = ClientFactory()
        client = RawClient(payload)
        factory.protocol = lambda: client
        reactor.connectTCP("127.0.0.1", self.port.getHost().port, factory)
        await sleep(0.2)
        self.assertEqual(tmp_files(self.storage), [])
        client.transport.loseConnection()
        await client.done

    async def test_a_client_leaving_mid_download(self) -> None:
        data = every_byte(1900)
        storage_id = await self.upload(data)
        request = f"GET /api/storage/{storage_id} HTTP/1.1\r\nHost: t\r\n\r\n".encode()
        # Gone before the answer starts, and after a part of it arrived.
        answer = await self.raw(request, hang_up=True)
        self.assertLess(len(answer), len(data))

        class PartReader(RawClient):
            def dataReceived(self, chunk: bytes) -> None:
                super().dataReceived(chunk)
                if len(self.received) > 100_000:
                    self.transport.abortConnection()

        factory = ClientFactory()
        client = PartReader(request)
        factory.protocol = lambda: client
        reactor.connectTCP("127.0.0.1", self.port.getHost().port, factory)
        answer = await client.done
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 "))
        self.assertLess(len(answer), len(data))
        await sleep(0.1)
        # Nothing was logged as an error (trial fails the test if so), and the
        # file is still served whole.
        response, body = await self.http("GET", f"/api/storage/{storage_id}")
        self.assertEqual(body, data)

    # -- downloads of what is not there --------------------------------------------

    async def test_unknown_and_malformed_ids(self) -> None:
        storage_id = await self.upload(b"soon gone")
        await self.storage.delete(storage_id)
        response, body = await self.http("GET", f"/api/storage/{storage_id}")
        self.assertJsonError(response, body, 404, "FileNotFound")
        for bad in ("nope", "A" * 32, "%00"):
            response, body = await self.http("GET", f"/api/storage/{bad}")
            self.assertJsonError(response, body, 400, "InvalidStorageId")
        # A path that leaves the route is no file either.
        response, body = await self.http("GET", "/api/storage/..%2F..%2Fcredentials")
        self.assertJsonError(response, body, 404, "NotFound")
        [user_id] = await self.insert("things", [{"a": 1.0}])
        response, body = await self.http("GET", f"/api/storage/{user_id}")
        self.assertJsonError(response, body, 400, "InvalidStorageId")

    # -- CORS ----------------------------------------------------------------------

    async def test_browsers_may_upload(self) -> None:
        origin = "http://app.example.com"
        response, _ = await self.http(
            "OPTIONS",
            self.storage.upload_url(),
            Origin=origin,
            Access_Control_Request_Method="POST",
            Access_Control_Request_Headers="content-type",
        )
        self.assertEqual(response.code, 204)
        self.assertEqual(
            response.headers.getRawHeaders(b"access-control-allow-origin"), [origin.encode()]
        )
        self.assertIn(b"POST", response.headers.getRawHeaders(b"access-control-allow-methods")[0])
        response, body = await self.http(
            "POST",
            self.storage.upload_url(),
            b"from a page",
            Origin=origin,
            Content_Type="text/plain",
        )
        self.assertEqual(response.code, 200, body)
        self.assertEqual(
            response.headers.getRawHeaders(b"access-control-allow-origin"), [origin.encode()]
        )

    # -- admin routes --------------------------------------------------------------

    async def test_admin_routes_need_the_admin_key(self) -> None:
        for method, path in (
            ("POST", "/api/storage/generate_upload_url"),
            ("POST", "/api/storage/delete"),
            ("GET", "/api/storage_files"),
        ):
            response, body = await self.http(method, path, b"{}", Content_Type="application/json")
            self.assertJsonError(response, body, 401, "MissingAdminKey")
            response, body = await self.http(
                method, path, b"{}", Authorization="Convex nope|00", Content_Type="application/json"
            )
            self.assertJsonError(response, body, 401, "BadAdminKey")

    async def test_generate_upload_url(self) -> None:
        response, body = await self.admin("POST", "/api/storage/generate_upload_url")
        self.assertEqual(response.code, 200, body)
        url = json.loads(body)["uploadUrl"]
        self.assertTrue(url.startswith(f"{self.url}/api/storage/upload?token="))
        response, body = await self.http("POST", url, b"via admin")
        self.assertEqual(response.code, 200, body)

    async def test_list_and_delete(self) -> None:
        ids = [await self.upload(bytes([i]) * (i + 1), "text/plain") for i in range(3)]
        response, body = await self.admin("GET", "/api/storage_files?numItems=2")
        self.assertEqual(response.code, 200, body)
        first = json.loads(body)
        self.assertEqual([f["storageId"] for f in first["page"]], [ids[2], ids[1]])
        entry = first["page"][0]
        self.assertEqual(entry["sha256"], hashlib.sha256(bytes([2]) * 3).hexdigest())
        self.assertEqual((entry["size"], entry["contentType"]), (3.0, "text/plain"))
        self.assertEqual(entry["url"], f"{self.url}/api/storage/{ids[2]}")
        self.assertIsInstance(entry["_creationTime"], float)
        response, body = await self.admin(
            "GET", f"/api/storage_files?numItems=2&cursor={first['continueCursor']}"
        )
        rest = json.loads(body)
        self.assertEqual([f["storageId"] for f in rest["page"]], [ids[0]])
        self.assertTrue(rest["isDone"])

        response, body = await self.admin("POST", "/api/storage/delete", {"storageId": ids[1]})
        self.assertEqual((response.code, json.loads(body)), (200, {}))
        self.assertEqual(sorted(r["_id"] for r in storage_rows(self.db)), sorted([ids[0], ids[2]]))
        self.assertEqual(blob_ids(self.storage), sorted([ids[0], ids[2]]))
        response, body = await self.admin("POST", "/api/storage/delete", {"storageId": ids[1]})
        self.assertJsonError(response, body, 404, "FileNotFound")
        response, body = await self.admin("POST", "/api/storage/delete", {"storageId": 5})
        self.assertJsonError(response, body, 400, "InvalidStorageId")
        for query in ("numItems=0", "numItems=x", "numItems=5000", "cursor=garbage"):
            response, body = await self.admin("GET", f"/api/storage_files?{query}")
            self.assertEqual(response.code, 400, (query, body))
            self.assertEqual(set(json.loads(body)), {"code", "message"})
