"""owf-runner: run Okta Workflows API-endpoint flows from YAML job files."""

__version__ = "0.1.0"
