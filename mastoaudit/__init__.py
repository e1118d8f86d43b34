"""mastoaudit: a security hardening checker for Mastodon deployments."""

__version__ = "0.1.0"
