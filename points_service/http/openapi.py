"""Request bodies in the OpenAPI document.

Handlers take the raw body and decode it with msgspec decoders built once (so a bad
field is a 422 naming it, and a batch can refuse one item and keep the rest); Litestar
therefore cannot see the body's type. This module renders the body Structs with
msgspec's JSON Schema into the document's components and points each operation at its
body.
"""

import dataclasses
from typing import Any

import msgspec
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    Reference,
    RequestBody,
    Schema,
)

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


def with_body(model: type) -> type[Operation]:
    """An Operation class whose request body is `model` (a component from above)."""

    @dataclasses.dataclass
    class BodyOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(
                content={
                    "application/json": OpenAPIMediaType(
                        schema=Reference(ref=f"#/components/schemas/{model.__name__}")
                    )
                },
                required=True,
            )

    return BodyOperation
