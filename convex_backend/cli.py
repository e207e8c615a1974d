"""The ``convex-backend`` command: small operator tools beside ``twistd convex``.

::

    convex-backend admin-key [--data-dir DIR] [--instance-name NAME]
    convex-backend version

``admin-key`` prints the admin key of a data dir (creating the instance secret
if the daemon has not run yet), honouring the same environment variables as
the daemon.
"""

from __future__ import annotations

import os
import sys

from twisted.python import usage

from convex_backend import __version__
from convex_backend.auth.admin_key import (
    AdminKeyError,
    derive_admin_key,
    load_or_create_instance_secret,
)
from convex_backend.config import ConfigError, load_config


class AdminKeyOptions(usage.Options):
    longdesc = "Print the admin key (the instance secret is created if missing)."
    synopsis = "[--data-dir DIR] [--instance-name NAME]"
    optParameters = [
        [
            "data-dir",
            None,
            None,
            "Data directory of the daemon (default ./convex_data).",
        ],
        ["instance-name", None, None, "Instance name (default convex-self-hosted)."],
    ]


class _RemoteOptions(usage.Options):
    optParameters = [
        ["url", None, None, "Deployment URL (default: $CONVEX_SELF_HOSTED_URL)."],
        ["admin-key", None, None, "Admin key (default: $CONVEX_SELF_HOSTED_ADMIN_KEY)."],
    ]


class DeployOptions(_RemoteOptions):
    synopsis = "[DIR]"
    longdesc = "Push the Python modules of DIR (default ./convex) to the deployment."
    optFlags = [["dry-run", None, "Analyze only; change nothing."]]

    def parseArgs(self, directory: str = "convex") -> None:
        self["dir"] = directory


class DevOptions(DeployOptions):
    longdesc = "Push DIR (default ./convex), then push again whenever a file changes."
    optParameters = [["interval", None, "0.5", "Seconds between checks for changes."]]


class RunOptions(_RemoteOptions):
    synopsis = "FUNCTION [ARGS_JSON]"
    longdesc = "Call a function as admin and print its result as JSON."
    optParameters = [["identity", None, None, "Act as this identity (JSON object)."]]

    def parseArgs(self, function: str, args: str = "{}") -> None:
        self["function"] = function
        self["args"] = args


class CliOptions(usage.Options):
    synopsis = "convex-backend <command> [options]"
    longdesc = "Operator tools for a convex_backend deployment."
    subCommands = [
        ["admin-key", None, AdminKeyOptions, "Print the admin key of a deployment."],
        ["deploy", None, DeployOptions, "Push the functions in a directory."],
        ["dev", None, DevOptions, "Push on every change of a directory."],
        ["run", None, RunOptions, "Run a function as admin."],
        ["version", None, usage.Options, "Print the version."],
    ]

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("a command is required")


def admin_key(options: AdminKeyOptions, environ: dict[str, str] | None = None) -> str:
    env = dict(os.environ if environ is None else environ)
    # Only the settings that decide the key are read; the daemon's other
    # options (ports, ...) are none of this command's business.
    relevant = {
        "CONVEX_DATA_DIR",
        "INSTANCE_NAME",
        "INSTANCE_SECRET",
        "CONVEX_ADMIN_KEY",
    }
    config = load_config(
        {"data-dir": options["data-dir"], "instance-name": options["instance-name"]},
        {k: v for k, v in env.items() if k in relevant},
    )
    if config.admin_key is not None:
        return config.admin_key
    secret = config.instance_secret or load_or_create_instance_secret(config.data_dir)
    return derive_admin_key(config.instance_name, secret)


def main(argv: list[str] | None = None) -> int:
    options = CliOptions()
    try:
        options.parseOptions(sys.argv[1:] if argv is None else argv)
    except usage.UsageError as e:
        sys.stderr.write(f"{options}\nconvex-backend: {e}\n")
        return 2
    from convex_backend import client

    try:
        if options.subCommand == "admin-key":
            sys.stdout.write(admin_key(options.subOptions) + "\n")
        elif options.subCommand == "version":
            sys.stdout.write(__version__ + "\n")
        elif options.subCommand == "deploy":
            return client.deploy_command(options.subOptions)
        elif options.subCommand == "dev":
            return client.dev_command(options.subOptions)
        elif options.subCommand == "run":
            return client.run_command(options.subOptions)
    except (ConfigError, AdminKeyError, OSError, client.ClientError) as e:
        sys.stderr.write(f"convex-backend: {e}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
