"""Deployments: module sources, their analysis, and the atomic swap to new code.

A deployment is a set of Python modules (``messages.py``, ``dir/mod.py``,
``schema.py``, ``http.py``, ...). Pushing one:

1. checks the paths and sizes;
2. writes the files under ``<data dir>/modules/<content hash>/``;
3. has a fresh worker import and analyze them (a syntax or import error is
   refused with the file and line);
4. checks every function's validators and applies the schema to the data
   (refused, with the offending documents, if existing data does not match);
5. stores the sources and the analysis in the ``_modules`` and ``_deployment``
   system tables, in one transaction;
6. swaps the worker pools and the function table over to the new code:
   invocations already running finish on the old workers.

At startup the last deployment is read back from those tables and written out
again, so code survives restarts and a copied data dir.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.internet import defer, threads
from twisted.logger import Logger

from convex_backend.database.errors import DatabaseError
from convex_backend.database.schema import SchemaError, parse_schema
from convex_backend.functions.runner import functions_from_analysis

log = Logger(namespace="convex.deploy")

MAX_MODULES = 10_000
MAX_TOTAL_BYTES = 32 * 1024 * 1024
_MODULE_PATH = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*/)*[A-Za-z_][A-Za-z0-9_]*\.py$")
EMPTY = "empty"


class DeployError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Module:
    path: str
    source: str


def validate_modules(modules: Any) -> list[Module]:
    """Check a pushed module list: shapes, paths, sizes."""
    if not isinstance(modules, list):
        raise DeployError("InvalidModules", "`modules` must be a list of {path, source}")
    if len(modules) > MAX_MODULES:
        raise DeployError("InvalidModules", f"Too many modules (limit {MAX_MODULES})")
    seen: set[str] = set()
    result: list[Module] = []
    total = 0
    for entry in modules:
        if not isinstance(entry, dict):
            raise DeployError("InvalidModules", "Each module must be an object {path, source}")
        path, source = entry.get("path"), entry.get("source")
        if not isinstance(path, str) or not _MODULE_PATH.match(path) or len(path) > 256:
            raise DeployError(
                "InvalidModules",
                f"Invalid module path {str(path)[:100]!r}: paths are relative, end in .py "
                "and use letters, digits and _ (folders separated by /)",
            )
        if path in seen:
            raise DeployError("InvalidModules", f"Module {path} appears twice")
        if not isinstance(source, str):
            raise DeployError("InvalidModules", f"The source of {path} must be a string")
        seen.add(path)
        total += len(source.encode("utf-8", "surrogatepass"))
        if total > MAX_TOTAL_BYTES:
            raise DeployError(
                "InvalidModules", f"The modules are larger than {MAX_TOTAL_BYTES} bytes in total"
            )
        result.append(Module(path, source))
    return sorted(result, key=lambda m: m.path)


def deployment_id(modules: list[Module]) -> str:
    digest = hashlib.sha256()
    for module in modules:
        digest.update(module.path.encode() + b"\0" + module.source.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()[:24]


class Deployer:
    """Owns the current deployment and pushes new ones."""

    def __init__(self, database, runner, pools: dict, data_dir: Path) -> None:
        self.db = database
        self.runner = runner
        self.pools = pools
        self.root = Path(data_dir) / "modules"
        self.current_id: str | None = None
        self.analysis: dict = {}
        self.deployed_at: float | None = None
        self._lock = defer.DeferredLock()
        #: Called with the new analysis after each deploy (may return a Deferred):
        #: services that follow the code, like the cron jobs, hook in here.
        self.listeners: list = []

    # -- files -----------------------------------------------------------------

    def directory(self, deployment: str) -> Path:
        return self.root / deployment

    def write_modules(self, deployment: str, modules: list[Module]) -> Path:
        """Write the modules to their content-addressed directory (atomically)."""
        target = self.directory(deployment)
        if target.is_dir():
            return target
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))
        try:
            for module in modules:
                path = staging / module.path
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(module.source, encoding="utf-8", errors="surrogatepass")
            os.rename(staging, target)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not target.is_dir():
                raise
        return target

    def _prune_directories(self, keep: set[str]) -> None:
        if not self.root.is_dir():
            return
        for child in self.root.iterdir():
            if child.name not in keep:
                shutil.rmtree(child, ignore_errors=True)

    # -- startup -----------------------------------------------------------------

    def load_current(self) -> Path:
        """The directory of the stored deployment (written out again), or an empty one."""
        tx = self.db.begin(privileged=True)
        try:
            rows = _collect(tx, "_deployment")
            modules = [Module(d["path"], d["source"]) for d in _collect(tx, "_modules")]
        finally:
            tx.close()
        if not rows:
            empty = self.directory(EMPTY)
            empty.mkdir(parents=True, exist_ok=True)
            self.current_id = EMPTY
            self.analysis = {"functions": []}
            return empty
        state = rows[0]
        self.current_id = state["deploymentId"]
        self.analysis = json.loads(state["analysis"])
        self.deployed_at = state.get("deployedAt")
        directory = self.write_modules(self.current_id, sorted(modules, key=lambda m: m.path))
        self.runner.functions = functions_from_analysis(self.analysis)
        self.runner.http_routes = self.analysis.get("httpRoutes")
        self._prune_directories({self.current_id, EMPTY})
        return directory

    # -- pushes ------------------------------------------------------------------

    async def deploy(self, raw_modules: Any, *, dry_run: bool = False) -> dict:
        modules = validate_modules(raw_modules)
        await self._lock.acquire()
        try:
            return await self._deploy(modules, dry_run)
        finally:
            self._lock.release()

    async def _deploy(self, modules: list[Module], dry_run: bool) -> dict:
        from convex_backend.functions.pool import LoadError

        new_id = deployment_id(modules)
        # Module files can be many and large: written off the reactor thread.
        directory = await threads.deferToThread(self.write_modules, new_id, modules)
        try:
            analysis = await self.pools["udf"].analyze(str(directory))
        except LoadError as e:
            where = f"{e.file}:{e.line}: " if getattr(e, "file", None) else ""
            raise DeployError("ModuleLoadError", f"{where}{e.message}")
        analysis = {k: v for k, v in analysis.items() if k not in ("type", "id")}
        try:
            functions = functions_from_analysis(analysis)
        except SchemaError as e:
            raise DeployError("InvalidFunction", f"Invalid validator: {e}")
        for info in functions.values():
            if info.args_json.get("type") not in ("object", "any"):
                raise DeployError(
                    "InvalidFunction",
                    f"The args validator of {info.path} must be an object or v.any()",
                )
        from convex_backend.scheduler.cron_specs import CronSpecError, parse_cron_specs

        try:
            parse_cron_specs(analysis.get("crons"), functions, self.db)
        except CronSpecError as e:
            raise DeployError("InvalidCrons", f"crons.py: {e}")
        from convex_backend.auth.providers import ProviderConfigError, parse_providers

        try:
            parse_providers(analysis.get("authConfig"))
        except ProviderConfigError as e:
            raise DeployError("InvalidAuthConfig", f"auth_config.py: {e}")
        schema = None
        if analysis.get("schema") is not None:
            try:
                schema = parse_schema(analysis["schema"])
            except SchemaError as e:
                raise DeployError("InvalidSchema", f"schema.py: {e}")
        summary = {
            "deploymentId": new_id,
            "functions": sorted(functions),
            "httpRoutes": analysis.get("httpRoutes") or [],
        }
        if dry_run:
            return summary
        if schema is not None:
            try:
                summary["schemaChanges"] = await self.db.set_schema(schema)
            except SchemaError as e:
                raise DeployError("SchemaValidationFailed", str(e))
        else:
            summary["schemaChanges"] = await self.db.set_schema(parse_schema({"tables": []}))
        deployed_at = time.time() * 1000

        def store(tx) -> None:
            for doc in _collect(tx, "_modules"):
                tx.delete(doc["_id"])
            for doc in _collect(tx, "_deployment"):
                tx.delete(doc["_id"])
            for module in modules:
                tx.insert(
                    "_modules",
                    {
                        "path": module.path,
                        "source": module.source,
                        "sha256": hashlib.sha256(module.source.encode()).hexdigest(),
                    },
                )
            tx.insert(
                "_deployment",
                {
                    "deploymentId": new_id,
                    "analysis": json.dumps(analysis),
                    "deployedAt": deployed_at,
                },
            )

        try:
            await self.db.run(store, privileged=True)
        except DatabaseError as e:
            raise DeployError("DeployFailed", f"Could not store the deployment: {e.message}")
        await defer.gatherResults(
            [defer.ensureDeferred(_swap(pool, str(directory))) for pool in self.pools.values()]
        )
        previous = self.current_id
        self.runner.functions = functions
        self.runner.http_routes = analysis.get("httpRoutes")
        self.current_id, self.analysis, self.deployed_at = new_id, analysis, deployed_at
        keep = {new_id, EMPTY} | ({previous} if previous else set())
        await threads.deferToThread(self._prune_directories, keep)
        log.info("Deployed {id}: {n} functions", id=new_id, n=len(functions))
        for listener in list(self.listeners):
            try:
                await defer.maybeDeferred(listener, analysis)
            except Exception:
                log.failure("A deploy listener failed")
        return summary


async def _swap(pool, directory: str) -> None:
    await pool.swap(directory)


def _collect(tx, table: str) -> list[dict]:
    return tx.query(
        {"source": {"type": "FullTableScan", "tableName": table, "order": "asc"}, "operators": []},
        system=True,
    ).collect()
