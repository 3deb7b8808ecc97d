"""A production-shaped Airflow for riskline on one machine: ``make airflow-cluster`` and the multi-worker test.

PostgreSQL holds Airflow's metadata, Redis is the Celery broker, and ``airflow celery worker`` processes run the
tasks, each as if on a machine of its own: its own working directory, temp dir, home, ``AIRFLOW_HOME``, copy of
the DAGs and of the riskline config, task-log folder, and loopback address (127.0.0.2, 127.0.0.3, ...). That
address is the worker's hostname in Airflow (``TaskInstance.hostname``, through ``[core] hostname_callable``)
and where its log server listens, so the API server fetches each task's log from the worker that ran it, as
on separate machines. Nothing on disk is shared between the workers, or with the scheduler and API server,
but the code and the venv (read only); the lake is reached over the S3 API. Workers get no metadata-database
URL: in Airflow 3 a task talks to the API server's execution API only.

Everything listens on loopback only (the workers' log servers are started here on their own address, instead
of Celery's own, which listens on every interface), on free ports chosen at start. The components are
supervised as in :class:`tools.airflow_local.LocalAirflow` (one that exits is started again, a bounded number
of times) and stopped in order: workers, then the Airflow services, then Redis and PostgreSQL.

Needs Debian's ``redis-server`` and PostgreSQL (``make cluster-deps`` installs them when missing). Run as root,
PostgreSQL runs as the ``postgres`` user.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.airflow_local import COMPONENTS, PORT_ENV, REPO_ROOT, LocalAirflow, airflow_env, free_port, write_env_file

WORKER_HOST_ENV = "RISKLINE_WORKER_HOST"
# Two workers with one task slot each: the parallelism of `make airflow` (2 cores), and with one slot a worker
# holding a task takes no second one from the broker (Celery acks late, prefetching one task per slot), so
# mapped shard tasks queued together spread over both workers.
WORKERS = 2
WORKER_CONCURRENCY = 1
PG_USER = "postgres"  # the OS user PostgreSQL runs as when we are root (it refuses to run as root)
DB_NAME = DB_ROLE = "airflow"
# The S3 bucket `make airflow-cluster` creates on its own S3 API (moto's server) when no s3:// lake is given.
DEMO_BUCKET = "riskline"
AWS_KEYS = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
AIRFLOW_SERVICES = tuple(COMPONENTS)  # api-server, scheduler, dag-processor, triggerer


def worker_hostname() -> str:
    """``[core] hostname_callable`` of a cluster worker: its own address, not the machine's shared name.

    The task process inherits the worker's environment, so the hostname Airflow records for a task instance
    (and fetches its log from) is the address of the worker that ran it.
    """
    return os.environ.get(WORKER_HOST_ENV) or socket.getfqdn()


def find_program(name: str) -> str | None:
    """``name`` on PATH, else in Debian's PostgreSQL folders (``/usr/lib/postgresql/<version>/bin``, newest)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(Path(p).parts[4]))
    return candidates[-1] if candidates else None


def missing_programs() -> list[str]:
    """The server programs the cluster needs that this machine lacks (``make cluster-deps`` installs them)."""
    return [name for name in ("redis-server", "initdb", "postgres") if find_program(name) is None]


@dataclass(frozen=True)
class Worker:
    """One Celery worker, set up as if on its own machine under ``root``."""

    name: str
    host: str  # its loopback address: its hostname in Airflow and where its log server listens
    root: Path

    @property
    def dags(self) -> Path:
        return self.root / "dags"

    @property
    def logs(self) -> Path:
        return self.root / "logs"


