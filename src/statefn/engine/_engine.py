"""``Engine``: run plans in worker processes, with hard limits, optionally on a ledger."""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._api import validate_plan
from .._errors import CredentialLoadError, InputError
from .._options import RunOptions, parse_options
from ..ledger._errors import RunLookupError
from ._handle import RunHandle, RunOutcome
from ._job import LOCAL_OPTIONS, Job, Recording, queued_fields
from ._limits import MB
from ._namespaces import strict_wrapper
from ._protocol import NO_FRAME_LIMIT, frame_parts
from ._recorder import Recorder
from ._supervisor import EngineSettings, Supervisor

if TYPE_CHECKING:
    from ..ledger import Ledger

__all__ = ["CROSSING_OPTIONS", "Engine", "checked_submission"]

# The options of ``run`` that travel to the worker with the run.
CROSSING_OPTIONS = frozenset(
    {
        "timeout_ms",
        "state_limit_mb",
        "state_props_to_remove",
        "immutable_state",
        "concurrency",
        "linker",
        "default_step_id",
        "profile",
    }
)
_ISOLATIONS = ("process", "strict")
Credentials = Mapping[str, Any] | Callable[[str], Any]
_WORK_DIR_PREFIX = "statefn-engine-"


def _positive(name: str, value: Any, *, optional: bool = True) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise InputError(f"Engine({name}=...) must be a number above 0, got {value!r}")


