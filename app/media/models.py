"""Media files in GridFS's layout (a files document and 255 KiB chunks), as tenant documents.

GridFS's own bucket API writes chunks that carry no tenantId, which the tenancy core could neither
filter nor shard; the same layout in tenant collections keeps every byte behind the core.
"""

from __future__ import annotations

import mongoengine as me

from app import clock
from app.tenancy.documents import TenantDocument

CHUNK_SIZE = 255 * 1024


class MediaFile(TenantDocument):
    filename = me.StringField(required=True, max_length=255)
    content_type = me.StringField(db_field="contentType", required=True, max_length=127)
    size = me.LongField(required=True, min_value=0)
    sha256 = me.StringField(required=True, max_length=64)
    chunk_size = me.IntField(db_field="chunkSize", default=CHUNK_SIZE)
    complete = me.BooleanField(default=False)
    created_by = me.StringField(db_field="createdBy")
    created_at = me.DateTimeField(db_field="createdAt", default=clock.utcnow)

    meta = {
        "collection": "media_files",
        "indexes": [
            {"fields": ["tenant_id", "-created_at", "-id"]},
            {"fields": ["tenant_id", "complete", "-created_at", "-id"]},
            # The GDPR export reads a tenant's documents in _id order.
            {"fields": ["tenant_id", "id"]},
        ],
    }


class MediaChunk(TenantDocument):
    media_id = me.ObjectIdField(db_field="mediaId", required=True)
    n = me.IntField(required=True, min_value=0)
    data = me.BinaryField(required=True)

    meta = {
        "collection": "media_chunks",
        "indexes": [
            {"fields": ["tenant_id", "media_id", "n"], "unique": True},
            # The GDPR export reads a tenant's documents in _id order.
            {"fields": ["tenant_id", "id"]},
        ],
    }
