"""gunicorn settings (`gunicorn -c gunicorn.conf.py wsgi:app`); the README lists the variables."""

import os
import sys
from pathlib import Path

# Module-level names here are read as gunicorn settings, and `config` is one: import under other names.
from config import ConfigError, is_embedded
from config import load as load_settings

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '5000')}"
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
# The app writes its own JSON access log (app.access); gunicorn's would duplicate it.
accesslog = None
errorlog = "-"
# No peer may set the scheme or the script name with X-Forwarded-* or SCRIPT_NAME headers (gunicorn's
# default trusts its own host): the app applies TRUSTED_PROXIES itself, with werkzeug's ProxyFix.
forwarded_allow_ips = ""
# The control socket (gunicornc) of this server, named by its address. gunicorn's default is one path
# per user ($HOME/.gunicorn/gunicorn.ctl), which a second server of the same user takes over, and the
# first to stop removes: `gunicornc -s ~/.gunicorn/127.0.0.1-5000.ctl -c "show workers"`.
control_socket = os.path.join(os.path.expanduser("~"), ".gunicorn", bind.replace(":", "-") + ".ctl")


def on_starting(server):
    """Refuse more than one worker on the embedded store: each process would have its own database."""
    try:
        settings = load_settings(os.environ)
    except ConfigError as exc:
        sys.exit(f"configuration error: {exc}")
    if is_embedded(settings["MONGODB_URI"]):
        if server.cfg.workers > 1:
            sys.exit(
                f"the embedded store (MONGODB_URI={settings['MONGODB_URI']}) lives in one process; "
                f"it cannot serve {server.cfg.workers} workers. Use WEB_CONCURRENCY=1 (threads still "
                "serve requests in parallel) or a real MongoDB (MONGODB_URI=mongodb://...)."
            )
        if server.cfg.max_requests:
            sys.exit("max_requests restarts workers, which would empty the embedded store; unset it")
    _empty_metrics_directory(settings["PROMETHEUS_MULTIPROC_DIR"])


def _empty_metrics_directory(directory):
    """Start the workers' metrics from zero: the files of a previous run would be added to theirs."""
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        for stale in Path(directory).glob("*.db"):
            stale.unlink()


def post_worker_init(worker):
    """On the embedded store, run the scheduler and the dispatcher inside the one worker: no other
    process can see its data (app.workers)."""
    if is_embedded(load_settings(os.environ)["MONGODB_URI"]):
        from app.workers import InProcess

        worker.background = InProcess(worker.wsgi).start()


def worker_exit(server, worker):
    """Finish the sends in flight and give the leases up."""
    background = getattr(worker, "background", None)
    if background is not None:
        background.stop()


def child_exit(server, worker):
    """Drop a dead worker's live gauges from the metrics every worker serves (prometheus-client's
    multiprocess mode; its counters are kept)."""
    directory = load_settings(os.environ)["PROMETHEUS_MULTIPROC_DIR"]
    if directory:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, directory)
