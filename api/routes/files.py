"""Generated files by content-addressed key: a new image gets a new URL, so caching is safe."""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import StreamingResponse

from api.body import StrictJsonRoute
from api.context import Ctx, User
from api.schemas import FileUpload

router = APIRouter(prefix="/files", tags=["files"], route_class=StrictJsonRoute)

FileKey = Annotated[str, Path(pattern=r"^[0-9a-f]{64}\.[a-z0-9]{1,8}$")]


@router.post("", status_code=201)
async def upload(body: FileUpload, ctx: Ctx, user: User) -> dict[str, Any]:
    """Store a PNG the person made (an inpainting mask); answers its content-addressed file."""
    try:
        data = base64.b64decode(body.data_url.partition(",")[2], validate=True)
    except binascii.Error as error:
        raise HTTPException(422, f"data_url is not valid base64: {error}") from None
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise HTTPException(422, "data_url does not hold a PNG image")
    files = ctx.services.context.files
    file = await asyncio.to_thread(files.put, data, extension="png", media_type="image/png")
    await ctx.db.own_files(user, file.model_dump(mode="json"))
    return {**file.model_dump(mode="json"), "url": f"/files/{file.key}"}


@router.get("/{key}")
async def get(key: FileKey, ctx: Ctx, user: User) -> StreamingResponse:
    """A file the caller's runs produced, cached for a year (its key is its content hash).

    The bytes are streamed from the store (local folder or S3) through the API in chunks,
    rather than redirecting to a presigned S3 URL: the URL stays the same and cacheable,
    the owner check stays here, and the bucket need not be reachable by the browser.
    """
    row = await ctx.db.fetch_one(
        "SELECT media_type FROM auteur_files WHERE key = %s AND owner = %s", (key, user)
    )
    files = ctx.services.context.files
    if row is None or not await asyncio.to_thread(files.exists, key):
        raise HTTPException(404, f"no file '{key}'")
    return StreamingResponse(  # a sync iterator: Starlette reads it in a worker thread
        files.stream(key),
        media_type=row["media_type"],
        headers={"Cache-Control": "public, max-age=31536000, immutable"},
    )
