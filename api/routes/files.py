"""Generated files by content-addressed key: a new image gets a new URL, so caching is safe."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response

from api.context import Ctx, User

router = APIRouter(prefix="/files", tags=["files"])

FileKey = Annotated[str, Path(pattern=r"^[0-9a-f]{64}\.[a-z0-9]{1,8}$")]


@router.get("/{key}")
async def get(key: FileKey, ctx: Ctx, user: User) -> Response:
    """A file the caller's runs produced, cached for a year (its key is its content hash)."""
    row = await ctx.db.fetch_one(
        "SELECT media_type FROM auteur_files WHERE key = %s AND owner = %s", (key, user)
    )
    files = ctx.services.context.files
    if row is None or not files.exists(key):
        raise HTTPException(404, f"no file '{key}'")
    return Response(
        files.read(key),
        media_type=row["media_type"],
        headers={"Cache-Control": "public, max-age=31536000, immutable"},
    )
