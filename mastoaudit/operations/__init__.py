"""What the remediation deploy changes on a host (pyinfra operations), one module per service.

`mastoaudit fix --plan -o deploy.py` writes a deploy that calls these with what the report found;
the admin reads it and runs `pyinfra INVENTORY deploy.py`. Nothing here runs otherwise. Every
operation is a transaction on the host (mastoaudit.operations.transaction): back up, change,
validate with the service's own program, reload, check, and put everything back on any failure.
Every operation is idempotent: it reads the host first (mastoaudit.hostfacts) and yields no
command when the host already has what it would set, so a second apply changes nothing.
"""
