"""The template: a warm process that forks one fresh worker per run.

The engine starts it once (``python -I -m statefn.engine._template SETTINGS``) with a clean
environment. It imports statefn and the shipped adaptors, runs a fixed trivial workflow a
number of times (so that the code every run runs is specialised), freezes what it has
allocated (so that forked workers share those pages), says ``ready``, and then does three
things in a loop: forks a worker when the engine asks (the worker's socket arrives with the
request), reaps workers that exit and tells the engine how each one ended, and exits when
the engine is gone. A forked worker takes one run and exits, so nothing survives from one
run to the next.

A worker, before it waits for its run: leads a process group of its own (which the engine
kills whole) in the template's session, dies when the template dies, keeps only its own
socket open, and takes the engine's rlimits. The template, and so every worker, runs
``worker_nice`` nice values below the engine (``_limits.lower_priority``).
"""

from __future__ import annotations

import gc
import os
import selectors
import signal
import socket
import sys
from typing import Any

import orjson

from ._limits import die_with_parent, limit_resources, lower_priority, not_dumpable
from ._protocol import decode_packet, encode_frame, send_frame

__all__ = ["main"]


def _warm() -> None:
    """Import what every run needs and run the warm-up workflow (``_child.warm_up``) until
    the interpreter has specialised the code it runs, so that a forked worker starts with
    both. Measured with the engine's throughput workload: 20 warm-ups (about 10 ms) take
    a worker's CPU time per run from 9.2 to 7.3 ms and its page faults from 1,690 to
    1,450; more change nothing."""
    import statefn.adaptors.common
    import statefn.adaptors.http  # noqa: F401
    from statefn import _api, _execute  # noqa: F401

    from . import _child

    for _ in range(20):
        _child.warm_up()


def _send(control: socket.socket, head: dict[str, Any]) -> None:
    control.send(encode_frame(head))


def _fork_worker(worker_fd: int, settings: dict[str, Any]) -> int:
    pid = os.fork()
    if pid:
        os.close(worker_fd)
        return pid
    code = 70
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        # A group of its own, in the template's session: the kernel's scheduler counts a
        # session's processes together (autogroups), at the priority the template set.
        os.setpgid(0, 0)
        die_with_parent(settings["template_pid"])
        os.closerange(3, worker_fd)
        os.closerange(worker_fd + 1, 65536)
        limit_resources(settings.get("memory_limit_mb"))
        not_dumpable()
        from ._child import serve

        worker = socket.socket(fileno=worker_fd)
        send_frame(worker, {"t": "hello"})  # the kernel tells the engine who sent it
        serve(worker, settings)
        code = 0
    finally:
        os._exit(code)


def _reap(control: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if os.WIFSIGNALED(status):
            _send(control, {"t": "exited", "pid": pid, "signal": os.WTERMSIG(status)})
        else:
            _send(control, {"t": "exited", "pid": pid, "code": os.waitstatus_to_exitcode(status)})


def main(argv: list[str]) -> None:
    settings: dict[str, Any] = orjson.loads(argv[1])
    control = socket.socket(fileno=settings["control_fd"])
    die_with_parent(settings["engine_pid"] or None)
    settings["template_pid"] = os.getpid()
    lower_priority(settings["worker_nice"])
    _warm()
    gc.collect()
    gc.freeze()
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(wake_read, selectors.EVENT_READ)
    _send(control, {"t": "ready"})
    while True:
        for key, _ in selector.select(timeout=1.0):
            if key.fileobj is control:
                data, fds, _flags, _address = socket.recv_fds(control, 65536, 1)
                if not data:
                    return
                head = decode_packet(data)
                pid = _fork_worker(fds[0], settings)
                _send(control, {"t": "forked", "token": head["token"], "pid": pid})
            else:
                os.read(wake_read, 4096)
        _reap(control)
        if settings["engine_pid"] and os.getppid() != settings["engine_pid"]:
            return


if __name__ == "__main__":
    try:
        main(sys.argv)
    except (BrokenPipeError, ConnectionResetError, KeyboardInterrupt):
        pass
    finally:
        # Whatever ends the template ends its workers (they die with it, see _fork_worker).
        os._exit(0)
