"""The SSH worker's stderr is drained to the end while its results are read: a worker that writes
more than the pipe buffer to stderr (a chatty library, a warning per host) must not block on it.
Before, one read(65536) took the first 64 KiB and left the worker stuck on its next write, so the
run ended only when the collector's timer killed it, every host "failed"."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace

from mastoaudit.inventory import load_inventory
from mastoaudit.sources.ssh import STDERR_TAIL, SshCollection

WORKER = r"""
import json, sys
chunk = "x" * 1023 + "\n"
for _ in range(1200):  # 1.2 MB, far over a pipe's 64 KiB buffer
    sys.stderr.write(chunk)
sys.stderr.write("the last line the worker wrote\n")
sys.stderr.flush()
for name in ("h1", "h2"):
    print(json.dumps({"host": name, "event": "result", "key": "k", "exit": 0}), flush=True)
    print(json.dumps({"host": name, "event": "done", "t": 0.1}), flush=True)
sys.exit(0)
"""


def _collection(tmp_path) -> SshCollection:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("instance: {local_domain: example.social}\n"
                         "ssh: {connect_timeout: 2, command_timeout: 5, host_timeout: 10}\n"
                         "hosts:\n  h1: {address: 192.0.2.1, roles: [web]}\n  h2: {address: 192.0.2.2, roles: [db]}\n")
    collection = SshCollection(load_inventory(inventory))
    collection.started = time.monotonic()
    collection.proc = subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return collection


def test_a_worker_writing_megabytes_to_stderr_is_not_blocked(tmp_path):
    results, failures = _collection(tmp_path).gather()
    assert failures == {}
    assert set(results) == {"h1", "h2"} and all("k" in r for r in results.values())


def test_only_the_tail_of_stderr_is_kept_and_named(tmp_path):
    collection = _collection(tmp_path)
    # a host the worker never finished: its failure quotes the last line of stderr
    collection.hosts = [*collection.hosts, replace(collection.hosts[0], name="h3")]
    _, failures = collection.gather()
    assert set(failures) == {"h3"}
    assert "the last line the worker wrote" in failures["h3"]
    assert 0 < len(collection.stderr_tail) <= STDERR_TAIL
