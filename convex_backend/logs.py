"""The daemon's log observer: twistd's usual destination, filtered by ``--log-level``.

twistd uses an ``ILogObserver`` component of the application when it has one,
which is how the level filter gets in front of whatever twistd would have
written to (stdout with ``-n``, else ``twistd.log`` or ``--logfile``).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    textFileLogObserver,
)
from twisted.python import logfile

LEVELS = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "error": LogLevel.error,
    "critical": LogLevel.critical,
}


def make_observer(level: str, twistd_options: Mapping[str, object] | None) -> ILogObserver:
    """Build twistd's default observer for these options, behind a level filter."""
    options = twistd_options or {}
    filename = options.get("logfile") or None
    nodaemon = bool(options.get("nodaemon"))
    if filename == "-" or (not filename and nodaemon):
        stream = sys.stdout
    else:
        path = str(filename or "twistd.log")
        directory, _, name = path.rpartition("/")
        stream = logfile.LogFile.fromFullPath(path) if directory else logfile.LogFile(name, ".")
    predicate = LogLevelFilterPredicate(defaultLogLevel=LEVELS[level])
    return FilteringLogObserver(textFileLogObserver(stream), [predicate])
