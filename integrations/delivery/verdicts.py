"""What an HTTP exchange means for the deliveries it carried."""

from dataclasses import dataclass

from integrations.delivery.http import HTTPExchange
from integrations.models import Outcome


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str = ""

    @property
    def delivered(self) -> bool:
        return self.outcome == Outcome.DELIVERED


def judge(exchange: HTTPExchange) -> Verdict:
    """2xx delivers; 408, 429, 5xx and unanswered requests retry; the rest fail; 410 also
    says the endpoint is gone."""
    status = exchange.status
    if status is None:
        if exchange.unreachable:
            return Verdict(Outcome.RETRY, exchange.error)
        return Verdict(Outcome.FAILED, exchange.error)
    snippet = " ".join(exchange.body.split())[:300]
    detail = f"HTTP {status}" + (f": {snippet}" if snippet else "")
    if 200 <= status < 300:
        return Verdict(Outcome.DELIVERED)
    if status in (408, 429) or status >= 500:
        return Verdict(Outcome.RETRY, detail)
    if status == 410:
        return Verdict(Outcome.GONE, f"{detail} (the vendor says this endpoint is gone)")
    if 300 <= status < 400:
        location = exchange.headers.get("Location", "")
        return Verdict(Outcome.FAILED, f"HTTP {status}: redirects are not followed ({location})")
    return Verdict(Outcome.FAILED, detail)
