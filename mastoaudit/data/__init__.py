"""Data shipped with mastoaudit: the threat catalogue, the advisory list, the report schema."""
