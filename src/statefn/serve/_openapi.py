"""The OpenAPI 3.1 document of the JSON API, written by hand so that it says exactly what
the handlers in ``_api`` and ``_hooks`` do (and a property test holds them to it)."""

from __future__ import annotations

from typing import Any

from statefn.ledger import STATUSES

from .._version import __version__

__all__ = ["openapi_document"]

_NULLABLE_STRING = {"type": ["string", "null"]}
_NULLABLE_NUMBER = {"type": ["number", "null"]}
_ERROR_RECORD = {"type": ["object", "null"], "description": "an error record (contract section 4)"}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["status", "message"],
                "properties": {
                    "status": {"type": "integer"},
                    "message": {"type": "string"},
                    "errors": {"type": "array", "items": {"type": "string"}},
                    "line": {"type": "integer"},
                    "column": {"type": "integer"},
                    "position": {"type": "integer"},
                    "retry_after_s": {"type": "integer"},
                },
            }
        },
    },
    "RunId": {
        "type": "object",
        "required": ["run_id"],
        "properties": {"run_id": {"type": "string"}},
    },
    "Step": {
        "type": "object",
        "required": ["run_id", "key", "step_id", "seq", "started_at", "reason"],
        "properties": {
            "run_id": {"type": "string"},
            "key": {"type": "string", "description": "this run of the step: z, z-1, ..."},
            "step_id": {"type": "string"},
            "seq": {"type": "integer"},
            "started_at": {"type": "string"},
            "finished_at": _NULLABLE_STRING,
            "reason": _NULLABLE_STRING,
            "duration_ms": _NULLABLE_NUMBER,
            "error": _ERROR_RECORD,
            "mem": {"type": ["object", "null"]},
            "input_ref": _NULLABLE_STRING,
            "input_withheld": _NULLABLE_STRING,
            "output_ref": _NULLABLE_STRING,
            "output_withheld": _NULLABLE_STRING,
        },
    },
    "Run": {
        "type": "object",
        "required": ["run_id", "workflow", "status", "reason", "submitted_at", "steps"],
        "properties": {
            "run_id": {"type": "string"},
            "plan_id": _NULLABLE_STRING,
            "workflow": _NULLABLE_STRING,
            "engine_id": _NULLABLE_STRING,
            "attempt": {"type": "integer"},
            "status": {"type": "string", "enum": list(STATUSES)},
            "reason": {"type": ["string", "null"], "description": "the final reason, or null"},
            "submitted_at": {"type": "string"},
            "started_at": _NULLABLE_STRING,
            "finished_at": _NULLABLE_STRING,
            "duration_ms": _NULLABLE_NUMBER,
            "error": _ERROR_RECORD,
            "input_ref": _NULLABLE_STRING,
            "input_withheld": _NULLABLE_STRING,
            "state_ref": _NULLABLE_STRING,
            "state_withheld": _NULLABLE_STRING,
            "steps": {"type": "array", "items": {"$ref": "#/components/schemas/Step"}},
        },
    },
    "LogLine": {
        "type": "object",
        "required": ["run_id", "seq", "time", "level", "step_id", "message"],
        "properties": {
            "run_id": {"type": "string"},
            "seq": {"type": "integer"},
            "time": {"type": "string"},
            "level": {"type": "string"},
            "step_id": _NULLABLE_STRING,
            "message": {"type": "string"},
        },
    },
    "Workflow": {
        "type": "object",
        "required": ["name", "file", "valid", "errors", "steps", "edges", "triggers", "last_run"],
        "properties": {
            "name": {"type": "string"},
            "file": {"type": "string", "description": "relative to the project folder"},
            "valid": {"type": "boolean"},
            "errors": {"type": "array", "items": {"type": "string"}},
            "steps": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "trigger"],
                    "properties": {
                        "id": {"type": "string"},
                        "name": _NULLABLE_STRING,
                        "trigger": {"type": "boolean"},
                        "adaptors": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
            "edges": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["from", "to"],
                    "properties": {
                        "from": {"type": "string"},
                        "to": {"type": "string"},
                        "condition": _NULLABLE_STRING,
                        "label": _NULLABLE_STRING,
                        "disabled": {"type": "boolean"},
                    },
                },
            },
            "triggers": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["step", "webhook", "signed", "cron", "next_tick"],
                    "properties": {
                        "step": {"type": "string"},
                        "webhook": {"type": "boolean"},
                        "signed": {"type": "boolean"},
                        "cron": _NULLABLE_STRING,
                        "next_tick": {
                            "type": ["string", "null"],
                            "description": "when the cron schedule fires next (UTC)",
                        },
                    },
                },
            },
            "last_run": {"oneOf": [{"$ref": "#/components/schemas/Run"}, {"type": "null"}]},
        },
    },
}


