"""gunicorn entry point: `gunicorn -c service/gunicorn_conf.py service.wsgi:app`."""

import sys

from service import create_app
from service.settings import SettingsError

try:
    app = create_app()
except SettingsError as error:
    print(f"configuration error: {error}", file=sys.stderr, flush=True)
    sys.exit(3)  # gunicorn's "worker failed to boot": the node stops instead of retrying
