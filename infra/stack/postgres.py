"""PostgreSQL 15 from Debian, as our own cluster under the state directory.

The Debian package's default cluster ("main") is left alone: we run initdb into
state_dir/postgres/data and start it with pg_ctl on our own port and socket directory.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import ClassVar

import structlog

from infra.stack import accounts, packages, process
from infra.stack.errors import StackError
from infra.stack.service import LOOPBACK, Service

log = structlog.get_logger(__name__)

PG_BIN = Path("/usr/lib/postgresql/15/bin")
OS_USER = "postgres"
SUPERUSER = "postgres"
SHARED_BUFFERS = "128MB"
MAX_CONNECTIONS = 200
PID_MARKER = "postgres"
# Settings we own live in their own file, included from the postgresql.conf initdb writes.
OUR_CONF = "damai.conf"
INCLUDE_LINE = f"include_if_exists = '{OUR_CONF}'"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ident(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


class Postgres(Service):
    name: ClassVar[str] = "postgres"
    pid_marker: ClassVar[str] = PID_MARKER
    startup_timeout_s: ClassVar[float] = 60.0
    shutdown_timeout_s: ClassVar[float] = 60.0

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "postmaster.pid"

    @property
    def log_file(self) -> Path:
        return self.logs_dir / "postgresql.log"

    @property
    def install_log(self) -> Path:
        return self.logs_dir / "install.log"

    @property
    def port(self) -> int:
        return self.settings.postgres.port

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def ports(self) -> list[int]:
        return [self.port]

    @property
    def socket_lock_file(self) -> Path:
        return self.run_dir / f".s.PGSQL.{self.port}.lock"

    def clear_stale_state(self) -> None:
        # Postgres refuses to start while postmaster.pid or the socket lock names a pid that
        # kill(pid, 0) still finds: a reused pid, or the unreaped zombie of a crashed
        # postmaster (a container's init may be slow to reap). Our check is stricter.
        super().clear_stale_state()
        process.remove_if_stale(self.socket_lock_file, self.pid_marker)

    def install(self) -> None:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        packages.ensure_apt(PG_BIN / "initdb", ["postgresql"], self.install_log)
        if process.is_root():
            accounts.check_traversable(self.home, OS_USER)
        accounts.make_dirs(OS_USER, self.home, self.data_dir, self.logs_dir, self.run_dir)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()

    def _initdb(self) -> None:
        if any(self.data_dir.iterdir()):
            log.warning("stack.postgres_discarding_partial_initdb", data=str(self.data_dir))
            shutil.rmtree(self.data_dir)
            accounts.make_dirs(OS_USER, self.data_dir)
        log.info("stack.postgres_initdb", data=str(self.data_dir))
        process.run(
            process.as_user(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ],
                OS_USER,
            ),
            log_file=self.install_log,
            cwd=self.home,
            what="initdb",
        )

    def _write_config(self) -> None:
        conf = self.data_dir / "postgresql.conf"
        if INCLUDE_LINE not in conf.read_text():
            with conf.open("a") as f:
                f.write(f"\n{INCLUDE_LINE}\n")
        (self.data_dir / OUR_CONF).write_text(
            "# Written by infra/stack/postgres.py on every start; edits are overwritten.\n"
            f"listen_addresses = '{LOOPBACK}'\n"
            f"port = {self.port}\n"
            f"unix_socket_directories = '{self.run_dir}'\n"
            f"shared_buffers = {SHARED_BUFFERS}\n"
            f"max_connections = {MAX_CONNECTIONS}\n"
            "password_encryption = 'scram-sha-256'\n"
        )
        (self.data_dir / "pg_hba.conf").write_text(
            "# Written by infra/stack/postgres.py on every start; edits are overwritten.\n"
            "# TYPE  DATABASE  USER  ADDRESS         METHOD\n"
            "local   all       all                   trust\n"
            f"host    all       all   {LOOPBACK}/32    scram-sha-256\n"
        )

    def start(self) -> None:
        self._write_config()
        self._pg_ctl("start", ["-l", str(self.log_file)], self.startup_timeout_s)

    def stop(self, pid: int) -> None:
        # "fast" rolls back open transactions and disconnects clients, then checkpoints:
        # graceful for the data, without waiting on idle connection pools.
        self._pg_ctl("stop", ["-m", "fast"], self.shutdown_timeout_s)

    def _pg_ctl(self, action: str, options: list[str], timeout_s: float) -> None:
        """Run ``pg_ctl <action>`` as the postgres user and wait (-w) up to ``timeout_s``."""
        command = [str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), *options, "-w", "-t", str(math.ceil(timeout_s))]
        process.run(
            process.as_user([*command, "-s", action], OS_USER),
            log_file=self.log_file,
            cwd=self.home,
            timeout_s=timeout_s * 2,
            what=f"pg_ctl {action}",
        )

    def ready(self) -> tuple[bool, str]:
        try:
            process.run(
                [
                    str(PG_BIN / "pg_isready"),
                    "-q",
                    "-h",
                    str(self.run_dir),
                    "-p",
                    str(self.port),
                    # Without it pg_isready logs in as the OS user, which has no role.
                    "-U",
                    SUPERUSER,
                ],
                timeout_s=self.settings.postgres.connect_timeout_s,
            )
        except StackError:
            return False, "not accepting connections"
        return True, "accepting connections"

    def _admin_psql(self, sql: str) -> None:
        process.run(
            [
                str(PG_BIN / "psql"),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.run_dir),
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-d",
                "postgres",
                "-f",
                "-",
            ],
            stdin=sql,
            what="psql (creating role and databases)",
        )

    def ensure_objects(self) -> None:
        pg = self.settings.postgres
        user, names = _literal(pg.user), ", ".join(f"({_literal(db)})" for db in pg.databases)
        # \gexec runs each generated statement on its own: CREATE DATABASE cannot run in
        # the transaction a DO block would need.
        sql = f"""
SELECT format('CREATE ROLE %I', {user})
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {user}) \\gexec
ALTER ROLE {_ident(pg.user)} LOGIN CREATEDB PASSWORD {_literal(pg.password)};
SELECT format('CREATE DATABASE %I OWNER %I', d, {user}) FROM (VALUES {names}) AS v(d)
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = d) \\gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', datname, {user}) FROM pg_database
 WHERE datname IN (SELECT d FROM (VALUES {names}) AS v(d))
   AND pg_get_userbyid(datdba) <> {user} \\gexec
"""
        log.info("stack.postgres_ensure_role_and_databases", role=pg.user, databases=pg.databases)
        self._admin_psql(sql)

    def probe(self) -> tuple[bool, str]:
        """Log in over TCP with the application's role and password to every database."""
        pg = self.settings.postgres
        cmd = [
            str(PG_BIN / "psql"),
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            f"host={LOOPBACK} port={self.port} user={pg.user} dbname={pg.databases[0]} "
            f"connect_timeout={math.ceil(pg.connect_timeout_s)}",
        ]
        for i, db in enumerate(pg.databases):
            if i:
                cmd += ["-c", f"\\c {db}"]
            cmd += ["-c", "SELECT current_database()"]
        try:
            out = process.run(
                cmd,
                env={"PGPASSWORD": pg.password},
                timeout_s=pg.connect_timeout_s * len(pg.databases),
            )
        except StackError as exc:
            return False, exc.message.splitlines()[0][-300:]
        answered = [line for line in out.splitlines() if line]
        if answered != pg.databases:
            return False, f"expected databases {pg.databases}, got {answered}"
        return True, f"databases {', '.join(pg.databases)} accept role {pg.user} over TCP"
