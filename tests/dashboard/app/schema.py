"""The dashboard test app's tables: tasks must have a text and a done flag."""

from convex_backend.server import define_schema, define_table, v

schema = define_schema(
    {
        "tasks": define_table({"text": v.string(), "done": v.boolean()}),
    },
    schema_validation=True,
)
