"""The ``greet`` adaptor: an example of how a statefn adaptor is written.

Jobs that list ``greet`` in their step's ``adaptors`` can call every name in ``__all__``.
"""

from __future__ import annotations

from typing import Any

from statefn.adaptor import (
    Operation,
    State,
    adaptor_error,
    compose_next_state,
    log_line,
    operation,
    resolve,
)

__all__ = ["greet"]


@operation
def greet(name: Any, *, greeting: Any = "Hello") -> Operation:
    """Put a greeting for ``name`` in ``data`` (the previous ``data`` goes to ``references``).

    ``name`` and ``greeting`` may be lazy: ``greet(S.data.name)``. The operation logs the
    greeting to the job's log; an empty name fails the step with an ``AdaptorError``.

    Example: ``greet("Ada")`` sets ``data`` to ``{"greeting": "Hello, Ada!"}``
    """

    def run(state: State) -> State:
        who = resolve(name, state)
        if not who:
            raise adaptor_error(
                "greet: the name is empty",
                fix="Pass a name, e.g. greet('Ada') or greet(S.data.name)",
                name=who,
            )
        text = f"{resolve(greeting, state)}, {who}!"
        log_line("info", text)
        return compose_next_state(state, {"greeting": text})

    return run