@dataclass
class ClusterAirflow(LocalAirflow):
    """PostgreSQL + Redis + the Airflow services + ``workers`` Celery workers under ``home``.

    ``data_root`` is the lake every task reads and writes (an ``s3://`` URL in the production shape; any
    credentials it needs come from this process's environment, which every component inherits).
    """

    DIAGNOSE_LOGS = ("scheduler", "dag-processor", "worker-1", "worker-2")

    workers: int = WORKERS
    concurrency: int = WORKER_CONCURRENCY
    pg_port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)
    log_port: int = 0  # chosen free on every worker's address at start
    _secrets: dict[str, str] = field(default_factory=dict, repr=False)
    _pg_dir: Path | None = field(default=None, repr=False)
    _pg_dir_is_temporary: bool = field(default=False, repr=False)

    # --- the shape -----------------------------------------------------------------------------------

    @property
    def worker_list(self) -> list[Worker]:
        return [Worker(f"worker-{i}", f"127.0.0.{i + 1}", self.home / "workers" / f"worker-{i}")
                for i in range(1, self.workers + 1)]

    @property
    def database_url(self) -> str:
        return (f"postgresql+psycopg2://{DB_ROLE}:{self.secret('postgres_password')}@127.0.0.1:{self.pg_port}/"
                f"{DB_NAME}")

    @property
    def broker_url(self) -> str:
        return f"redis://:{self.secret('redis_password')}@127.0.0.1:{self.redis_port}/0"

    @property
    def env(self) -> dict[str, str]:
        """The Airflow services' environment (and the ``airflow`` CLI's: ``airflow db migrate``, env.sh)."""
        env = airflow_env(self.home, self.data_root, self.port, parallelism=self.workers * self.concurrency)
        env.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS")  # SQLite's busy timeout; not a psycopg2 argument
        env.update({
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url,
            "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.database_url,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.concurrency),
            # Every component signs or checks the same tokens (task tokens, log-server requests) and decrypts
            # the same connections: the keys are the deployment's, not each process's.
            "AIRFLOW__CORE__FERNET_KEY": self.secret("fernet_key"),
            "AIRFLOW__API__SECRET_KEY": self.secret("api_secret_key"),
            "AIRFLOW__API_AUTH__JWT_SECRET": self.secret("jwt_secret"),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.log_port),
            # Celery's default, said once here instead of warned in every component's log: a task still running
            # after a day is handed to another worker (no night task comes near it)
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "86400",
        })
        return env

    def worker_env(self, worker: Worker) -> dict[str, str]:
        """A worker's environment: the deployment's settings, and nothing on disk that another process uses."""
        env = dict(self.env)
        del env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]  # Airflow 3 tasks reach the metadata only through the API
        env.update({
            "AIRFLOW_HOME": str(worker.root / "airflow_home"),
            "HOME": str(worker.root / "home"),
            "TMPDIR": str(worker.root / "tmp"),
            "PYTHONPYCACHEPREFIX": str(worker.root / "pycache"),  # byte code out of the shared checkout
            "AIRFLOW__CORE__DAGS_FOLDER": str(worker.dags),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(worker.logs),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tools.airflow_cluster.worker_hostname",
            WORKER_HOST_ENV: worker.host,
        })
        if env.get("RISKLINE_CONFIG"):  # shipped to the worker as a copy (relative paths in it resolve there)
            env["RISKLINE_CONFIG"] = str(worker.root / Path(env["RISKLINE_CONFIG"]).name)
        return env

    def command(self, name: str) -> tuple[list[str], dict[str, str], Path | None]:
        if name in AIRFLOW_SERVICES:
            return super().command(name)
        if name == "postgres":
            pg = self._postgres_dir()
            return ([find_program("postgres") or "postgres", "-D", str(pg / "data"), "-p", str(self.pg_port),
                     "-h", "127.0.0.1", "-k", str(pg / "run")], self._server_env(), pg)
        if name == "redis":
            folder = self.home / "redis"  # its password is in redis.conf there, not on a command line
            return ([find_program("redis-server") or "redis-server", str(folder / "redis.conf"), "--bind", "127.0.0.1",
                     "--port", str(self.redis_port), "--protected-mode", "yes", "--save", "", "--appendonly", "no",
                     "--dir", str(folder)], self._server_env(), folder)
        worker = next(w for w in self.worker_list if name in (w.name, f"{w.name}-logs"))
        env = self.worker_env(worker)
        if name.endswith("-logs"):
            return ([sys.executable, "-m", "tools.airflow_cluster", "serve-logs", "--host", worker.host,
                     "--port", str(self.log_port)], env, worker.root)
        return ([str(Path(sys.executable).parent / "airflow"), "celery", "worker", "--celery-hostname",
                 f"{worker.name}@{worker.host}", "--concurrency", str(self.concurrency), "--skip-serve-logs"],
                env, worker.root)

    def log_path(self, name: str) -> Path:
        worker = next((w for w in self.worker_list if name in (w.name, f"{w.name}-logs")), None)
        if worker is not None:  # a worker's own output stays on its "machine"
            return worker.root / ("log-server.log" if name.endswith("-logs") else "worker.log")
        return super().log_path(name)

    def launch_options(self, name: str) -> dict[str, Any]:
        if name == "postgres" and os.geteuid() == 0:
            return {"user": PG_USER, "group": PG_USER, "extra_groups": []}
        return {}

    def stop_order(self) -> list[list[str]]:
        workers = [n for n in self.processes if n.startswith("worker-")]
        services = [n for n in self.processes if n in AIRFLOW_SERVICES]
        servers = [n for n in self.processes if n in ("redis", "postgres")]
        return [workers, services, servers]

    def stop_signal(self, name: str) -> int:
        return signal.SIGINT if name == "postgres" else signal.SIGTERM  # SIGINT: PostgreSQL's fast shutdown

    # --- start and stop ------------------------------------------------------------------------------

    def secret(self, name: str) -> str:
        """The deployment's keys and passwords, made once and kept in ``home`` (readable by its owner only)."""
        if not self._secrets:
            path = self.home / "secrets.json"
            if path.is_file():
                self._secrets = json.loads(path.read_text())
            else:
                from cryptography.fernet import Fernet

                self._secrets = {"fernet_key": Fernet.generate_key().decode(),
                                 **{k: secrets.token_urlsafe(32) for k in
                                    ("api_secret_key", "jwt_secret", "postgres_password", "redis_password")}}
                self.home.mkdir(parents=True, exist_ok=True)
                path.touch(mode=0o600)
                path.write_text(json.dumps(self._secrets))
        return self._secrets[name]

    def start(self) -> ClusterAirflow:
        missing = missing_programs()
        if missing:
            raise RuntimeError(f"{', '.join(missing)} not found: run `make cluster-deps` (Debian's redis-server "
                               "and postgresql packages)")
        self.home.mkdir(parents=True, exist_ok=True)
        if not self.log_port:
            self.log_port = _free_port_on([w.host for w in self.worker_list])
        self._init_postgres()
        self._init_redis()
        for name in ("postgres", "redis"):
            self.processes[name] = self._launch(name)
        self._wait_for("PostgreSQL", self._create_database, 60)
        self._wait_for("Redis", self._redis_answers, 30)
        write_env_file(self.home, self.data_root, self.port, env=self.env,
                       extra_keys=AWS_KEYS if os.environ.get("AWS_ENDPOINT_URL", "").startswith("http://127.") else ())
        migrated = self.airflow("db", "migrate", check=False, timeout=600)
        if migrated.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{migrated.stdout[-2000:]}\n{migrated.stderr[-4000:]}")
        for worker in self.worker_list:
            self._provision(worker)
        for name in AIRFLOW_SERVICES:
            self.processes[name] = self._launch(name)
        for worker in self.worker_list:
            for name in (f"{worker.name}-logs", worker.name):
                self.processes[name] = self._launch(name)
        self.wait_ready()
        self._supervise_in_background()
        return self

    def wait_ready(self, timeout: float = 180) -> None:
        started = time.monotonic()
        super().wait_ready(timeout)
        expected = {f"{w.name}@{w.host}" for w in self.worker_list}
        self._wait_for("every Celery worker", lambda: len(self.celery_workers() & expected) == self.workers,
                       max(30.0, timeout - (time.monotonic() - started)))

    def celery_workers(self) -> set[str]:
        """The Celery node names answering a ping through the broker."""
        from celery import Celery  # why: only the cluster needs Celery; `make airflow` never imports it

        app = Celery(broker=self.broker_url)
        try:
            return {name for reply in app.control.ping(timeout=2.0) for name in reply}
        except Exception:  # the broker not up yet
            return set()
        finally:
            app.close()

    def stop(self) -> None:
        super().stop()
        if self._pg_dir_is_temporary and self._pg_dir is not None:
            shutil.rmtree(self._pg_dir, ignore_errors=True)
            self._pg_dir = None

    def _wait_for(self, what: str, ready: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode} while waiting for {what}; see "
                                       f"{self.log_path(name)}")
            if ready():
                return
            time.sleep(1)
        raise TimeoutError(f"{what} not ready after {timeout:.0f} s\n{self.diagnose()}")

    def _server_env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}

    def _postgres_dir(self) -> Path:
        """PostgreSQL's folder: ``home/postgres`` when its user can reach it, else a private temporary one
        (pytest's folders are closed to other users), removed at stop."""
        if self._pg_dir is None:
            wanted = self.home / "postgres"
            if os.geteuid() != 0 or _reachable_by(PG_USER, self.home):
                self._pg_dir = wanted
            else:
                self._pg_dir, self._pg_dir_is_temporary = Path(tempfile.mkdtemp(prefix="riskline-pg-")), True
        return self._pg_dir

    def _init_postgres(self) -> None:
        pg = self._postgres_dir()
        (pg / "run").mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            for path in (pg, pg / "run"):
                shutil.chown(path, PG_USER, PG_USER)
        os.chmod(pg, 0o700)
        if (pg / "data" / "PG_VERSION").is_file():
            return
        pwfile = pg / "pwfile"
        pwfile.touch(mode=0o600)
        pwfile.write_text(self.secret("postgres_password") + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, PG_USER, PG_USER)
        try:
            subprocess.run([find_program("initdb") or "initdb", "-D", str(pg / "data"), "-U", DB_ROLE,
                            "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C"],
                           env=self._server_env(), cwd=pg, check=True, capture_output=True, text=True, timeout=300,
                           **self.launch_options("postgres"))
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"initdb failed: {exc.stdout}\n{exc.stderr}") from exc
        finally:
            pwfile.unlink(missing_ok=True)

    def _init_redis(self) -> None:
        conf = self.home / "redis" / "redis.conf"
        conf.parent.mkdir(exist_ok=True)
        conf.touch(mode=0o600)
        conf.write_text(f"requirepass {self.secret('redis_password')}\n")

    def _create_database(self) -> bool:
        import psycopg2  # why: only the cluster talks to PostgreSQL

        try:
            conn = psycopg2.connect(host="127.0.0.1", port=self.pg_port, user=DB_ROLE, dbname="postgres",
                                    password=self.secret("postgres_password"), connect_timeout=5)
        except psycopg2.OperationalError:
            return False
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,))
                if cur.fetchone() is None:
                    cur.execute(f"CREATE DATABASE {DB_NAME}")
        finally:
            conn.close()
        return True

    def _redis_answers(self) -> bool:
        import redis  # why: only the cluster talks to Redis

        try:
            return bool(redis.Redis.from_url(self.broker_url, socket_timeout=2).ping())
        except redis.exceptions.RedisError:
            return False

    def _provision(self, worker: Worker) -> None:
        """Set a worker's machine up: its folders, and its own copies of the DAGs and the riskline config."""
        for sub in ("airflow_home", "home", "tmp", "logs", "pycache"):
            (worker.root / sub).mkdir(parents=True, exist_ok=True)
        shutil.rmtree(worker.dags, ignore_errors=True)
        shutil.copytree(REPO_ROOT / "dags", worker.dags, ignore=shutil.ignore_patterns("__pycache__"))
        config = self.env.get("RISKLINE_CONFIG")
        if config:
            shutil.copy2(config, self.worker_env(worker)["RISKLINE_CONFIG"])


