"""File storage functions the real Convex clients call (tests/clients/test_js_storage.py)."""

from convex_backend.server import action, mutation, query, v


def _upload(ctx, name):
    return ctx.db.query("uploads").filter(lambda q: q.eq(q.field("name"), name)).first()


@mutation
def generate_upload_url(ctx, args):
    """Step 1 of an upload: a URL the client POSTs the bytes to."""
    return ctx.storage.generate_upload_url()


@mutation(args={"name": v.string(), "storageId": v.id("_storage")})
def save(ctx, args):
    """Step 3: keep the storage id the upload answered."""
    return ctx.db.insert("uploads", {"name": args["name"], "storageId": args["storageId"]})


@query(args={"name": v.string()})
def url_of(ctx, args):
    upload = _upload(ctx, args["name"])
    return ctx.storage.get_url(upload["storageId"]) if upload else None


@query(args={"name": v.string()})
def metadata_of(ctx, args):
    upload = _upload(ctx, args["name"])
    return ctx.storage.get_metadata(upload["storageId"]) if upload else None


@mutation(args={"name": v.string()})
def remove(ctx, args):
    upload = _upload(ctx, args["name"])
    ctx.storage.delete(upload["storageId"])
    ctx.db.delete(upload["_id"])


@action(args={"text": v.string()})
def store_text(ctx, args):
    return ctx.storage.store(args["text"].encode("utf-8"), "text/plain; charset=utf-8")


@action(args={"storageId": v.id("_storage")})
def read_text(ctx, args):
    data = ctx.storage.get(args["storageId"])
    return None if data is None else data.decode("utf-8")
