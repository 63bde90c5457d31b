"""What the periodic check sees: for each rule, whether its condition holds, and why.

Conditions are judged on the workspace's integrations that deliver (enabled and not
paused); a paused integration's backlog is on purpose. Delivery state is read through
``delivery.health.health()`` (one call per integration and check) and
``backlog.oldest_due_at``.
"""

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.conf import settings

from integrations.alerts.backlog import oldest_due_at
from integrations.delivery.health import Health, summaries
from integrations.models import AlertRule, Integration

Condition = AlertRule.Condition
ERROR_LIMIT = 300  # characters of the latest error quoted in a notice


@dataclass(frozen=True)
class Observation:
    """A rule's condition for one integration (None: the workspace) at one check."""

    rule: AlertRule
    integration: Integration | None
    holds: bool
    detail: str

    @property
    def key(self) -> tuple[int, int | None]:
        return self.rule.pk, self.integration.pk if self.integration else None


def window() -> dt.timedelta:
    """The recent past the failure rate is measured over (and in which a refused
    request keeps an auth_error incident open)."""
    return dt.timedelta(minutes=settings.ALERTS_WINDOW_MINUTES)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _latest_error(state: Health) -> str:
    if not state.last_error:
        return ""
    error = state.last_error
    if len(error) > ERROR_LIMIT:
        error = error[: ERROR_LIMIT - 1] + "…"
    return f" Latest error: {error}"


NO_THRESHOLD = "The rule has no threshold."


def failure_rate(rule: AlertRule, state: Health) -> tuple[bool, str]:
    threshold = rule.threshold
    if threshold is None:  # validation requires one: a rule saved around it never holds
        return False, NO_THRESHOLD
    finished = state.delivered + state.failed
    minutes = f"{settings.ALERTS_WINDOW_MINUTES:g} minutes"
    if finished < settings.ALERTS_MIN_DELIVERIES:
        return False, (
            f"{finished} deliveries finished in the last {minutes}, fewer than the "
            f"{settings.ALERTS_MIN_DELIVERIES} a failure rate needs."
        )
    rate = 100 * state.failed / finished
    text = (
        f"{rate:.1f} % of the deliveries finished in the last {minutes} failed "
        f"({state.failed} of {finished}; threshold {threshold:g} %)."
    )
    holds = rate >= threshold
    return holds, text + (_latest_error(state) if holds else "")


def backlog_age(rule: AlertRule, state: Health) -> tuple[bool, str]:
    threshold = rule.threshold
    if threshold is None:  # as in failure_rate
        return False, NO_THRESHOLD
    age = state.oldest_waiting_seconds
    if age is None:
        return False, "Nothing is waiting."
    text = (
        f"The oldest waiting event was received {_minutes(age)} ago (threshold "
        f"{threshold:g} min); {state.waiting} deliveries waiting "
        f"({state.retrying} retrying)."
    )
    holds = age >= threshold * 60
    return holds, text + (_latest_error(state) if holds else "")


def stalled_worker(
    rule: AlertRule, states: dict[Integration, Health], now: dt.datetime
) -> tuple[bool, str]:
    """Work has been due for longer than the threshold, and no attempt was recorded in
    that time, for any of the workspace's integrations."""
    limit = now - dt.timedelta(minutes=rule.stall_minutes)
    movable = [integration.pk for integration in states if not integration.is_deferred()]
    due_since = oldest_due_at(movable, now)
    attempts = [state.last_attempt_at for state in states.values() if state.last_attempt_at]
    last_attempt = max(attempts, default=None)
    if due_since is None:
        return False, "No delivery is due."
    due_for = _minutes((now - due_since).total_seconds())
    if due_since > limit:
        return False, f"The oldest due delivery has been due for {due_for}."
    if last_attempt is not None and last_attempt > limit:
        return False, "The worker is recording attempts."
    waiting = sum(state.waiting for state in states.values())
    since = f"since {last_attempt:%Y-%m-%d %H:%M:%S} UTC" if last_attempt else "at all"
    return True, (
        f"Deliveries have been due for {due_for} "
        f"({waiting} waiting) and no attempt was recorded {since} "
        f"(threshold {rule.stall_minutes:g} min): is a worker running?"
    )


def observe(rules: Iterable[AlertRule], now: dt.datetime) -> Iterator[Observation]:
    """Judge each periodically checked rule against its workspace's integrations."""
    by_workspace: dict[int, list[AlertRule]] = defaultdict(list)
    for rule in rules:
        by_workspace[rule.workspace_id].append(rule)
    for workspace_id, workspace_rules in by_workspace.items():
        integrations = list(
            Integration.objects.filter(
                workspace_id=workspace_id, enabled=True, paused=False
            ).order_by("pk")
        )
        # The workspace's integrations at once, in a few grouped queries.
        by_id = summaries(integrations, window(), now)
        states = {integration: by_id[integration.pk] for integration in integrations}
        for rule in workspace_rules:
            if rule.condition == Condition.STALLED_WORKER:
                holds, detail = stalled_worker(rule, states, now)
                yield Observation(rule, None, holds, detail)
                continue
            judge = failure_rate if rule.condition == Condition.FAILURE_RATE else backlog_age
            for integration, state in states.items():
                holds, detail = judge(rule, state)
                yield Observation(rule, integration, holds, detail)
