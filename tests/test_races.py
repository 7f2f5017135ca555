"""Rules that hold under concurrent requests: every check is part of the conditional write that acts on
it, so they hold on a real MongoDB as on the embedded store (whose one-operation-at-a-time lock makes
single writes atomic, never a read and a later write).

Each test sends the racing requests from threads started at the same moment, with thread switches
made very frequent, a number of times over, and asserts the rule's invariant on what is stored."""

from __future__ import annotations

import traceback

import pyotp
import pytest
from bson import ObjectId

from app import crypto
from app.audit.models import AuditLog
from app.auth.two_factor import _recovery_hash as recovery_hash
from app.campaigns.models import Campaign
from app.media.models import MediaChunk, MediaFile
from app.messages.models import Message
from app.telegram_accounts.models import TelegramAccount
from app.tenancy.context import tenant_scope
from app.tenants.models import Tenant
from app.tenants.service import create_tenant
from app.users.models import EmailDirectory, User
from app.webhooks.models import Webhook

from .support import (
    API,
    create_bot,
    created,
    file_part,
    messages_used,
    multipart,
    run_together,
    set_limits,
)

pytestmark = [pytest.mark.multitenant, pytest.mark.usefixtures("frequent_thread_switches")]

REPETITIONS = 8
THREADS = 6
OK = (200, 202, 204)


def unmetered(tenant):
    """Lift the tenant's rate limit. The limiter's in-memory storage (limits 5.8.0) can start its expiry
    timer twice when requests come at the same moment, which fails one with a RuntimeError that has
    nothing to do with the rules tested here; unmetered requests never reach that storage."""
    return set_limits(tenant, apiCallsPerHour=None)


def new_tenant(name: str, slug: str, plan: str = "free"):
    return unmetered(create_tenant(name, slug, plan=plan))


@pytest.fixture(autouse=True)
def _unmetered_tenant(tenant):
    unmetered(tenant)


def at_once(app, requests):
    """Send each request, (method, url, keyword arguments of the test client), from its own thread, all
    at the same moment; return the responses in the same order."""

    def send(index):
        method, url, kwargs = requests[index]
        return getattr(app.test_client(), method)(url, **kwargs)

    responses = run_together(len(requests), send)
    failures = ["".join(traceback.format_exception(r)) for r in responses if isinstance(r, BaseException)]
    assert failures == [], "\n".join(failures)
    assert all(r.status_code < 500 for r in responses), [r.get_data(as_text=True) for r in responses]
    return responses


def gauges(tenant) -> dict:
    return Tenant.objects.get(id=tenant.id).usage.to_mongo().to_dict()


def active_owners(tenant) -> int:
    with tenant_scope(tenant):
        return User.objects(role="owner", active=True, erased_at=None).count()


def counted_owners(tenant) -> int:
    return Tenant.objects.get(id=tenant.id).owners.active


# -- the last owner -----------------------------------------------------------------------------------

REMOVALS = {
    "demote": lambda headers, user: (
        "patch",
        f"{API}/users/{user.id}",
        {"headers": headers, "json": {"role": "admin"}},
    ),
    "deactivate": lambda headers, user: (
        "patch",
        f"{API}/users/{user.id}",
        {"headers": headers, "json": {"active": False}},
    ),
    "delete": lambda headers, user: ("delete", f"{API}/users/{user.id}", {"headers": headers}),
    "erase": lambda headers, user: ("delete", f"{API}/users/{user.id}?erase=true", {"headers": headers}),
}
PAIRS = [(kind, kind) for kind in REMOVALS] + [("demote", "delete"), ("deactivate", "erase")]


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=lambda kind: kind)
def test_two_owners_removing_each_other_at_once_leave_one(app, make_user, headers_for, first, second):
    for repetition in range(REPETITIONS):
        tenant = new_tenant(f"Pair {repetition}", f"pair-{repetition}")
        one, two = make_user(tenant, "owner"), make_user(tenant, "owner")
        removals = [REMOVALS[first](headers_for(one), two), REMOVALS[second](headers_for(two), one)]
        responses = at_once(app, removals)
        assert active_owners(tenant) >= 1, (repetition, [r.json for r in responses])
        assert counted_owners(tenant) == active_owners(tenant)