def _reachable_by(user: str, folder: Path) -> bool:
    """Whether ``user`` can reach ``folder`` (every folder above it searchable)."""
    return subprocess.run(["test", "-x", str(folder)], user=user, extra_groups=[]).returncode == 0


def _free_port_on(hosts: list[str]) -> int:
    """A port free on every one of ``hosts`` (the workers' log servers share it, each on its own address)."""
    for _ in range(50):
        port = free_port()
        try:
            for host in hosts:
                with socket.socket() as sock:
                    sock.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no port free on all of {hosts}")


def serve_logs(host: str, port: int) -> None:
    """A worker's log server (Airflow's own app), on the worker's address only."""
    import uvicorn

    uvicorn.run("airflow.utils.serve_logs.log_server:get_app", host=host, port=port, factory=True,
                log_config=None, access_log=False)


def _start_demo_s3() -> Any:
    """moto's S3 server on 127.0.0.1 with one bucket, its endpoint and (made-up) keys put in the environment
    that every component inherits. The lake lives in that process's memory: it is gone at stop."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per S3 request would bury the banner
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update({"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_DEFAULT_REGION": "us-east-1",
                       # moto takes any keys; made up per start, so none is kept in the repository
                       "AWS_ACCESS_KEY_ID": secrets.token_hex(8), "AWS_SECRET_ACCESS_KEY": secrets.token_hex(16)})
    boto3.client("s3").create_bucket(Bucket=DEMO_BUCKET)
    return server


def main(argv: list[str] | None = None) -> int:
    """``make airflow-cluster``; ``serve-logs`` is a worker's log server (started by the cluster itself)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tools.airflow_cluster")
    sub = parser.add_subparsers(dest="command")
    logs = sub.add_parser("serve-logs", help="a worker's log server (internal)")
    logs.add_argument("--host", required=True)
    logs.add_argument("--port", required=True, type=int)
    args = parser.parse_args(argv)
    if args.command == "serve-logs":
        serve_logs(args.host, args.port)
        return 0

    missing = missing_programs()
    if missing:
        print(f"error: {', '.join(missing)} not found: run `make cluster-deps`", file=sys.stderr)
        return 2
    home = Path(os.environ.get("AIRFLOW_HOME", REPO_ROOT / "airflow_cluster")).resolve()
    port = int(os.environ.get(PORT_ENV, "8080"))
    data_root = os.environ.get("RISKLINE_DATA_ROOT", "")
    s3 = None
    if not data_root.startswith("s3://"):
        s3 = _start_demo_s3()
        data_root = f"s3://{DEMO_BUCKET}/riskline"

    def _stop_on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # leave the `with` below, which stops every component we started

    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        with ClusterAirflow(home=home, data_root=data_root, port=port) as af:
            env_file = home / "env.sh"
            print(f"Airflow UI: {af.url}  user: admin  password: {af.password()}  (stored in {home}, git-ignored)")
            print(f"CeleryExecutor: {af.workers} workers ({', '.join(w.host for w in af.worker_list)}), metadata in "
                  f"PostgreSQL on 127.0.0.1:{af.pg_port}, broker Redis on 127.0.0.1:{af.redis_port}.")
            print(f"Lake: {data_root}" + (f" on moto's S3 server at {os.environ['AWS_ENDPOINT_URL']}, in memory: "
                                          "empty at start, gone at stop" if s3 else ""))
            print(f"In another shell: `source {env_file}`, then `riskline generate ...`, `riskline ingest ...` and "
                  "`airflow ...` reach this deployment and its lake. Ctrl-C stops every component.")
            af.serve_until_stopped()
    finally:
        if s3 is not None:
            s3.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
