"""gunicorn settings of the web process: ``gunicorn -c console/gunicorn.conf.py``.

Threaded workers (``gthread``), so that a slow client cannot starve the console. A sync
worker serves one connection at a time from accept to response: a client that declares
a Content-Length and sends only part of the body holds that worker until it gives up,
and two such clients hold two sync workers. A gthread worker reads and answers each
connection on one of its ``WEB_THREADS`` threads: a half-sent request holds one thread; a
connection that sends nothing for 5 s goes back to the worker's poller, off the threads;
the worker's own loop keeps answering gunicorn's heartbeat. Django reads bodies in the
thread (ingest needs the raw body), so as many stalled clients as there are threads in
all workers would still fill them: on the internet, put a proxy that buffers request
bodies in front (nginx does by default); see the README's production section.

Every value can be overridden on the command line (``--workers 8``; ``--worker-class sync``
takes ``--threads 1`` too, or gunicorn keeps gthread) or in ``GUNICORN_CMD_ARGS``.
"""

import os

wsgi_app = "console.wsgi:application"
bind = [os.environ.get("WEB_BIND", "0.0.0.0:8000")]
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "8"))
# Connections a worker keeps at once, kept-alive and waiting ones included.
worker_connections = 1000
# A worker that misses its heartbeat this long (stuck) is killed and replaced.
timeout = 30
graceful_timeout = 30
keepalive = 5
