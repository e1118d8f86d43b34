"""Bench: the outbound client (mastoaudit/net/client.py) as the federation sweep will use it: many
peers, each asked for its NodeInfo index and then the document it links to, over HTTPS with
verified certificates, against a local nginx serving every peer name, a share of them hostile.

    python bench/bench_client.py [--peers 5000] [--hostile 0.1] [--in-flight 512] [--deadline 5]
                                 [--addresses 250] [--per-address 8] [--no-curl]

Peers are spread over --addresses loopback addresses (127.0.2.x, default 250) so the per-address limit works as it
would on the real fediverse. Hostile peers, by kind: slow (nginx `limit_rate 1`: one byte a second),
huge (a 20 MB answer), a gzip bomb (200 MB of zeros in 200 KB), a redirect to 169.254.169.254 and a
redirect loop. Prints peers and requests per second, CPU seconds per peer, the client process's peak
RSS, the error kinds, and the worst time a slow peer costs (its deadline, by construction). Then, for
comparison, curl --parallel fetching the healthy peers' index documents (what a user would script).
Figures are printed, never asserted. Only loopback addresses are touched.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mastoaudit.addresses import AddressPolicy  # noqa: E402
from mastoaudit.net.client import Client, Limits, bounded_map  # noqa: E402
from tests.netlab import make_ca_and_cert  # noqa: E402

KINDS = ("slow", "huge", "bomb", "redir", "loop")
SCHEMA = "http://nodeinfo.diaspora.software/ns/schema/2.0"
DOCUMENT = ('{"version":"2.0","software":{"name":"mastodon","version":"4.3.2"},"protocols":["activitypub"],'
            '"openRegistrations":false,"usage":{"users":{"total":42}}}')

NGINX = """
daemon off;
{user}
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log crit;
worker_rlimit_nofile 16384;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
    uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    keepalive_requests 1000;
    map $host $kind {{ default ok; ~^slow- slow; ~^huge- huge; ~^bomb- bomb; ~^redir- redir; ~^loop- loop; }}
    server {{
{listens}
        server_name _;
        ssl_certificate {cert}; ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        default_type application/json;
        location = /.well-known/nodeinfo {{
            if ($kind = redir) {{ return 302 http://169.254.169.254/latest/meta-data/; }}
            if ($kind = loop) {{ return 302 https://$host:{port}/.well-known/nodeinfo; }}
            if ($kind = slow) {{ rewrite ^ /files/slow.json last; }}
            if ($kind = huge) {{ rewrite ^ /files/huge.json last; }}
            if ($kind = bomb) {{ rewrite ^ /files/bomb.json last; }}
            return 200 '{{"links":[{{"rel":"{schema}","href":"https://$host:{port}/nodeinfo/2.0"}}]}}';
        }}
        location = /nodeinfo/2.0 {{
            return 200 '{document}';
        }}
        location = /files/slow.json {{ internal; root {d}; limit_rate 1; }}
        location = /files/huge.json {{ internal; root {d}; }}
        location = /files/bomb.json {{ internal; root {d}; add_header Content-Encoding gzip; }}
    }}
}}
"""


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_files(d: Path) -> None:
    files = d / "files"
    files.mkdir()
    (files / "slow.json").write_bytes(b"[" * 100_000)
    (files / "huge.json").write_bytes(b"[" * (20 * 1024 * 1024))
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = b"\0" * (1024 * 1024)
    (files / "bomb.json").write_bytes(b"".join(packer.compress(zeros) for _ in range(200)) + packer.flush())


def peers(n: int, hostile: float, addresses: list[str]) -> list[tuple[str, str, str]]:
    """(name, address, kind) for n peers, `hostile` of them hostile (kinds in turn)."""
    bad = int(n * hostile)
    out = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)] if i < bad else "ok"
        name = f"{kind}-{i}.bench.test" if kind != "ok" else f"peer-{i}.bench.test"
        out.append((name, addresses[i % len(addresses)], kind))
    return out


async def sweep(args, table: list[tuple[str, str, str]], port: int, ca: Path) -> dict:
    pins = {name: (address,) for name, address, _ in table}
    client = Client(AddressPolicy.allowing(["127.0.2.0/24"]), pins=pins, ca_bundle=str(ca),
                    limits=Limits(connect=args.deadline, read=args.deadline, total=args.deadline,
                                  concurrency=args.in_flight, per_address=args.per_address,
                                  max_idle=128))
    loop = asyncio.get_running_loop()
    requests = 0

    async def one(peer: tuple[str, str, str]) -> tuple[str, str, str | None, float]:
        nonlocal requests
        name, _, kind = peer
        started = loop.time()
        deadline = started + args.deadline  # one deadline for the peer: index and document
        index = await client.fetch_json(f"https://{name}:{port}/.well-known/nodeinfo", deadline=deadline)
        requests += 1
        if not index.ok:
            return name, kind, index.kind, loop.time() - started
        links = index.doc.get("links") if isinstance(index.doc, dict) else None
        href = next((x.get("href") for x in links or () if isinstance(x, dict) and x.get("rel") == SCHEMA), None)
        if not isinstance(href, str):
            return name, kind, "not-nodeinfo", loop.time() - started
        doc = await client.fetch_json(href, deadline=deadline)
        requests += 1
        return name, kind, doc.kind, loop.time() - started

    started, cpu = time.perf_counter(), cpu_seconds()
    results = [r async for r in bounded_map(one, table, args.in_flight)]
    wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    await client.close()
    return {"results": results, "wall": wall, "cpu": cpu, "requests": requests}


def curl_compare(args, table, port: int, ca: Path, d: Path) -> str:
    curl = shutil.which("curl")
    if not curl:
        return "curl not installed"
    healthy = [name for name, _, kind in table if kind == "ok"]
    config = d / "curl.cfg"
    config.write_text("".join(f'url = "https://{n}:{port}/.well-known/nodeinfo"\noutput = "/dev/null"\n'
                              for n in healthy))
    cmd = [curl, "--silent", "--parallel", "--parallel-max", str(min(args.in_flight, 300)), "--cacert", str(ca),
           "--resolve", f"*:{port}:{table[0][1]}", "--max-time", str(args.deadline), "-K", str(config)]
    started = time.perf_counter()
    subprocess.run(cmd, check=False, capture_output=True)
    wall = time.perf_counter() - started
    return (f"curl --parallel (index documents of the {len(healthy)} healthy peers, one address): "
            f"{wall:.2f} s, {len(healthy) / wall:.0f} requests/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=5000)
    parser.add_argument("--hostile", type=float, default=0.1)
    parser.add_argument("--in-flight", type=int, default=512)
    parser.add_argument("--per-address", type=int, default=8)
    parser.add_argument("--addresses", type=int, default=250)
    parser.add_argument("--deadline", type=float, default=5.0, help="seconds per peer (index and document)")
    parser.add_argument("--no-curl", action="store_true")
    args = parser.parse_args()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        print("nginx is not installed", file=sys.stderr)
        return 2
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        ca, cert, key = make_ca_and_cert(d / "pki", ["*.bench.test", "bench.test"])
        make_files(d)
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        addresses = [f"127.0.2.{i}" for i in range(1, args.addresses + 1)]
        listens = "\n".join(f"        listen {a}:{port} ssl;" for a in addresses)
        (d / "nginx.conf").write_text(NGINX.format(d=d, port=port, listens=listens, cert=cert, key=key,
                                                   schema=SCHEMA, document=DOCUMENT,
                                                   user="user root;" if os.geteuid() == 0 else ""))
        proc = subprocess.Popen([nginx, "-c", str(d / "nginx.conf"), "-p", str(d)], stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    socket.create_connection((addresses[0], port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            table = peers(args.peers, args.hostile, addresses)
            out = asyncio.run(sweep(args, table, port, ca))
            report(args, out)
            if not args.no_curl:
                print(curl_compare(args, table, port, ca, d))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return 0


def report(args, out: dict) -> None:
    results = out["results"]
    by_kind: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    times: dict[str, list[float]] = collections.defaultdict(list)
    for _, kind, error, took in results:
        by_kind[kind][error or "ok"] += 1
        times[kind].append(took)
    n, wall = len(results), out["wall"]
    print(f"{n} peers ({int(args.peers * args.hostile)} hostile) over {args.addresses} addresses, "
          f"{args.in_flight} in flight, {args.per_address} per address, {args.deadline:g} s per peer, HTTPS verified")
    print(f"  wall {wall:.2f} s: {n / wall:.0f} peers/s, {out['requests'] / wall:.0f} requests/s; "
          f"CPU {out['cpu']:.1f} s ({out['cpu'] / n * 1000:.2f} ms per peer); peak RSS {peak_rss_mb():.0f} MB")
    healthy = sorted(times.get("ok", [0.0]))
    print(f"  healthy peers: median {statistics.median(healthy) * 1000:.0f} ms, "
          f"p99 {healthy[int(len(healthy) * 0.99) - 1] * 1000:.0f} ms")
    for kind in ("ok", *KINDS):
        if kind in by_kind:
            worst = max(times[kind])
            print(f"  {kind:6} {dict(by_kind[kind])}  worst {worst:.2f} s")
    print(f"  worst case a slow peer adds: its deadline, {args.deadline:g} s (measured "
          f"{max(times.get('slow', [0.0])):.2f} s)")


if __name__ == "__main__":
    raise SystemExit(main())
