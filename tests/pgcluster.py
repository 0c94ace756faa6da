"""A throwaway PostgreSQL cluster on loopback, started from the server binaries (tests, benchmarks).

    with PostgresCluster.start() as cluster:
        url = cluster.create_database("scratch")   # postgresql+psycopg://…@127.0.0.1:PORT/scratch

The cluster lives in a temporary folder, listens on 127.0.0.1 only (and a socket in its own
folder), accepts password logins only, and is stopped with its own `pg_ctl` and deleted on exit.
initdb refuses to run as root, so as root the cluster runs as the `postgres` system user that
Debian's package creates. Durability is switched off: the data is thrown away anyway.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

SUPERUSER = "postgres"
PASSWORD = "leadflow-test"


def find_bindir() -> Path | None:
    """The folder of initdb/pg_ctl: $PG_BINDIR, `pg_config --bindir`, Debian's newest, or PATH."""
    candidates: list[Path] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(Path(os.environ["PG_BINDIR"]))
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        candidates.append(Path(out))
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(debian)
    if found := shutil.which("initdb"):
        candidates.append(Path(found).resolve().parent)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PortTaken(RuntimeError):
    """The server could not listen on its port: another process took it."""


class PostgresCluster:
    """A running throwaway cluster; `stop()` (or leaving the `with` block) ends and deletes it."""

    def __init__(self, bindir: Path, root: Path, port: int, run_as: str | None) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.port = port
        self.run_as = run_as
        self._stopped = False

    # -- lifecycle --------------------------------------------------------------------------------

    @classmethod
    def start(
        cls, bindir: Path | None = None, settings: dict[str, str] | None = None
    ) -> PostgresCluster:
        bindir = bindir or find_bindir()
        if bindir is None:
            raise FileNotFoundError(
                "PostgreSQL server binaries (initdb, pg_ctl) not found: install them "
                "(apt-get install postgresql) or set PG_BINDIR"
            )
        run_as = SUPERUSER if os.geteuid() == 0 else None
        root = Path(tempfile.mkdtemp(prefix="leadflow-pg-"))
        if run_as:
            account = pwd.getpwnam(run_as)
            os.chown(root, account.pw_uid, account.pw_gid)
        cluster = cls(bindir, root, free_port(), run_as)
        try:
            cluster._initdb()
            # The port was free when probed; another process (a parallel test worker's cluster
            # or server) may take it before the server binds it, so a taken port means another.
            for attempt in range(3):
                try:
                    cluster._pg_ctl_start(settings or {})
                    break
                except PortTaken:
                    if attempt == 2:
                        raise
                    cluster.port = free_port()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _command(self, *args: str) -> list[str]:
        prefix = ["runuser", "-u", self.run_as, "--"] if self.run_as else []
        return [*prefix, *args]

    def _initdb(self) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if self.run_as:
            account = pwd.getpwnam(self.run_as)
            os.chown(pwfile, account.pw_uid, account.pw_gid)
        subprocess.run(
            self._command(
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        pwfile.unlink()

    def _pg_ctl_start(self, settings: dict[str, str]) -> None:
        options = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.root),
            "port": str(self.port),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "shared_buffers": "256MB",
            **settings,
        }
        flags = " ".join(f"-c {key}={value}" for key, value in options.items())
        result = subprocess.run(
            self._command(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.root / "server.log"),
                "-o",
                flags,
                "-w",
                "-t",
                "60",
                "start",
            ),
            capture_output=True,
            text=True,
            timeout=90,
        )
        if result.returncode != 0:
            log = self.log_tail()
            error = PortTaken if "Address already in use" in log else RuntimeError
            raise error(f"PostgreSQL did not start: {result.stdout}{result.stderr}\n{log}")

    def stop(self) -> None:
        """Stop the server (its own pg_ctl, waiting for it) and delete the cluster's folder."""
        if self._stopped:
            return
        self._stopped = True
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                self._command(
                    str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"
                ),
                capture_output=True,
                timeout=120,
            )
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = 20) -> str:
        log = self.root / "server.log"
        return (
            "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""
        )

    # -- databases --------------------------------------------------------------------------------

    def url(
        self, database: str = "postgres", user: str = SUPERUSER, password: str = PASSWORD
    ) -> str:
        return f"postgresql+psycopg://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def admin(self) -> Any:
        """An autocommit psycopg connection to the `postgres` database, as the superuser."""
        import psycopg

        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=SUPERUSER,
            password=PASSWORD,
            dbname="postgres",
            autocommit=True,
        )

    def create_database(self, name: str, template: str | None = None) -> str:
        """A new database (a copy of `template`, if given); returns its SQLAlchemy URL."""
        _check_name(name)
        clause = ""
        if template:
            _check_name(template)
            clause = f' TEMPLATE "{template}" STRATEGY FILE_COPY'
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"{clause}')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        _check_name(name)
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _check_name(name: str) -> None:
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"not a plain database name: {name!r}")


@contextlib.contextmanager
def running_cluster(**kwargs: Any) -> Iterator[PostgresCluster]:
    cluster = PostgresCluster.start(**kwargs)
    try:
        yield cluster
    finally:
        cluster.stop()
