"""``HttpRouter`` rules and lookups, and the ``Request``/``Response`` objects."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from convex_backend.server import Headers, HttpRouter, Request, Response, http_action, query


def _handler(ctx, request):
    return Response("ok")


class RouterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.exact = http_action(_handler)
        self.files = http_action(_handler)
        self.deep = http_action(_handler)
        self.post = http_action(_handler)
        self.router = HttpRouter()
        self.router.route(path="/files/special", method="GET", handler=self.exact)
        self.router.route(path_prefix="/files/", method="GET", handler=self.files)
        self.router.route(path_prefix="/files/deep/", method="GET", handler=self.deep)
        self.router.route(path="/hello", method="POST", handler=self.post)
        self.router.route(path="/hello", method="GET", handler=self.exact)

    def test_exact_first_then_longest_prefix(self) -> None:
        fn, route = self.router.lookup("/files/special", "GET")
        self.assertIs(fn, self.exact)
        self.assertEqual((route.path, route.pattern), ("/files/special", "/files/special"))
        fn, route = self.router.lookup("/files/deep/x", "GET")
        self.assertIs(fn, self.deep)
        self.assertEqual(route.pattern, "/files/deep/*")
        fn, _ = self.router.lookup("/files/other", "GET")
        self.assertIs(fn, self.files)
        self.assertIsNone(self.router.lookup("/files", "GET"))
        self.assertIsNone(self.router.lookup("/files/x", "POST"))
        self.assertIsNone(self.router.lookup("/nowhere", "GET"))

    def test_head_is_get(self) -> None:
        self.assertIs(self.router.lookup("/hello", "HEAD")[0], self.exact)
        self.assertIs(self.router.lookup("/files/a", "HEAD")[0], self.files)

    def test_export_routes_in_convex_order(self) -> None:
        self.assertEqual(
            self.router.export_routes(),
            [
                {"path": "/files/special", "method": "GET"},
                {"path": "/hello", "method": "GET"},
                {"path": "/hello", "method": "POST"},
                {"pathPrefix": "/files/", "method": "GET"},
                {"pathPrefix": "/files/deep/", "method": "GET"},
            ],
        )
        self.assertEqual(
            [(p, m) for p, m, _ in self.router.get_routes()][-1], ("/files/deep/*", "GET")
        )

    def test_route_validation(self) -> None:
        r = self.router
        self.assertRaises(ValueError, r.route, path="no-slash", method="GET", handler=self.exact)
        self.assertRaises(ValueError, r.route, path_prefix="/x", method="GET", handler=self.exact)
        self.assertRaises(ValueError, r.route, path_prefix="x/", method="GET", handler=self.exact)
        self.assertRaises(ValueError, r.route, path="/x", method="HEAD", handler=self.exact)
        self.assertRaises(ValueError, r.route, path="/x", method="get", handler=self.exact)
        self.assertRaises(ValueError, r.route, path="/hello", method="GET", handler=self.exact)
        self.assertRaises(
            ValueError, r.route, path_prefix="/files/", method="GET", handler=self.exact
        )
        self.assertRaises(ValueError, r.route, method="GET", handler=self.exact)
        self.assertRaises(
            ValueError, r.route, path="/a", path_prefix="/a/", method="GET", handler=self.exact
        )
        self.assertRaises(ValueError, r.route, path="/.files/x", method="GET", handler=self.exact)
        self.assertRaises(
            TypeError, r.route, path="/q", method="GET", handler=query(lambda c, a: 1)
        )
        self.assertRaises(TypeError, r.route, path="/q", method="GET", handler="nope")
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            r.route(path="/all", method=method, handler=self.exact)

    def test_plain_functions_are_wrapped(self) -> None:
        self.router.route(path="/plain", method="PUT", handler=_handler)
        fn, _ = self.router.lookup("/plain", "PUT")
        self.assertEqual(fn.udf_type, "httpAction")
        self.assertIs(fn.handler, _handler)


class RequestResponseTests(SynchronousTestCase):
    def test_request_from_json(self) -> None:
        request = Request.from_json(
            {
                "method": "POST",
                "url": "https://host/api/x?q=1&q=2&e=",
                "headers": [["Content-Type", "application/json"], ["x-a", "1"], ["X-A", "2"]],
                "body": {"$bytes": "eyJhIjogMX0="},
            }
        )
        self.assertEqual(request.method, "POST")
        self.assertEqual(request.path, "/api/x")
        self.assertEqual(request.search_params, {"q": ["1", "2"], "e": [""]})
        self.assertEqual(request.headers.get("content-type"), "application/json")
        self.assertEqual(request.headers["CONTENT-TYPE"], "application/json")
        self.assertEqual(request.headers.get("x-a"), "1, 2")
        self.assertEqual(request.headers.get_all("X-a"), ["1", "2"])
        self.assertIsNone(request.headers.get("missing"))
        self.assertEqual(request.bytes(), b'{"a": 1}')
        self.assertEqual(request.text(), '{"a": 1}')
        self.assertEqual(request.json(), {"a": 1})
        self.assertEqual(
            request.to_json()["headers"],
            [["content-type", "application/json"], ["x-a", "1"], ["x-a", "2"]],
        )

    def test_request_without_body(self) -> None:
        request = Request.from_json(
            {"method": "GET", "url": "http://h", "headers": [], "body": None}
        )
        self.assertIsNone(request.body)
        self.assertEqual(request.bytes(), b"")
        self.assertEqual(request.path, "/")
        self.assertIsNone(request.to_json()["body"])

    def test_response_bodies(self) -> None:
        self.assertEqual(Response().to_json(), {"status": 200, "headers": [], "body": None})
        self.assertEqual(
            Response("hé", status=201).to_json(),
            {
                "status": 201,
                "headers": [["content-type", "text/plain;charset=UTF-8"]],
                "body": {"$bytes": "aMOp"},
            },
        )
        self.assertEqual(
            Response(b"\x00", headers={"Content-Type": "application/octet-stream"}).to_json(),
            {
                "status": 200,
                "headers": [["content-type", "application/octet-stream"]],
                "body": {"$bytes": "AA=="},
            },
        )
        as_json = Response({"ok": True}, headers=[("x-b", "1")])
        self.assertEqual(as_json.json(), {"ok": True})
        self.assertEqual(
            as_json.headers.items(), [("x-b", "1"), ("content-type", "application/json")]
        )
        # An explicit content type wins.
        self.assertEqual(
            Response("x", headers={"content-type": "text/html"}).headers.get_all("content-type"),
            ["text/html"],
        )
        self.assertRaises(ValueError, Response, status=100)
        self.assertRaises(TypeError, Response, 3)

    def test_response_round_trip(self) -> None:
        original = Response("x", status=404, headers={"a": "b"})
        self.assertEqual(Response.from_json(original.to_json()).to_json(), original.to_json())

    def test_headers(self) -> None:
        headers = Headers({"A": "1"})
        headers.append("a", "2")
        headers.set("B", "3")
        self.assertEqual(headers.items(), [("a", "1"), ("a", "2"), ("b", "3")])
        headers.set("A", "x")
        self.assertEqual(headers.get("a"), "x")
        del headers["b"]
        self.assertFalse(headers.has("B"))
        self.assertEqual(list(headers), ["a"])
        self.assertRaises(TypeError, headers.append, "n", 1)
