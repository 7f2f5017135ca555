"""/api/v1/media: multipart upload into tenant chunk collections, download, delete, and every byte
metered against the plan's `storage` limit."""

from __future__ import annotations

import hashlib
import json
import random
import re
from datetime import UTC, datetime, timedelta

import pytest
from werkzeug.http import parse_options_header

from app.downloads import attachment
from app.media.models import CHUNK_SIZE, MediaChunk, MediaFile
from app.tenancy.context import tenant_scope

from .support import created, error_of, file_part, multipart, random_id, set_limits

MEDIA = "/api/v1/media"


def payload(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def upload(client, headers, data=b"hello, world", filename="hello.txt", content_type="text/plain"):
    return client.post(MEDIA, headers=headers, **multipart({"file": file_part(data, filename, content_type)}))


def stored(tenant) -> tuple[int, int]:
    """Count the tenant's media files and chunks (complete or not)."""
    with tenant_scope(tenant):
        return MediaFile.objects.count(), MediaChunk.objects.count()


def storage_used(client, headers) -> int:
    return client.get("/api/v1/tenants/current/usage", headers=headers).json["resources"]["storage"]["used"]


class TestUpload:
    @pytest.mark.parametrize("role", ["owner", "admin"])
    def test_owner_and_admin_upload(self, client, tenant, make_user, headers_for, role):
        headers = headers_for(make_user(tenant, role))
        data = b"%PDF-1.7 a small document"
        body = created(upload(client, headers, data, "report.pdf", "application/pdf"))
        assert body["filename"] == "report.pdf"
        assert body["contentType"] == "application/pdf"
        assert body["size"] == len(data)
        assert body["sha256"] == hashlib.sha256(data).hexdigest()
        assert len(body["id"]) == 24 and body["createdAt"] and body["createdBy"]
        assert stored(tenant) == (1, 1)

    def test_the_bytes_are_kept_in_tenant_chunks(self, client, auth_headers, tenant):
        data = payload(2 * CHUNK_SIZE + 1000)
        media_id = created(upload(client, auth_headers, data, "big.bin", "application/octet-stream"))["id"]
        with tenant_scope(tenant):
            media = MediaFile.objects.get(id=media_id)
            chunks = list(MediaChunk.objects(media_id=media.id).order_by("n"))
        assert media.complete is True and media.tenant_id == tenant.id
        assert [c.n for c in chunks] == [0, 1, 2]
        assert all(c.tenant_id == tenant.id for c in chunks)
        assert [len(c.data) for c in chunks] == [CHUNK_SIZE, CHUNK_SIZE, 1000]
        assert b"".join(c.data for c in chunks) == data

    def test_member_cannot_upload(self, client, tenant, make_user, headers_for):
        response = upload(client, headers_for(make_user(tenant, "member")))
        assert error_of(response, 403)["code"] == "forbidden"
        assert stored(tenant) == (0, 0)

    def test_an_empty_file_is_422(self, client, auth_headers, tenant):
        error = error_of(upload(client, auth_headers, b""), 422)
        assert error["code"] == "validation_error" and "file" in error["details"]
        assert stored(tenant) == (0, 0)
        assert storage_used(client, auth_headers) == 0

    def test_a_missing_file_field_is_422(self, client, auth_headers, tenant):
        response = client.post(
            MEDIA,
            headers=auth_headers,
            **multipart({"document": file_part(b"abc", "a.txt", "text/plain")}),
        )
        assert "file" in error_of(response, 422)["details"]
        assert stored(tenant) == (0, 0)

    def test_a_json_body_is_refused_and_stores_nothing(self, client, auth_headers, tenant):
        response = client.post(MEDIA, headers=auth_headers, json={"file": "aGVsbG8=", "filename": "x.txt"})
        assert response.status_code in (415, 422), response.get_data(as_text=True)
        assert response.json["error"]["code"] in ("unsupported_media_type", "validation_error")
        assert stored(tenant) == (0, 0)
        assert storage_used(client, auth_headers) == 0

    @pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream", "image/png"])
    def test_a_raw_body_is_415(self, client, auth_headers, tenant, content_type):
        response = client.post(
            MEDIA, headers={**auth_headers, "Content-Type": content_type}, data=b"\x89PNG raw bytes"
        )
        assert error_of(response, 415)["code"] == "unsupported_media_type"
        assert stored(tenant) == (0, 0)

    def test_multipart_to_a_json_route_is_still_415(self, client, auth_headers, tenant):
        response = client.post(
            "/api/v1/campaigns",
            headers=auth_headers,
            **multipart({"file": file_part(b"abc", "a.txt", "text/plain"), "name": "x"}),
        )
        assert error_of(response, 415)["code"] == "unsupported_media_type"

    def test_a_text_body_to_a_json_route_is_still_415(self, client, auth_headers):
        response = client.post(
            "/api/v1/webhooks",
            headers={**auth_headers, "Content-Type": "text/plain"},
            data=json.dumps({"url": "https://h.example.com", "events": ["campaign.completed"]}),
        )
        assert error_of(response, 415)["code"] == "unsupported_media_type"

    @pytest.mark.parametrize(
        ("filename", "kept"),
        [
            ("../../etc/passwd", "passwd"),
            ("/absolute/path/photo.jpg", "photo.jpg"),
            ("dir/sub/../report.pdf", "report.pdf"),
        ],
    )
    def test_path_parts_of_the_filename_are_dropped(self, client, auth_headers, tenant, filename, kept):
        body = created(upload(client, auth_headers, b"data", filename))
        assert body["filename"] == kept
        with tenant_scope(tenant):
            assert MediaFile.objects.get(id=body["id"]).filename == kept
        download = client.get(f"{MEDIA}/{body['id']}/content", headers=auth_headers)
        disposition = download.headers["Content-Disposition"]
        assert "/" not in disposition and "\\" not in disposition and ".." not in disposition
        assert kept in disposition

    @pytest.mark.parametrize("filename", ["..", "../", "...", "/", "..\\..\\windows\\win.ini"])
    def test_a_filename_never_keeps_path_parts(self, client, auth_headers, filename):
        body = created(upload(client, auth_headers, b"data", filename))
        assert body["filename"] and not {"/", "\\"} & set(body["filename"])
        assert not body["filename"].startswith(".")

    def test_header_breaking_characters_are_removed(self, client, auth_headers):
        body = created(upload(client, auth_headers, b"data", 'evil"; filename="x.exe.txt'))
        download = client.get(f"{MEDIA}/{body['id']}/content", headers=auth_headers)
        disposition = download.headers["Content-Disposition"]
        assert disposition.startswith("attachment;")
        assert disposition.count('"') == 2 and disposition.count("filename=") == 1

    def test_a_bad_content_type_is_stored_as_octet_stream(self, client, auth_headers):
        body = created(upload(client, auth_headers, b"<b>x</b>", "x.html", "text/html; charset=utf-8"))
        assert body["contentType"] == "text/html"
        odd = created(upload(client, auth_headers, b"x", "x.bin", "not a type"))
        assert odd["contentType"] == "application/octet-stream"


class TestDownload:
    def test_exact_bytes_with_type_and_attachment(self, client, auth_headers):
        data = payload(CHUNK_SIZE * 2 + 17, seed=3)
        media = created(upload(client, auth_headers, data, "photo.png", "image/png"))
        response = client.get(f"{MEDIA}/{media['id']}/content", headers=auth_headers)
        assert response.status_code == 200
        assert response.get_data() == data
        assert response.mimetype == "image/png"
        assert response.headers["Content-Length"] == str(len(data))
        assert response.headers["Content-Disposition"] == 'attachment; filename="photo.png"'
        assert response.headers["X-Content-Type-Options"] == "nosniff"

    def test_html_is_downloaded_not_rendered(self, client, auth_headers):
        data = b"<script>alert(1)</script>"
        media = created(upload(client, auth_headers, data, "page.html", "text/html"))
        response = client.get(f"{MEDIA}/{media['id']}/content", headers=auth_headers)
        assert response.get_data() == data
        assert response.headers["Content-Disposition"].startswith("attachment")

    def test_members_read(self, client, auth_headers, tenant, make_user, headers_for):
        data = b"for everyone in the team"
        media = created(upload(client, auth_headers, data))
        member = headers_for(make_user(tenant, "member"))
        listed = client.get(MEDIA, headers=member)
        assert listed.status_code == 200 and [i["id"] for i in listed.json["items"]] == [media["id"]]
        one = client.get(f"{MEDIA}/{media['id']}", headers=member)
        assert one.status_code == 200 and one.json == media
        assert client.get(f"{MEDIA}/{media['id']}/content", headers=member).get_data() == data

    def test_metadata_of_one_file(self, client, auth_headers):
        media = created(upload(client, auth_headers))
        response = client.get(f"{MEDIA}/{media['id']}", headers=auth_headers)
        assert response.status_code == 200 and response.json == media

    def test_list_is_paginated_newest_first(self, client, auth_headers, tenant):
        ids = [
            created(upload(client, auth_headers, f"file {i}".encode(), f"f{i}.txt"))["id"] for i in range(5)
        ]
        with tenant_scope(tenant):
            for offset, media_id in enumerate(ids):
                MediaFile.objects(id=media_id).update_one(
                    set__created_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=offset)
                )
        seen = []
        for page in (1, 2, 3):
            body = client.get(MEDIA, headers=auth_headers, query_string={"page": page, "perPage": 2}).json
            assert (body["page"], body["perPage"], body["total"]) == (page, 2, 5)
            seen += [item["id"] for item in body["items"]]
        assert seen == list(reversed(ids))
        default = client.get(MEDIA, headers=auth_headers).json
        assert (default["page"], default["perPage"], default["total"]) == (1, 20, 5)

    @pytest.mark.parametrize("query", ["perPage=101", "perPage=0", "page=0", "page=first"])
    def test_bad_paging_is_422(self, client, auth_headers, query):
        assert (
            error_of(client.get(f"{MEDIA}?{query}", headers=auth_headers), 422)["code"] == "validation_error"
        )

    def test_an_incomplete_upload_is_invisible(self, client, auth_headers, tenant):
        media_id = created(upload(client, auth_headers))["id"]
        with tenant_scope(tenant):
            MediaFile.objects(id=media_id).update_one(set__complete=False)
        assert client.get(MEDIA, headers=auth_headers).json["total"] == 0
        for path in (f"{MEDIA}/{media_id}", f"{MEDIA}/{media_id}/content"):
            assert error_of(client.get(path, headers=auth_headers), 404)["code"] == "not_found"

    def test_unknown_and_malformed_ids_are_404(self, client, auth_headers):
        for path in (f"{MEDIA}/{random_id()}", f"{MEDIA}/{random_id()}/content", f"{MEDIA}/nope"):
            assert error_of(client.get(path, headers=auth_headers), 404)["code"] == "not_found"


