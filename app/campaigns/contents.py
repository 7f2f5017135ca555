"""What a campaign sends, from a request's fields: its message and their translations, the targets'
languages, its A/B test; checked against the plan's features (multiLanguage, abTesting), the tenant's
media files and the campaign's targets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bson import ObjectId

from app.errors import ValidationFailed
from app.media.models import MediaFile
from app.tenancy.context import current_tenant
from app.tenants.service import require_feature

from .models import ABTest, Campaign, CampaignMessage, Translation, Variant, WinnerRule

SHOWN_STRANGERS = 20  # targets named in a refusal of targetLanguages, at most
Path = tuple[str | int, ...]  # where a field is in a request body


def _nested(path: Path, messages: list[str]) -> dict[Any, Any]:
    """Error details at `path`, nested as marshmallow nests them."""
    details: Any = messages
    for key in reversed(path):
        details = {key: details}
    return details


def _messages(fields: dict[str, Any]) -> Iterator[tuple[Path, dict[str, Any]]]:
    """The messages of the request, with where each is: the campaign's, and each variant's."""
    if fields.get("message"):
        yield ("message",), fields["message"]
    for n, variant in enumerate((fields.get("ab_test") or {}).get("variants", ())):
        yield ("abTest", "variants", n, "message"), variant["message"]


def _bodies(fields: dict[str, Any]) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every message body of the request, with where it is: the messages and their translations."""
    for path, message in _messages(fields):
        yield path, message
        for language, translation in (message.get("translations") or {}).items():
            yield (*path, "translations", language), translation


def _check_features(fields: dict[str, Any]) -> None:
    """An A/B test is the plan's abTesting feature; translations and target languages multiLanguage."""
    tenant = current_tenant()
    if fields.get("ab_test"):
        require_feature(tenant, "abTesting")
    if fields.get("target_languages") or any(message.get("translations") for _, message in _messages(fields)):
        require_feature(tenant, "multiLanguage")


def _check_media(fields: dict[str, Any]) -> None:
    """Every media file the bodies name must exist (and be completely uploaded)."""
    named = [(path, ObjectId(body["media_id"])) for path, body in _bodies(fields) if body.get("media_id")]
    if not named:
        return
    stored = set(MediaFile.objects(id__in=[media_id for _, media_id in named], complete=True).scalar("id"))
    for path, media_id in named:
        if media_id not in stored:
            raise ValidationFailed(details=_nested((*path, "mediaId"), ["No such media file."]))


def _message(body: dict[str, Any]) -> CampaignMessage:
    translations = {
        language: Translation(**part) for language, part in (body.get("translations") or {}).items()
    }
    return CampaignMessage(
        text=body["text"],
        parse_mode=body.get("parse_mode"),
        media_id=body.get("media_id"),
        translations=translations,
    )


def _ab_test(test: dict[str, Any]) -> ABTest:
    rule = test.get("winner_rule")
    return ABTest(
        variants=[
            Variant(name=variant["name"], message=_message(variant["message"]))
            for variant in test["variants"]
        ],
        test_percent=test["test_percent"],
        winner_rule=WinnerRule(**rule) if rule else None,
    )


def _check_languages(campaign: Campaign) -> None:
    """Every target given a language must be among the campaign's targets."""
    targets = set(campaign.targets or ())
    strangers = [target for target in campaign.target_languages or {} if target not in targets]
    if strangers:
        shown = strangers[:SHOWN_STRANGERS]
        raise ValidationFailed(
            details={"targetLanguages": {target: ["Not among the campaign's targets."] for target in shown}}
        )


def apply(campaign: Campaign, fields: dict[str, Any]) -> None:
    """Set what `campaign` sends from the request's `fields` (its targets set already)."""
    _check_features(fields)
    _check_media(fields)
    if "message" in fields:
        campaign.message = _message(fields["message"])
    if "target_languages" in fields:
        campaign.target_languages = fields["target_languages"] or {}
    if "ab_test" in fields:
        campaign.ab_test = _ab_test(fields["ab_test"]) if fields["ab_test"] else None
    if campaign.message is None and campaign.ab_test is None:
        raise ValidationFailed(details={"message": ["Give the message, or an A/B test with its variants."]})
    _check_languages(campaign)
