"""A real Tryton ERP server for tests: its own venv, a cached seeded template DB, a JSON-RPC client.

Tryton never enters the gateway's venv: it is installed from tests/tryton/requirements.txt into
``.cache/tryton/venv-<sha256 of requirements>`` and only ever run as subprocesses
(``trytond-admin``, ``trytond`` and the proteus seed script). The tests talk to the server over
JSON-RPC like the adapter does.

    venv = ensure_tryton_venv()
    template = build_template_database(venv, tmp_dir)       # cached across runs
    with TrytonServer(venv, template, workdir) as server:    # a private copy of the template
        rpc = TrytonRpc(server.url, server.database).login("admin", server.admin_password)
        rpc.call("product.product", "search_read", [("code", "=", "SKU-001")], 0, None, None,
                 ["name", "list_price_used"])

The cache (``.cache/tryton/``, or $TRYTON_TEST_CACHE) holds ``venv-<sha256[:16]>/`` and
``templates/<sha256[:16]>-seed<SEED_VERSION>-<seed script sha[:12]>/{template.sqlite,
manifest.json,build.log}``; other keys are pruned when a new entry is built.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
REQUIREMENTS = HERE / "requirements.txt"
SEED_SCRIPT = HERE / "seed_template.py"
# Bump when the template's contents change in a way the seed script's text does not show
# (the script's own hash is part of the cache key as well).
SEED_VERSION = "2"
# Modules activated in the template (dependencies come along with --activate-dependencies).
MODULES = (
    "party",
    "company",
    "product",
    "stock",
    "account",
    "account_invoice",
    "account_invoice_stock",
    "account_product",
    "sale",
    "stock_package",
    "stock_package_shipping",
)
ADMIN_LOGIN = "admin"
ADMIN_PASSWORD = "admin-test-password"
DEFAULT_CACHE = REPO_ROOT / ".cache" / "tryton"
# A cached template is rebuilt this long before its last fiscal year ends.
TEMPLATE_MARGIN = dt.timedelta(days=30)


class TrytonSetupError(RuntimeError):
    """The Tryton venv or template database could not be made (no network, broken wheel...)."""


def cache_root() -> Path:
    return Path(os.environ.get("TRYTON_TEST_CACHE", DEFAULT_CACHE))


def requirements_hash() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def subprocess_env(**extra: str) -> dict[str, str]:
    """The caller's environment without anything that would point Python or trytond elsewhere."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
        and not name.startswith("TRYTON")
    }
    env.update(extra)
    return env


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes (two pytest runs building the same cache entry)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_logged(command: list[str], log: Path, env: dict[str, str], timeout: float) -> None:
    """Run a command, appending its output to log; raise TrytonSetupError with the tail."""
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(command)}\n".encode())
        out.flush()
        try:
            result = subprocess.run(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=timeout
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TrytonSetupError(f"{command[0]} failed: {exc} (log: {log})") from exc
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise TrytonSetupError(
            f"{' '.join(command[:3])}... exited {result.returncode} (log: {log}):\n{tail}"
        )


# ---------------------------------------------------------------- the venv


def ensure_tryton_venv(root: Path | None = None) -> Path:
    """The venv holding the pinned Tryton, created and pip-installed only on first use."""
    digest = requirements_hash()
    root = root or cache_root()
    venv = root / f"venv-{digest[:16]}"
    marker = venv / ".installed"
    if marker.is_file() and marker.read_text().strip() == digest:
        return venv
    with file_lock(root / f".venv-{digest[:16]}.lock"):
        if marker.is_file() and marker.read_text().strip() == digest:
            return venv
        if venv.exists():  # a half-made venv from an interrupted run
            shutil.rmtree(venv)
        log = root / f"venv-{digest[:16]}.log"
        log.unlink(missing_ok=True)
        env = subprocess_env()
        run_logged([sys.executable, "-m", "venv", str(venv)], log, env, timeout=300)
        try:
            run_logged(
                [str(venv / "bin" / "pip"), "install", "-r", str(REQUIREMENTS)],
                log,
                env,
                timeout=1200,
            )
        except TrytonSetupError:
            shutil.rmtree(venv, ignore_errors=True)
            raise
        marker.write_text(digest + "\n")
        prune(root, keep=venv.name, prefix="venv-")
    return venv


# ---------------------------------------------------------------- the template database


def write_config(
    directory: Path, port: int | None = None, extra: dict[str, dict[str, str]] | None = None
) -> Path:
    """trytond.conf for an SQLite database directory (and a listening port for the server).

    ``extra`` adds sections/options, e.g. ``{"session": {"timeout": "5"}}``.
    """
    sections: dict[str, dict[str, str]] = {"database": {"uri": "sqlite://", "path": str(directory)}}
    if port is not None:
        sections["web"] = {"listen": f"127.0.0.1:{port}"}
    for section, options in (extra or {}).items():
        sections.setdefault(section, {}).update(options)
    lines = []
    for section, options in sections.items():
        lines += [f"[{section}]", *(f"{key} = {value}" for key, value in options.items()), ""]
    config = directory / "trytond.conf"
    config.write_text("\n".join(lines))
    return config


def write_passfile(directory: Path) -> Path:
    passfile = directory / "admin.pass"
    passfile.write_text(ADMIN_PASSWORD + "\n")
    passfile.chmod(0o600)
    return passfile


def template_key() -> str:
    script = hashlib.sha256(SEED_SCRIPT.read_bytes()).hexdigest()[:12]
    return f"{requirements_hash()[:16]}-seed{SEED_VERSION}-{script}"


def template_is_fresh(directory: Path) -> bool:
    manifest = directory / "manifest.json"
    if not (directory / "template.sqlite").is_file() or not manifest.is_file():
        return False
    valid_until = dt.date.fromisoformat(json.loads(manifest.read_text())["valid_until"])
    return dt.date.today() + TEMPLATE_MARGIN < valid_until


def build_template_database(venv: Path, workdir: Path, root: Path | None = None) -> Path:
    """The seeded SQLite template (``.../template.sqlite``), built once per key and reused.

    Its manifest.json sits beside it. ``workdir`` is scratch space for the build.
    """
    root = root or cache_root()
    target = root / "templates" / template_key()
    if template_is_fresh(target):
        return target / "template.sqlite"
    with file_lock(root / "templates" / f".{template_key()}.lock"):
        if template_is_fresh(target):
            return target / "template.sqlite"
        build = workdir / f"template-build-{os.getpid()}"
        shutil.rmtree(build, ignore_errors=True)
        build.mkdir(parents=True)
        database = "template"
        (build / f"{database}.sqlite").touch()
        config = write_config(build)
        env = subprocess_env(TRYTONPASSFILE=str(write_passfile(build)))
        log = build / "build.log"
        admin = str(venv / "bin" / "trytond-admin")
        base = [admin, "-c", str(config), "-d", database]
        run_logged([*base, "--all", "--email", "admin@example.com"], log, env, timeout=600)
        run_logged([*base, "-u", *MODULES, "--activate-dependencies"], log, env, timeout=900)
        manifest = build / "manifest.json"
        python = str(venv / "bin" / "python")
        run_logged(
            [python, str(SEED_SCRIPT), str(config), database, str(manifest)],
            log,
            env,
            timeout=900,
        )
        staging = target.with_name(target.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        shutil.copy2(build / f"{database}.sqlite", staging / "template.sqlite")
        shutil.copy2(manifest, staging / "manifest.json")
        shutil.copy2(log, staging / "build.log")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        shutil.rmtree(build, ignore_errors=True)
        prune(root / "templates", keep=target.name)
    return target / "template.sqlite"


def prune(directory: Path, keep: str, prefix: str = "") -> None:
    """Remove the cache entries of other keys (older requirements or seed versions)."""
    for entry in directory.iterdir():
        if entry.is_dir() and entry.name.startswith(prefix) and entry.name != keep:
            shutil.rmtree(entry, ignore_errors=True)


def load_manifest(template: Path) -> dict[str, Any]:
    """What seed_template.py seeded (ids of the company, customer, products, locations...)."""
    manifest: dict[str, Any] = json.loads((template.parent / "manifest.json").read_text())
    return manifest


# ---------------------------------------------------------------- the server


_RUNNING: weakref.WeakSet[TrytonServer] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    """No trytond outlives the test process, even when a fixture's teardown never ran."""
    for server in list(_RUNNING):
        server.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class TrytonServer:
    """``trytond`` on a private copy of the template, on a loopback port; stop()/start() keep
    the same port and database, so a test can take the ERP away and bring it back."""

    def __init__(
        self,
        venv: Path,
        template: Path,
        workdir: Path,
        *,
        database: str = "retail",
        port: int | None = None,
        start_timeout: float = 60.0,
        config: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self.venv = venv
        self.template = template
        self.workdir = workdir
        self.database = database
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_login = ADMIN_LOGIN
        self.admin_password = ADMIN_PASSWORD
        self.start_timeout = start_timeout
        self.extra_config = config
        self.log_path = workdir / "trytond.log"
        self.manifest = load_manifest(template)
        self.process: subprocess.Popen[bytes] | None = None
        self._prepared = False

    @property
    def database_url(self) -> str:
        """Where the JSON-RPC model calls go: POST {url}/{database}/rpc/."""
        return f"{self.url}/{self.database}/rpc/"

    def _prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.template, self.workdir / f"{self.database}.sqlite")
        self.config = write_config(self.workdir, self.port, self.extra_config)
        self.env = subprocess_env(TRYTONPASSFILE=str(write_passfile(self.workdir)))
        self._prepared = True

    def start(self) -> TrytonServer:
        if self.process is not None and self.process.poll() is None:
            return self
        if not self._prepared:
            self._prepare()
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                [str(self.venv / "bin" / "trytond"), "-c", str(self.config), "-d", self.database],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.workdir,
            )
        finally:
            log.close()
        _RUNNING.add(self)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"trytond exited: {self._log_tail()}")
            try:
                server_version(self.url, timeout=1.0)
                return self
            except (httpx.TransportError, httpx.HTTPStatusError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"trytond did not answer in {self.start_timeout} s: {self._log_tail()}")

    def stop(self) -> None:
        process, self.process = self.process, None
        _RUNNING.discard(self)
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> TrytonServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def server_version(url: str, timeout: float = 5.0) -> str:
    response = httpx.post(
        f"{url}/rpc/",
        json={"id": 0, "method": "common.server.version", "params": []},
        timeout=timeout,
    )
    response.raise_for_status()
    version: str = response.json()["result"]
    return version