NAMES = [
    ("отчёт за май.pdf", "download.pdf"),
    ("報告書.docx", "download.docx"),
    ("تقرير.txt", "download.txt"),
    ("Αναφορά.csv", "download.csv"),
    ("résumé.pdf", "resume.pdf"),
    ("naïve café.txt", "naive cafe.txt"),
]
HOSTILE = [
    ('say "hi".txt', "say _hi_.txt", 'say "hi".txt'),
    ("line\r\nSet-Cookie: a=b.txt", "lineSet-Cookie_ a_b.txt", "lineSet-Cookie: a=b.txt"),
    ("tab\tand\x00nul\x7f\x85.txt", "tabandnul.txt", "tabandnul.txt"),
    ("../../etc/пароль", "download", "пароль"),
    ("C:\\Users\\x\\évil.exe", "evil.exe", "évil.exe"),
    ("..", "download", "download"),
    ("back\\slash", "slash", "slash"),
]


def disposition_of(header: str) -> tuple[str, str]:
    """The ASCII `filename` of a Content-Disposition and the name a client reads (filename* wins)."""
    fallback = re.search(r'filename="([^"]*)"', header).group(1)
    return fallback, parse_options_header(header)[1]["filename"]


def assert_header_safe(header: str) -> None:
    header.encode("ascii")  # what gunicorn sends must be ISO-8859-1; ours is ASCII
    assert not re.search(r"[\x00-\x1f\x7f]", header)
    assert header.count("filename=") == 1 and header.count("filename*=") <= 1


