"""The operating system's side of a worker: dying with its parent, rlimits, memory use.

Memory is watched from outside: every few tens of milliseconds the engine reads each busy
worker's resident set size (``/proc/PID/statm``) and, where it could make the worker a
memory cgroup, the memory charged to that (what every process of the run made, those it
forked too), and kills a worker over the limit by either. RSS is what the machine pays
for; ``RLIMIT_AS`` counts address space (thread stacks, malloc arenas, mmaps that were
never touched) and would stop honest runs early, so it is set only as a distant backstop
(several times the limit) against an allocation faster than the watchdog. A cgroup's own
limit (``memory.max``) would end a run with the kernel's OOM kill, which the engine could
not tell from any other ``SIGKILL``; the engine's kill gives ``OOMError``.
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
    "WorkerGroups",
    "die_with_parent",
    "limit_resources",
    "lower_priority",
    "not_dumpable",
    "resident_bytes",
]

MB = 1024 * 1024
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PAGE = os.sysconf("SC_PAGE_SIZE")
# A worker may hold this many open files and have this many processes (by RLIMIT_NPROC,
# which does not bind root, and by a pids cgroup where one can be made: see WorkerGroups).
OPEN_FILES = 256
PROCESSES = 256


_CGROUPS = Path("/sys/fs/cgroup")


def _hierarchy(controller: str) -> Path | None:
    """Where cgroups with ``controller`` are made: its cgroup v1 hierarchy, or the v2 one
    when the controller is on there."""
    v1 = _CGROUPS / controller
    if (v1 / "cgroup.procs").exists():
        return v1
    controls = _CGROUPS / "cgroup.subtree_control"
    if controls.exists() and controller in controls.read_text().split():
        return _CGROUPS
    return None


class WorkerGroups:
    """A cgroup of its own for each worker, where the engine may make one (cgroup v1
    hierarchies, or v2 with the controllers on): in the pids controller, to bound its
    processes and to end every one of them when its run ends (those that left the
    worker's process group with ``setsid`` too, which a kill of the group misses); in the
    memory controller, to count the memory of all of them.

    ``RLIMIT_NPROC`` does not bind root, so without a pids cgroup an engine running as
    root bounds a worker's processes only by killing its process group when its run ends;
    without a memory cgroup only the memory of the worker's own process is watched.

    Groups are made once and used again: a worker's group, once no process is left in it,
    takes the next worker (moving a process into a group costs one write; making and
    removing one costs several, and removal waits for the killed processes to be gone).
    Processes are killed by the pids the group lists (cgroup v1 has no ``cgroup.kill``):
    a pid read there and killed at once is not one the kernel has had time to reuse.
    """

    def __init__(self, name: str) -> None:
        self._roots: dict[str, Path] = {}  # controller: this engine's cgroup for it
        for controller in ("pids", "memory"):
            base = _hierarchy(controller)
            if base is None:
                continue
            root = base / name
            try:
                root.mkdir(exist_ok=base == _CGROUPS)  # v2: one cgroup for both
                if base == _CGROUPS:
                    (root / "cgroup.subtree_control").write_text(f"+{controller}")
            except OSError:
                continue
            self._roots[controller] = root
            _sweep(base, name.rsplit("-", 2)[0])
        self._made = 0
        self._free: list[str] = []  # groups with no process in them
        self._held: dict[int, str] = {}  # a worker's pid: its group
        self._ending: list[str] = []  # groups of ended workers, processes maybe left

    @property
    def bounded(self) -> bool:
        """Whether each worker's processes are bounded (a pids cgroup could be made)."""
        return "pids" in self._roots

    @property
    def measured(self) -> bool:
        """Whether the memory of all of a worker's processes is counted (a memory cgroup
        could be made)."""
        return "memory" in self._roots

    @property
    def ending(self) -> bool:
        """Whether processes of ended workers may be left (``tidy``, which the engine calls
        every few milliseconds while this holds, ends them)."""
        return bool(self._ending)

    def _paths(self, group: str) -> list[Path]:
        return sorted({root / group for root in self._roots.values()})

    def admit(self, pid: int) -> bool:
        """Put worker ``pid`` (before its run) in a group of at most ``PROCESSES``."""
        if not self._roots or pid <= 0:
            return False
        try:
            group = self._free.pop() if self._free else self._make()
        except OSError:
            return False
        try:
            for path in self._paths(group):
                (path / "cgroup.procs").write_text(str(pid))
        except OSError:  # the worker is gone already
            self._ending.append(group)
            return False
        self._held[pid] = group
        return True

    def _make(self) -> str:
        self._made += 1
        group = str(self._made)
        made = []
        try:
            for path in self._paths(group):
                path.mkdir()
                made.append(path)
            if "pids" in self._roots:
                (self._roots["pids"] / group / "pids.max").write_text(str(PROCESSES))
        except OSError:
            for path in made:
                path.rmdir()
            raise
        return group

    def memory(self, pid: int) -> int | None:
        """The memory charged to worker ``pid``'s group since it joined: anonymous and
        shared memory its processes made, not what they share with the template (``None``
        without a memory cgroup)."""
        group = self._held.get(pid)
        root = self._roots.get("memory")
        if group is None or root is None:
            return None
        try:
            stat = (root / group / "memory.stat").read_text().split()
        except OSError:
            return None
        counts = dict(zip(stat[::2], stat[1::2], strict=False))
        keys = ("anon", "shmem") if root.parent == _CGROUPS else ("rss", "shmem")
        return sum(int(counts.get(key, 0)) for key in keys)

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
            emptied = all([_emptied(path) for path in self._paths(group)])
            (self._free if emptied else self._ending).append(group)

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
            for path in self._paths(group):
                with contextlib.suppress(OSError):
                    path.rmdir()
        for root in set(self._roots.values()):
            with contextlib.suppress(OSError):
                root.rmdir()


def _sweep(base: Path, prefix: str) -> None:
    """End the processes left in the cgroups of engines that died without closing, and
    remove those cgroups."""
    for engine in base.glob(f"{prefix}-*-*"):
        pid = engine.name[len(prefix) + 1 :].split("-", 1)[0]
        if not pid.isdigit() or Path(f"/proc/{pid}").exists():
            continue
        with contextlib.suppress(OSError):
            groups = [group for group in engine.iterdir() if group.is_dir()]
            if all([_emptied(group) for group in groups]):
                for group in groups:
                    group.rmdir()
                engine.rmdir()


def _members(group: Path) -> list[int] | None:
    try:
        return [int(pid) for pid in (group / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return None


def _emptied(group: Path) -> bool:
    """Whether cgroup ``group`` has no process; if it has, they are sent ``SIGKILL``."""
    if not group.exists():
        return True
    pids = _members(group)
    if pids is None:
        return False
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
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


def lower_priority(steps: int) -> None:
    """Run this process, and every process it forks, ``steps`` nice values below the CPU
    priority it has (0: no change).

    Where the kernel shares CPU time between sessions first (autogroups, on by default on
    most desktop and many server kernels: ``/proc/sys/kernel/sched_autogroup_enabled``), a
    process's nice value weighs only against the other processes of its session, so the
    session's group is given the same value: this process leads its session (the engine
    starts it in a new one), and its workers stay in it. The kernel may refuse that write
    (no autogroups, or a write within 100 ms of another for a user without
    ``CAP_SYS_ADMIN``); the process's own nice value is set regardless."""
    if steps <= 0:
        return
    value = os.nice(steps)
    with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as group:
        group.write(str(value))


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
