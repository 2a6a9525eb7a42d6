"""The Agent Server's store API over LangGraph's own Postgres store, each user's apart.

Items live under the caller's own namespace (``("users", <user>, ...)`` in the store), so
``put``, ``get``, ``search`` and ``namespaces`` only ever reach the caller's items, and never
the generation cache the runs keep in the same store. Clients see and name their namespaces
without that prefix, as on the official server.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response
from langgraph.store.base import Item
from pydantic import AfterValidator, Field, field_validator

from api.body import StrictJsonRoute
from api.context import ApiContext, Ctx, User
from api.schemas import MAX_OFFSET, _Body

router = APIRouter(prefix="/store", tags=["store"], route_class=StrictJsonRoute)

_USERS = "users"
_MAX_LABELS = 20
_OPERATORS = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"}


def _checked(namespace: list[str]) -> list[str]:
    if len(namespace) > _MAX_LABELS:
        raise ValueError(f"a namespace has at most {_MAX_LABELS} labels")
    for label in namespace:
        if not label or "." in label or len(label) > 200:
            raise ValueError(f"invalid namespace label {label!r}: 1-200 characters, no periods")
    return namespace


Namespace = Annotated[list[str], AfterValidator(_checked)]


class ItemPut(_Body):
    """``PUT /store/items``."""

    namespace: Namespace = Field(min_length=1)
    key: str = Field(min_length=1, max_length=200)
    value: dict[str, Any]
    index: bool | list[str] | None = None
    ttl: float | None = None

    @field_validator("ttl")
    @classmethod
    def _no_ttl(cls, ttl: float | None) -> None:
        if ttl is not None:
            raise ValueError("ttl is not kept here: an item stays until it is deleted")


class ItemDelete(_Body):
    """``DELETE /store/items``."""

    namespace: Namespace = Field(min_length=1)
    key: str = Field(min_length=1, max_length=200)


class ItemSearch(_Body):
    """``POST /store/items/search`` (``query`` needs an embedding index, which this has not)."""

    namespace_prefix: Namespace = Field(default_factory=list)
    filter: dict[str, Any] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    query: str | None = None

    @field_validator("filter")
    @classmethod
    def _operators(cls, filter: dict[str, Any] | None) -> dict[str, Any] | None:
        """A value that is an object compares with the store's operators, and only those."""
        for key, value in (filter or {}).items():
            if isinstance(value, dict) and (unknown := sorted(set(value) - _OPERATORS)):
                raise ValueError(
                    f"filter.{key}: unknown operator {unknown[0]!r} (known: "
                    f"{', '.join(sorted(_OPERATORS))})"
                )
        return filter

    @field_validator("query")
    @classmethod
    def _no_query(cls, query: str | None) -> None:
        if query:
            raise ValueError("the store has no embedding index: search by namespace and filter")


class NamespaceList(_Body):
    """``POST /store/namespaces``."""

    prefix: Namespace | None = None
    suffix: Namespace | None = None
    max_depth: int | None = Field(None, ge=1, le=_MAX_LABELS)
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)


def _own(user: str, namespace: list[str]) -> tuple[str, ...]:
    return (_USERS, user, *namespace)


def _item_json(item: Item) -> dict[str, Any]:
    return {**item.dict(), "namespace": list(item.namespace[2:])}


def _store(ctx: ApiContext) -> Any:
    return ctx.services.persistence.store


@router.put("/items", status_code=204)
async def put_item(body: ItemPut, ctx: Ctx, user: User) -> Response:
    """Store (or replace) an item under one of the caller's namespaces."""
    await _store(ctx).aput(_own(user, body.namespace), body.key, body.value, index=False)
    return Response(status_code=204)


@router.get("/items")
async def get_item(
    ctx: Ctx,
    user: User,
    key: Annotated[str, Query(min_length=1, max_length=200)],
    namespace: Annotated[str, Query(max_length=4000)] = "",
) -> dict[str, Any] | None:
    """One item, or ``null`` when there is none (as on the official server)."""
    try:
        labels = _checked(namespace.split(".") if namespace else [])
    except ValueError as error:
        raise HTTPException(422, str(error)) from None
    item = await _store(ctx).aget(_own(user, labels), key)
    return None if item is None else _item_json(item)


@router.delete("/items", status_code=204)
async def delete_item(body: ItemDelete, ctx: Ctx, user: User) -> Response:
    """Delete an item of the caller's (nothing to delete is no error)."""
    await _store(ctx).adelete(_own(user, body.namespace), body.key)
    return Response(status_code=204)


@router.post("/items/search")
async def search_items(body: ItemSearch, ctx: Ctx, user: User) -> dict[str, Any]:
    """The caller's items under a namespace prefix, matching ``filter``."""
    items = await _store(ctx).asearch(
        _own(user, body.namespace_prefix),
        filter=body.filter,
        limit=body.limit,
        offset=body.offset,
    )
    return {"items": [_item_json(item) for item in items]}


@router.post("/namespaces")
async def list_namespaces(body: NamespaceList, ctx: Ctx, user: User) -> dict[str, Any]:
    """The caller's namespaces, under ``prefix``, ending in ``suffix``, cut at ``max_depth``."""
    found = await _store(ctx).alist_namespaces(
        prefix=_own(user, body.prefix or []),
        suffix=tuple(body.suffix) if body.suffix else None,
        max_depth=body.max_depth + 2 if body.max_depth else None,
        limit=body.limit,
        offset=body.offset,
    )
    return {"namespaces": [list(namespace[2:]) for namespace in found]}
