"""The trial suite: unit tests without network, and integration tests against real processes."""
