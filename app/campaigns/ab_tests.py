"""A/B tests' winners: chosen by an owner or an admin (POST /campaigns/{id}/winner) or by the test's
winner rule (the ab-test-winners job); the targets held out of the test then get the winner's message,
in their language where the winner has it, and the campaign's message becomes the winner's.

A choice is one conditional write (no winner yet, the test under way or done), so of two choices one
wins. The held messages are then released, one update per language; a choice that stopped halfway
stays due for the job (`abTest.winnerDueAt`), which finishes it: releasing is idempotent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId

from app import clock, leases
from app.audit.service import record
from app.errors import Conflict, ValidationFailed
from app.messages.models import LANE as BOT_LANE
from app.messages.models import Message
from app.signals import notify
from app.tenancy.context import current_tenant

from .models import Campaign, MessageBody, Variant
from .outgoing import given
from .service import cancel_if_stopped, get_campaign
from .stats import tallies, variant_stats

TESTED = ("sending", "completed", "failed")  # the test is under way or done: a winner may be chosen
WINNER_CHOSEN = "campaign.winner_chosen"


def best_variant(campaign: Campaign) -> Variant:
    """The variant with the best delivery rate so far (none finished counts lowest; a tie goes to the
    variant listed first)."""
    rates = [
        -1.0 if stats["delivery_rate"] is None else stats["delivery_rate"]
        for stats in variant_stats(campaign, tallies(campaign.id))
    ]
    return campaign.ab_test.variants[rates.index(max(rates))]


def _claim(campaign: Campaign, variant: Variant, now: datetime) -> Campaign | None:
    """Make `variant` the winner unless one was chosen meanwhile; the campaign stays due for the job
    until its held targets are released."""
    return Campaign.objects(id=campaign.id, status__in=TESTED, ab_test__winner=None).modify(
        new=True,
        set__message=variant.message,
        set__ab_test__winner=variant.name,
        set__ab_test__winner_chosen_at=now,
        set__ab_test__winner_due_at=now,
    )


def _announce(campaign: Campaign, chosen_by: str) -> None:
    data = {"campaignId": str(campaign.id), "variant": campaign.ab_test.winner, "chosenBy": chosen_by}
    record(WINNER_CHOSEN, target_type="campaign", target_id=campaign.id, summary=data)
    notify(WINNER_CHOSEN, data)


def _released_as(body: MessageBody, variant: str, language: str, now: datetime) -> dict[str, Any]:
    sets = {f"set__{name}": value for name, value in given(body).items()}
    return {
        **sets,
        "set__status": "queued",
        "set__variant": variant,
        "set__language": language,
        "set__not_before": now,
    }


def _release(campaign: Campaign) -> int:
    """Queue the held messages with the winner's message; return how many."""
    winner = campaign.ab_test.variant(campaign.ab_test.winner)
    assert winner is not None, "the winner is one of the campaign's variants"
    held = Message.objects(campaign_id=campaign.id, status="held")
    first = held.only("telegram_account_id").as_pymongo().first()
    released = 0
    if first is not None:
        now = clock.utcnow()
        # The translations first: what is left held after them reads a language the winner lacks.
        for language, translation in (winner.message.translations or {}).items():
            released += held.filter(language=language).update(
                **_released_as(translation, winner.name, language, now)
            )
        fallback = current_tenant().settings.general.language
        released += held.update(**_released_as(winner.message, winner.name, fallback, now))
        leases.wake(leases.lane_name(BOT_LANE, first["telegramAccountId"]), campaign.tenant_id, now)
    Campaign.objects(id=campaign.id, ab_test__winner__ne=None).update_one(unset__ab_test__winner_due_at=True)
    if released:
        cancel_if_stopped(campaign, ("sending",))
    return released


def choose_winner(campaign_id: ObjectId, name: str | None) -> Campaign:
    """Make the variant called `name` the winner and give the held targets its message."""
    campaign = get_campaign(campaign_id)
    test = campaign.ab_test
    if test is None:
        raise Conflict("The campaign has no A/B test")
    variant = test.variant(name) if name is not None else None
    if variant is None:
        names = ", ".join(each.name for each in test.variants)
        raise ValidationFailed(details={"variant": [f"Name one of the campaign's variants: {names}."]})
    if not test.holds_out:
        raise Conflict("Every target is in the test (testPercent 100): there is no winner to choose")
    if test.winner is not None:
        raise Conflict(f"The winner was chosen already: {test.winner}")
    if campaign.status not in TESTED:
        raise Conflict(f"The test of a {campaign.status} campaign is not under way")
    claimed = _claim(campaign, variant, clock.utcnow())
    if claimed is None:
        raise Conflict("The campaign changed meanwhile; reload it")
    _announce(claimed, "manual")
    _release(claimed)
    return get_campaign(claimed.id)


def settle_due(now: datetime) -> dict[str, int]:
    """For the tenant in context: choose the winners whose rule applies by `now`, and finish the
    choices that stopped before their held targets were released."""
    chosen = released = 0
    for campaign in list(
        Campaign.objects(ab_test__winner_due_at__lte=now).exclude("targets", "target_languages")
    ):
        if campaign.ab_test.winner is None:
            if campaign.status not in TESTED:
                continue  # a scheduled test that has not started yet (its tenant is suspended)
            claimed = _claim(campaign, best_variant(campaign), now)
            if claimed is None:
                continue  # chosen meanwhile: that choice releases the held targets
            _announce(claimed, "rule")
            chosen += 1
            campaign = claimed
        released += _release(campaign)
    return {"chosen": chosen, "released": released}
