"""A throwaway PostgreSQL server for tests and benchmarks: initdb in a temp dir, loopback only.

PostgreSQL refuses to run as root, so when the tests run as root the server runs as the
``postgres`` OS user. Nothing here touches any server but the one it started.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    """initdb/pg_ctl are missing or the server would not start."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """Start with ``start()``, stop with ``stop()``; ``new_database()`` gives a fresh URL."""

    def __init__(self, *, durable: bool = False) -> None:
        #: durable: commits survive a crash of the server (synchronous_commit on), as in
        #: production; the default trades that for speed, fine while nobody kills the server.
        self.durable = durable
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="watui-pg-"))
        self.data_dir = self.root / "data"
        self.user = "postgres"
        self._run_as: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self._run_as = pwd.getpwnam("postgres")
            except KeyError as error:
                raise PostgresUnavailable("running as root and no 'postgres' OS user") from error

    def _command(self, *args: str) -> list[str]:
        if self._run_as is None:
            return list(args)
        return ["runuser", "-u", "postgres", "--", *args]

    def start(self) -> PostgresServer:
        for tool in ("initdb", "pg_ctl"):
            if shutil.which(tool) is None:
                raise PostgresUnavailable(f"{tool} is not on PATH")
        if self._run_as is not None:
            os.chown(self.root, self._run_as.pw_uid, self._run_as.pw_gid)
        self.user = self._run_as.pw_name if self._run_as else pwd.getpwuid(os.geteuid()).pw_name
        subprocess.run(
            self._command("initdb", "-D", str(self.data_dir), "-A", "trust", "-U", self.user,
                          "-E", "UTF8", "--no-sync"),
            check=True, capture_output=True, timeout=120,
        )
        self.start_again()
        return self

    def start_again(self) -> None:
        """Start the cluster ``start()`` created (after ``stop()``: for outage tests)."""
        # fsync=off only loses data when the machine crashes, not the server process.
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c synchronous_commit={'on' if self.durable else 'off'} -c full_page_writes=off "
            "-c max_connections=200"
        )
        subprocess.run(
            self._command("pg_ctl", "-D", str(self.data_dir), "-o", options, "-w", "-t", "60",
                          "-l", str(self.root / "server.log"), "start"),
            check=True, capture_output=True, timeout=90,
        )

    def stop(self, mode: str = "immediate") -> None:
        subprocess.run(
            self._command("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop"),
            capture_output=True, timeout=60, check=False,
        )

    def restart(self) -> None:
        """Stop and start the same cluster (for outage tests)."""
        self.stop("fast")
        self.start_again()

    def cleanup(self) -> None:
        """Stop the server and remove its files in a process of their own: a suite leaves
        hundreds of databases behind, and deleting them took up to minutes of the session's end."""
        self.stop()
        subprocess.Popen(
            ["rm", "-rf", str(self.root)], start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://{self.user}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", "postgres",
             "-q", "-c", f"CREATE DATABASE {name}"],
            check=True, capture_output=True, timeout=60,
        )
        return self.url(name)
