"""``statefn serve``: a folder of workflows as a running service: a web UI and a JSON API
over the ledger, webhooks and cron schedules (docs/serve.md).

Start-up checks everything a user can get wrong before the server takes a request: the
folder, the token on a public address, the ledger, the port. Each failure is one message
and an exit code (2 for a usage error, 3 for a resource that cannot be used).
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from ._choices import COMMAND_SUMMARIES, positive_int
from ._exits import CliError, ExitCode

if TYPE_CHECKING:
    import socket
    from pathlib import Path

    from statefn import StatefnError
    from statefn.serve import Runner, Service

    from ._logs import CliLogs

__all__ = ["add_serve_parser", "serve_command"]

# The server's event loop shares the interpreter lock with the engine's supervisor and
# ledger writer threads. After a thread's turn the loop waits up to this long for the lock
# back (Python's default is 5 ms, which every request waiting on the ledger writer paid).
SWITCH_INTERVAL_S = 0.0005
# How far below the server's CPU priority the local workers run (``--worker-nice``): under
# load the machine answers webhooks (a row in the ledger each) before it runs the runs they
# queued, which wait in the ledger meanwhile. Measured with bench/serve.py's intake workload
# on 2 cores shared with other jobs: 4,084 webhooks a second at 10, 3,397 at 0.
WORKER_NICE = 10

_EXAMPLES = """\
examples:
  statefn serve examples/quickstart              the UI and API on http://127.0.0.1:8787/
  statefn serve flows --workers 4 --credentials creds.yaml
  STATEFN_TOKEN=$(openssl rand -hex 24) statefn serve flows --host 0.0.0.0
  statefn serve flows --ledger postgresql://db/statefn --broker amqp://mq   runs on workers

