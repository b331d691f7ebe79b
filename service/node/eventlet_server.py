"""One node under eventlet, served by eventlet's own WSGI server (gunicorn 26 dropped its eventlet
worker): `ASYNC_MODE=eventlet BIND=127.0.0.1:5001 python -m service.node.eventlet_server`.

gevent under gunicorn is the default and the recommended mode; this one exists for users who must
keep eventlet, and `make bench` measures what it costs. SIGTERM stops it without draining."""

import eventlet

eventlet.monkey_patch()

import os  # noqa: E402 - after monkey patching
import sys  # noqa: E402

from eventlet import wsgi  # noqa: E402


def main() -> None:
    os.environ["ASYNC_MODE"] = "eventlet"
    host, _, port = os.environ.get("BIND", "127.0.0.1:5001").rpartition(":")
    from service import create_app
    from service.settings import SettingsError
    from service.transport.compat import CompatError

    try:
        app = create_app()
    except SettingsError as error:
        print(f"configuration error: {error}", file=sys.stderr, flush=True)
        sys.exit(3)
    except CompatError as error:
        print(f"cannot start: {error}", file=sys.stderr, flush=True)
        sys.exit(3)
    wsgi.server(eventlet.listen((host or "127.0.0.1", int(port))), app, log_output=False,
                max_size=int(os.environ.get("WORKER_CONNECTIONS", "10000")))


if __name__ == "__main__":
    main()
