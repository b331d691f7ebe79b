"""gunicorn entry point: `gunicorn -c service/node/gunicorn_conf.py service.node.wsgi:app`."""

import gc
import sys

from service import create_app
from service.settings import SettingsError
from service.transport.compat import CompatError

try:
    app = create_app()
except SettingsError as error:
    print(f"configuration error: {error}", file=sys.stderr, flush=True)
    sys.exit(3)  # gunicorn's "worker failed to boot": the node stops instead of retrying
except CompatError as error:  # a library internal is gone: refuse rather than run degraded
    print(f"cannot start: {error}", file=sys.stderr, flush=True)
    sys.exit(3)  # gunicorn's "worker failed to boot": the node stops instead of retrying

# What start-up made lives as long as the process: keep it out of every garbage collection.
gc.freeze()
