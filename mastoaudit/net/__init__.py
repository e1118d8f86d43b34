"""Network probing: what an outsider sees. Probes live in mastoaudit.probes; this package holds
what they share (the scan target, a bounded HTTP client, DNS look-ups, the concurrent runner)."""
