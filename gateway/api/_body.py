"""Request bodies decoded straight from their bytes into canonical Structs.

For ``data: T`` Litestar decodes the JSON into dicts and lists, then converts those into its
signature model, calling its generic decoder hook for every money value: two passes over the body
and 12-20 % of an accepted journal's CPU (py-spy, in-process). A DTO is Litestar's documented way
to take over a body's decoding. This one does no field mapping at all: it hands the bytes to the
canonical decoder (one pass, the decoder every other part of the hub uses) and documents the body
with the Struct's own schema, so the OpenAPI documents stay as they were.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from litestar.dto import AbstractDTO, DTOFieldDefinition
from litestar.openapi.spec import Reference, Schema
from litestar.typing import FieldDefinition

from canonical import decoder, money_dec_hook
from gateway.problems import ProblemError, validation_problem
from policies.limits import malformed_json_detail

if TYPE_CHECKING:  # Litestar's own types for these hooks live in private modules: annotations only
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.dto._backend import DTOBackend

__all__ = ["CanonicalBody", "decode_body"]

T = TypeVar("T")


def decode_body(body: bytes, type_: type[T]) -> T:
    """A JSON body as ``type_``, or the 400 problem naming what is wrong with it."""
    try:
        return decoder(type_).decode(body)
    except msgspec.ValidationError as exc:
        raise validation_problem(exc, type_) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ProblemError(400, "malformed-request", malformed_json_detail(exc)) from None


class CanonicalBody(AbstractDTO[T]):
    """Use as ``@post(..., dto=CanonicalBody[Model], return_dto=None)`` with ``data: JSONBody[Model]``."""

    @classmethod
    def create_for_field_definition(
        cls, field_definition: FieldDefinition, handler_id: str, backend_cls: type[DTOBackend] | None = None
    ) -> None:
        """Nothing to build: there is no transfer model, the Struct is decoded as it is."""

    @classmethod
    def create_openapi_schema(
        cls, field_definition: FieldDefinition, handler_id: str, schema_creator: SchemaCreator
    ) -> Reference | Schema:
        return schema_creator.for_field_definition(field_definition)  # what Litestar documents without a DTO

    @classmethod
    def generate_field_definitions(cls, model_type: type[Any]) -> Generator[DTOFieldDefinition, None, None]:
        yield from ()

    @classmethod
    def detect_nested_field(cls, field_definition: FieldDefinition) -> bool:
        return False

    def decode_bytes(self, value: bytes) -> T:
        return decode_body(value, self.model_type)

    def decode_builtins(self, value: dict[str, Any]) -> T:
        try:
            decoded: T = msgspec.convert(value, self.model_type, dec_hook=money_dec_hook)
        except msgspec.ValidationError as exc:
            raise validation_problem(exc, self.model_type) from None
        return decoded
