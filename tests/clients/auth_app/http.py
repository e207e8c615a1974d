"""The HTTP action of the auth test app."""

from convex_backend.server import HttpRouter, Response, http_action


@http_action
def whoami(ctx, request):
    return Response(
        {
            "identity": ctx.auth.get_user_identity(),
            "authorization": request.headers.get("authorization"),
        }
    )


http = HttpRouter()
http.route(path="/whoami", method="GET", handler=whoami)
