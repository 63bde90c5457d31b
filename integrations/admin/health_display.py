"""Health as the console shows it: a coloured state word with the latest error on hover,
and the numbers behind it (integration list, integration page, dashboard)."""

from django.utils.html import format_html
from django.utils.safestring import SafeString

from integrations.delivery.health import Health, State

STATE_CLASSES = {
    State.OK: "health-ok",
    State.BACKLOG: "health-backlog",
    State.OUTAGE: "health-outage",
    State.PAUSED: "health-paused",
}
# Inline, so that the badge looks the same on every admin page without a stylesheet.
STATE_STYLES = {
    State.OK: "color:#2e7d32",
    State.BACKLOG: "color:#ef6c00",
    State.OUTAGE: "color:#fff;background:#c62828;padding:0 .35em;border-radius:3px",
    State.PAUSED: "color:var(--body-quiet-color)",
}


def format_age(seconds: float | None) -> str:
    """A waiting time in its largest unit: 42 s, 12 min, 3.5 h, 2.1 d; '-' for none."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def state_badge(summary: Health) -> SafeString:
    """The state in words, coloured; the latest error (if any) on hover."""
    state = summary.state
    return format_html(
        '<strong class="health-state {}" style="{}" title="{}">{}</strong>',
        STATE_CLASSES[state],
        STATE_STYLES[state],
        summary.last_error or state.label,
        state.label,
    )


def list_cell(summary: Health) -> SafeString:
    """The integration list's health column: the state, now, and the last 24 hours, one
    short line each."""
    return format_html(
        '{}<div class="help" style="white-space:nowrap">'
        "now: {} pending · {} retrying<br>oldest waiting {}<br>"
        "24 h: {} delivered · {} failed</div>",
        state_badge(summary),
        summary.pending,
        summary.retrying,
        format_age(summary.oldest_waiting_seconds),
        summary.delivered,
        summary.failed,
    )