def _sweep_work_dirs() -> None:
    """Remove the work directories of engines that died without closing (``kill -9``)."""
    for path in Path(tempfile.gettempdir()).glob(f"{_WORK_DIR_PREFIX}*-*"):
        pid = path.name[len(_WORK_DIR_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(path, ignore_errors=True)


def _environment(base_dir: Path) -> dict[str, str]:
    """All a worker inherits: nothing of the engine's own environment."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": str(base_dir),
        "TMPDIR": str(base_dir),
        "MALLOC_ARENA_MAX": "2",
    }


def checked_submission(
    plan: Any, state: Any, run_options: dict[str, Any], local: dict[str, Any]
) -> tuple[dict[str, Any], RunOptions]:
    """The normalised plan and the options of a run that goes to a worker process; raises
    ``InputError`` for a plan, state or option that cannot go (``local``: the callables the
    engine's process calls)."""
    refused = sorted(set(run_options) - CROSSING_OPTIONS)
    if refused:
        raise InputError(
            f"run option(s) {', '.join(refused)} cannot be used with the engine",
            fix=f"Options that cross to the worker: {', '.join(sorted(CROSSING_OPTIONS))}; "
            "credentials go to Engine(credentials=...).",
        )
    settings = parse_options({**run_options, **local})
    normal = validate_plan(plan, default_step_id=settings.default_step_id)
    if any(isinstance(step.get("expression"), list) for step in normal["workflow"]["steps"]):
        raise InputError(
            "a plan run by the engine needs job source: Python callables cannot cross "
            "into a worker process"
        )
    if state is not None and not isinstance(state, dict):
        raise InputError(f"the input state must be a dict, got {type(state).__name__}")
    return normal, settings


def _refuse_recorded(ledger: Ledger, run_id: str) -> None:
    """Raise ``InputError`` if ``ledger`` has a run ``run_id``: a second run under its id
    would write its steps and logs into the first's record."""
    try:
        ledger.run(run_id)
    except RunLookupError:
        return
    raise InputError(
        f"run {run_id} is already in the ledger {ledger.url}",
        fix="Give each run its own id, or leave run_id out for a new one",
    )


class Engine:
    """Runs plans in worker processes, many at once, each run in a fresh process.

    ``workers`` runs execute at once (more wait in a queue); each is killed at
    ``run_timeout_ms`` and stopped with ``OOMError`` over ``memory_limit_mb``. With
    ``ledger`` (a URL or file path) every run is recorded. ``credentials`` maps credential
    ids to configurations (or is a resolver callable); a worker receives only those its
    run's steps name. ``isolation="strict"`` adds Linux namespaces, or raises here.
    ``worker_nice`` runs the workers that many nice values below the engine's process
    (0 to 19): a process that shares the machine with them (a server answering requests)
    is then given the CPU first.
    """

    def __init__(
        self,
        workers: int = 2,
        ledger: str | None = None,
        run_timeout_ms: float | None = 300_000,
        memory_limit_mb: float | None = 500,
        isolation: str = "process",
        credentials: Credentials | None = None,
        repo_dir: str | os.PathLike[str] | None = None,
        whitelist: list[str | re.Pattern[str]] | None = None,
        *,
        payload_limit_mb: float = 10,
        python: str | None = None,
        worker_nice: int = 0,
    ) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise InputError(f"Engine(workers=...) must be a whole number above 0, got {workers!r}")
        _positive("run_timeout_ms", run_timeout_ms)
        _positive("memory_limit_mb", memory_limit_mb)
        _positive("payload_limit_mb", payload_limit_mb, optional=False)
        if (
            isinstance(worker_nice, bool)
            or not isinstance(worker_nice, int)
            or not (0 <= worker_nice <= 19)
        ):
            raise InputError(
                f"Engine(worker_nice=...) must be a whole number from 0 to 19, got {worker_nice!r}"
            )
        if isolation not in _ISOLATIONS:
            raise InputError(
                f"Engine(isolation=...) must be 'process' or 'strict', got {isolation!r}"
            )
        if credentials is not None and not (
            callable(credentials) or isinstance(credentials, Mapping)
        ):
            raise InputError("Engine(credentials=...) must be a mapping or a resolver callable")
        self._credentials = credentials
        self._linker: dict[str, Any] = {}
        if repo_dir is not None:
            self._linker["repo"] = str(repo_dir)
        if whitelist is not None:
            self._linker["whitelist"] = [
                item.pattern if isinstance(item, re.Pattern) else item for item in whitelist
            ]
        self.id = uuid.uuid4().hex
        _sweep_work_dirs()
        base_dir = Path(tempfile.mkdtemp(prefix=f"{_WORK_DIR_PREFIX}{os.getpid()}-"))
        try:
            wrap = strict_wrapper(repo_dir, base_dir) if isolation == "strict" else None
            self._recorder = self._open_ledger(ledger)
        except BaseException:
            shutil.rmtree(base_dir, ignore_errors=True)
            raise
        self._settings = EngineSettings(
            workers=workers,
            run_timeout_ms=run_timeout_ms,
            memory_limit_mb=memory_limit_mb,
            payload_limit_mb=payload_limit_mb,
            isolation=isolation,
            python=python or sys.executable,
            base_dir=base_dir,
            environment=_environment(base_dir),
            wrap=wrap,
            worker_nice=worker_nice,
        )
        self._closed = False
        self._supervisor = Supervisor(self._settings)
        self._supervisor.ready.wait(timeout=60)

    def _open_ledger(self, url: str | None) -> Recorder | None:
        if url is None:
            return None
        from ..ledger import open as open_ledger

        return Recorder(open_ledger(str(url)), self.id)

    @property
    def workers(self) -> int:
        """How many runs execute at once."""
        return self._settings.workers

    # -- runs ------------------------------------------------------------------------------

    def queue(self, runs: Sequence[tuple[str, dict[str, Any], Any]]) -> Future[None]:
        """Record ``runs`` (each a run id, a plan that validated, and its input state) in
        the engine's ledger as queued on this engine, in one commit, and start none of them:
        ``submit(plan, state, run_id, queued=True)`` starts each when its caller has room
        for it. The future is done once the ledger has committed them; its exception is the
        ledger's error. For a service that answers "your run is recorded" to many requests
        at once, more than the workers can take."""
        if self._recorder is None:
            raise InputError("Engine.queue records runs in the ledger: give Engine(ledger=...)")
        if self._closed:
            raise InputError("the engine is closed: queue runs before close()")
        limit = self._settings.payload_limit_mb
        rows = [
            {"run_id": run_id, **queued_fields(self.id, plan, state, limit)}
            for run_id, plan, state in runs
        ]
        return self._recorder.write_rows("runs_queued", rows)

    def submit(
        self,
        plan: Any,
        state: Any = None,
        run_id: str | None = None,
        *,
        attempt: int | None = None,
        resume: Mapping[str, Any] | None = None,
        queued: bool = False,
        **run_options: Any,
    ) -> RunHandle:
        """Queue a run and return its handle at once.

        ``attempt`` and ``resume`` are for distributed workers: the run ``run_id`` is
        already in the engine's ledger, this delivery holds ``attempt`` (every write carries
        it), and ``resume`` maps the keys of step runs that completed before to their
        recorded output states (those steps do not run again). ``queued``: the run ``run_id``
        was recorded by ``queue``, so submit records nothing of it.

        ``run_options`` are the options of ``run`` that can cross a process (see
        ``CROSSING_OPTIONS``), plus ``on_event``, ``logger`` and ``job_logger``, which are
        called in the engine's process (on its supervisor thread: keep them quick). A plan
        that does not validate, or options or a state that cannot cross, raise here.
        """
        if self._closed:
            raise InputError("the engine is closed: submit runs before close()")
        local = {name: run_options.pop(name) for name in LOCAL_OPTIONS & set(run_options)}
        normal, settings = checked_submission(plan, state, run_options, local)
        if run_id is not None and self._recorder is not None and attempt is None and not queued:
            _refuse_recorded(self._recorder.ledger, run_id)
        handle = RunHandle(run_id or str(uuid.uuid4()), self._cancel)
        linker = {**dict(run_options.get("linker") or {}), **self._linker}
        options = {**run_options, "linker": linker} if linker else run_options
        failure: CredentialLoadError | None = None
        try:
            credentials = self._load_credentials(normal)
        except CredentialLoadError as error:
            credentials, failure = {}, error
        try:
            frame = frame_parts(
                {
                    "t": "run",
                    "run_id": handle.id,
                    "plan": normal,
                    "state": state,
                    "options": options,
                    "credentials": credentials,
                    "payload_limit_mb": self._settings.payload_limit_mb,
                    "memory_limit_mb": self._settings.memory_limit_mb,
                    "record_inputs": self._recorder is not None,
                    "work_dir": str(self._settings.base_dir / handle.id),
                    "engine_repo": self._linker.get("repo"),
                    "resume": dict(resume or {}),
                }
            )
        except TypeError as error:
            raise InputError(
                f"the plan, state or options cannot cross to a worker: {error}"
            ) from None
        # A worker cannot send a state larger than the state limit lets it make (several
        # leaves' states at most twice that); a frame over this is a broken worker. Without
        # a state limit (0) there is no such bound.
        limit = settings.state_limit_mb
        max_blob = int((limit * 2 + 64) * MB) if limit else NO_FRAME_LIMIT
        step_timeout_ms = normal["options"].get("timeout") or settings.timeout_ms
        job = Job(handle, frame, max_blob, step_timeout_ms=step_timeout_ms, **local)
        if self._recorder is not None:
            job.recording = Recording(self._recorder, handle.id, attempt)
            if attempt is None and not queued:
                handle.recorded = job.recording.queued(
                    **queued_fields(self.id, normal, state, self._settings.payload_limit_mb)
                )
        if failure is not None:
            job.finish(
                RunOutcome(handle.id, failure.severity, None, failure.to_dict(), 0.0), None, 0
            )
        else:
            self._supervisor.command("submit", job)
        return handle

    def _load_credentials(self, normal: dict[str, Any]) -> dict[str, Any]:
        """The configurations the run's steps name by id, and no others."""
        names = sorted(
            {
                step["configuration"]
                for step in normal["workflow"]["steps"]
                if isinstance(step.get("configuration"), str)
            }
        )
        loaded: dict[str, Any] = {}
        for name in names:
            try:
                if callable(self._credentials):
                    value = self._credentials(name)
                else:
                    value = (self._credentials or {}).get(name)
            except Exception as error:
                raise CredentialLoadError(
                    f"could not load credential {name!r}: {type(error).__name__}: {error}"
                ) from None
            if value is None:
                raise CredentialLoadError(
                    f"unknown credential {name!r}",
                    fix="Give it to Engine(credentials={...}) or a credentials resolver.",
                )
            loaded[name] = value
        return loaded

    def _cancel(self, handle: RunHandle) -> None:
        self._supervisor.command("cancel", handle)

    # -- life ------------------------------------------------------------------------------

    def problem(self) -> str | None:
        """What stops the engine from running runs now, or ``None`` when it can (for a
        health check: a service's ``/healthz``)."""
        if self._closed:
            return "The engine is closed"
        return self._supervisor.problem()

    def close(self, wait: bool = True) -> None:
        """Stop the engine: wait for runs in flight (``wait=False`` cancels them), then
        end every process it started and remove its temporary files."""
        if self._closed:
            return
        self._closed = True
        self._supervisor.command("close", wait)
        self._supervisor.join()
        if self._recorder is not None:
            self._recorder.close()
        shutil.rmtree(self._settings.base_dir, ignore_errors=True)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close(wait=exc_info[0] is None)


logging.getLogger("statefn.engine").addHandler(logging.NullHandler())
