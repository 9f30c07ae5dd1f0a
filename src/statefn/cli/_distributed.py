"""``statefn worker`` and ``statefn submit``: distributed workers on Celery (contract 10, 11).

Both need a broker (``--broker`` or ``$STATEFN_BROKER``) and a ledger (``--ledger`` or
``$STATEFN_LEDGER``); Celery and the ledger are imported only when one of them runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from ._choices import COMMAND_SUMMARIES
from ._choices import positive_int as _positive_int
from ._exits import CliError, ExitCode

if TYPE_CHECKING:
    from statefn.engine import RunOutcome
    from statefn.ledger import StepRecord

    from ._logs import CliLogs
    from ._plans import LoadedPlan

__all__ = ["add_distributed_parsers", "submit_command", "worker_command"]

_WORKER_EXAMPLES = """\
examples:
  export STATEFN_BROKER=amqp://guest:guest@rabbit.internal:5672//
  export STATEFN_LEDGER=postgresql://statefn@db.internal/statefn
  statefn worker --workers 4                         four runs at once, queue "default"
  statefn worker --queue nightly --queue default     take runs from two queues
  statefn worker --memory-limit 200 --run-timeout 60000 --grace 60
  statefn worker --credentials creds.yaml            secrets stay on this host

Stop it with SIGTERM (or Ctrl-C): it takes no new runs, lets the runs in flight finish
for --grace seconds, then hands the rest back to the broker for another worker.
"""

_SUBMIT_EXAMPLES = """\
examples:
  statefn submit workflow.yaml                       print the run id and return
  statefn submit workflow.yaml -s input.json --wait  follow its logs, exit with its code
  statefn submit workflow.yaml --queue nightly
  statefn runs show RUN                              later: what happened
"""

_EXIT_CODES = """\
exit codes: 0 done (--wait: the run succeeded); 1 (--wait) a step failed; 2 no broker or
ledger given; 3 invalid plan, or the broker or ledger cannot be reached; 4 (--wait) the
run was aborted (crash, kill, exception, cancel, lost)
"""

_EXIT_BY_REASON = {"success": ExitCode.OK, "fail": ExitCode.STEP_FAILED}
# --log LEVEL as the worker's log level.
_CELERY_LEVELS = {
    "none": "CRITICAL",
    "error": "ERROR",
    "warn": "WARNING",
    "info": "INFO",
    "debug": "DEBUG",
}


def add_distributed_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: list[argparse.ArgumentParser],
    repo: argparse.ArgumentParser,
) -> None:
    """Add ``worker`` and ``submit`` to ``commands``; ``common`` are the shared options,
    ``repo`` the adaptor repo's (for the worker, which links the adaptors)."""
    services = argparse.ArgumentParser(add_help=False)
    services.add_argument(
        "--broker", metavar="URL",
        help="the message broker: amqp://USER:PASSWORD@HOST:5672/VHOST (RabbitMQ) or "
        "redis://HOST:6379/DB (default: $STATEFN_BROKER)",
    )  # fmt: skip
    services.add_argument(
        "--ledger", metavar="URL",
        help="the run ledger every host shares: postgresql://USER@HOST/DB (SQLite only when "
        "everything runs on one host; default: $STATEFN_LEDGER)",
    )  # fmt: skip
    parents = [*common, services]
    worker = commands.add_parser(
        "worker", help=COMMAND_SUMMARIES["worker"],
        description="A Celery worker whose tasks are runs, each executed through an engine on "
        "this host with its limits. Every run reaches exactly one final reason in the ledger, "
        "whatever dies; a run delivered again resumes after its last recorded step.",
        epilog=_WORKER_EXAMPLES + "\n" + _EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter, parents=[*parents, repo],
    )  # fmt: skip
    worker.add_argument("--workers", type=_positive_int, default=2, metavar="N",
                        help="runs at once on this host (2)")  # fmt: skip
    worker.add_argument("--queue", action="append", metavar="Q",
                        help="take runs from queue Q (repeatable; default: default)")  # fmt: skip
    worker.add_argument("--memory-limit", type=_positive_int, default=500, metavar="MB",
                        help="stop a run over this much memory with OOMError (500)")  # fmt: skip
    worker.add_argument("--run-timeout", type=_positive_int, default=300_000, metavar="MS",
                        help="kill a run after this many milliseconds (300000)")  # fmt: skip
    worker.add_argument("--grace", type=_positive_int, default=30, metavar="S",
                        help="on SIGTERM, seconds runs in flight may take to finish (30)")  # fmt: skip
    worker.add_argument("--lease", type=_positive_int, default=15, metavar="S",
                        help="a run's lease, renewed every third of it: a run whose worker "
                        "died resumes elsewhere once it expires (15)")  # fmt: skip
    worker.add_argument("--visibility-timeout", type=_positive_int, default=3600, metavar="S",
                        help="Redis only: seconds before a message not acknowledged is given "
                        "to another worker; keep it above your longest run (3600)")  # fmt: skip
    worker.add_argument("--credentials", metavar="FILE",
                        help="JSON or YAML map of credential id to configuration, for steps "
                        "whose configuration is a credential id: the secrets stay on this "
                        "host, out of the broker and the ledger")  # fmt: skip
    worker.add_argument("--max-deliveries", type=_positive_int, default=3, metavar="N",
                        help="a run whose worker died N times ends with crash and is "
                        "dead-lettered (3)")  # fmt: skip
    submit = commands.add_parser(
        "submit", help=COMMAND_SUMMARIES["submit"],
        description="Record a run in the ledger and send it through the broker to a worker. "
        "The plan is validated here: an invalid one is refused before anything is queued.",
        epilog=_SUBMIT_EXAMPLES + "\n" + _EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter, parents=parents,
    )  # fmt: skip
    submit.add_argument("path", metavar="PATH", help="a workflow (.json, .yaml) or a job (.py)")
    submit.add_argument("-s", "--state", metavar="FILE", help="the input state (JSON or YAML)")
    submit.add_argument("--queue", default="default", metavar="Q",
                        help="the queue to send the run to (default)")  # fmt: skip
    submit.add_argument("--wait", action="store_true",
                        help="follow the run's logs (stderr), print its final state (stdout) "
                        "and exit with its exit code")  # fmt: skip


