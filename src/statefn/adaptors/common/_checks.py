"""Operations that check state: ``assert_`` and ``validate`` (JSON Schema)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from statefn.adaptor import Operation, State, adaptor_error, operation, resolve

from ._paths import query_first

if TYPE_CHECKING:
    import jsonschema

__all__ = ["assert_", "validate"]


@operation
def assert_(expression: Any, message: Any = None) -> Operation:
    """Fail the step with an ``AdaptorError`` unless ``expression`` is truthy; else pass state on.

    ``expression`` and ``message`` may be lazy. Named ``assert_`` because ``assert`` is a
    Python keyword.

    Example: ``assert_(lambda state: len(state["data"]) > 0, "no patients were fetched")``
    """

    def run(state: State) -> State:
        value = resolve(expression, state)
        if not value:
            text = resolve(message, state)
            raise adaptor_error(text or f"assertion statement failed with {value!r}")
        return state

    return run


@operation
def validate(schema: Any = "schema", data: Any = "data") -> Operation:
    """Check ``data`` against the JSON Schema ``schema``; problems go to
    ``state["validation_errors"]``.

    ``schema`` and ``data`` are each a value, a function of state, or a string JSONPath
    into state (by default ``state["schema"]`` and ``state["data"]``). The draft is chosen
    by the schema's ``$schema`` (2020-12 when absent). Each failed check appends
    ``{"data": state["data"], "errors": [{"message", "path", "keyword"}, ...]}``; a
    state that passes gets an empty list if it had none. An invalid schema fails the step,
    and so does a ``$ref`` that points outside the schema: references are followed only
    within it (``#/$defs/...``), never to a file or a URL.

    Example: ``each("$.data[*]", validate(PATIENT_SCHEMA))``
    """

    def run(state: State) -> State:
        # Imported here: jsonschema takes ~60 ms to import, which every job would pay.
        import jsonschema
        import referencing
        from jsonschema.exceptions import SchemaError
        from referencing.exceptions import Unresolvable

        resolved_schema = _lookup(schema, state)
        if not isinstance(resolved_schema, dict):
            raise adaptor_error(
                f"validate: no schema found at {schema!r}"
                if isinstance(schema, str)
                else "validate: the schema must be a JSON object",
                fix="Pass the schema itself, or a path to it in state, e.g. validate('$.schema')",
            )
        checker = jsonschema.validators.validator_for(resolved_schema)
        try:
            checker.check_schema(resolved_schema)
        except SchemaError as error:
            raise adaptor_error(f"validate: invalid schema: {error.message}") from None
        # An empty registry: jsonschema's default one fetches any other $ref with urlopen,
        # which reads local files (file://) and the network for job code.
        validator = checker(resolved_schema, registry=referencing.Registry())
        try:
            found = sorted(validator.iter_errors(_lookup(data, state)), key=_where)
        except Unresolvable as error:
            raise adaptor_error(
                f"validate: the schema's $ref {error.ref!r} cannot be resolved",
                fix="Put what it refers to in the schema itself (under $defs) and refer to it "
                "as #/$defs/NAME: references to files and URLs are not followed",
            ) from None
        errors = list(state.get("validation_errors") or [])
        if found:
            problems = [
                {"message": error.message, "path": _where(error), "keyword": error.validator}
                for error in found
            ]
            errors.append({"data": state.get("data"), "errors": problems})
        return {**state, "validation_errors": errors}

    return run


def _lookup(value: Any, state: State) -> Any:
    resolved = resolve(value, state)
    return query_first(resolved, state) if isinstance(resolved, str) else resolved


def _where(error: jsonschema.ValidationError) -> str:
    # A JSON Pointer to the failing value ("" is the whole document), as ajv reports it.
    return "".join(f"/{part}" for part in error.absolute_path)
