"""The deploy, dev and run commands: a small blocking HTTP client of the daemon.

They find the deployment as Convex's own CLI does in self-hosted mode: flags,
then the environment (``CONVEX_SELF_HOSTED_URL``,
``CONVEX_SELF_HOSTED_ADMIN_KEY``), then a ``.env.local`` file in the current
directory. They use only the standard library, so they work without a reactor.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


class ClientError(Exception):
    """A command failed; ``str()`` is the one line to print."""


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def resolve_target(options: Any, environ: dict | None = None) -> tuple[str, str]:
    env = dict(read_env_file(Path(".env.local")))
    env.update(os.environ if environ is None else environ)
    url = options["url"] or env.get("CONVEX_SELF_HOSTED_URL")
    key = options["admin-key"] or env.get("CONVEX_SELF_HOSTED_ADMIN_KEY")
    if not url:
        raise ClientError("no deployment URL: pass --url or set CONVEX_SELF_HOSTED_URL")
    if not key:
        raise ClientError(
            "no admin key: pass --admin-key or set CONVEX_SELF_HOSTED_ADMIN_KEY "
            "(print it with `convex-backend admin-key`)"
        )
    return url.rstrip("/"), key


def post(url: str, path: str, body: dict, admin_key: str, timeout: float = 120) -> dict:
    request = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Convex {admin_key}",
            "Convex-Client": "convex-backend-cli",
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        try:
            error = json.loads(e.read())
            message = f"{error.get('code')}: {error.get('message')}"
        except ValueError:
            message = f"HTTP {e.code}"
        raise ClientError(message)
    except urllib.error.URLError as e:
        raise ClientError(f"cannot reach {url}: {e.reason}")


def collect_modules(directory: Path) -> list[dict]:
    if not directory.is_dir():
        raise ClientError(f"{directory} is not a directory")
    modules = []
    for path in sorted(directory.rglob("*.py")):
        relative = path.relative_to(directory)
        if any(part.startswith((".", "_")) and part != "__init__.py" for part in relative.parts):
            continue
        if relative.name == "__init__.py":
            continue
        modules.append({"path": relative.as_posix(), "source": path.read_text()})
    return modules


def deploy_once(directory: Path, url: str, key: str, dry_run: bool = False) -> dict:
    modules = collect_modules(directory)
    return post(url, "/api/deploy", {"modules": modules, "dryRun": dry_run}, key)


def deploy_command(options: Any) -> int:
    url, key = resolve_target(options)
    summary = deploy_once(Path(options["dir"]), url, key, bool(options["dry-run"]))
    functions = summary.get("functions", [])
    verb = "Checked" if options["dry-run"] else "Deployed"
    sys.stdout.write(f"{verb} {len(functions)} functions to {url}\n")
    for change in summary.get("schemaChanges", []) or []:
        sys.stdout.write(f"  {change}\n")
    return 0


def _snapshot(directory: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in directory.rglob("*.py")}


def dev_command(options: Any) -> int:
    url, key = resolve_target(options)
    directory = Path(options["dir"])
    interval = float(options["interval"])
    seen: dict[str, float] | None = None
    while True:
        current = _snapshot(directory)
        if current != seen:
            seen = current
            try:
                summary = deploy_once(directory, url, key)
                stamp = time.strftime("%H:%M:%S")
                sys.stdout.write(
                    f"{stamp} deployed {len(summary.get('functions', []))} functions\n"
                )
            except ClientError as e:
                sys.stdout.write(f"{time.strftime('%H:%M:%S')} push failed: {e}\n")
            sys.stdout.flush()
        time.sleep(interval)


def run_command(options: Any) -> int:
    url, key = resolve_target(options)
    try:
        args = json.loads(options["args"])
    except ValueError:
        raise ClientError("ARGS_JSON is not valid JSON")
    if not isinstance(args, dict):
        raise ClientError("ARGS_JSON must be a JSON object")
    auth_key = key
    if options["identity"]:
        import base64

        identity = json.loads(options["identity"])
        auth_key = key + ":" + base64.b64encode(json.dumps(identity).encode()).decode()
    answer = post(
        url,
        "/api/function",
        {"path": options["function"], "args": args, "format": "json"},
        auth_key,
    )
    for line in answer.get("logLines", []):
        sys.stderr.write(line + "\n")
    if answer.get("status") == "success":
        sys.stdout.write(json.dumps(answer.get("value"), indent=2) + "\n")
        return 0
    message = answer.get("errorMessage", "the function failed")
    if "errorData" in answer:
        message += f" (data: {json.dumps(answer['errorData'])})"
    raise ClientError(message)
