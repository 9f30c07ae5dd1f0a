"""Distributed workers: runs go through a message broker (Celery over RabbitMQ or Redis) to
any number of worker hosts, with a PostgreSQL ledger that every host shares.

    from statefn.distributed import Client

    with Client(broker="amqp://localhost", ledger="postgresql://localhost/statefn") as client:
        run_id = client.submit(plan, state)
        outcome = client.wait(run_id)              # a RunOutcome, read from the ledger
        client.cancel(run_id)                      # from any host, through the ledger

A worker host runs ``statefn worker`` (``Worker(WorkerSettings(...)).run()``). Every run
reaches exactly one final reason whatever dies; a run delivered again resumes after its last
recorded step; a superseded delivery cannot write. See docs/distributed.md.
"""

from ._broker import BrokerError
from ._client import Client
from ._worker import Worker, WorkerSettings

__all__ = ["BrokerError", "Client", "Worker", "WorkerSettings"]