def _services(args: argparse.Namespace) -> tuple[str, str]:
    """The broker and ledger URLs, from the flags or the environment; exit 2 without them."""
    broker = args.broker or os.environ.get("STATEFN_BROKER")
    ledger = args.ledger or os.environ.get("STATEFN_LEDGER")
    missing = [
        f"--{name} URL (or ${variable})"
        for name, variable, value in (
            ("broker", "STATEFN_BROKER", broker),
            ("ledger", "STATEFN_LEDGER", ledger),
        )
        if not value
    ]
    if missing:
        raise CliError(f"No {' and no '.join(missing)} given", ExitCode.USAGE)
    assert broker is not None and ledger is not None
    return broker, ledger


def _unreachable(error: Exception) -> CliError:
    from statefn._errors import StatefnError

    assert isinstance(error, StatefnError)
    return CliError(error.message + (f"\n  fix: {error.fix}" if error.fix else ""))


def worker_command(args: argparse.Namespace, logs: CliLogs) -> ExitCode:
    """Run a distributed worker until a signal stops it."""
    from statefn._errors import LedgerError
    from statefn.distributed import BrokerError, Worker, WorkerSettings

    from ._files import read_credentials
    from ._repo import engine_repo_dir

    broker, ledger = _services(args)
    settings = WorkerSettings(
        broker=broker,
        ledger=ledger,
        queues=tuple(args.queue or ["default"]),
        workers=args.workers,
        memory_limit_mb=args.memory_limit,
        run_timeout_ms=args.run_timeout,
        grace_s=args.grace,
        lease_s=args.lease,
        max_deliveries=args.max_deliveries,
        visibility_timeout_s=args.visibility_timeout,
        log_level=_CELERY_LEVELS[args.log],
        credentials=read_credentials(args.credentials) if args.credentials else None,
        repo_dir=engine_repo_dir(args.repo_dir),
    )
    try:
        worker = Worker(settings)
    except (BrokerError, LedgerError) as error:
        raise _unreachable(error) from None
    return ExitCode.OK if worker.run() == 0 else ExitCode.ABORTED


def _report_end(
    outcome: RunOutcome, steps: list[StepRecord], loaded: LoadedPlan, logs: CliLogs
) -> None:
    """Show why a run did not succeed, as ``statefn run`` shows it: the errors of its failed
    steps, or the error that stopped it."""
    from ._run import report_aborted, report_failures

    ending = f"Run {outcome.run_id} ended with {outcome.reason}"
    if outcome.reason == "fail":
        failures = [
            (step.step_id, step.error)
            for step in steps
            if step.reason == "fail" and step.error is not None
        ]
        report_failures(failures, loaded, logs, ending)
    elif outcome.error is not None:
        # The step the run stopped in: the last that neither succeeded nor failed.
        stopped = next(
            (step.step_id for step in reversed(steps) if step.reason not in ("success", "fail")),
            None,
        )
        report_aborted(outcome.error, stopped, loaded, logs, ending)
    else:
        logs.cli.error(ending)


def submit_command(args: argparse.Namespace, logs: CliLogs) -> ExitCode:
    """Submit the plan at ``args.path``; with ``--wait``, follow it to its end."""
    from pathlib import Path

    from statefn._errors import CompileError, InputError, LedgerError, ValidationError
    from statefn.distributed import BrokerError, Client

    from ._files import read_data
    from ._plans import load_plan
    from ._run import write_state
    from ._runs import print_logs

    broker, ledger = _services(args)
    loaded = load_plan(Path(args.path))
    state = read_data(args.state) if args.state is not None else None
    try:
        client = Client(broker, ledger)
    except (BrokerError, LedgerError) as error:
        raise _unreachable(error) from None
    with client:
        try:
            run_id = client.submit(loaded.plan, state, queue=args.queue)
        except (CompileError, InputError, ValidationError) as error:
            where = f" (step {error.step_id})" if error.step_id else ""
            raise CliError(f"{args.path}{where}: {error.message}") from None
        print(run_id, flush=True)
        if not args.wait:
            return ExitCode.OK
        print_logs(client.ledger, run_id, follow=True, stream=sys.stderr)
        outcome = client.wait(run_id)
        if outcome.reason != "success":
            _report_end(outcome, client.ledger.run(run_id).steps, loaded, logs)
    if outcome.reason in _EXIT_BY_REASON:
        write_state(outcome.state, None, logs)
    return _EXIT_BY_REASON.get(outcome.reason, ExitCode.ABORTED)
