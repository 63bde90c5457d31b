"""Stop signals belong to the worker's main thread.

The kernel hands a process-directed signal to any thread that does not block it. Python
runs its handlers in the main thread only, and notices a signal there only when a
blocking call of the main thread is interrupted: a SIGTERM taken by a helper thread
(the router, a delivery lane) leaves the main thread waiting out a vendor's 60-second
answer before it hears of it. Every thread the worker starts blocks the stop signals, so
they always interrupt the main thread.
"""

import signal

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


def leave_stop_signals_to_the_main_thread() -> None:
    """Block the stop signals in the calling thread (call it first in a new thread)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
