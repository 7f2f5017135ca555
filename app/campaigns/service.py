"""Campaigns (limit `campaigns`) and their sending (limit `messagesPerMonth`, reserved all at once)."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from mongoengine.errors import SaveConditionError

from app import leases
from app.audit.service import record
from app.clock import utcnow
from app.errors import Conflict, NotFound, ValidationFailed, found
from app.media.models import MediaFile
from app.messages.models import LANE as BOT_LANE
from app.messages.models import MESSAGE_STATUSES, Message
from app.pagination import paginate
from app.telegram_accounts.models import TelegramAccount
from app.tenancy.access import Principal
from app.tenancy.context import current_tenant
from app.tenants.service import require_feature
from app.usage import service as usage

from .models import EDITABLE_STATUSES, SENDABLE_STATUSES, Campaign, CampaignMessage


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
    if scheduled_at <= utcnow():
        raise ValidationFailed(details={"scheduledAt": ["Choose a time in the future."]})


def _apply(campaign: Campaign, fields: dict[str, Any]) -> None:
    for name in ("name", "description", "targets", "scheduled_at"):
        if name in fields:
            setattr(campaign, name, fields[name])
    if "message" in fields:
        message = fields["message"]
        if (
            message.get("media_id")
            and MediaFile.objects(id=message["media_id"], complete=True).first() is None
        ):
            raise ValidationFailed(details={"message": {"mediaId": ["No such media file."]}})
        campaign.message = CampaignMessage(**message)
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
        campaign.save(force_insert=True)
    record(
        "campaign.created",
        target_type="campaign",
        target_id=campaign.id,
        summary={"targets": len(campaign.targets)},
    )
    return campaign


def list_campaigns(page: int, per_page: int, status: str | None = None) -> dict:
    campaigns = Campaign.objects.order_by("-created_at", "-id")
    if status:
        campaigns = campaigns.filter(status=status)
    return paginate(campaigns, page, per_page)


def get_campaign(campaign_id: ObjectId) -> Campaign:
    return found(Campaign.objects(id=campaign_id).first(), "campaign")


def _cancel_queued(campaign: Campaign) -> int:
    """Cancel the campaign's messages still waiting, and give their units back to the month they were
    reserved in (the month of the send, whose counter the reservation raised)."""
    cancelled = Message.objects(campaign_id=campaign.id, status="queued").update(
        set__status="cancelled", set__failed_at=utcnow()
    )
    sent = campaign.send_requested_at
    usage.refund("messagesPerMonth", cancelled, period=usage.period_of(sent) if sent else None)
    return cancelled


def update_campaign(campaign_id: ObjectId, fields: dict[str, Any]) -> Campaign:
    """Change a draft, or cancel a campaign that is scheduled or being sent."""
    campaign = get_campaign(campaign_id)
    if fields.get("status") == "cancelled":
        if set(fields) != {"status"}:
            raise ValidationFailed(details={"status": ["Cancel on its own, without other changes."]})
        if campaign.status not in ("scheduled", "sending", "draft"):
            raise Conflict(f"A {campaign.status} campaign cannot be cancelled")
        moved = Campaign.objects(id=campaign.id, status=campaign.status).update_one(set__status="cancelled")
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
    Message.objects(campaign_id=campaign.id, status__ne="queued").delete()
    usage.refund("campaigns")
    record("campaign.deleted", target_type="campaign", target_id=campaign_id, summary={"name": campaign.name})


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
    target_status = "scheduled" if campaign.scheduled_at else "sending"
    account_id = campaign.telegram_account.id
    # Claim the campaign first, as it is now: of two concurrent sends only one moves it out of draft,
    # no edit lands after the claim (edits need a draft), and the bot and time checked above are in
    # the claim's filter. The messages are made from what the claim returns.
    claimed = Campaign.objects(
        id=campaign.id,
        status__in=SENDABLE_STATUSES,
        telegram_account=account_id,
        scheduled_at=campaign.scheduled_at,
    ).modify(new=True, set__status=target_status, set__send_requested_at=utcnow())
    if claimed is None:
        raise Conflict("The campaign is being sent already, or changed meanwhile")
    due = claimed.scheduled_at or utcnow()
    try:
        with usage.reserved("messagesPerMonth", len(claimed.targets)):
            Message.objects.insert(
                [
                    Message(
                        campaign_id=claimed.id,
                        telegram_account_id=account_id,
                        chat=chat,
                        text=claimed.message.text,
                        parse_mode=claimed.message.parse_mode,
                        media_id=claimed.message.media_id,
                        position=position,
                        not_before=due,
                    )
                    for position, chat in enumerate(claimed.targets)
                ],
                load_bulk=False,
            )
    except BaseException:
        if Campaign.objects(id=claimed.id, status=target_status).update_one(
            set__status="draft", unset__send_requested_at=True
        ):
            Message.objects(campaign_id=claimed.id).delete()
        raise
    if Campaign.objects(id=claimed.id, status__in=("scheduled", "sending")).only("id").first() is None:
        # Cancelled or deleted while its messages were being queued: they must not go out.
        _cancel_queued(claimed)
        if Campaign.objects(id=claimed.id).only("id").first() is None:
            Message.objects(campaign_id=claimed.id).delete()
        raise Conflict("The campaign was cancelled or deleted while it was being sent")
    leases.wake(leases.lane_name(BOT_LANE, account_id), campaign.tenant_id, due)
    record(
        "campaign.send_requested",
        target_type="campaign",
        target_id=campaign.id,
        summary={"messages": len(claimed.targets)},
    )
    return get_campaign(claimed.id)


def campaign_stats(campaign_id: ObjectId) -> dict[str, Any]:
    """Count the campaign's messages by status (the plan's basicAnalytics feature)."""
    require_feature(current_tenant(), "basicAnalytics")
    campaign = get_campaign(campaign_id)
    counts = dict.fromkeys(MESSAGE_STATUSES, 0)
    pipeline = [{"$group": {"_id": "$status", "n": {"$sum": 1}}}]
    for row in Message.objects(campaign_id=campaign.id).aggregate(pipeline):
        counts[row["_id"]] = row["n"]
    finished = counts["sent"] + counts["failed"]
    return {
        "campaign_id": str(campaign.id),
        "status": campaign.status,
        "targets": len(campaign.targets),
        "messages": counts,
        "delivery_rate": round(counts["sent"] / finished, 4) if finished else None,
    }
