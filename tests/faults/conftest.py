"""Faults and attacks against the real local cluster (`make test-faults`)."""

from tests.integration.conftest import room, users  # noqa: F401 - fixtures shared with integration
