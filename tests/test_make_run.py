"""What `make run` promises: gunicorn on the embedded store, with the scheduler and the dispatcher in
its one worker, delivers a sent campaign (to the development Bot API sandbox), and stops cleanly; the
README's walk through the API prints what its comments say. The service runs as the Makefile starts
it, in a process of its own."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests
from werkzeug.http import parse_options_header

from app.telegram.sandbox import Sandbox, SandboxServer

from .servers import free_port, smoke, start_service, stop
from .support import ROOT, bot_token


@contextmanager
def running_service() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`make run`'s command line and settings, on a free port."""
    port = free_port()
    process = start_service(port)
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        stop(process)


@pytest.fixture(scope="module")
def service():
    with running_service() as running:
        yield running


def signed_up(api: str, name: str, email: str, **extra: str) -> dict[str, str]:
    """Sign a new tenant up; return its owner's Authorization header."""
    body = {"tenant": {"name": name}, "user": {"email": email, "password": "a long passphrase", "name": name}}
    signup = requests.post(f"{api}/tenants/signup", json={**body, **extra}, timeout=30)
    assert signup.status_code == 201, signup.text
    return {"Authorization": f"Bearer {signup.json()['accessToken']}"}


def test_a_sent_campaign_is_delivered_on_the_embedded_store(service):
    base, _ = service
    api = f"{base}/api/v1"
    auth = signed_up(api, "Initech", "bill@initech.example.com", plan="starter")
    bot = requests.post(
        f"{api}/telegram-accounts",
        json={"name": "News", "token": bot_token(7000001)},
        headers=auth,
        timeout=30,
    )
    assert bot.status_code == 201, bot.text
    targets = ["1001", "1002", "-1001234567890", "@initech_news"]
    campaign = requests.post(
        f"{api}/campaigns",
        json={
            "name": "Launch",
            "message": {"text": "Initech launches TPS 2.0"},
            "targets": targets,
            "telegramAccountId": bot.json()["id"],
        },
        headers=auth,
        timeout=30,
    ).json()
    assert (
        requests.post(f"{api}/campaigns/{campaign['id']}/send", headers=auth, timeout=30).status_code == 202
    )

    deadline = time.monotonic() + 30
    while (
        requests.get(f"{api}/campaigns/{campaign['id']}", headers=auth, timeout=30).json()["status"]
        != "completed"
    ):
        assert time.monotonic() < deadline, "the campaign was not delivered"
        time.sleep(0.2)
    sent = requests.get(
        f"{api}/messages", params={"campaignId": campaign["id"]}, headers=auth, timeout=30
    ).json()
    assert sorted(m["chat"] for m in sent["items"]) == sorted(targets)
    assert all(m["status"] == "sent" and m["telegramMessageId"] for m in sent["items"])
    received = requests.get(f"{base}/sandbox/bot-api/messages", timeout=30).json()
    assert sorted(m["chat"] for m in received if m["bot"] == "7000001") == sorted(targets)
    assert {m["text"] for m in received if m["bot"] == "7000001"} == {"Initech launches TPS 2.0"}


NAMES_IN_SCRIPTS = [
    "отчёт за май.pdf",
    "報告書.docx",
    "تقرير.txt",
    "Αναφορά.csv",
    "résumé.pdf",
    'say "hi".txt',
]


def test_files_named_in_any_script_download_under_gunicorn(service):
    """gunicorn sends header values as ISO-8859-1 only: the name goes in filename* (RFC 6266)."""
    base, _ = service
    api = f"{base}/api/v1"
    auth = signed_up(api, "Polyglot", "ana@polyglot.example.com")
    for index, name in enumerate(NAMES_IN_SCRIPTS):
        data = f"file {index}".encode()
        upload = requests.post(
            f"{api}/media", files={"file": (name, data, "text/plain")}, headers=auth, timeout=30
        )
        assert upload.status_code == 201, upload.text
        stored = upload.json()["filename"]
        download = requests.get(f"{api}/media/{upload.json()['id']}/content", headers=auth, timeout=30)
        assert download.status_code == 200, (name, download.text)
        assert download.content == data
        disposition, options = parse_options_header(download.headers["Content-Disposition"])
        assert (disposition, options["filename"]) == ("attachment", stored), name


