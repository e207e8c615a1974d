"""A query whose result is several megabytes, for the TransitionChunk test.

Called by tests/clients/test_sync_js_client.py (``big_results`` in
js/sync_scenarios.mjs, which rebuilds the expected value the same way). With
3,000 parts of 125 segments the result's JSON text is about 12 MB: more than
twice the 5,000,000 bytes over which the sync socket splits a Transition into
``TransitionChunk`` messages. Its strings hold quotes, backslashes and non-ASCII
characters, so that chunk boundaries fall inside JSON escapes.
"""

from convex_backend.server import mutation, query, v

TABLE = "big_results_versions"
#: 32 characters in the ASCII JSON the socket sends.
SEGMENT = 'abc é"\\ 😀 xyz|'


def _rows(ctx, channel):
    return ctx.db.query(TABLE).filter(lambda q: q.eq(q.field("channel"), channel)).collect()


@query(args={"channel": v.string(), "parts": v.float64(), "segments": v.float64()})
def blob(ctx, args):
    """``parts`` strings of ``segments`` segments each, tagged with the version: how
    many times ``bump`` ran for the channel."""
    version = len(_rows(ctx, args["channel"]))
    body = SEGMENT * int(args["segments"])
    return {
        "version": version,
        "parts": [f"{version}:{i}:{body}" for i in range(int(args["parts"]))],
    }


@mutation(args={"channel": v.string()})
def bump(ctx, args):
    """A new version of the channel's blob: every subscriber gets it again."""
    ctx.db.insert(TABLE, {"channel": args["channel"]})
    return len(_rows(ctx, args["channel"]))
