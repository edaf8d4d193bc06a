"""What stands in front of GraphQL execution: access tokens, the per-client rate limiter,
injected faults and request statistics. Each class is thread-safe (its own lock)."""

import collections
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Optional


class TokenStore:
    """Bearer tokens issued by `authenticate`, valid for `ttl_s` seconds of `clock` time."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.time,
                 on_issue: Optional[Callable[[str], None]] = None):
        self.ttl_s = ttl_s
        self._clock = clock
        self._on_issue = on_issue  # told every token issued, before the client sees it
        self._lock = threading.Lock()
        self._expiry: dict = {}  # token -> epoch seconds
        self._revoked: set = set()

    def issue(self) -> tuple:
        token = secrets.token_urlsafe(32)
        expires_at = self._clock() + self.ttl_s
        with self._lock:
            self._expiry[token] = expires_at
        if self._on_issue is not None:
            self._on_issue(token)
        return token, expires_at

    def problem(self, token: Optional[str]) -> Optional[str]:
        """None when `token` is valid, else why not (for the 401 message)."""
        if not token:
            return "missing bearer token: send 'Authorization: Bearer <accessToken>' from authenticate"
        with self._lock:
            if token in self._revoked:
                return "access token revoked; authenticate again"
            expires_at = self._expiry.get(token)
            if expires_at is None:
                return "unknown access token; authenticate again"
            if self._clock() >= expires_at:
                del self._expiry[token]
                self._revoked.add(token)  # remembered so that later uses say why
                return "access token expired; authenticate again"
        return None

    def revoke_all(self) -> int:
        with self._lock:
            count = len(self._expiry)
            self._revoked.update(self._expiry)
            self._expiry.clear()
            return count

    def active(self) -> int:
        now = self._clock()
        with self._lock:
            return sum(1 for expires_at in self._expiry.values() if expires_at > now)


class RateLimiter:
    """At most `limit` requests per client key in any sliding window of `window_s` seconds.
    A refused request does not count, so a client that waits Retry-After gets through.
    limit 0 disables the limiter."""

    def __init__(self, limit: int, window_s: float = 1.0, monotonic: Callable[[], float] = time.monotonic):
        self.limit = limit
        self._window_s = window_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._recent: dict = {}  # key -> deque of request times

    def allow(self, key: str) -> bool:
        if self.limit <= 0:
            return True
        now = self._monotonic()
        with self._lock:
            recent = self._recent.setdefault(key, collections.deque())
            while recent and recent[0] <= now - self._window_s:
                recent.popleft()
            if len(recent) >= self.limit:
                return False
            recent.append(now)
            if len(self._recent) > 10000:  # forget idle clients
                self._recent = {k: v for k, v in self._recent.items() if v and v[-1] > now - self._window_s}
            return True

    def reset(self) -> None:
        with self._lock:
            self._recent.clear()


FAULT_KINDS = ("5xx", "429", "slow")
FAULT_STATUSES = (500, 502, 503)


@dataclass
class Fault:
    id: int
    kind: str
    operation: Optional[str]  # operation name or root field name; None = every request
    remaining: Optional[int]  # requests left; None = until cleared
    delay_s: float = 0.0
    status: Optional[int] = None  # the HTTP status a 5xx / 429 fault answers
    retry_after_s: int = 1  # the Retry-After a 429 fault answers with

    def matches(self, names: Iterable[str]) -> bool:
        return self.operation is None or self.operation in names


class FaultInjector:
    """Faults applied to POST /graphql requests before authentication, as a sick server would."""

    def __init__(self):
        self._lock = threading.Lock()
        self._faults: list = []
        self._next_id = 1

    def add(self, spec: dict) -> Fault:
        """Validates an admin fault spec ({kind, operation?, count?, delay_s?, status?, retry_after_s?}); raises
        ValueError with a message for the client when it is wrong."""
        kind = spec.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}, revoke_tokens or clear; got {kind!r}")
        operation = spec.get("operation")
        if operation is not None and (not isinstance(operation, str) or not operation):
            raise ValueError("operation must be a non-empty string or null")
        count = spec.get("count")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise ValueError("count must be an integer >= 1 or null (until cleared)")
        delay_s = spec.get("delay_s")
        if kind == "slow":
            if isinstance(delay_s, bool) or not isinstance(delay_s, (int, float)) or not 0 < delay_s <= 300:
                raise ValueError("a slow fault needs delay_s, a number of seconds in (0, 300]")
        elif delay_s is not None:
            raise ValueError("delay_s only applies to kind 'slow'")
        status = spec.get("status")
        if kind == "5xx":
            status = 503 if status is None else status
            if status not in FAULT_STATUSES:
                raise ValueError(f"status must be one of {', '.join(map(str, FAULT_STATUSES))}")
        elif status is not None:
            raise ValueError("status only applies to kind '5xx'")
        else:
            status = 429 if kind == "429" else None
        retry_after_s = spec.get("retry_after_s")
        if kind == "429":
            retry_after_s = 1 if retry_after_s is None else retry_after_s
            if isinstance(retry_after_s, bool) or not isinstance(retry_after_s, int) or not 0 <= retry_after_s <= 86400:
                raise ValueError("retry_after_s must be an integer number of seconds in [0, 86400]")
        elif retry_after_s is not None:
            raise ValueError("retry_after_s only applies to kind '429'")
        else:
            retry_after_s = 1
        unknown = set(spec) - {"kind", "operation", "count", "delay_s", "status", "retry_after_s"}
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        with self._lock:
            fault = Fault(self._next_id, kind, operation, count, float(delay_s or 0.0), status, retry_after_s)
            self._next_id += 1
            self._faults.append(fault)
            return fault

    def clear(self) -> int:
        with self._lock:
            count = len(self._faults)
            self._faults.clear()
            return count

    def list(self) -> list:
        with self._lock:
            return [asdict(fault) for fault in self._faults]

    def take(self, names: Iterable[str]) -> tuple:
        """Consumes the faults that match a request named `names`.
        Returns (seconds to delay, the failing fault or None)."""
        names = set(names)
        delay = 0.0
        failure = None
        with self._lock:
            for fault in self._faults:
                if not fault.matches(names):
                    continue
                if fault.kind == "slow":
                    delay += fault.delay_s
                elif failure is None:
                    failure = Fault(**asdict(fault))
                else:
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
            self._faults = [fault for fault in self._faults if fault.remaining is None or fault.remaining > 0]
        return delay, failure


class Stats:
    """Counters for GET /admin/stats (not persisted)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests = 0
            self.by_operation = collections.Counter()
            self.by_field = collections.Counter()
            self.by_status = collections.Counter()
            self.errors_by_code = collections.Counter()
            self.faults_injected = collections.Counter()
            self.duplicates = 0
            self.rejected_points = 0
            self.tokens_issued = 0
            self.tokens_revoked = 0

    def count_request(self, operation: str, fields: Iterable[str]) -> None:
        with self._lock:
            self.requests += 1
            self.by_operation[operation] += 1
            for field in fields:
                self.by_field[field] += 1

    def count_response(self, status: int, error_codes: Iterable[str]) -> None:
        with self._lock:
            self.by_status[str(status)] += 1
            for code in error_codes:
                self.errors_by_code[code] += 1

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def count_fault(self, kind: str) -> None:
        with self._lock:
            self.faults_injected[kind] += 1

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "requests": self.requests,
                "requestsByOperation": dict(self.by_operation),
                "requestsByField": dict(self.by_field),
                "responsesByStatus": dict(self.by_status),
                "errorsByCode": dict(self.errors_by_code),
                "faultsInjected": dict(self.faults_injected),
                "duplicates": self.duplicates,
                "rejectedPoints": self.rejected_points,
                "tokensIssued": self.tokens_issued,
                "tokensRevoked": self.tokens_revoked,
            }
