"""The Celery app of statefn's workers and clients: one task, the queues, the broker settings.

One Celery task is one run. Its message carries the run id and what the run needs (plan,
input state, options); the ledger, not the broker, says whether the run still needs work.
The settings make a delivery safe to lose: a message is acknowledged only after its task
returned (``acks_late``), given back when the worker dies (``task_reject_on_worker_lost``),
and a worker holds one message per free thread (prefetch 1). On RabbitMQ each queue is a
quorum queue with a delivery limit (a backstop: the ledger ends poison runs first) and a
dead-letter exchange, ``statefn.dead``, that routes to ``<queue>.dead``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import Celery
from kombu.connection import Connection
from kombu.entity import Exchange, Queue

from statefn._errors import StatefnError
from statefn.ledger._url import mask_url

__all__ = [
    "DEAD_LETTER_EXCHANGE",
    "TASK_NAME",
    "BrokerError",
    "check_broker",
    "make_app",
    "publish",
]

TASK_NAME = "statefn.run"
DEAD_LETTER_EXCHANGE = "statefn.dead"
# The broker's own limit on deliveries of one message: far above the ledger's
# ``max_deliveries``, so that the ledger records a poison run's end before the broker drops
# its message.
BROKER_DELIVERY_LIMIT = 50
# Redis gives an unacknowledged message to another worker after this many seconds, whether
# or not the worker that holds it is alive (see docs/distributed.md).
REDIS_VISIBILITY_TIMEOUT_S = 3600
_CONNECT_TIMEOUT_S = 5


class BrokerError(StatefnError):
    """The message broker cannot be reached (its URL is shown masked)."""

    name = "BrokerError"
    severity = "exception"


def _is_amqp(broker: str) -> bool:
    return broker.split("://", 1)[0].lower() in ("amqp", "amqps", "pyamqp")


def _queue(name: str, amqp: bool) -> Queue:
    if not amqp:
        return Queue(name, Exchange(name, type="topic"), routing_key=name)
    arguments = {
        "x-queue-type": "quorum",
        "x-delivery-limit": BROKER_DELIVERY_LIMIT,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-dead-letter-routing-key": name,
    }
    return Queue(name, Exchange(name, type="topic"), routing_key=name, queue_arguments=arguments)


def dead_letter_queue(name: str) -> Queue:
    """Where RabbitMQ puts the messages of queue ``name`` that were dead-lettered."""
    return Queue(
        f"{name}.dead",
        Exchange(DEAD_LETTER_EXCHANGE, type="direct"),
        routing_key=name,
        queue_arguments={"x-queue-type": "quorum"},
    )


def make_app(
    broker: str, queues: Sequence[str], *, visibility_timeout_s: float | None = None
) -> Celery:
    """A Celery app on ``broker`` that knows ``queues``."""
    amqp = _is_amqp(broker)
    options: dict[str, Any] = {"confirm_publish": True}
    if not amqp:
        visibility = visibility_timeout_s or REDIS_VISIBILITY_TIMEOUT_S
        options = {
            "visibility_timeout": visibility,
            # Look for messages past their visibility timeout a few times per timeout (at
            # most every 10 s), each look a scan: kombu's default scans every 100 s.
            "unacked_restore_interval": max(1.0, min(10.0, visibility / 4)),
            "unacked_restore_throttle": 1,
        }
    app = Celery("statefn", broker=broker, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_queues=[_queue(name, amqp) for name in queues],
        task_default_queue=queues[0],
        broker_transport_options=options,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        worker_enable_remote_control=False,
        worker_send_task_events=False,
    )
    return app


def check_broker(app: Celery) -> None:
    """Connect to the app's broker once; ``BrokerError`` (URL masked) if it does not answer.
    On RabbitMQ, also declare the dead-letter exchange and queues."""
    url = str(app.conf.broker_url)
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(
                max_retries=1, interval_start=0, timeout=_CONNECT_TIMEOUT_S
            )
            if _is_amqp(url):
                _declare_dead_letters(connection, app)
    except Exception as error:
        detail = mask_url(
            str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        )
        raise BrokerError(
            f"The broker {mask_url(url)} could not be reached: {detail}",
            fix="Check that RabbitMQ (amqp://) or Redis (redis://) is running at that address "
            "and that the URL, user and password are right",
        ) from None


def _declare_dead_letters(connection: Connection, app: Celery) -> None:
    channel = connection.default_channel
    for queue in app.conf.task_queues:
        dead_letter_queue(queue.name)(channel).declare()


def publish(app: Celery, run_id: str, queue: str, body: dict[str, Any]) -> None:
    """Send the run's message to ``queue``; returns once the broker has it (RabbitMQ
    confirms the publish)."""
    app.send_task(TASK_NAME, args=[run_id, body], queue=queue, routing_key=queue, task_id=run_id)