exit codes: 0 stopped by SIGTERM; 130 stopped by Ctrl-C; 2 usage error (such as a public
address without a token); 3 the folder, ledger, broker, credentials or port cannot be used
"""


def add_serve_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: list[argparse.ArgumentParser],
) -> None:
    """Add ``serve`` to ``commands``; ``common`` are the shared options."""
    serve = commands.add_parser(
        "serve", help=COMMAND_SUMMARIES["serve"],
        description="Serve every workflow file (.json, .yaml) under PROJECT_DIR: a web UI and "
        "a JSON API over the run ledger, webhooks and cron schedules from the workflows' "
        "triggers. Files changed on disk are picked up without a restart.",
        epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=common,
    )  # fmt: skip
    serve.add_argument(
        "project", nargs="?", default=".", metavar="PROJECT_DIR",
        help="the folder of workflow files (default: the current folder)",
    )  # fmt: skip
    where = serve.add_argument_group("where to listen")
    where.add_argument(
        "--host", default="127.0.0.1",
        help="the address to listen on (default 127.0.0.1: this machine only; any other "
        "address needs --token)",
    )  # fmt: skip
    where.add_argument(
        "--port", type=_port, default=8787, help="the port (default 8787; 0 picks a free one)"
    )
    where.add_argument(
        "--token", metavar="T",
        help="the token every request must carry (a bearer header, or a login at /login); "
        "default: $STATEFN_TOKEN",
    )  # fmt: skip
    where.add_argument(
        "--max-body", type=positive_int, default=1024 * 1024, metavar="BYTES",
        help="the largest request body accepted, webhooks included (default 1048576)",
    )  # fmt: skip
    runs = serve.add_argument_group("where runs go")
    runs.add_argument(
        "--ledger", metavar="URL",
        help="the run ledger (default: $STATEFN_LEDGER, else "
        "sqlite:///PROJECT_DIR/.statefn/runs.db)",
    )  # fmt: skip
    runs.add_argument(
        "--workers", type=positive_int, default=2, metavar="N",
        help="runs at once on this machine (default 2)",
    )  # fmt: skip
    runs.add_argument(
        "--broker", metavar="URL",
        help="send runs to statefn worker hosts through this broker (amqp://, redis://; "
        "default: $STATEFN_BROKER) instead of running them here",
    )  # fmt: skip
    runs.add_argument(
        "--queue", metavar="Q", default="default",
        help="with --broker: the queue runs go to (default: default)",
    )  # fmt: skip
    runs.add_argument(
        "--credentials", metavar="FILE",
        help="JSON or YAML map of credential id to configuration: for steps whose "
        "configuration is a credential id, and the secrets of signed webhooks",
    )  # fmt: skip
    runs.add_argument(
        "--memory-limit", type=positive_int, default=500, metavar="MB",
        help="stop a run with OOMError above MB of memory (default 500)",
    )  # fmt: skip
    runs.add_argument(
        "--worker-nice", type=_nice, default=WORKER_NICE, metavar="N",
        help="run the local workers N nice values below the server (0 to 19, default "
        f"{WORKER_NICE}), so that a busy machine answers requests before it runs runs",
    )  # fmt: skip
    runs.add_argument(
        "--run-timeout", type=positive_int, default=300_000, metavar="MS",
        help="kill a run after MS milliseconds (default 300000)",
    )  # fmt: skip


def _nice(text: str) -> int:
    if not text.isdigit() or int(text) > 19:
        raise argparse.ArgumentTypeError(f"expected a nice value from 0 to 19, got {text!r}")
    return int(text)


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {text!r}")
    return int(text)


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_command(args: argparse.Namespace, logs: CliLogs) -> ExitCode:
    """Check the set-up, then serve until interrupted."""
    # Imported here: `statefn --help` does not pay for what only a server needs.
    from pathlib import Path

    from ._files import read_credentials

    project_dir = Path(args.project).expanduser()
    if not project_dir.is_dir():
        raise CliError(f"The project folder {project_dir} does not exist (or is not a folder)")
    token = args.token or os.environ.get("STATEFN_TOKEN") or None
    if token is None and not is_loopback(args.host):
        raise CliError(
            f"Serving on {args.host} lets anyone who reaches it run your workflows, so a token "
            "is required: give --token T or set STATEFN_TOKEN (for example "
            "STATEFN_TOKEN=$(openssl rand -hex 24)), or serve on 127.0.0.1",
            ExitCode.USAGE,
        )
    ledger_url = args.ledger or os.environ.get("STATEFN_LEDGER")
    if not ledger_url:
        default = project_dir.resolve() / ".statefn" / "runs.db"
        try:
            default.parent.mkdir(exist_ok=True)
        except OSError as error:
            raise CliError(
                f"Cannot make the ledger's folder {default.parent}: {error.strerror}; give "
                "--ledger URL (a file you may write, or postgresql://...)"
            ) from None
        ledger_url = f"sqlite:///{default}"
    broker = args.broker or os.environ.get("STATEFN_BROKER") or None
    credentials = read_credentials(args.credentials) if args.credentials else {}
    listener = _listen(args.host, args.port)
    try:
        return _serve(args, logs, project_dir, ledger_url, broker, credentials, token, listener)
    finally:
        listener.close()


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket, bound here so that a taken port is a clear error at start-up."""
    import errno
    import socket

    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
    except OSError as error:
        raise CliError(f"Cannot listen on {host}: {error.strerror}") from None
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: without it a response written in two parts (head,
    # body) waits ~40 ms on a kept-alive connection for the client's delayed ACK (Nagle).
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        listener.bind((host, port))
        listener.listen(2048)
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRINUSE:
            raise CliError(
                f"Port {port} on {host} is in use by another program: stop it, or choose "
                "another port with --port (0 picks a free one)"
            ) from None
        raise CliError(f"Cannot listen on {host}:{port}: {error.strerror or error}") from None
    listener.set_inheritable(True)
    return listener


def _runner(
    args: argparse.Namespace, ledger_url: str, broker: str | None, credentials: dict[str, Any]
) -> Runner:
    from statefn.serve import BrokerRunner, EngineRunner

    if broker is not None:
        from statefn.distributed import Client

        return BrokerRunner(Client(broker=broker, ledger=ledger_url), args.queue)
    from statefn.engine import Engine

    from ._repo import engine_repo_dir

    return EngineRunner(
        Engine(
            workers=args.workers,
            ledger=ledger_url,
            run_timeout_ms=args.run_timeout,
            memory_limit_mb=args.memory_limit,
            credentials=credentials,
            repo_dir=engine_repo_dir(args.repo_dir),
            worker_nice=args.worker_nice,
        )
    )


def _serve(
    args: argparse.Namespace,
    logs: CliLogs,
    project_dir: Path,
    ledger_url: str,
    broker: str | None,
    credentials: dict[str, Any],
    token: str | None,
    listener: socket.socket,
) -> ExitCode:
    import signal
    import socket
    import sys

    import uvicorn

    from statefn import StatefnError, ledger
    from statefn.ledger._url import mask_url
    from statefn.serve import Project, Service, create_app

    try:
        book = ledger.open(ledger_url)
    except StatefnError as error:
        raise CliError(_message(error)) from None
    try:
        runner = _runner(args, ledger_url, broker, credentials)
    except StatefnError as error:
        book.close()
        raise CliError(f"The runs cannot start: {_message(error)}") from None
    except BaseException:
        book.close()
        raise
    service = Service(Project(project_dir), book, runner, credentials=credentials)
    try:
        app = create_app(service, token=token, max_body=args.max_body)
        host, port = listener.getsockname()[:2]
        # On every address ("0.0.0.0", "::"), show the name others reach this machine by.
        shown = socket.gethostname() if host in ("0.0.0.0", "::") else host
        shown = f"[{shown}]" if ":" in shown else shown
        _report_workflows(service, logs)
        runs_on = f"broker {mask_url(broker)}" if broker else f"{args.workers} local workers"
        logs.cli.info(f"Ledger {book.url}; runs on {runs_on}")
        print(f"statefn serve: open http://{shown}:{port}/  (Ctrl-C stops)", flush=True)
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=5
        )
        # uvicorn stops on SIGINT or SIGTERM, then raises the signal again: Ctrl-C ends as
        # an interrupt (130), SIGTERM (a service manager stopping it) as a clean exit.
        signal.signal(signal.SIGTERM, _exit_cleanly)
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        # Server.run sets up uvicorn's event loop (uvloop): on the standard asyncio loop the
        # same app answers about 30 times fewer requests a second, with 40 ms stalls.
        uvicorn.Server(config).run(sockets=[listener])
    finally:
        service.close()
    return ExitCode.OK


def _message(error: StatefnError) -> str:
    return error.message + (f"\n{error.fix}" if error.fix else "")


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(int(ExitCode.OK))


def _report_workflows(service: Service, logs: CliLogs) -> None:
    workflows = service.workflows()
    if not workflows:
        logs.cli.warning(
            f"No workflow files in {service.project.root}: add a .yaml or .json workflow; "
            "it is picked up without a restart"
        )
    for workflow in workflows:
        if workflow.errors:
            logs.cli.warning(
                f"{workflow.file}: {workflow.name} does not validate (its triggers are paused): "
                + "; ".join(workflow.errors)
            )
        else:
            logs.cli.info(f"{workflow.file}: {workflow.name}")
