"""A thread's cut for an editor: OTIO JSON, FCPXML or a CMX 3600 EDL, as a download."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response

from api.body import StrictJsonRoute
from api.context import Ctx, User
from api.delivery import NothingToExportError, export_cut
from api.routes.threads import owned_thread
from tools.editorial import ExportFormat

router = APIRouter(prefix="/threads", tags=["threads"], route_class=StrictJsonRoute)


@router.get("/{thread_id}/export")
async def export(
    thread_id: str,
    request: Request,
    ctx: Ctx,
    user: User,
    fmt: Annotated[ExportFormat, Query(alias="format")] = "otio",
) -> Response:
    """The approved cut (clips in order, dialogue on audio tracks, scene markers) as a file.

    Media is referenced by this server's file URLs. 409 until the clips are approved.
    """
    thread = await owned_thread(ctx, thread_id, user)
    files = str(request.base_url) + "files/"
    try:
        made = export_cut(thread["thread_values"] or {}, fmt, lambda file: files + file.key)
    except NothingToExportError as error:
        raise HTTPException(409, str(error)) from None
    return Response(
        made.text,
        media_type=made.media_type,
        headers={"Content-Disposition": f'attachment; filename="{made.filename}"'},
    )
