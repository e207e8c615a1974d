"""HTTP routes: post a message with a plain HTTP request (e.g. from a webhook)."""

from convex_backend.server import HttpRouter, Response, http_action


@http_action
def post_message(ctx, request):
    message = request.json()
    message_id = ctx.run_mutation("messages:send", message)
    return Response({"id": message_id}, status=201)


http = HttpRouter()
http.route(path="/post", method="POST", handler=post_message)