def test_owners_removing_one_another_in_a_circle_leave_one(app, make_user, headers_for):
    for repetition in range(REPETITIONS):
        tenant = new_tenant(f"Circle {repetition}", f"circle-{repetition}", plan="professional")
        owners = [make_user(tenant, "owner") for _ in range(THREADS)]
        kinds = list(REMOVALS)
        removals = [
            REMOVALS[kinds[i % len(kinds)]](headers_for(owners[i]), owners[(i + 1) % THREADS])
            for i in range(THREADS)
        ]
        responses = at_once(app, removals)
        assert {r.status_code for r in responses} <= {*OK, 401, 403, 404, 409}
        assert active_owners(tenant) >= 1, repetition
        assert counted_owners(tenant) == active_owners(tenant)


def test_an_owner_promoted_while_the_only_other_steps_down_counts(app, make_user, headers_for):
    for repetition in range(REPETITIONS):
        tenant = new_tenant(f"Handover {repetition}", f"handover-{repetition}")
        owner, admin = make_user(tenant, "owner"), make_user(tenant, "admin")
        headers = headers_for(owner)
        promoted, stepped_down = at_once(
            app,
            [
                ("patch", f"{API}/users/{admin.id}", {"headers": headers, "json": {"role": "owner"}}),
                ("patch", f"{API}/users/{owner.id}", {"headers": headers, "json": {"role": "admin"}}),
            ],
        )
        # The promotion always applies; the demotion only once the promoted owner is counted.
        assert promoted.status_code == 200, promoted.json
        assert stepped_down.status_code in (200, 409), stepped_down.json
        assert active_owners(tenant) == (1 if stepped_down.status_code == 200 else 2)
        assert counted_owners(tenant) == active_owners(tenant)


# -- refunds of what a delete removed -------------------------------------------------------------


def _media(client, headers):
    body = created(
        client.post(
            f"{API}/media",
            headers=headers,
            **multipart({"file": file_part(b"x" * 700, "a.txt", "text/plain")}),
        )
    )
    return f"{API}/media/{body['id']}", MediaFile, body["id"]


def _campaign(client, headers):
    body = created(
        client.post(
            f"{API}/campaigns",
            headers=headers,
            json={"name": "Launch", "message": {"text": "hi"}, "targets": ["@channel1"]},
        )
    )
    return f"{API}/campaigns/{body['id']}", Campaign, body["id"]


def _bot(client, headers):
    account = create_bot(client, headers)
    return f"{API}/telegram-accounts/{account}", TelegramAccount, account


def _webhook(client, headers):
    body = created(
        client.post(
            f"{API}/webhooks",
            headers=headers,
            json={"url": "https://hooks.example.com/in", "events": ["campaign.completed"]},
        )
    )
    return f"{API}/webhooks/{body['id']}", Webhook, body["id"]


def _user(client, headers):
    body = created(
        client.post(
            f"{API}/users",
            headers=headers,
            json={"email": f"{ObjectId()}@example.com", "name": "Someone", "password": "long enough 1"},
        )
    )
    return f"{API}/users/{body['id']}", User, body["id"]


DELETABLE = {
    "media": (_media, "storage", 700),
    "campaign": (_campaign, "campaigns", 1),
    "bot": (_bot, "telegramAccounts", 1),
    "webhook": (_webhook, "webhooks", 1),
    "user": (_user, "users", 1),
}


@pytest.mark.parametrize("kind", DELETABLE)
def test_concurrent_deletes_of_one_thing_give_it_back_once(app, client, tenant, auth_headers, kind):
    make, gauge, amount = DELETABLE[kind]
    for repetition in range(REPETITIONS):
        url, document_class, document_id = make(client, auth_headers)
        before = gauges(tenant)[gauge]
        responses = at_once(app, [("delete", url, {"headers": auth_headers})] * THREADS)
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [204] + [404] * (THREADS - 1), (repetition, statuses)
        assert gauges(tenant)[gauge] == before - amount, repetition
        with tenant_scope(tenant):
            assert document_class.objects(id=document_id).count() == 0
            deleted = AuditLog.objects(action__endswith=".deleted", target_id=document_id).count()
            assert deleted == 1
            if kind == "media":
                assert MediaChunk.objects(media_id=document_id).count() == 0


