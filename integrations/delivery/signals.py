"""Signals the delivery worker sends, for code that reacts to vendors' answers (alerts)."""

from django.dispatch import Signal

#: Sent after the worker has committed the outcomes of some exchanges with one integration.
#: ``sender`` is the ``Integration`` class; keyword arguments: ``integration`` (the
#: instance), ``answers``, a list of ``(status, reason)`` pairs, one per exchange: the
#: HTTP status (None when the vendor did not answer) and the reason the log shows ("" for
#: a success), and ``event_types``, the types of the events whose outcomes were written
#: (a frozenset). Receivers run in the worker: they must be quick and must not raise.
exchanges_recorded = Signal()
