"""What Litestar cannot see for the OpenAPI document: request bodies, exports and refusals.

Handlers take the raw body and decode it with msgspec decoders built once (so a bad
field is a 422 naming it, and a batch can refuse one item and keep the rest); Litestar
therefore cannot see the body's type. This module renders the body Structs with
msgspec's JSON Schema into the document's components and points each operation at its
body. The exports (JSON, CSV or XLSX) get their three media types the same way.

Refusals are ErrorOut. The ones every operation of a kind may answer come from the
middleware and the exception handlers, and `document_refusals` adds them to each
operation: 401 / 403 / 429 for a route that needs a key (the public ones, as
`domain/access.py` says, declare no security), 422 for parameters or a body, 400 and 413
for a body, 503 while storage is away. Litestar's own 400 (the shape of its
ValidationException, which the app answers as a 422 ErrorOut) goes. What one route
refuses besides (its 404 or 409) stands at the route, as `refusals({...})`.
"""

import dataclasses
import re
from http import HTTPStatus
from typing import Any

import msgspec
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    OpenAPI,
    OpenAPIFormat,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    RequestBody,
    Schema,
)

from points_service.domain.access import PUBLIC, needed_scope
from points_service.http.schemas import ErrorOut

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

_ALIASES = {f.metadata.get("alias", f.name): f.name for f in dataclasses.fields(Schema) if f.init}
_NESTED_ONE = {"items", "additional_properties", "contains", "property_names", "schema_not"}
_NESTED_MANY = {"any_of", "all_of", "one_of", "prefix_items"}


def _schema(raw: Any) -> Schema | Reference:
    if "$ref" in raw:
        return Reference(ref=raw["$ref"])
    values: dict[str, Any] = {}
    for key, given in raw.items():
        name = _ALIASES.get(key)
        if name is None:
            continue
        value = given
        if name == "properties":
            value = {k: _schema(v) for k, v in given.items()}
        elif name in _NESTED_ONE and isinstance(given, dict):
            value = _schema(given)
        elif name in _NESTED_MANY:
            value = [_schema(v) for v in given]
        elif name == "type":
            value = OpenAPIType(given)
        elif name == "format":
            value = OpenAPIFormat(given)
        values[name] = value
    return Schema(**values)


def body_components(*models: type) -> dict[str, Schema]:
    _, components = msgspec.json.schema_components(
        models, ref_template="#/components/schemas/{name}"
    )
    schemas = {}
    for name, raw in components.items():
        schema = _schema(raw)
        assert isinstance(schema, Schema), "a component is a schema, not a reference"
        schemas[name] = schema
    return schemas


def with_body(model: type, required: bool = True) -> type[Operation]:
    """An Operation class whose request body is `model` (a component from above); one
    not `required` may be left out (its fields' defaults)."""

    @dataclasses.dataclass
    class BodyOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(
                content={
                    "application/json": OpenAPIMediaType(
                        schema=Reference(ref=f"#/components/schemas/{model.__name__}")
                    )
                },
                required=required,
            )

    return BodyOperation


def with_export(model: type) -> type[Operation]:
    """An Operation class for an export: `model` as JSON, or the table as CSV or XLSX
    (`?format=`). `model` is a component (app.py adds it)."""

    @dataclasses.dataclass
    class ExportOperation(Operation):
        def __post_init__(self) -> None:
            ok = (self.responses or {}).get("200")
            if isinstance(ok, OpenAPIResponse):
                ok.content = {
                    "application/json": OpenAPIMediaType(schema=_ref(model.__name__)),
                    "text/csv": OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING)),
                    XLSX: OpenAPIMediaType(
                        schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
                    ),
                }

    return ExportOperation


def _ref(name: str) -> Reference:
    return Reference(ref=f"#/components/schemas/{name}")


def created(model: type) -> dict[int, ResponseSpec]:
    """The 201 of a PUT that made what it names (200 replaced it)."""
    return {201: ResponseSpec(model, description="Created", generate_examples=False)}


def refusals(described: dict[int, str]) -> dict[int, ResponseSpec]:
    """A route's own refusals, {status: when}, as ErrorOut responses."""
    return {
        status: ResponseSpec(ErrorOut, description=text, generate_examples=False)
        for status, text in described.items()
    }


_RETRY_AFTER = {
    "Retry-After": OpenAPIHeader(
        schema=Schema(type=OpenAPIType.INTEGER), required=True, description="seconds"
    )
}
_CHALLENGE = {
    "WWW-Authenticate": OpenAPIHeader(schema=Schema(type=OpenAPIType.STRING), required=True)
}
_BODY = {
    400: ("The body is not JSON (`malformed_json`)", None),
    413: ("The body is larger than the limit (`too_large`)", None),
}
_INPUT = {422: ("A parameter or field is invalid (`invalid`); `field` names it", None)}
_KEYED = {
    401: ("No API key, or one not known (`unauthorized`)", _CHALLENGE),
    403: ("The key lacks the route's scope (`forbidden`)", None),
    429: (
        "Too many requests (`rate_limited`): the key's, or (events) the informant's",
        _RETRY_AFTER,
    ),
    503: ("Redis or the database is unreachable (`unavailable`); nothing applied", _RETRY_AFTER),
}
_METHODS = ("get", "put", "post", "delete", "patch")
_PARAMETER = re.compile(r"\{[^/}]+\}")


def document_refusals(document: OpenAPI) -> None:
    """Add the refusals every operation of a kind may answer (see the module's doc)."""
    schemas = document.components.schemas
    if schemas is not None and "ErrorOut" not in schemas:
        schemas.update(body_components(ErrorOut))
    for path, item in (document.paths or {}).items():
        for method in _METHODS:
            operation: Operation | None = getattr(item, method, None)
            if operation is None:
                continue
            responses = dict(operation.responses or {})
            responses.pop("400", None)
            common: dict[int, tuple[str, dict[str, OpenAPIHeader] | None]] = {}
            if operation.request_body is not None:
                common |= _BODY
            if operation.parameters or operation.request_body is not None:
                common |= _INPUT
            if needed_scope(method.upper(), _PARAMETER.sub("x", path)) == PUBLIC:
                operation.security = []
            else:
                common |= _KEYED
            for status, (text, headers) in common.items():
                responses.setdefault(
                    str(status),
                    OpenAPIResponse(
                        description=text or HTTPStatus(status).phrase,
                        headers=dict(headers) if headers else None,
                        content={"application/json": OpenAPIMediaType(schema=_ref("ErrorOut"))},
                    ),
                )
            operation.responses = dict(sorted(responses.items()))
