"""Cron jobs: the functions this deployment runs on a schedule (all times UTC).

Every deploy re-reads this file; `GET /api/cron_jobs` (admin key) lists the
jobs with their next and last runs, and so does the dashboard's Schedules page.
"""

from convex_backend.server import Crons, internal

crons = Crons()

# An interval job runs right after it is first deployed, then every minute.
crons.interval("update stats", internal.stats.update, minutes=1)

# Every hour at :05, delete the messages (and their images) older than 30 days.
crons.hourly(
    "delete old messages", internal.messages.delete_old, {"olderThanDays": 30}, minute_utc=5
)
