"""The compose checks use the integration tests' fixtures against CLUSTER_URL."""

from tests.integration.conftest import nodes, room, users  # noqa: F401
