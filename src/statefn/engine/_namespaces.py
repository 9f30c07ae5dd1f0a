"""Strict isolation: Linux namespaces around the template and around each run.

The template runs inside bubblewrap (``bwrap``, Debian's ``bubblewrap``): its own user,
PID, IPC and UTS namespaces, and a read-only file system holding only the system's
libraries, the Python installation, the packages on ``sys.path``, the adaptor repo and
the engine's work directory. Each worker then, before its run, enters namespaces of its
own: a mount namespace (a fresh, empty work folder, the only writable place, and a
``/proc`` that shows only its processes), a
PID namespace (it forks once, so the run is process 1 there and everything it starts dies
with it) and, unless one of the run's adaptors declares ``NEEDS_NETWORK = True``, a network
namespace with no interface but loopback.
"""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._errors import WorkerStartError
from .._linker import Linker
from ._limits import die_with_parent

__all__ = ["enter_run_namespaces", "needs_network", "strict_wrapper"]

_CLONE_NEWNS = 0x00020000
_CLONE_NEWPID = 0x20000000
_CLONE_NEWNET = 0x40000000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 2, 4, 8
_SYSTEM = ("/usr", "/etc/ssl", "/etc/ca-certificates", "/etc/resolv.conf", "/etc/hosts",
           "/etc/nsswitch.conf", "/etc/localtime")  # fmt: skip
_LINKS = ("lib", "lib64", "bin", "sbin")


@functools.cache
def _unavailable() -> str | None:
    """Why strict isolation cannot work here, or ``None`` when it can."""
    if not sys.platform.startswith("linux"):
        return f"it needs Linux namespaces, and this is {sys.platform}"
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap is not installed (on Debian: apt-get install bubblewrap)"
    probe = [bwrap, "--unshare-user", "--unshare-pid", "--unshare-net", "--ro-bind", "/", "/",
             "--proc", "/proc", "--dev", "/dev", "true"]  # fmt: skip
    try:
        done = subprocess.run(probe, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bubblewrap did not run: {error}"
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip() or f"exit code {done.returncode}"
        return f"the kernel refused the namespaces bubblewrap asked for ({detail})"
    return None


def _readable_roots(repo_dir: str | os.PathLike[str] | None) -> list[str]:
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    roots.update(entry for entry in sys.path if entry and os.path.isdir(entry))
    if repo_dir is not None and os.path.isdir(repo_dir):
        roots.add(str(Path(repo_dir).resolve()))
    # A folder inside another is bound with it.
    ordered = sorted(os.path.realpath(root) for root in roots)
    kept: list[str] = []
    for root in ordered:
        if not any(root == k or root.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(root)
    return [root for root in kept if not root.startswith("/usr/")]


def strict_wrapper(
    repo_dir: str | os.PathLike[str] | None, work_dir: Path
) -> Callable[[list[str]], list[str]]:
    """A function that wraps the template's command in bubblewrap; raises where it cannot.

    ``work_dir`` (the engine's, holding each run's own) is the one writable folder."""
    reason = _unavailable()
    if reason is not None:
        raise WorkerStartError(f"strict isolation is not available: {reason}")
    bwrap = shutil.which("bwrap")
    assert bwrap is not None

    def wrap(command: list[str]) -> list[str]:
        args = [bwrap, "--die-with-parent", "--unshare-user", "--uid", "0", "--gid", "0",
                "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                "--cap-add", "CAP_SYS_ADMIN", "--proc", "/proc", "--dev", "/dev",
                "--tmpfs", "/tmp"]  # fmt: skip
        for path in _SYSTEM:
            args += ["--ro-bind-try", path, path]
        for link in _LINKS:
            if os.path.islink(f"/{link}"):
                args += ["--symlink", os.readlink(f"/{link}"), f"/{link}"]
            else:
                args += ["--ro-bind-try", f"/{link}", f"/{link}"]
        for root in _readable_roots(repo_dir):
            args += ["--ro-bind", root, root]
        args += ["--bind", str(work_dir), str(work_dir), "--chdir", str(work_dir)]
        # /tmp holds only mount points now; read-only, it cannot carry files between runs.
        args += ["--remount-ro", "/tmp"]
        return [*args, *command]

    return wrap


def needs_network(plan: dict[str, Any], linker_option: dict[str, Any]) -> bool:
    """Whether any adaptor that the plan's steps use declares ``NEEDS_NETWORK = True``."""
    linker = Linker.from_option(linker_option)
    for step in plan["workflow"]["steps"]:
        for spec in step.get("adaptors") or ():
            if getattr(linker.load(spec).module, "NEEDS_NETWORK", False):
                return True
    return False


def _libc_call(name: str, *args: Any) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{name}: {os.strerror(error)}")


def enter_run_namespaces(work_dir: str, *, network: bool) -> None:
    """Put this worker's run into namespaces of its own (see the module docstring).

    The worker forks: the child carries on with the run as process 1 of a new PID
    namespace; this process waits for it and exits with its status.
    """
    flags = _CLONE_NEWNS | _CLONE_NEWPID | (0 if network else _CLONE_NEWNET)
    _libc_call("unshare", flags)
    pid = os.fork()
    if pid:
        _, status = os.waitpid(pid, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    die_with_parent(None)  # its parent is outside its PID namespace: no pid to compare
    # A fresh, empty folder over the engine's work folder (the only writable one): the run
    # sees no other run's files and leaves nothing behind.
    folder = os.path.dirname(work_dir).encode()
    _libc_call("mount", b"tmpfs", folder, b"tmpfs", _MS_NOSUID | _MS_NODEV, None)
    _libc_call("mount", b"proc", b"/proc", b"proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None)
    os.makedirs(work_dir, mode=0o700)
    os.chdir(work_dir)
