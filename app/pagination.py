"""Lists: `?page=1&perPage=20` (perPage at most 100) -> {items, page, perPage, total}."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from app import wire

MAX_PER_PAGE = 100


class PageArgs(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    per_page = fields.Integer(
        data_key="perPage", load_default=20, validate=validate.Range(min=1, max=MAX_PER_PAGE)
    )


_page_schemas: dict[type[Schema], type[Schema]] = {}


def page_schema(item_schema: type[Schema]) -> type[Schema]:
    """Return the schema of a page of `item_schema` items (one class per item schema, for OpenAPI)."""
    if item_schema not in _page_schemas:
        name = item_schema.__name__.removesuffix("Schema") + "PageSchema"
        _page_schemas[item_schema] = type(
            name,
            (Schema,),
            {
                "items": fields.List(fields.Nested(item_schema), required=True),
                "page": fields.Integer(required=True),
                "per_page": fields.Integer(data_key="perPage", required=True),
                "total": fields.Integer(required=True),
            },
        )
    return _page_schemas[item_schema]


def paginate(queryset: Any, page: int, per_page: int) -> dict[str, Any]:
    """Return one page of a query set, with the total count. The query set's order must end with a
    unique field (the id), or pages may repeat or skip documents that sort equal. The page's items are
    read as stored (app.wire), for the response schema to dump without building documents."""
    total = queryset.count()
    items = wire.read(queryset.skip((page - 1) * per_page).limit(per_page))
    return {"items": items, "page": page, "per_page": per_page, "total": total}
