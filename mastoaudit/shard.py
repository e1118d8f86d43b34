"""Splitting a run across machines: `--shard i/n`.

The rule: an item (an inventory host, by its name in the inventory; later a federation peer, by
its domain) belongs to shard `1 + (first 8 bytes of SHA-256(name), big-endian) mod n`. It depends
on nothing but the name and n: not on the order of the inventory, nor on the other hosts. Every
worker of a split run therefore agrees on who audits what even when they read the list at
different moments, a host that leaves or joins moves no other host, and a finding's target tells
which shard owns it (a baseline is split the same way). Shards are balanced on average, not
exactly: with few hosts per shard one shard may get a host or two more than another.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
MAX_SHARDS = 10_000


def shard_of(name: str, count: int) -> int:
    """The shard (1-based) that `name` belongs to when the work is split in `count`."""
    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).digest()
    return 1 + int.from_bytes(digest[:8], "big") % count


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = _SPEC.match(text)
        if not match:
            raise ValueError(f"--shard {text!r}: expected I/N, e.g. 2/4")
        index, count = int(match[1]), int(match[2])
        if not 1 <= count <= MAX_SHARDS:
            raise ValueError(f"--shard {text!r}: N must be between 1 and {MAX_SHARDS}")
        if not 1 <= index <= count:
            raise ValueError(f"--shard {text!r}: I must be between 1 and {count}")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, name: str) -> bool:
        return shard_of(name, self.count) == self.index

    def select(self, items: Iterable[T], name: Callable[[T], str] = str) -> list[T]:
        """The items of this shard, in their given order."""
        return [item for item in items if self.owns(name(item))]


def population_digest(names: Iterable[str]) -> str:
    """Identifies the whole list being split (order-free), so a merge can tell shards of one run
    from shards of another inventory."""
    joined = "\n".join(sorted(set(names)))
    return hashlib.sha256(joined.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def describe(shard: Shard, unit: str, members: list[str], population: list[str]) -> dict:
    """The document's `run.shard`: which shard, and what it holds out of what."""
    order = {name: i for i, name in enumerate(population)}
    return {
        "index": shard.index,
        "count": shard.count,
        "unit": unit,
        "rule": "sha256-mod",
        "members": [{"name": m, "position": order.get(m, -1)} for m in members],
        "total": len(population),
        "population": population_digest(population),
    }
