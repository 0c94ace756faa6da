"""The event taxonomy: event names → kinds, lead channels and scores, as plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    """What a listing event counts as."""

    LEAD = "lead"
    VIEW = "view"
    IMPRESSION = "impression"
    SHARE = "share"
    SAVE = "save"


class RejectReason(StrEnum):
    """Why an event read by a run was not accepted, in the order the checks apply."""

    MALFORMED_JSON = "malformed_json"
    MISSING_UUID = "missing_uuid"
    MISSING_EVENT = "missing_event"
    IGNORED_EVENT = "ignored_event"
    BAD_PROPERTIES = "bad_properties"
    BAD_TIMESTAMP = "bad_timestamp"
    MISSING_LISTING_ID = "missing_listing_id"
    MISSING_SEEKER = "missing_seeker"
    WRONG_TYPE = "wrong_type"
    INVALID_VALUE = "invalid_value"
    # Only where the store cannot keep a NUL character in text (PostgreSQL's text and jsonb).
    UNSTORABLE_TEXT = "unstorable_text"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Channel:
    """A way a seeker contacts a lister: its score, its hourly counter and its action type."""

    name: str
    action_type: str
    counter: str
    score: int
    message_type: str | None = None


# Lead channels in a fixed order; the order is that of the hourly counters and breakdowns.
CHANNELS: tuple[Channel, ...] = (
    Channel("phone", "phone", "phone_leads", 30),
    Channel("whatsapp", "message", "message_leads", 15, message_type="whatsapp"),
    Channel("direct_message", "message", "message_leads", 20, message_type="direct_message"),
    Channel("email", "message", "email_leads", 10, message_type="email"),
    Channel("appointment", "appointment", "appointment_leads", 40),
    Channel("website", "website", "website_leads", 10),
)

LEAD_COUNTERS: tuple[str, ...] = (
    "phone_leads",
    "message_leads",
    "email_leads",
    "appointment_leads",
    "website_leads",
)


@dataclass(frozen=True)
class Taxonomy:
    """Which events leadflow reads and how; the defaults are DESIGN.md §2."""

    view_events: tuple[str, ...] = ("property_view", "listing_view")
    # A generic page view counts as a listing view only when it carries a listing id.
    pageview_events: tuple[str, ...] = ("$pageview",)
    impression_events: tuple[str, ...] = ("listing_impression",)
    share_events: tuple[str, ...] = ("impression_share", "listing_share")
    save_events: tuple[str, ...] = ("impression_saved_listing", "listing_save")
    # A save event whose `action` property has this value is an un-save, not a save.
    save_remove_action: str = "remove"
    # Lead events with a fixed lead type …
    lead_events: dict[str, str] = field(
        default_factory=lambda: {
            "lead_phone": "phone",
            "lead_message": "message",
            "lead_appointment": "appointment",
            "impression_website_visit": "website",
        }
    )
    # … and unified lead events whose `lead_type` property names it (absent → website).
    unified_lead_events: tuple[str, ...] = ("lead",)
    lead_types: tuple[str, ...] = ("phone", "message", "appointment", "website")
    default_lead_type: str = "website"
    # The channel of a message lead comes from `message_type` (absent → direct_message).
    default_message_type: str = "direct_message"
    channels: tuple[Channel, ...] = CHANNELS

    # Property names.
    listing_id: str = "listing_id"
    seeker_id: str = "seeker_id"
    lister_id: str = "lister_id"
    lister_type: str = "lister_type"
    message_type: str = "message_type"
    appointment_type: str = "appointment_type"
    platform: str = "platform"
    context_type: str = "context_type"
    lead_type: str = "lead_type"
    action: str = "action"

    def channel(self, name: str) -> Channel:
        for channel in self.channels:
            if channel.name == name:
                return channel
        raise KeyError(name)

    def channel_for(self, lead_type: str, message_type: str | None = None) -> Channel:
        """The channel of a lead of this type (and message type, for messages)."""
        if lead_type == "message":
            wanted = message_type or self.default_message_type
            for channel in self.channels:
                if channel.action_type == "message" and channel.message_type == wanted:
                    return channel
            raise KeyError(wanted)
        for channel in self.channels:
            if channel.action_type == lead_type:
                return channel
        raise KeyError(lead_type)

    @property
    def message_types(self) -> tuple[str, ...]:
        return tuple(c.message_type for c in self.channels if c.message_type)

    def kind_of(self, event: str) -> Kind | None:
        """The kind of an event name, or None for events leadflow ignores."""
        if event in self.lead_events or event in self.unified_lead_events:
            return Kind.LEAD
        if event in self.view_events or event in self.pageview_events:
            return Kind.VIEW
        if event in self.impression_events:
            return Kind.IMPRESSION
        if event in self.share_events:
            return Kind.SHARE
        if event in self.save_events:
            return Kind.SAVE
        return None


DEFAULT_TAXONOMY = Taxonomy()

LEAD_STATUSES: tuple[str, ...] = (
    "new",
    "contacted",
    "qualified",
    "viewing_scheduled",
    "negotiating",
    "won",
    "lost",
    "spam",
    "archived",
)
