"""Federation posture: peers, their software and advisories, defederation impact, decisions.

One job per module:
- `versions`: read and order the version strings peers announce, per software
- `osv`: advisories in the OSV format, the bundled database and the user's own files
- `peers`: the peer data model (`Peer`, `PeerResult`) and peer lists (database, file)
- `queries`: the fixed SQL both ways in share (psycopg and psql over SSH), and reading its rows
- `database`: running those queries read-only with psycopg (`--db DSN`)
- `remote`: running them with psql on the inventory's db host over SSH (`-i INVENTORY`)
- `breakdown`: peers by software and version, vulnerable per advisory, unreachable vs unavailable
- `decisions`: the domain-block CSV Mastodon imports and the refederation list
- `report`: the federation section of the JSON report and its terminal text
"""