class TestDownloadNames:
    @pytest.mark.parametrize(("name", "fallback"), NAMES)
    def test_a_name_in_any_script_is_sent_as_filename_star(self, client, auth_headers, name, fallback):
        media = created(upload(client, auth_headers, b"data", name))
        assert media["filename"] == name
        response = client.get(f"{MEDIA}/{media['id']}/content", headers=auth_headers)
        header = response.headers["Content-Disposition"]
        assert_header_safe(header)
        assert header.startswith("attachment; ")
        assert disposition_of(header) == (fallback, name)

    def test_an_ascii_name_needs_no_filename_star(self, client, auth_headers):
        media = created(upload(client, auth_headers, b"data", "plain name_1.pdf"))
        response = client.get(f"{MEDIA}/{media['id']}/content", headers=auth_headers)
        assert response.headers["Content-Disposition"] == 'attachment; filename="plain name_1.pdf"'

    @pytest.mark.parametrize(("name", "fallback", "read"), HOSTILE)
    def test_quotes_control_characters_and_paths_never_reach_the_header(self, name, fallback, read):
        header = attachment(name)
        assert_header_safe(header)
        assert disposition_of(header) == (fallback, read)

    @pytest.mark.parametrize(("name", "fallback", "read"), HOSTILE)
    def test_stored_names_download_whatever_they_hold(
        self, client, auth_headers, tenant, name, fallback, read
    ):
        media_id = created(upload(client, auth_headers, b"data", "x.txt"))["id"]
        with tenant_scope(tenant):
            MediaFile.objects(id=media_id).update_one(set__filename=name)
        response = client.get(f"{MEDIA}/{media_id}/content", headers=auth_headers)
        assert response.status_code == 200 and response.get_data() == b"data"
        assert disposition_of(response.headers["Content-Disposition"]) == (fallback, read)


