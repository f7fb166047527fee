"""secretsync: keep Java client.properties files in step with AWS Secrets Manager."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("secretsync-sidecar")  # the distribution; the package is secretsync
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
