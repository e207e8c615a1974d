"""The dashboard test app's cron jobs, listed on the Schedules page."""

from convex_backend.server import Crons

crons = Crons()
crons.daily("morning report", "tasks:tidy", hour_utc=7, minute_utc=15)
crons.interval("hourly tidy", "tasks:tidy", hours=1)