class TestDelete:
    def test_delete_removes_file_and_chunks(self, client, auth_headers, tenant):
        keep = created(upload(client, auth_headers, b"keep me", "keep.txt"))["id"]
        gone = created(upload(client, auth_headers, payload(CHUNK_SIZE + 1), "gone.bin"))["id"]
        assert stored(tenant) == (2, 3)
        response = client.delete(f"{MEDIA}/{gone}", headers=auth_headers)
        assert response.status_code == 204 and response.get_data() == b""
        assert stored(tenant) == (1, 1)
        with tenant_scope(tenant):
            assert str(MediaFile.objects.get().id) == keep
        for path in (f"{MEDIA}/{gone}", f"{MEDIA}/{gone}/content"):
            assert error_of(client.get(path, headers=auth_headers), 404)["code"] == "not_found"
        assert client.get(f"{MEDIA}/{keep}/content", headers=auth_headers).get_data() == b"keep me"

    def test_member_cannot_delete(self, client, auth_headers, tenant, make_user, headers_for):
        media_id = created(upload(client, auth_headers))["id"]
        response = client.delete(f"{MEDIA}/{media_id}", headers=headers_for(make_user(tenant, "member")))
        assert error_of(response, 403)["code"] == "forbidden"
        assert stored(tenant) == (1, 1)


