"""Alerts: a workspace's notification rules, judged against integration health and the
vendors' answers, and their incidents notified once when they open and once when they
clear (email, Slack incoming webhook, or a webhook).

* ``conditions``: what the periodic check sees (``failure_rate``, ``backlog_age``,
  ``stalled_worker``), from ``delivery.health`` and ``backlog``;
* ``receivers``: ``auth_error``, judged as soon as the worker records a vendor's answer;
* ``incidents``: opening and clearing, once per incident across processes;
* ``notices`` and ``channels``: what a notification says, and how it is sent;
* ``periodic``: the worker's check every ``ALERTS_INTERVAL_SECONDS``.
"""
