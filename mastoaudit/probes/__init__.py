"""Network probes, one module per concern (tls, http, ports, mail, s3). Importing a module
registers its probes (mastoaudit.net.runner.probe)."""