class TestStorageQuota:
    def test_every_byte_is_counted_and_refunded(self, client, auth_headers):
        assert storage_used(client, auth_headers) == 0
        first = created(upload(client, auth_headers, payload(1000)))["id"]
        assert storage_used(client, auth_headers) == 1000
        created(upload(client, auth_headers, payload(CHUNK_SIZE + 5)))
        assert storage_used(client, auth_headers) == 1000 + CHUNK_SIZE + 5
        client.delete(f"{MEDIA}/{first}", headers=auth_headers)
        assert storage_used(client, auth_headers) == CHUNK_SIZE + 5
        assert client.delete(f"{MEDIA}/{first}", headers=auth_headers).status_code == 404
        assert storage_used(client, auth_headers) == CHUNK_SIZE + 5  # a second delete refunds nothing

    def test_usage_reports_the_limit_and_percent(self, client, auth_headers, tenant):
        set_limits(tenant, storage=2000)
        created(upload(client, auth_headers, payload(500)))
        storage = client.get("/api/v1/tenants/current/usage", headers=auth_headers).json["resources"][
            "storage"
        ]
        assert storage == {"used": 500, "limit": 2000, "percent": 25.0}

    def test_an_upload_over_the_rest_is_refused_and_stores_nothing(self, client, auth_headers, tenant):
        set_limits(tenant, storage=1000)
        created(upload(client, auth_headers, payload(600)))
        error = error_of(upload(client, auth_headers, payload(401)), 403)
        assert error["code"] == "limit_exceeded"
        assert error["details"] == {"resource": "storage", "limit": 1000, "used": 600, "requested": 401}
        assert stored(tenant) == (1, 1)
        assert storage_used(client, auth_headers) == 600
        created(upload(client, auth_headers, payload(400)))
        assert storage_used(client, auth_headers) == 1000

    def test_a_file_larger_than_the_whole_limit_stores_nothing(self, client, auth_headers, tenant):
        set_limits(tenant, storage=CHUNK_SIZE)
        error = error_of(upload(client, auth_headers, payload(CHUNK_SIZE * 2)), 403)
        assert error["code"] == "limit_exceeded"
        assert error["details"]["requested"] == CHUNK_SIZE * 2
        assert stored(tenant) == (0, 0)
        assert storage_used(client, auth_headers) == 0

    def test_a_failure_while_storing_chunks_refunds_and_leaves_nothing(
        self, client, auth_headers, tenant, monkeypatch
    ):
        from mongoengine.queryset import QuerySet

        real_insert = QuerySet.insert

        def failing_insert(self, documents, *args, **kwargs):
            if self._document is MediaChunk:
                raise RuntimeError("disk full")
            return real_insert(self, documents, *args, **kwargs)

        monkeypatch.setattr(QuerySet, "insert", failing_insert)
        client.application.config["PROPAGATE_EXCEPTIONS"] = False
        response = upload(client, auth_headers, payload(CHUNK_SIZE + 1))
        assert response.status_code == 500
        monkeypatch.undo()
        assert stored(tenant) == (0, 0)
        assert storage_used(client, auth_headers) == 0


class TestCrossTenant:
    """The second tenant's credentials with the first tenant's ids: 404, like an id that does not exist."""

    DATA = b"acme's confidential plan"

    @pytest.fixture
    def media_id(self, client, auth_headers):
        return created(upload(client, auth_headers, self.DATA, "plan.txt"))["id"]

    @pytest.mark.parametrize(("method", "suffix"), [("GET", ""), ("GET", "/content"), ("DELETE", "")])
    def test_another_tenant_gets_404(
        self, client, auth_headers, tenant, media_id, other_owner, headers_for, method, suffix
    ):
        headers = headers_for(other_owner)
        foreign = client.open(f"{MEDIA}/{media_id}{suffix}", method=method, headers=headers)
        unknown = client.open(f"{MEDIA}/{random_id()}{suffix}", method=method, headers=headers)
        assert error_of(foreign, 404)["code"] == "not_found"
        assert foreign.json == unknown.json
        assert self.DATA not in foreign.get_data()
        assert stored(tenant) == (1, 1)
        assert storage_used(client, auth_headers) == len(self.DATA)
        assert client.get(f"{MEDIA}/{media_id}/content", headers=auth_headers).get_data() == self.DATA

    def test_another_tenant_lists_nothing_and_uses_nothing(self, client, media_id, other_owner, headers_for):
        headers = headers_for(other_owner)
        body = client.get(MEDIA, headers=headers).json
        assert body["items"] == [] and body["total"] == 0
        assert storage_used(client, headers) == 0

    def test_patch_is_not_a_route(self, client, auth_headers, media_id):
        response = client.patch(f"{MEDIA}/{media_id}", headers=auth_headers, json={"filename": "x"})
        assert response.status_code == 405
