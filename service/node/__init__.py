"""The process: what one node holds, gunicorn settings, drain on SIGTERM, the WSGI entry points."""
