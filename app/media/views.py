"""/api/v1/media: multipart upload, download, delete."""

from __future__ import annotations

from flask import Response, g
from flask.views import MethodView

from app.downloads import attachment
from app.extensions import Blueprint
from app.pagination import PageArgs, page_schema
from app.request_hooks import accepts_multipart
from app.tenancy.access import roles

from . import service
from .schemas import MediaSchema, UploadSchema

blp = Blueprint(
    "media", __name__, url_prefix="/api/v1/media", description="Media files (limit: storage bytes)"
)


@blp.route("")
class Media(MethodView):
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, page_schema(MediaSchema))
    def get(self, args):
        """List the tenant's media files."""
        return service.list_media(args)

    @roles("owner", "admin")
    @accepts_multipart
    @blp.arguments(UploadSchema, location="files")
    @blp.response(201, MediaSchema)
    def post(self, files):
        """Upload a file (multipart/form-data, field `file`) within the storage quota."""
        upload = files["file"]
        return service.upload(upload.read(), upload.filename, upload.mimetype, g.principal)


@blp.route("/<objectid:media_id>")
class MediaById(MethodView):
    @blp.response(200, MediaSchema)
    def get(self, media_id):
        """Show a file's metadata."""
        return service.show_media(media_id)

    @roles("owner", "admin")
    @blp.response(204)
    def delete(self, media_id):
        """Delete a file; its bytes go back to the storage quota."""
        service.delete_media(media_id)


@blp.route("/<objectid:media_id>/content")
class MediaContent(MethodView):
    @blp.response(200, {"type": "string", "format": "binary"}, content_type="application/octet-stream")
    def get(self, media_id):
        """Download a file."""
        media = service.get_media(media_id)
        response = Response(service.read_chunks(media), mimetype=media.content_type)
        response.headers["Content-Length"] = str(media.size)
        response.headers["Content-Disposition"] = attachment(media.filename)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