def test_concurrent_erasures_of_one_user_give_the_seat_back_once(app, client, tenant, auth_headers):
    for repetition in range(REPETITIONS):
        url, _cls, user_id = _user(client, auth_headers)
        before = gauges(tenant)["users"]
        responses = at_once(app, [("delete", f"{url}?erase=true", {"headers": auth_headers})] * 4)
        assert {r.status_code for r in responses} <= {204, 404}, repetition
        assert gauges(tenant)["users"] == before - 1, repetition
        with tenant_scope(tenant):
            assert AuditLog.objects(action="user.erased", target_id=user_id).count() == 1
            assert User.objects.get(id=user_id).erased_at is not None
        assert EmailDirectory.objects(user_id=user_id).count() == 0


def test_concurrent_revocations_of_one_api_key_are_audited_once(app, client, tenant, auth_headers):
    for repetition in range(REPETITIONS):
        key = created(
            client.post(f"{API}/api-keys", headers=auth_headers, json={"name": "ci", "role": "member"})
        )
        url = f"{API}/api-keys/{key['id']}"
        responses = at_once(app, [("delete", url, {"headers": auth_headers})] * 4)
        assert sorted(r.status_code for r in responses) == [204, 404, 404, 404], repetition
        with tenant_scope(tenant):
            assert AuditLog.objects(action="api_key.revoked", target_id=key["id"]).count() == 1


# -- a change racing a delete never brings the document back -------------------------------------


def test_a_change_racing_a_delete_leaves_no_fragment_behind(app, client, tenant, auth_headers):
    for repetition in range(REPETITIONS):
        url, _cls, webhook_id = _webhook(client, auth_headers)
        change = {"events": ["campaign.failed"], "active": False}
        patched, deleted = at_once(
            app,
            [
                ("patch", url, {"headers": auth_headers, "json": change}),
                ("delete", url, {"headers": auth_headers}),
            ],
        )
        assert deleted.status_code == 204, repetition
        assert patched.status_code in (200, 404, 409), repetition
        with tenant_scope(tenant):
            assert Webhook.objects(id=webhook_id).count() == 0, repetition
        assert gauges(tenant)["webhooks"] == 0


# -- a campaign's send -------------------------------------------------------------------------------


@pytest.fixture
def draft(client, auth_headers, bot):
    """Make a draft campaign sent by `bot`; return its URL."""

    def make():
        body = created(
            client.post(
                f"{API}/campaigns",
                headers=auth_headers,
                json={
                    "name": "Launch",
                    "message": {"text": "before"},
                    "targets": ["@channel1", "1001"],
                    "telegramAccountId": bot,
                },
            )
        )
        return f"{API}/campaigns/{body['id']}", body["id"]

    return make


def queued_for(tenant, campaign_id) -> list[Message]:
    with tenant_scope(tenant):
        return list(Message.objects(campaign_id=campaign_id))


def test_a_draft_is_never_changed_after_its_send_queued_messages(app, tenant, auth_headers, draft):
    for repetition in range(REPETITIONS * 2):
        url, campaign_id = draft()
        change = {"targets": ["@channel2", "1002", "1003"], "message": {"text": "after"}}
        sent, changed = at_once(
            app,
            [
                ("post", f"{url}/send", {"headers": auth_headers}),
                ("patch", url, {"headers": auth_headers, "json": change}),
            ],
        )
        assert sent.status_code == 202, sent.json
        assert changed.status_code in (200, 409), changed.json
        with tenant_scope(tenant):
            stored = Campaign.objects.get(id=campaign_id)
        messages = queued_for(tenant, campaign_id)
        # What went out is what the campaign says, whichever request came first.
        assert sorted(m.chat for m in messages) == sorted(stored.targets), repetition
        assert {m.text for m in messages} == {stored.message.text}, repetition
        assert stored.status == "sending"
    assert messages_used(tenant) == sum(len(queued_for(tenant, c.id)) for c in _campaigns(tenant))


