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

import ctypes
import os
import resource
import signal

__all__ = [
    "MB",
    "die_with_parent",
    "limit_resources",
    "not_dumpable",
    "resident_bytes",
]

MB = 1024 * 1024
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PAGE = os.sysconf("SC_PAGE_SIZE")
# A worker may hold this many open files and start this many processes (the process limit
# binds only users without CAP_SYS_RESOURCE; root's workers are bounded by process groups).
OPEN_FILES = 256
PROCESSES = 256


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
