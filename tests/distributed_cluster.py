"""Real services and worker processes for the distributed tests (test_distributed*.py).

A throwaway RabbitMQ vhost per module, the session's throwaway PostgreSQL database, a local
HTTP server that counts side effects by idempotency key, and ``statefn worker`` processes
started, killed and stopped by pid (each in a session of its own, so that "the whole
worker" is its process group).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

STATEFN = [sys.executable, "-m", "statefn"]


def wait_for(check: Callable[[], Any], *, timeout: float = 30.0, every: float = 0.02) -> Any:
    """``check()``'s first truthy value, polled; fails the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting after {timeout} s for {check}")
        time.sleep(every)


@contextmanager
def rabbit_vhost() -> Iterator[str]:
    """The URL of a RabbitMQ vhost made for these tests and deleted after."""
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not installed")
    name = f"statefn_test_{uuid.uuid4().hex[:12]}"
    made = subprocess.run(["rabbitmqctl", "add_vhost", name], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"RabbitMQ is not usable here: {made.stderr.decode().strip()}")
    try:
        subprocess.run(
            ["rabbitmqctl", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
            capture_output=True, check=True,
        )  # fmt: skip
        yield f"amqp://guest:guest@127.0.0.1:5672/{name}"
    finally:
        subprocess.run(["rabbitmqctl", "delete_vhost", name], capture_output=True, check=False)


def queue_depths(broker: str) -> dict[str, int]:
    """Messages ready in each queue of the vhost of ``broker``."""
    vhost = broker.rsplit("/", 1)[1]
    listed = subprocess.run(
        ["rabbitmqctl", "list_queues", "-p", vhost, "-q", "--no-table-headers", "name", "messages"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return {name: int(count) for name, count in (line.split() for line in listed.splitlines())}


def rows(ledger: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(ledger, autocommit=True) as connection:
        return list(connection.execute(sql, params).fetchall())


def run_row(ledger: str, run_id: str) -> dict[str, Any]:
    """The run's status, attempt, deliveries and lease owner, as the ledger has them now."""
    found = rows(
        ledger,
        "SELECT status, attempt, deliveries, lease_owner FROM runs WHERE run_id = %s",
        (run_id,),
    )
    status, attempt, deliveries, owner = found[0]
    return {"status": status, "attempt": attempt, "deliveries": deliveries, "owner": owner}


def finished_steps(ledger: str, run_id: str) -> set[str]:
    return {
        key
        for (key,) in rows(
            ledger,
            "SELECT key FROM steps WHERE run_id = %s AND reason IN ('success', 'fail')",
            (run_id,),
        )
    }


class EffectServer:
    """Counts the POSTs it receives by ``Idempotency-Key``; ``?delay=S`` answers after S s."""

    def __init__(self) -> None:
        self.server = HTTPServer(host="127.0.0.1", threaded=True)
        self.keys: list[str] = []
        self._lock = threading.Lock()
        self.server.expect_request(re.compile("/effect/.*")).respond_with_handler(self._handle)

    def _handle(self, request: Request) -> Response:
        with self._lock:
            self.keys.append(request.headers.get("Idempotency-Key", "none"))
        time.sleep(float(request.args.get("delay", "0")))
        return Response('{"ok": true}', content_type="application/json")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def counts(self, run_id: str) -> Counter[str]:
        """How many requests each step run of ``run_id`` sent, by step key."""
        with self._lock:
            keys = list(self.keys)
        return Counter(key.split(":", 1)[1] for key in keys if key.startswith(f"{run_id}:"))


@contextmanager
def effect_server() -> Iterator[EffectServer]:
    effects = EffectServer()
    effects.server.start()
    try:
        yield effects
    finally:
        effects.server.clear()
        effects.server.stop()


def effect_plan(base_url: str, *, slow_step: str = "b", delay: float = 1.5) -> dict[str, Any]:
    """Three steps a -> b -> c, each one POST with the step run's idempotency key; the slow
    step's request takes ``delay`` s."""
    steps = []
    for step, following in (("a", "b"), ("b", "c"), ("c", None)):
        query = f"?delay={delay}" if step == slow_step else ""
        entry: dict[str, Any] = {
            "id": step,
            "adaptors": ["http"],
            "configuration": {"base_url": base_url, "idempotency": True},
            "expression": f"post('/effect/{step}{query}', body={{'step': '{step}'}})\n"
            f"fn(lambda state: {{**state, 'data': {{'done': '{step}'}}}})",
        }
        if following:
            entry["next"] = {following: True}
        steps.append(entry)
    return {"workflow": {"name": "effects", "steps": steps}}


class WorkerProcess:
    """One ``statefn worker``, in a process group of its own."""

    def __init__(self, broker: str, ledger: str, queue: str, log_dir: Path, *extra: str) -> None:
        self.log_path = log_dir / f"worker-{uuid.uuid4().hex[:8]}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [*STATEFN, "worker", "--broker", broker, "--ledger", ledger, "--queue", queue,
             "--workers", "2", "--lease", "3", *extra],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        self.pid = self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> WorkerProcess:
        def ready() -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"worker {self.pid} exited early:\n{self.log()}")
            return " ready." in self.log()

        wait_for(ready, timeout=timeout, every=0.1)
        return self

    def descendants(self) -> list[int]:
        found, frontier = [], [self.pid]
        while frontier:
            pid = frontier.pop()
            for task in Path(f"/proc/{pid}/task").glob("*"):
                try:
                    children = (task / "children").read_text().split()
                except OSError:
                    continue
                found.extend(int(child) for child in children)
                frontier.extend(int(child) for child in children)
        return found

    def run_process(self, run_id: str) -> int | None:
        """The pid of the process executing ``run_id`` (its working directory is the run's)."""
        for pid in self.descendants():
            try:
                if os.readlink(f"/proc/{pid}/cwd").endswith(run_id):
                    return pid
            except OSError:
                continue
        return None

    def kill(self, target: str, run_id: str | None = None) -> None:
        """SIGKILL ``child`` (the run's process), ``celery`` (the worker's own process) or
        ``whole`` (the worker and everything it started)."""
        if target == "child":
            assert run_id is not None
            os.kill(wait_for(lambda: self.run_process(run_id), timeout=10), signal.SIGKILL)
        elif target == "celery":
            os.kill(self.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        else:
            os.killpg(self.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def terminate(self) -> None:
        """SIGTERM: the worker starts its graceful shutdown (see ``stop``)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, then wait; a worker that does not stop is killed with its group."""
        if self._log.closed:  # stopped before
            return self.process.returncode
        self.terminate()
        if self.process.returncode is None:
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)  # anything it left behind
        self._log.close()
        return self.process.returncode


@contextmanager
def workers(
    broker: str, ledger: str, queue: str, log_dir: Path, count: int = 2, *extra: str
) -> Iterator[list[WorkerProcess]]:
    """``count`` ready workers on ``queue``, stopped after."""
    started = [WorkerProcess(broker, ledger, queue, log_dir, *extra) for _ in range(count)]
    try:
        yield [worker.wait_ready() for worker in started]
    finally:
        stop_all(started)


def stop_all(workers: list[WorkerProcess]) -> None:
    """Stop ``workers`` side by side: each takes a few seconds to shut down."""
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.stop()


class WorkerPool:
    """``count`` workers on one queue, kept at that number: a killed one is replaced."""

    def __init__(
        self,
        broker: str,
        ledger: str,
        queue: str,
        log_dir: Path,
        count: int = 2,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.args = (broker, ledger, queue, log_dir, *extra)
        self.count = count
        self.workers: list[WorkerProcess] = []
        self.retired: list[WorkerProcess] = []

    def ensure(self) -> list[WorkerProcess]:
        for worker in [w for w in self.workers if w.process.poll() is not None]:
            self.workers.remove(worker)
            self.retired.append(worker)
        fresh = [WorkerProcess(*self.args) for _ in range(self.count - len(self.workers))]
        for worker in fresh:
            worker.wait_ready()
        self.workers.extend(fresh)
        return self.workers

    def holder(self, ledger: str, run_id: str) -> WorkerProcess:
        """The worker whose lease the run is under now (waits for a claim)."""

        def find() -> WorkerProcess | None:
            owner = run_row(ledger, run_id)["owner"]
            pid = int(owner.split(":")[1]) if owner else None
            return next((w for w in self.workers if w.pid == pid), None)

        found: WorkerProcess = wait_for(find, timeout=60)
        return found

    def run_to_mid_step(
        self, client: Any, effects: EffectServer, ledger: str, *, delay: float
    ) -> tuple[str, WorkerProcess]:
        """Submit a run of ``effect_plan`` (step b taking ``delay`` s) and return once step b
        is in flight: the run's id and the worker that holds it."""
        self.ensure()
        run_id: str = client.submit(effect_plan(effects.url, delay=delay), queue=self.args[2])
        holder = self.holder(ledger, run_id)
        wait_for(lambda: effects.counts(run_id)["b"] >= 1)
        return run_id, holder

    def logs(self) -> str:
        return "\n".join(worker.log() for worker in [*self.retired, *self.workers])

    def stop(self) -> None:
        stop_all([*self.workers, *self.retired])


@contextmanager
def redis_db() -> Iterator[str]:
    """The URL of an empty Redis database (one of 1-15) on 127.0.0.1:6379, emptied after."""
    import redis

    for number in range(15, 0, -1):
        client = redis.Redis(host="127.0.0.1", port=6379, db=number, socket_connect_timeout=3)
        try:
            empty = client.dbsize() == 0
        except redis.RedisError as error:
            pytest.skip(f"no Redis server at 127.0.0.1:6379: {error}")
        if empty:
            break
    else:
        pytest.skip("no empty Redis database (1-15) to use")
    try:
        yield f"redis://127.0.0.1:6379/{number}"
    finally:
        client.flushdb()
        client.close()


# -- fixtures shared by the test modules ---------------------------------------------------
# A module takes one by assigning it to a name of its own (``rabbit_broker =
# cluster.rabbit_broker_fixture``); tests then ask for it by its fixture name. A module may
# set ``WORKER_ARGS`` (extra ``statefn worker`` flags for its pool).


@pytest.fixture(scope="module", name="broker")
def rabbit_broker_fixture() -> Iterator[str]:
    """A RabbitMQ vhost of the module's own."""
    with rabbit_vhost() as url:
        yield url


@pytest.fixture(scope="module", name="broker")
def redis_broker_fixture() -> Iterator[str]:
    """An empty Redis database for the module."""
    with redis_db() as url:
        yield url


@pytest.fixture(scope="module", name="queue")
def queue_fixture(request: pytest.FixtureRequest) -> str:
    """A queue of the module's own (its short name and a random part)."""
    return f"{request.module.__name__.rsplit('_', 1)[-1]}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module", name="effects")
def effects_fixture() -> Iterator[EffectServer]:
    with effect_server() as server:
        yield server


@pytest.fixture(scope="module", name="pool")
def pool_fixture(
    broker: str,
    postgres_database: str,
    queue: str,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[WorkerPool]:
    """Two ready workers on the module's queue, kept at two, stopped after the module."""
    extra = tuple(getattr(request.module, "WORKER_ARGS", ()))
    workers = WorkerPool(
        broker, postgres_database, queue, tmp_path_factory.mktemp("workers"), extra=extra
    )
    try:
        workers.ensure()
        yield workers
    finally:
        workers.stop()


@pytest.fixture(scope="module", name="client")
def client_fixture(broker: str, postgres_database: str) -> Iterator[Any]:
    from statefn.distributed import Client

    with Client(broker, postgres_database) as made:
        yield made
