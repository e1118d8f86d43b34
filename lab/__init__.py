"""The mastoaudit lab: a Mastodon-shaped deployment on loopback addresses, from Debian packages,
in a hardened and a weak profile, for testing the live audit. See lab/README.md."""