def _json(schema: str | dict[str, Any], description: str) -> dict[str, Any]:
    body = {"$ref": f"#/components/schemas/{schema}"} if isinstance(schema, str) else schema
    return {"description": description, "content": {"application/json": {"schema": body}}}


def _errors(*statuses: int) -> dict[str, Any]:
    meaning = {
        400: "a malformed request: a body that is not JSON (with its position) or nests too "
        "deep, a bad parameter",
        401: "no token, a wrong token, or a webhook signature that does not match",
        404: "no such workflow, run, step run or trigger",
        409: "the request conflicts with the run (it has ended, it runs elsewhere, ...)",
        413: "the body is over the server's limit (--max-body)",
        422: "the workflow does not validate (its errors are listed)",
        429: "too many wrong tokens from the client's address of late: wait Retry-After seconds",
        503: "the ledger (or the broker) did not take the run: nothing was started",
    }
    return {str(status): _json("Error", meaning[status]) for status in (401, 429, *statuses)}


def _path(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


_RUN_ID = _path("run_id", "a run id")
_ANY_JSON: dict[str, Any] = {}

_PATHS: dict[str, Any] = {
    "/api/workflows": {
        "get": {
            "summary": "The served workflows: name, file, steps, edges, triggers, last run",
            "operationId": "listWorkflows",
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["workflows"],
                        "properties": {
                            "workflows": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/Workflow"},
                            }
                        },
                    },
                    "every workflow file of the project, valid or with its errors",
                ),
                **_errors(),
            },
        }
    },
    "/api/workflows/{name}/runs": {
        "post": {
            "summary": "Start a run; answered once the ledger has recorded it",
            "operationId": "startRun",
            "parameters": [_path("name", "the workflow's name")],
            "requestBody": {
                "required": False,
                "description": 'the input state (an object; default {"data": {}})',
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "responses": {
                "202": _json("RunId", "the run is recorded"),
                **_errors(400, 404, 413, 422, 503),
            },
        }
    },
    "/api/runs": {
        "get": {
            "summary": "Runs, newest first; page on with before=next_before",
            "operationId": "listRuns",
            "parameters": [
                _query("workflow", "only runs of this workflow", {"type": "string"}),
                _query(
                    "reason",
                    "only runs with this status",
                    {"type": "string", "enum": list(STATUSES)},
                ),
                _query(
                    "limit",
                    "at most this many (default 50)",
                    {"type": "integer", "minimum": 1, "maximum": 500},
                ),
                _query(
                    "before",
                    "only runs submitted before this run (an id; one no run has is a 400)",
                    {"type": "string"},
                ),
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["runs", "next_before"],
                        "properties": {
                            "runs": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/Run"},
                            },
                            "next_before": _NULLABLE_STRING,
                        },
                    },
                    "a page of runs (their steps not filled in); next_before is null on "
                    "the last page",
                ),
                **_errors(400),
            },
        }
    },
    "/api/runs/{run_id}": {
        "get": {
            "summary": "One run with its steps in the order they started",
            "operationId": "getRun",
            "parameters": [_RUN_ID],
            "responses": {"200": _json("Run", "the run"), **_errors(404)},
        }
    },
    "/api/runs/{run_id}/logs": {
        "get": {
            "summary": "The run's log lines; with Accept: text/event-stream, follow the run",
            "operationId": "getRunLogs",
            "parameters": [_RUN_ID],
            "responses": {
                "200": {
                    "description": "the log lines (JSON), or server-sent events: log, step "
                    "and, once the run has ended, end",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["logs"],
                                "properties": {
                                    "logs": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/LogLine"},
                                    }
                                },
                            }
                        },
                        "text/event-stream": {"schema": {"type": "string"}},
                    },
                },
                **_errors(404),
            },
        }
    },
    "/api/runs/{run_id}/steps/{key}/state": {
        "get": {
            "summary": "A step run's input or output state",
            "operationId": "getStepState",
            "parameters": [
                _RUN_ID,
                _path("key", "the step run's key (the step id, or z-1 for its second run)"),
                _query(
                    "which",
                    "input or output (default)",
                    {"type": "string", "enum": ["input", "output"]},
                ),
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["state", "withheld"],
                        "properties": {"state": _ANY_JSON, "withheld": _NULLABLE_STRING},
                    },
                    "the state (null if none was recorded; withheld says why one was not stored)",
                ),
                **_errors(400, 404),
            },
        }
    },
    "/api/runs/{run_id}/retry": {
        "post": {
            "summary": "A new run of the workflow as it is on disk now, from a step with its "
            "recorded input state (or from the start with the run's input)",
            "operationId": "retryRun",
            "parameters": [
                _RUN_ID,
                _query("from", "the step run's key to start from", {"type": "string"}),
            ],
            "responses": {
                "202": _json("RunId", "the new run is recorded"),
                **_errors(404, 409, 422, 503),
            },
        }
    },
    "/api/runs/{run_id}/cancel": {
        "post": {
            "summary": "Cancel a queued or started run held by this server",
            "operationId": "cancelRun",
            "parameters": [_RUN_ID],
            "responses": {
                "202": _json(
                    {
                        "type": "object",
                        "required": ["cancelled"],
                        "properties": {"cancelled": {"type": "boolean"}},
                    },
                    "the run is being cancelled",
                ),
                **_errors(404, 409),
            },
        }
    },
    "/hooks/{workflow}/{trigger}": {
        "post": {
            "summary": "A webhook: the JSON body becomes data of the input state",
            "operationId": "receiveHook",
            "description": "A trigger with a secret takes requests signed with it (no token); "
            "one without needs the token on a server that has one. A trigger of a workflow "
            "that does not validate is paused: 422 with the workflow's errors.",
            "security": [{}, {"token": []}],
            "parameters": [
                _path("workflow", "the workflow's name"),
                _path("trigger", "the id of a trigger step with webhook"),
                {
                    "name": "X-Statefn-Signature",
                    "in": "header",
                    "required": False,
                    "description": "sha256=<HMAC-SHA256 of the body, hex>: required when the "
                    "trigger has a secret",
                    "schema": {"type": "string"},
                },
            ],
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": _ANY_JSON}},
            },
            "responses": {
                "202": _json("RunId", "the run is recorded"),
                **_errors(400, 404, 413, 422, 503),
            },
        }
    },
    "/healthz": {
        "get": {
            "summary": "200 when the ledger and the engine answer, 503 otherwise",
            "operationId": "health",
            "security": [],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["status"],
                        "properties": {"status": {"const": "ok"}},
                    },
                    "the server works",
                ),
                "503": _json(
                    {
                        "type": "object",
                        "required": ["status", "problem"],
                        "properties": {
                            "status": {"const": "unavailable"},
                            "problem": {"type": "string"},
                        },
                    },
                    "the ledger or the engine does not answer",
                ),
            },
        }
    },
}


def openapi_document() -> dict[str, Any]:
    """The document served at ``/openapi.json``."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "statefn serve",
            "version": __version__,
            "description": "Runs, workflows, webhooks and health of a statefn server "
            "(docs/serve.md). With a token, send Authorization: Bearer TOKEN.",
        },
        "paths": _PATHS,
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"token": []}],
    }
