"""secretsync: keep Java client.properties files in step with AWS Secrets Manager.

Importing the package costs nothing: every command imports only what it needs
(see :mod:`secretsync.cli`), so ``--help`` and ``check`` start fast.
"""

__version__ = "0.3.0"  # the single source: pyproject.toml reads it (hatch dynamic version)

DEFAULT_CONFIG_PATH = "/etc/secretsync/sync.yaml"
LOG_LEVELS = ("debug", "info", "warning", "error")

__all__ = ["DEFAULT_CONFIG_PATH", "LOG_LEVELS", "__version__"]
