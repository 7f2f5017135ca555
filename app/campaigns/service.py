"""Campaigns (limit `campaigns`) and their sending (limit `messagesPerMonth`, reserved all at once)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from mongoengine.errors import SaveConditionError

from app import clock, leases, wire
from app.audit.service import record
from app.errors import Conflict, NotFound, ValidationFailed, found
from app.messages.models import LANE as BOT_LANE
from app.messages.models import Message
from app.pagination import paginate
from app.telegram_accounts.models import TelegramAccount
from app.tenancy.access import Principal
from app.tenancy.context import current_tenant
from app.tenants.plans import period_of
from app.tenants.service import require_feature
from app.usage import service as usage

from . import contents, outgoing
from .models import (
    EDITABLE_STATUSES,
    SENDABLE_STATUSES,
    Campaign,
)

WAITING = ("queued", "held")  # messages that nothing sent yet, nor will before they are claimed


def _account(account_id: str | None) -> TelegramAccount | None:
    if account_id is None:
        return None
    account = TelegramAccount.objects(id=account_id).first()
    if account is None:
        raise ValidationFailed(details={"telegramAccountId": ["No such Telegram account."]})
    return account


def _check_schedule(scheduled_at: Any) -> None:
    """Scheduling is the plan's `automation` feature, and the time must lie ahead."""
    if scheduled_at is None:
        return
    require_feature(current_tenant(), "automation")
    if scheduled_at <= clock.utcnow():
        raise ValidationFailed(details={"scheduledAt": ["Choose a time in the future."]})


def _apply(campaign: Campaign, fields: dict[str, Any]) -> None:
    for name in ("name", "description", "targets", "scheduled_at"):
        if name in fields:
            setattr(campaign, name, fields[name])
    contents.apply(campaign, fields)
    if "telegram_account_id" in fields:
        campaign.telegram_account = _account(fields["telegram_account_id"])


def create_campaign(fields: dict[str, Any], author: Principal) -> Campaign:
    """Create a draft campaign (within the plan's `campaigns` limit)."""
    _check_schedule(fields.get("scheduled_at"))
    campaign = Campaign(created_by=author.subject)
    _apply(campaign, fields)
    campaign.bind_tenant()
    campaign.validate()
    with usage.reserved("campaigns"):
        campaign.save(force_insert=True, validate=False)  # validated above, before the reservation
    record(
        "campaign.created",
        target_type="campaign",
        target_id=campaign.id,
        summary={"targets": len(campaign.targets)},
    )
    return campaign


def list_campaigns(paging: Mapping[str, Any], status: str | None = None) -> dict:
    campaigns = Campaign.objects
    if status:
        campaigns = campaigns.filter(status=status)
    return paginate(campaigns, ("-created_at", "-id"), paging)


def get_campaign(campaign_id: ObjectId) -> Campaign:
    return found(Campaign.objects(id=campaign_id).first(), "campaign")


def show_campaign(campaign_id: ObjectId) -> wire.Stored:
    """The campaign as stored, for its response (not built into a document)."""
    return found(wire.stored(Campaign, Campaign.find_stored(id=campaign_id)), "campaign")


def _cancel_queued(campaign: Campaign) -> int:
    """Cancel the campaign's messages still waiting (queued, or held for an A/B test's winner), and give
    their units back to the month they were reserved in (the month of the send, whose counter the
    reservation raised)."""
    cancelled = Message.objects(campaign_id=campaign.id, status__in=WAITING).update(
        set__status="cancelled", set__failed_at=clock.utcnow()
    )
    sent = campaign.send_requested_at
    usage.refund("messagesPerMonth", cancelled, period=period_of(sent) if sent else None)
    return cancelled


def cancel_if_stopped(campaign: Campaign, running: tuple[str, ...]) -> bool:
    """Cancel the messages just queued for a campaign that is no longer in a `running` status (cancelled
    or deleted meanwhile: they must not go out); True when it was stopped."""
    if Campaign.objects(id=campaign.id, status__in=running).only("id").first() is not None:
        return False
    _cancel_queued(campaign)
    if Campaign.objects(id=campaign.id).only("id").first() is None:
        Message.objects(campaign_id=campaign.id).delete()
    return True


