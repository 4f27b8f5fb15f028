"""Real processes for integration tests: the fixtures live in tests/conftest.py."""
