"""The operating system's side of a worker: dying with its parent, rlimits, memory use.

Memory is watched from outside: the engine reads each busy worker's resident set size
(``/proc/PID/statm``) every few tens of milliseconds and kills a worker over the limit.
RSS is what the machine pays for; ``RLIMIT_AS`` counts address space (thread stacks, malloc
arenas, mmaps that were never touched) and would stop honest runs early, so it is set only
as a distant backstop (several times the limit) against an allocation faster than the
watchdog. cgroup v2 ``memory.max`` would be exact, but it needs a writable delegated
cgroup, which containers and ordinary users rarely have.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import time
from pathlib import Path

__all__ = [
    "MB",
    "PROCESSES",
    "ProcessCap",
    "die_with_parent",
    "limit_resources",
    "not_dumpable",
    "resident_bytes",
]

MB = 1024 * 1024
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PAGE = os.sysconf("SC_PAGE_SIZE")
# A worker may hold this many open files and have this many processes (by RLIMIT_NPROC,
# which does not bind root, and by a pids cgroup where one can be made: see ProcessCap).
OPEN_FILES = 256
PROCESSES = 256


class ProcessCap:
    """Bounds the processes of each worker with a pids cgroup of its own, where the engine
    may make one (cgroup v1's ``pids`` hierarchy, or v2 with the pids controller on).

    ``RLIMIT_NPROC`` does not bind root, so without such a cgroup an engine running as
    root bounds a worker's processes only by killing its process group when its run ends.
    """

    _BASES = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup"))

    def __init__(self, name: str) -> None:
        self.root: Path | None = None
        self._leftover: set[Path] = set()
        for base in self._BASES:
            controls = base / "cgroup.subtree_control"
            if controls.exists() and "pids" not in controls.read_text().split():
                continue
            try:
                (base / name).mkdir()
            except OSError:
                continue
            self.root = base / name
            self._sweep(base, name.rsplit("-", 2)[0])
            return

    @staticmethod
    def _sweep(base: Path, prefix: str) -> None:
        """Remove the (empty) cgroups of engines that died without closing."""
        for group in base.glob(f"{prefix}-*-*"):
            pid = group.name[len(prefix) + 1 :].split("-", 1)[0]
            if not pid.isdigit() or Path(f"/proc/{pid}").exists():
                continue
            with contextlib.suppress(OSError):
                for worker in group.iterdir():
                    if worker.is_dir():
                        worker.rmdir()
                group.rmdir()

    def admit(self, pid: int) -> bool:
        """Put worker ``pid`` (before its run) in a cgroup of at most ``PROCESSES``."""
        if self.root is None or pid <= 0:
            return False
        group = self.root / str(pid)
        try:
            group.mkdir(exist_ok=True)
            (group / "pids.max").write_text(str(PROCESSES))
            (group / "cgroup.procs").write_text(str(pid))
        except OSError:
            return False
        return True

    def release(self, pid: int) -> None:
        """Remove worker ``pid``'s cgroup once its processes are gone (later, if not yet)."""
        if self.root is not None and pid > 0:
            self._leftover.add(self.root / str(pid))
        for group in list(self._leftover):
            try:
                group.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                continue
            self._leftover.discard(group)

    def close(self) -> None:
        """Remove every cgroup made, waiting a little for killed processes to be gone."""
        deadline = time.monotonic() + 2.0
        self.release(0)
        while self._leftover and time.monotonic() < deadline:
            time.sleep(0.01)
            self.release(0)
        if self.root is not None:
            with contextlib.suppress(OSError):
                self.root.rmdir()


def not_dumpable() -> None:
    """No core dumps, and no other process of the same user may ptrace this one or read
    its memory through ``/proc`` (the kernel's "dumpable" flag)."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


def die_with_parent(parent_pid: int | None) -> None:
    """Have the kernel kill this process when its parent dies; exit if it already has
    (when ``parent_pid`` is known: a parent in another PID namespace shows as pid 0)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


def limit_resources(memory_limit_mb: float | None) -> None:
    """No core dumps; bounded open files and processes; a far address-space backstop."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _lower(resource.RLIMIT_NOFILE, OPEN_FILES)
    _lower(resource.RLIMIT_NPROC, PROCESSES)
    if memory_limit_mb:
        backstop = int(max(memory_limit_mb * 4, memory_limit_mb + 4096) * MB)
        _lower(resource.RLIMIT_AS, backstop)


def _lower(which: int, value: int) -> None:
    hard = resource.getrlimit(which)[1]
    hard = value if hard == resource.RLIM_INFINITY else min(hard, value)
    resource.setrlimit(which, (min(value, hard), hard))


def resident_bytes(pid: int) -> int | None:
    """The resident set size of ``pid``, or ``None`` once it is gone."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None
