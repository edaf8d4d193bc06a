"""The DateTime scalar: ISO-8601 in UTC, written "2026-11-22T10:15:00Z"."""

from datetime import datetime, timezone


def format_epoch(seconds: float) -> str:
    """Server-made timestamps (createdAt, expiresAt, history) in whole seconds, rounded down:
    an expiresAt never promises more time than the token has."""
    return format_datetime(datetime.fromtimestamp(int(seconds // 1), tz=timezone.utc))


def format_datetime(value: datetime) -> str:
    """Canonical text: whole seconds end in "Z"; a fraction is kept without trailing zeros."""
    value = value.astimezone(timezone.utc)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += ("." + f"{value.microsecond:06d}").rstrip("0")
    return text + "Z"


def parse_datetime(text: str) -> datetime:
    """Parses an ISO-8601 timestamp that names its offset ("Z" or "+hh:mm"); returns it in UTC.

    A timestamp without an offset is refused: the contract says UTC, and guessing the zone of a
    naive timestamp would hide a client bug.
    """
    if not isinstance(text, str):
        raise ValueError(f"DateTime must be a string, got {type(text).__name__}")
    candidate = text.strip()
    if candidate.endswith(("Z", "z")):
        candidate = candidate[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        raise ValueError(f"'{text}' is not an ISO-8601 timestamp (e.g. 2026-11-22T10:15:00Z)") from None
    if "T" not in candidate and " " not in candidate:
        raise ValueError(f"'{text}' has no time of day (e.g. 2026-11-22T10:15:00Z)")
    if parsed.tzinfo is None:
        raise ValueError(f"'{text}' has no UTC offset; write it as e.g. 2026-11-22T10:15:00Z")
    return parsed.astimezone(timezone.utc)


def canonical(text: str) -> str:
    return format_datetime(parse_datetime(text))
