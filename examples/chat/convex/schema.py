"""The chat's tables: messages, indexed by channel."""

from convex_backend.server import define_schema, define_table, v

schema = define_schema(
    {
        "messages": define_table(
            {
                "channel": v.string(),
                "author": v.string(),
                "body": v.string(),
                "edited": v.optional(v.boolean()),
            }
        ).index("by_channel", ["channel"]),
    }
)
