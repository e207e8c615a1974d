"""Scheduled functions and cron jobs.

- ``jobs``: the rows of ``_scheduled_functions`` and every change to them
- ``service``: :class:`~convex_backend.scheduler.service.SchedulerService`, which runs
  due jobs (see ``docs/scheduling.md``)
- ``crons``: the cron jobs of ``crons.py`` (see ``docs/crons.md``)
"""
