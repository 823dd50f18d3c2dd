"""Lightsail's JSON 1.1 wire format in the emulator: request bodies read and checked against
botocore's input shapes, responses and errors written as the service writes them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

import aiohttp
import aiohttp.http_exceptions
from aiohttp import web

from batchcopy.emulator.sim import ApiError

__all__ = [
    "CONTENT_TYPE",
    "body",
    "check",
    "drop",
    "error",
    "input_shapes",
    "json_object",
    "respond",
]

CONTENT_TYPE = "application/x-amz-json-1.1"


def json_object(raw: bytes) -> dict[str, Any]:
    """A request body: a JSON object (an empty body is an empty one)."""
    try:
        params = json.loads(raw) if raw.strip() else {}
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise ApiError("SerializationException", "The request body is not valid JSON.") from None
    if not isinstance(params, dict):
        raise ApiError("SerializationException", "The request body must be a JSON object.")
    return params


def input_shapes(operations: Iterable[str]) -> dict[str, Any]:
    """botocore's input shapes of Lightsail's ``operations``, to check requests against."""
    from botocore.loaders import create_loader
    from botocore.model import ServiceModel

    model = ServiceModel(create_loader().load_service_model("lightsail", "service-2"), "lightsail")
    return {name: model.operation_model(name).input_shape for name in operations}


_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "boolean": bool,
    "integer": int,
    "long": int,
    "list": list,
    "structure": dict,
    "map": dict,
    "double": (int, float),
    "float": (int, float),
    "timestamp": (int, float, str),
}


def _has_type(value: Any, type_name: str) -> bool:
    if type_name in ("integer", "long") and isinstance(value, bool):
        return False
    return isinstance(value, _JSON_TYPES.get(type_name, object))


def check(value: Any, shape: Any, path: str) -> None:
    """Required members and JSON types, as the service's request validation does."""
    if not _has_type(value, shape.type_name):
        raise ApiError(
            "SerializationException",
            f"{path or 'request'}: expected a {shape.type_name}, got {type(value).__name__}.",
        )
    if shape.type_name == "structure":
        for name in shape.required_members:
            if value.get(name) is None:
                raise ApiError("InvalidInputException", f"{path}{name} is required.")
        for name, member in shape.members.items():
            if value.get(name) is not None:
                check(value[name], member, f"{path}{name}.")
    elif shape.type_name == "list":
        for i, item in enumerate(value):
            check(item, shape.member, f"{path.rstrip('.')}[{i}].")


async def body(request: web.Request) -> bytes:
    """The request body; one that cannot be read (bad encoding, cut short) is the client's
    fault: a 400, never a retryable 500."""
    try:
        return await request.read()
    except (aiohttp.ClientPayloadError, aiohttp.http_exceptions.HttpProcessingError) as exc:
        raise ApiError(
            "SerializationException", f"The request body cannot be read: {exc}"
        ) from None


def respond(status: int, body: Any) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body, separators=(",", ":")).encode(),
        headers={"Content-Type": CONTENT_TYPE, "x-amzn-RequestId": str(uuid.uuid4())},
    )


def error(status: int, code: str, message: str) -> web.Response:
    return respond(status, {"__type": code, "message": message})


def drop(request: web.Request) -> web.StreamResponse:
    """Close the connection without an answer, as a lost response looks to the client."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500)  # never reaches the client: the transport is closed
