"""Agreement: mastoaudit's TLS verdicts against sslyze's command line and testssl.sh, on the lab.

    python3 bench/agreement_tls.py [--profile hardened --profile weak] [--no-testssl] [--keep DIR]

For each lab profile (brought up under the lab's session lock), the web endpoint mastodon.lab:443
on the profile's address is judged three ways:

1. mastoaudit's `tls` probe and checks (in process, timed alone, and timed as `mastoaudit scan
   --probe tls` including the interpreter's start);
2. `python -m sslyze --json_out ... 'mastodon.lab:443{ADDRESS}' --certinfo_ca_file lab/run/pki/ca.pem`
   (sslyze's target syntax is host:port{ip});
3. Debian's `testssl` (testssl.sh 3.0) with --ip ADDRESS --nodns none --sneaky --add-ca (so it
   sends nothing beyond loopback and does no DNS look-up), -p -s -S -U -E and --jsonfile.

It prints, per profile, one row per verdict (protocols, cipher suites per protocol, broken and
out-of-profile suites, trust, key, lifetime, OCSP stapling, each vulnerability) with each tool's
answer and whether they agree, explains every disagreement it knows the reason for, and prints the
wall times. A script, not a test: nothing is asserted; the exit code is 0 unless a tool is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from mastoaudit.facts import FactSet  # noqa: E402
from mastoaudit.facts.tls import PROTOCOLS, TlsEndpoint, cipher_weaknesses  # noqa: E402
from mastoaudit.model import Status  # noqa: E402
from mastoaudit.net.runner import all_probes, run_probes  # noqa: E402
from mastoaudit.net.target import ScanTarget  # noqa: E402
from mastoaudit.probes.tls_sslyze import load_profile  # noqa: E402
from mastoaudit.registry import default_registry  # noqa: E402

PROTOCOL_NAMES = [ours for _, ours, _ in PROTOCOLS]
TESTSSL_PROTOCOLS = {"SSLv2": "SSL 2.0", "SSLv3": "SSL 3.0", "TLS1": "TLS 1.0", "TLS1_1": "TLS 1.1",
                     "TLS1_2": "TLS 1.2", "TLS1_3": "TLS 1.3"}
TESTSSL_CIPHER_PREFIX = {"tls1": "TLS 1.0", "tls1_1": "TLS 1.1", "tls1_2": "TLS 1.2", "tls1_3": "TLS 1.3",
                         "ssl2": "SSL 2.0", "ssl3": "SSL 3.0"}
VULNS = ["heartbleed", "CCS injection", "ROBOT", "insecure renegotiation", "client renegotiation",
         "compression (CRIME)", "no fallback SCSV"]
# Why the tools may differ, by verdict: printed next to a disagreement.
EXPLAIN: dict[str, str] = {}
# What testssl.sh judges that the compared verdicts do not cover, and where mastoaudit stands on it.
TESTSSL_EXTRA = {
    "cert_revocation": "testssl wants a CRL or OCSP URL in every certificate; the lab's private CA publishes "
                       "neither. mastoaudit's tls.ocsp-stapling asks for a staple only where the certificate names "
                       "an OCSP responder, and shows the CRL (or its absence) as evidence; it does not fail a private "
                       "CA for having no revocation service",
    "cert_validityPeriod": "testssl's limit is the old CA/B 825 days; mastoaudit reports the 3-year certificate in "
                           "tls.mozilla-profile against Mozilla's 366 days (browsers refuse public ones over 398)",
    "BREACH": "an HTTP finding (gzip on pages with secrets), not a TLS one: outside the TLS probe",
    "LUCKY13": "timing attacks on CBC suites: mastoaudit reports the CBC suites themselves (tls.ciphers, outside "
               "Mozilla's profile)",
    "BEAST": "CBC with TLS 1.0: mastoaudit reports TLS 1.0 (tls.protocols) and the CBC suites (tls.ciphers)",
}
_FINE = ("not vulnerable", "no finding", "supported", "no protocol below", "not offered")


def check_fn(check_id: str):
    """A built-in check's function by id."""
    return default_registry(plugins=False).get(check_id).run