# ---------------------------------------------------------------- a JSON-RPC client for tests


def tryton_decode(value: dict[str, Any]) -> Any:
    """json object_hook for Tryton's typed values ({"__class__": "Decimal", ...})."""
    kind = value.get("__class__")
    if kind == "Decimal":
        return Decimal(value["decimal"])
    if kind == "date":
        return dt.date(value["year"], value["month"], value["day"])
    if kind == "datetime":
        return dt.datetime(
            value["year"],
            value["month"],
            value["day"],
            value["hour"],
            value["minute"],
            value["second"],
            value["microsecond"],
        )
    if kind == "time":
        return dt.time(value["hour"], value["minute"], value["second"], value["microsecond"])
    if kind == "timedelta":
        return dt.timedelta(seconds=value["seconds"])
    if kind == "bytes":
        return base64.b64decode(value["base64"])
    return value


def tryton_encode(value: Any) -> Any:
    """json default= for the values Tryton expects typed."""
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, dt.datetime):
        return {
            "__class__": "datetime",
            "year": value.year,
            "month": value.month,
            "day": value.day,
            "hour": value.hour,
            "minute": value.minute,
            "second": value.second,
            "microsecond": value.microsecond,
        }
    if isinstance(value, dt.date):
        return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
    if isinstance(value, dt.timedelta):
        return {"__class__": "timedelta", "seconds": value.total_seconds()}
    if isinstance(value, bytes):
        return {"__class__": "bytes", "base64": base64.b64encode(value).decode()}
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot send {type(value).__name__} to Tryton")


