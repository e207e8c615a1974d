"""The chat's tables: messages (text or image), indexed by channel, and one stats row."""

from convex_backend.server import define_schema, define_table, v

schema = define_schema(
    {
        "messages": define_table(
            {
                "channel": v.string(),
                "author": v.string(),
                "body": v.string(),
                "edited": v.optional(v.boolean()),
                # An image message: the file's storage id (see messages.send_image).
                "image": v.optional(v.id("_storage")),
            }
        ).index("by_channel", ["channel"]),
        # Written by the "update stats" cron job (crons.py), read by stats.get.
        "stats": define_table(
            {
                "messagesLastHour": v.float64(),
                "updatedAt": v.float64(),
            }
        ),
    }
)
