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
    may make one (cgroup v1's ``pids`` hierarchy, or v2 with the pids controller on), and
    ends every process in it when the worker's run ends: those that left the worker's
    process group (``setsid``) too, which a kill of the group misses.

    ``RLIMIT_NPROC`` does not bind root, so without such a cgroup an engine running as
    root bounds a worker's processes only by killing its process group when its run ends.

    Groups are made once and used again: a worker's group, once no process is left in it,
    takes the next worker (moving a process into a group costs one write; making and
    removing one costs several, and removal waits for the killed processes to be gone).
    Processes are killed by the pids the group lists (cgroup v1 has no ``cgroup.kill``):
    a pid read there and killed at once is not one the kernel has had time to reuse.
    """

    _BASES = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup"))

    def __init__(self, name: str) -> None:
        self.root: Path | None = None
        self._made = 0
        self._free: list[Path] = []  # groups with no process in them
        self._held: dict[int, Path] = {}  # a worker's pid: its group
        self._ending: list[Path] = []  # groups of ended workers, processes maybe left
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
        """End the processes left in the cgroups of engines that died without closing, and
        remove those cgroups."""
        for group in base.glob(f"{prefix}-*-*"):
            pid = group.name[len(prefix) + 1 :].split("-", 1)[0]
            if not pid.isdigit() or Path(f"/proc/{pid}").exists():
                continue
            with contextlib.suppress(OSError):
                workers = [worker for worker in group.iterdir() if worker.is_dir()]
                if all(_emptied(worker) for worker in workers):
                    for worker in workers:
                        worker.rmdir()
                    group.rmdir()

    @property
    def ending(self) -> bool:
        """Whether processes of ended workers may be left (``tidy``, which the engine calls
        every few milliseconds while this holds, ends them)."""
        return bool(self._ending)

    def admit(self, pid: int) -> bool:
        """Put worker ``pid`` (before its run) in a cgroup of at most ``PROCESSES``."""
        if self.root is None or pid <= 0:
            return False
        try:
            group = self._free.pop() if self._free else self._make(self.root)
        except OSError:
            return False
        try:
            (group / "cgroup.procs").write_text(str(pid))
        except OSError:  # the worker is gone already
            self._free.append(group)
            return False
        self._held[pid] = group
        return True

    def _make(self, root: Path) -> Path:
        self._made += 1
        group = root / str(self._made)
        group.mkdir()
        try:
            (group / "pids.max").write_text(str(PROCESSES))
        except OSError:
            group.rmdir()
            raise
        return group

    def release(self, pid: int) -> None:
        """Worker ``pid``'s run has ended (its process group was killed): what is left in
        its group is for ``tidy`` to kill, after which the group is free again."""
        group = self._held.pop(pid, None)
        if group is not None:
            self._ending.append(group)

    def tidy(self) -> None:
        """Kill what is left in the groups of ended workers (a process may have forked
        while the last ones were killed); a group found empty is free again."""
        ending, self._ending = self._ending, []
        for group in ending:
            (self._free if _emptied(group) else self._ending).append(group)

    def close(self) -> None:
        """Kill every process in the groups made and remove them, waiting a little for
        killed processes to be gone."""
        self._ending.extend(self._held.values())
        self._held.clear()
        deadline = time.monotonic() + 2.0
        self.tidy()
        while self._ending and time.monotonic() < deadline:
            time.sleep(0.01)
            self.tidy()
        for group in [*self._free, *self._ending]:
            with contextlib.suppress(OSError):
                group.rmdir()
        if self.root is not None:
            with contextlib.suppress(OSError):
                self.root.rmdir()


def _emptied(group: Path) -> bool:
    """Whether cgroup ``group`` has no process; if it has, they are sent ``SIGKILL``."""
    try:
        pids = (group / "cgroup.procs").read_text().split()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    return not pids


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
