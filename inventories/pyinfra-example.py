# A pyinfra inventory works too: group names that are mastoaudit roles become roles.
#   mastoaudit audit -i inventories/pyinfra-example.py
# It is read as data (literal lists), never executed.
web = [("web1.example.social", {"ssh_user": "audit", "_sudo": True})]
app = ["web1.example.social"]
db = [("db1.internal", {"ssh_port": 2222})]
redis = ["db1.internal"]
