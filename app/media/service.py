"""Upload, download and delete media; every byte counts against the plan's `storage` limit."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from typing import Any

from bson import ObjectId

from app import wire
from app.audit.service import record
from app.errors import NotFound, ValidationFailed, found
from app.pagination import paginate
from app.tenancy.access import Principal
from app.tenancy.context import current_tenant, tenant_scope
from app.usage import service as usage

from .models import CHUNK_SIZE, MediaChunk, MediaFile

CONTENT_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}", re.ASCII)
UNSAFE_FILENAME_RE = re.compile(r"[^\w.\- ]", re.UNICODE)


def _clean_filename(name: str | None) -> str:
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    name = UNSAFE_FILENAME_RE.sub("_", name)[:255].strip(". ")
    return name or "upload"


def _clean_content_type(value: str | None) -> str:
    value = (value or "").split(";", 1)[0].strip().lower()
    return value if CONTENT_TYPE_RE.fullmatch(value) else "application/octet-stream"


def upload(data: bytes, filename: str | None, content_type: str | None, author: Principal) -> MediaFile:
    """Store a file for the tenant in context; refused before storing when it exceeds the quota."""
    if not data:
        raise ValidationFailed(details={"file": ["The file is empty."]})
    media = MediaFile(
        filename=_clean_filename(filename),
        content_type=_clean_content_type(content_type),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        created_by=author.subject,
    )
    with usage.reserved("storage", len(data)):
        media.save(force_insert=True)
        try:
            MediaChunk.objects.insert(
                [
                    MediaChunk(media_id=media.id, n=index, data=data[offset : offset + CHUNK_SIZE])
                    for index, offset in enumerate(range(0, len(data), CHUNK_SIZE))
                ],
                load_bulk=False,
            )
            MediaFile.objects(id=media.id).update_one(set__complete=True)
        except BaseException:
            MediaChunk.objects(media_id=media.id).delete()
            media.delete()
            raise
    media.complete = True
    record("media.uploaded", target_type="media", target_id=media.id, summary={"size": media.size})
    return media


def list_media(paging: Mapping[str, Any]) -> dict:
    return paginate(MediaFile.objects(complete=True), ("-created_at", "-id"), paging)


def show_media(media_id: ObjectId) -> wire.Stored:
    """A file's metadata as stored, for its response (not built into a document)."""
    return found(wire.stored(MediaFile, MediaFile.find_stored(id=media_id, complete=True)), "media file")


def get_media(media_id: ObjectId) -> MediaFile:
    return found(MediaFile.objects(id=media_id, complete=True).first(), "media file")


def read_chunks(media: MediaFile) -> Iterator[bytes]:
    """Return an iterator of the file's bytes, chunk by chunk, for a streamed response.

    The response is iterated after the request's teardown has emptied the tenant context, so the
    iterator carries its tenant with it."""
    tenant = current_tenant()

    def chunks() -> Iterator[bytes]:
        with tenant_scope(tenant):
            for chunk in MediaChunk.objects(media_id=media.id).order_by("n").only("data"):
                yield chunk.data

    return chunks()


def delete_media(media_id: ObjectId) -> None:
    """Delete a file; its bytes go back to the storage quota."""
    media = get_media(media_id)
    # Only the request whose delete removed the file gives its bytes back: of two concurrent deletes,
    # the other finds nothing and answers 404.
    if not MediaFile.objects(id=media.id, complete=True).delete():
        raise NotFound("No such media file")
    MediaChunk.objects(media_id=media.id).delete()
    usage.refund("storage", media.size)
    record("media.deleted", target_type="media", target_id=media_id, summary={"size": media.size})