class TrytonRpcError(Exception):
    """An error answered by Tryton. The body is ``{"error": [kind, detail]}``:

    - ``["UserError", [message, description, domain]]``
    - ``["UserWarning", [warning_name, message, description]]`` (skip it by creating a
      ``res.user.warning`` with that name, then call again)
    - ``["ConcurrencyException", message]``
    - a crash: ``[str(exception), traceback_text]``

    Errors outside a JSON-RPC answer (bad session: 401/403, ...) have kind ``"HTTP <status>"``.
    """

    def __init__(self, kind: str, detail: Any, status_code: int = 200) -> None:
        super().__init__(f"{kind}: {detail!r}")
        self.kind = kind
        self.detail = detail
        self.status_code = status_code

    @property
    def message(self) -> str:
        if isinstance(self.detail, list) and self.detail:
            index = 1 if self.kind == "UserWarning" and len(self.detail) > 1 else 0
            return str(self.detail[index])
        return str(self.detail)

    @property
    def warning_name(self) -> str | None:
        if self.kind == "UserWarning" and isinstance(self.detail, list) and self.detail:
            return str(self.detail[0])
        return None


class TrytonRpc:
    """Synchronous JSON-RPC for tests: ``login`` then ``call(model, method, *args)``."""

    def __init__(self, url: str, database: str, *, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.http = httpx.Client(timeout=timeout)
        self.context: dict[str, Any] = {}
        self.uid: int | None = None
        self._next_id = 0

    def request(self, method: str, params: list[Any]) -> Any:
        """One JSON-RPC call on the database; raises TrytonRpcError on an error answer."""
        self._next_id += 1
        body = json.dumps(
            {"id": self._next_id, "method": method, "params": params}, default=tryton_encode
        )
        response = self.http.post(
            f"{self.url}/{self.database}/rpc/",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        if response.status_code != 200:
            raise TrytonRpcError(
                f"HTTP {response.status_code}", response.text, response.status_code
            )
        answer = json.loads(response.text, object_hook=tryton_decode)
        if answer.get("error") is not None:
            error = answer["error"]
            if isinstance(error, list) and error:
                raise TrytonRpcError(str(error[0]), error[1] if len(error) > 1 else None)
            raise TrytonRpcError(str(error), None)
        return answer.get("result")

    def login(self, login: str, password: str) -> TrytonRpc:
        uid, session, *_ = self.request("common.db.login", [login, {"password": password}])
        token = base64.b64encode(f"{login}:{uid}:{session}".encode()).decode()
        self.http.headers["Authorization"] = f"Session {token}"
        self.uid = uid
        self.context = self.request("model.res.user.get_preferences", [True, {}])
        return self

    def call(
        self, model: str, method: str, *args: Any, context: dict[str, Any] | None = None
    ) -> Any:
        """``model.<model>.<method>`` with args, then the user context (extended by context)."""
        return self.request(f"model.{model}.{method}", [*args, {**self.context, **(context or {})}])

    def search_read(
        self,
        model: str,
        domain: list[Any],
        fields: list[str],
        *,
        offset: int = 0,
        limit: int | None = None,
        order: list[Any] | None = None,
        context: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = self.call(
            model, "search_read", domain, offset, limit, order, fields, context=context
        )
        return records

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> TrytonRpc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