def update_campaign(campaign_id: ObjectId, fields: dict[str, Any]) -> Campaign:
    """Change a draft, or cancel a campaign that is scheduled or being sent."""
    campaign = get_campaign(campaign_id)
    if fields.get("status") == "cancelled":
        if set(fields) != {"status"}:
            raise ValidationFailed(details={"status": ["Cancel on its own, without other changes."]})
        if campaign.status not in ("scheduled", "sending", "draft"):
            raise Conflict(f"A {campaign.status} campaign cannot be cancelled")
        moved = Campaign.objects(id=campaign.id, status=campaign.status).update_one(
            set__status="cancelled", unset__ab_test__winner_due_at=True
        )
        if not moved:
            raise Conflict("The campaign changed meanwhile; reload it")
        cancelled = _cancel_queued(campaign)
        record(
            "campaign.cancelled",
            target_type="campaign",
            target_id=campaign.id,
            summary={"messages": cancelled},
        )
        return get_campaign(campaign.id)
    if campaign.status not in EDITABLE_STATUSES:
        raise Conflict(f"A {campaign.status} campaign cannot be changed")
    if "scheduled_at" in fields:
        _check_schedule(fields["scheduled_at"])
    _apply(campaign, fields)
    try:
        # Written only while it is still a draft: a send that queued its messages meanwhile wins.
        campaign.save(save_condition={"status__in": EDITABLE_STATUSES})
    except SaveConditionError:
        current = get_campaign(campaign.id)
        raise Conflict(f"A {current.status} campaign cannot be changed") from None
    return campaign


def delete_campaign(campaign_id: ObjectId) -> None:
    """Delete a campaign and its messages; units of messages not yet sent go back."""
    campaign = get_campaign(campaign_id)
    # The campaign goes first, and only the request that removed it gives its seat back. Queued messages
    # are cancelled (their units go back) before they are deleted; those a send under way queues after
    # that are its own to cancel: it sees the campaign gone once they are queued (send_campaign).
    if not Campaign.objects(id=campaign.id).delete():
        raise NotFound("No such campaign")
    _cancel_queued(campaign)
    Message.objects(campaign_id=campaign.id, status__nin=WAITING).delete()
    usage.refund("campaigns")
    record("campaign.deleted", target_type="campaign", target_id=campaign_id, summary={"name": campaign.name})


def _winner_due(campaign: Campaign, starts: datetime) -> datetime | None:
    """When the campaign's winner rule applies (None: the owner picks, or there is nothing to pick)."""
    test = campaign.ab_test
    if test is None or not test.holds_out or test.winner_rule is None:
        return None
    return starts + timedelta(minutes=test.winner_rule.after_minutes)


def send_campaign(campaign_id: ObjectId) -> Campaign:
    """Queue one message per target, reserving `messagesPerMonth` for all of them or none."""
    campaign = get_campaign(campaign_id)
    if campaign.status not in SENDABLE_STATUSES:
        raise Conflict(f"A {campaign.status} campaign cannot be sent again")
    if campaign.telegram_account is None:
        raise ValidationFailed(details={"telegramAccountId": ["Choose the bot that sends this campaign."]})
    if not campaign.telegram_account.active:
        raise ValidationFailed(
            details={"telegramAccountId": ["This bot is deactivated; activate it or choose another."]}
        )
    if campaign.scheduled_at is not None:
        _check_schedule(campaign.scheduled_at)
    tenant = current_tenant()
    if campaign.ab_test is not None:
        require_feature(tenant, "abTesting")
    if campaign.uses_languages:
        require_feature(tenant, "multiLanguage")
    target_status = "scheduled" if campaign.scheduled_at else "sending"
    account_id = campaign.telegram_account.id
    now = clock.utcnow()
    due = campaign.scheduled_at or now
    changes: dict[str, Any] = {"set__status": target_status, "set__send_requested_at": now}
    if (winner_due := _winner_due(campaign, due)) is not None:
        changes["set__ab_test__winner_due_at"] = winner_due
    # Claim the campaign first, as it is now: of two concurrent sends only one moves it out of draft,
    # no edit lands after the claim (edits need a draft), and the bot and time checked above are in
    # the claim's filter. The messages are made from what the claim returns.
    claimed = Campaign.objects(
        id=campaign.id,
        status__in=SENDABLE_STATUSES,
        telegram_account=account_id,
        scheduled_at=campaign.scheduled_at,
    ).modify(new=True, **changes)
    if claimed is None:
        raise Conflict("The campaign is being sent already, or changed meanwhile")
    try:
        with usage.reserved("messagesPerMonth", len(claimed.targets)):
            Message.objects.insert(
                outgoing.messages_of(claimed, account_id, due, tenant.settings.general.language),
                load_bulk=False,
            )
    except BaseException:
        if Campaign.objects(id=claimed.id, status=target_status).update_one(
            set__status="draft", unset__send_requested_at=True, unset__ab_test__winner_due_at=True
        ):
            Message.objects(campaign_id=claimed.id).delete()
        raise
    if cancel_if_stopped(claimed, ("scheduled", "sending")):
        raise Conflict("The campaign was cancelled or deleted while it was being sent")
    leases.wake(leases.lane_name(BOT_LANE, account_id), campaign.tenant_id, due)
    record(
        "campaign.send_requested",
        target_type="campaign",
        target_id=campaign.id,
        summary={"messages": len(claimed.targets)},
    )
    return get_campaign(claimed.id)