def _campaigns(tenant):
    with tenant_scope(tenant):
        return list(Campaign.objects)


@pytest.mark.parametrize("stop", ["cancel", "delete"])
def test_a_campaign_stopped_while_it_is_sent_keeps_no_queued_message(app, tenant, auth_headers, draft, stop):
    stopping = {
        "cancel": ("patch", {"headers": auth_headers, "json": {"status": "cancelled"}}),
        "delete": ("delete", {"headers": auth_headers}),
    }[stop]
    for repetition in range(REPETITIONS * 2):
        url, campaign_id = draft()
        sent, stopped = at_once(
            app,
            [("post", f"{url}/send", {"headers": auth_headers}), (stopping[0], url, stopping[1])],
        )
        assert stopped.status_code in OK + (409,), stopped.json
        assert sent.status_code in (202, 404, 409), sent.json
        with tenant_scope(tenant):
            stored = Campaign.objects(id=campaign_id).first()
        messages = queued_for(tenant, campaign_id)
        if stored is None:
            assert messages == [], repetition
        elif stored.status == "cancelled":
            assert not [m for m in messages if m.status == "queued"], repetition
        # Units are held only by messages that may still go out.
        waiting = sum(1 for c in _campaigns(tenant) for m in queued_for(tenant, c.id) if m.status == "queued")
        assert messages_used(tenant) == waiting, (
            repetition,
            sent.status_code,
            sent.json,
            stopped.status_code,
        )


# -- two-factor enrolment ------------------------------------------------------------------------------


def test_of_two_enrolments_at_once_the_codes_shown_are_the_ones_kept(
    app, client, tenant, make_user, headers_for
):
    for repetition in range(REPETITIONS):
        user = make_user(tenant, "member")
        headers = headers_for(user)
        secret = client.post(f"{API}/auth/2fa/setup", headers=headers).json["secret"]
        code = pyotp.TOTP(secret).now()
        enable = ("post", f"{API}/auth/2fa/enable", {"headers": headers, "json": {"code": code}})
        responses = at_once(app, [enable] * 2)
        enabled = [r for r in responses if r.status_code == 200]
        assert len(enabled) == 1, (repetition, [r.json for r in responses])
        # The other finds 2FA on already, or its session ended by the enrolment (which ends them all).
        assert [r.status_code for r in responses if r is not enabled[0]] in ([409], [401])
        with tenant_scope(tenant):
            stored = User.objects.get(id=user.id)
        shown = enabled[0].json["recoveryCodes"]
        assert sorted(stored.recovery_code_hashes) == sorted(recovery_hash(code) for code in shown)


def test_a_restarted_enrolment_never_replaces_the_secret_of_one_that_finished(
    app, client, tenant, make_user, headers_for
):
    for repetition in range(REPETITIONS):
        user = make_user(tenant, "member")
        headers = headers_for(user)
        secret = client.post(f"{API}/auth/2fa/setup", headers=headers).json["secret"]
        code = {"code": pyotp.TOTP(secret).now()}
        enable = ("post", f"{API}/auth/2fa/enable", {"headers": headers, "json": code})
        restart = ("post", f"{API}/auth/2fa/setup", {"headers": headers})
        enabled, restarted = at_once(app, [enable, restart])
        # A setup after the enrolment finds 2FA on (409), or its session ended by the enrolment (401).
        assert {enabled.status_code, restarted.status_code} <= {200, 401, 409, 422}, repetition
        with tenant_scope(tenant):
            stored = User.objects.get(id=user.id)
        if stored.two_factor_enabled:
            # The device enrolled holds `secret`: 2FA is on with that secret and no other.
            assert crypto.decrypt(stored.totp_secret_encrypted) == secret, repetition