def lab(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    if done.returncode not in ((0, 1, 3) if args[0] == "status" else (0, 1)):
        raise SystemExit(f"python -m lab {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


# --- mastoaudit -------------------------------------------------------------------------------------------


def target_for(env: dict) -> ScanTarget:
    return ScanTarget(name=env["domain"], local_domain=env["domain"], web_domain=env["domain"],
                      addresses=(env["public_address"],), resolver=(env["dns"]["server"], int(env["dns"]["port"])),
                      ca_bundle=env["ca_file"], media_host=env["hostnames"]["media"], mail_domains=(env["domain"],))


def mastoaudit_verdicts(env: dict) -> tuple[dict, float, float]:
    target = target_for(env)
    [probe] = [p for p in all_probes() if p.name == "tls"]
    facts = FactSet(target.name)
    started = time.perf_counter()
    run_probes(target, facts, [probe])
    probe_wall = time.perf_counter() - started
    where = f"{env['domain']}:443"
    [e] = [f for f in facts.all("tls_endpoint") if isinstance(f, TlsEndpoint) and f.where == where]
    only = FactSet(target.name)
    only.add("tls_endpoint", e)
    profile = e.profile
    dep = e.certificates[0]
    trust = next(iter(check_fn("tls.certificate-trusted")(only)))
    verdicts = {
        "protocols": ", ".join(e.protocols),
        **{f"cipher suites {p}": sorted(c.name for c in e.ciphers if c.protocol == p) for p in PROTOCOL_NAMES[2:]},
        "broken suites": sorted(c.name for c in e.ciphers if c.weaknesses) or "none",
        "outside Mozilla profile": len({c.name for c in e.ciphers
                                        if c.name not in profile.ciphers | profile.ciphersuites}),
        "cert trusted": trust.status is Status.PASS,
        "cert key": dep.leaf.key.split(" (")[0],
        "cert lifetime (days)": (dep.leaf.not_after - dep.leaf.not_before).days,
        "OCSP stapled": dep.ocsp_stapled,
    }
    v = e.vulnerabilities
    verdicts.update({
        "heartbleed": v["heartbleed"], "CCS injection": v["ccs_injection"],
        "ROBOT": v["robot"].startswith("VULNERABLE"), "insecure renegotiation": v["insecure_renegotiation"],
        "client renegotiation": v["client_renegotiation_dos"], "compression (CRIME)": v["compression"],
        "no fallback SCSV": v["no_fallback_scsv"],
    })
    cli_wall = _timed([sys.executable, "-m", "mastoaudit", "scan", env["domain"], "--resolver",
                       f"{env['dns']['server']}:{env['dns']['port']}", "--ca-bundle", env["ca_file"],
                       "--media-host", env["hostnames"]["media"], "--probe", "tls", "-f", "json", "-o",
                       str(Path(tempfile.mkdtemp()) / "scan.json")])[1]
    return verdicts, probe_wall, cli_wall


def _timed(argv: list[str], timeout: float = 600) -> tuple[subprocess.CompletedProcess, float]:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    return done, time.perf_counter() - started


# --- sslyze's command line ---------------------------------------------------------------------------------


def sslyze_verdicts(env: dict, out: Path) -> tuple[dict, float]:
    argv = [sys.executable, "-m", "sslyze", "--quiet", f"--json_out={out}", "--certinfo",
            f"--certinfo_ca_file={env['ca_file']}", "--sslv2", "--sslv3", "--tlsv1", "--tlsv1_1", "--tlsv1_2",
            "--tlsv1_3", "--heartbleed", "--robot", "--openssl_ccs", "--reneg", "--compression", "--fallback",
            "--elliptic_curves", "--ems", f"{env['domain']}:443{{{env['public_address']}}}"]
    done, wall = _timed(argv)
    if done.returncode != 0:
        raise SystemExit(f"sslyze failed: {done.stderr[-500:]}")
    result = json.loads(out.read_text())["server_scan_results"][0]["scan_result"]
    profile = load_profile("intermediate")
    accepted: dict[str, list] = {}
    for field, ours, _ in PROTOCOLS:
        res = result[field]["result"]
        accepted[ours] = res["accepted_cipher_suites"] if res["is_tls_version_supported"] else []
    suites = [s["cipher_suite"] for found in accepted.values() for s in found]
    dep = result["certificate_info"]["result"]["certificate_deployments"][0]
    leaf = dep["received_certificate_chain"][0]
    key = leaf["public_key"]
    lifetime = (_iso(leaf["not_valid_after"]) - _iso(leaf["not_valid_before"])).days
    robot = result["robot"]["result"]["robot_result"]
    reneg = result["session_renegotiation"]["result"]
    verdicts = {
        "protocols": ", ".join(p for p in PROTOCOL_NAMES if accepted[p]),
        **{f"cipher suites {p}": sorted(s["cipher_suite"]["name"] for s in accepted[p]) for p in PROTOCOL_NAMES[2:]},
        "broken suites": sorted(s["name"] for s in suites
                                if cipher_weaknesses(s["name"], s["key_size"], s["is_anonymous"])) or "none",
        "outside Mozilla profile": len({s["name"] for s in suites
                                        if s["name"] not in profile.ciphers | profile.ciphersuites}),
        "cert trusted": any(r["validation_error"] is None for r in dep["path_validation_results"]),
        "cert key": f"{key['algorithm'].replace('PublicKey', '').lstrip('_').replace('EllipticCurve', 'EC')} "
                    f"{key['key_size']}",
        "cert lifetime (days)": lifetime,
        "OCSP stapled": dep["ocsp_response"] is not None,
        "heartbleed": result["heartbleed"]["result"]["is_vulnerable_to_heartbleed"],
        "CCS injection": result["openssl_ccs_injection"]["result"]["is_vulnerable_to_ccs_injection"],
        "ROBOT": robot.startswith("VULNERABLE"),
        "insecure renegotiation": not reneg["supports_secure_renegotiation"],
        "client renegotiation": reneg["is_vulnerable_to_client_renegotiation_dos"],
        "compression (CRIME)": result["tls_compression"]["result"]["supports_compression"],
        "no fallback SCSV": not result["tls_fallback_scsv"]["result"]["supports_fallback_scsv"],
    }
    return verdicts, wall


def _iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- testssl.sh ------------------------------------------------------------------------------------------------


def testssl_verdicts(env: dict, out: Path, binary: str) -> tuple[dict, float]:
    out.unlink(missing_ok=True)
    argv = [binary, "--quiet", "--color", "0", "--warnings", "off", "--nodns", "none", "--sneaky",
            "--ip", env["public_address"], "--add-ca", env["ca_file"], "-p", "-s", "-S", "-U", "-E",
            "--jsonfile", str(out), f"https://{env['domain']}:443"]
    done, wall = _timed(argv)
    if not out.exists():
        raise SystemExit(f"testssl wrote no JSON (exit {done.returncode}): {done.stdout[-800:]}")
    rows = {r["id"]: r for r in json.loads(out.read_text())}

    def finding(key: str) -> str:
        return rows.get(key, {}).get("finding", "")

    def offered(key: str) -> bool:
        text = finding(key)
        return text.startswith("offered") or text.startswith("supported")

    ciphers: dict[str, list[str]] = {p: [] for p in PROTOCOL_NAMES}
    for key, row in rows.items():
        if key.startswith("cipher-"):
            proto = TESTSSL_CIPHER_PREFIX.get(key[len("cipher-"):].rsplit("_x", 1)[0])
            if proto:
                ciphers[proto].append(row["finding"].split()[-1])
    profile = load_profile("intermediate")
    every = {n for names in ciphers.values() for n in names}
    broken_lists = [k for k in ("cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT", "cipherlist_LOW",
                                "cipherlist_3DES_IDEA") if offered(k)]
    validity = [finding("cert_notBefore"), finding("cert_notAfter")]
    lifetime = (datetime.strptime(validity[1], "%Y-%m-%d %H:%M") - datetime.strptime(validity[0], "%Y-%m-%d %H:%M")
                ).days if all(validity) else "?"
    verdicts = {
        "protocols": ", ".join(ours for key, ours in TESTSSL_PROTOCOLS.items() if offered(key)),
        **{f"cipher suites {p}": sorted(ciphers[p]) for p in PROTOCOL_NAMES[2:]},
        "broken suites": sorted(n for n in every if cipher_weaknesses(n)) or broken_lists or "none",
        "outside Mozilla profile": len({n for n in every if n not in profile.ciphers | profile.ciphersuites}),
        "cert trusted": finding("cert_chain_of_trust").startswith("passed") and finding("cert_trust").startswith("Ok"),
        "cert key": finding("cert_keySize").replace(" bits", ""),
        "cert lifetime (days)": lifetime,
        "OCSP stapled": finding("OCSP_stapling").startswith("offered"),
        "heartbleed": "not vulnerable" not in finding("heartbleed"),
        "CCS injection": "not vulnerable" not in finding("CCS"),
        "ROBOT": "not vulnerable" not in finding("ROBOT").lower(),
        "insecure renegotiation": not finding("secure_renego").startswith("supported"),
        "client renegotiation": "not vulnerable" not in finding("secure_client_renego"),
        "compression (CRIME)": "not vulnerable" not in finding("CRIME_TLS"),
        "no fallback SCSV": not finding("fallback_SCSV").startswith("supported")
        and "no protocol below" not in finding("fallback_SCSV"),
    }
    verdicts["_testssl_notes"] = {k: finding(k) for k in ("cert_revocation", "cert_validityPeriod", "BREACH",
                                                          "LUCKY13", "BEAST", "fallback_SCSV") if finding(k)}
    return verdicts, wall


# --- the table ---------------------------------------------------------------------------------------------------


def shown(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return f"{len(value)} suites" if value else "none"
    return str(value)


def compare(profile: str, env: dict, tools: dict[str, dict]) -> list[str]:
    names = list(tools)
    keys = [k for k in tools["mastoaudit"] if not k.startswith("_")]
    width = [26] + [36] * len(names)
    print(f"\n== {profile}: {env['domain']}:443 at {env['public_address']} ==")
    print("".join(h.ljust(w) for h, w in zip(["verdict", *names], width, strict=True)) + "agree")
    disagreements = []
    for key in keys:
        values = [tools[n].get(key) for n in names]
        agree = all(v == values[0] for v in values[1:])
        print("".join(s.ljust(w) for s, w in zip([key, *map(shown, values)], width, strict=True))
              + ("yes" if agree else "NO"))
        if not agree:
            detail = []
            if all(isinstance(v, list) for v in values):
                base = set(values[0])
                for n, v in zip(names[1:], values[1:], strict=True):
                    extra, missing = sorted(set(v) - base), sorted(base - set(v))
                    if extra or missing:
                        detail.append(f"{n}: +{extra} -{missing}")
            disagreements.append(f"{profile} / {key}: " + "; ".join(detail or [" vs ".join(map(shown, values))])
                                 + (f" -- {EXPLAIN[key]}" if key in EXPLAIN else ""))
    notes = tools.get("testssl.sh", {}).get("_testssl_notes") or {}
    for key, text in notes.items():
        if not any(fine in text.lower() for fine in _FINE):
            print(f"testssl.sh also says {key}: {text}\n    -> {TESTSSL_EXTRA.get(key, '(no comparison)')}")
    return disagreements


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="append", choices=["hardened", "weak"])
    parser.add_argument("--no-testssl", action="store_true", help="skip testssl.sh (about a minute per profile)")
    parser.add_argument("--keep", type=Path, help="keep the tools' JSON output in this folder")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the lab needs root")
    testssl = None if args.no_testssl else shutil.which("testssl") or shutil.which("testssl.sh")
    if not args.no_testssl and not testssl:
        raise SystemExit("testssl.sh is not installed (apt install testssl.sh), or pass --no-testssl")
    folder = args.keep or Path(tempfile.mkdtemp(prefix="agreement-tls-"))
    folder.mkdir(parents=True, exist_ok=True)
    from lab.core import exclusive_use

    timings, disagreements = [], []
    with exclusive_use(timeout=900):
        before = json.loads(lab("status") or "{}")
        try:
            for profile in args.profile or ["hardened", "weak"]:
                lab("up", "--profile", profile)
                env = json.loads(lab("env", "--profile", profile))
                ours, probe_wall, cli_wall = mastoaudit_verdicts(env)
                tools = {"mastoaudit": ours}
                tools["sslyze CLI"], sslyze_wall = sslyze_verdicts(env, folder / f"sslyze-{profile}.json")
                testssl_wall = None
                if testssl:
                    tools["testssl.sh"], testssl_wall = testssl_verdicts(env, folder / f"testssl-{profile}.json",
                                                                         testssl)
                disagreements += compare(profile, env, tools)
                timings.append((profile, probe_wall, cli_wall, sslyze_wall, testssl_wall))
        finally:
            if before.get("running") and before.get("profile"):
                lab("up", "--profile", before["profile"])
    print("\n== disagreements ==")
    print("\n".join(disagreements) if disagreements else "none")
    print("\n== wall times (s) ==")
    print("profile     tls probe (web, media, mail, db)  mastoaudit scan --probe tls  sslyze CLI (web)  "
          "testssl.sh (web)")
    for profile, probe, cli, sslyze, tssl in timings:
        print(f"{profile:<12}{probe:<34.2f}{cli:<29.2f}{sslyze:<18.2f}{'-' if tssl is None else f'{tssl:.1f}'}")
    print(f"\nJSON output of the tools: {folder}  ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