def test_the_smoke_script_passes_against_make_run(service):
    base, _ = service
    result = smoke(base)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "smoke test passed"


def test_the_smoke_script_fails_when_the_bot_api_it_reads_saw_nothing(service):
    """The service delivered to its own sandbox; another one received nothing, and the script says so."""
    base, _ = service
    elsewhere = SandboxServer(Sandbox()).start()
    try:
        result = smoke(base, "--bot-api", elsewhere.url)
    finally:
        elsewhere.stop()
    assert result.returncode == 1
    assert "smoke test FAILED: the Bot API sandbox received []" in result.stderr


def test_the_service_stops_cleanly(service):
    _, process = service
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    output = process.stdout.read()
    assert "Traceback" not in output, output


def walk_through(port: int) -> tuple[str, list[str]]:
    """The README's walk through the API, as shell code for a service on `port`, and what its comments
    say it prints, in order: a comment at the end of a command's last line, or on the lines right
    after it."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## A walk through the API with curl\n", 1)[1].split("\n## ", 1)[0]
    code = "\n".join(re.findall(r"```sh\n(.*?)```", section, re.DOTALL))
    printed = []
    after_command = False
    for line in code.splitlines():
        if line.startswith("#"):
            if after_command:
                printed.append(line[1:].strip())
            continue
        inline = re.fullmatch(r"(.*?\S)\s{2,}# (.*)", line)
        if inline:
            printed.append(inline[2])
        after_command = bool(line.strip()) and not line.endswith("\\")
    for host in ("localhost", "127.0.0.1"):
        code = code.replace(f"{host}:5000", f"{host}:{port}")
    return code, printed


def says(comment: str, printed: str) -> bool:
    """A comment shows what its line printed, then perhaps ": why"; "..." stands for anything."""
    cuts = [len(comment), *(match.start() for match in re.finditer(": ", comment))]
    return any(
        re.fullmatch(".*".join(re.escape(part) for part in comment[:cut].split("...")), printed)
        for cut in cuts
    )


def test_the_readme_walk_through_prints_what_its_comments_say():
    with running_service() as (base, _):
        code, expected = walk_through(int(base.rpartition(":")[2]))
        # Waits for the delivery instead of two seconds, which a busy machine may need more than.
        assert "\nsleep 2\n" in code
        code = code.replace(
            "\nsleep 2\n",
            """\nuntil curl -s $API/campaigns/$CAMPAIGN -H "$AUTH" | grep -q '"status":"completed"'; do
  sleep 0.2
done\n""",
        )
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", code],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert (done.returncode, done.stderr) == (0, "")
    printed = done.stdout.splitlines()
    assert len(printed) == len(expected), "\n".join(printed)
    assert [
        (comment, line) for comment, line in zip(expected, printed, strict=True) if not says(comment, line)
    ] == []


def test_a_comment_says_what_was_printed_or_not():
    assert says('{"status":"ready"}: the database answers', '{"status":"ready"}')
    assert says("{'apiCallsPerHour': 5000, ...}: starter's", "{'apiCallsPerHour': 5000, 'campaigns': 50}")
    assert says("{'limit': 20, 'percent': 5.0, 'used': 1}", "{'limit': 20, 'percent': 5.0, 'used': 1}")
    assert not says("404", "401")
    assert not says('{"status":"ok"}', '{"status":"ok"} 200')
    assert not says("{'apiCallsPerHour': 5000, ...}: starter's", "{'apiCallsPerHour': 1000, 'campaigns': 10}")
