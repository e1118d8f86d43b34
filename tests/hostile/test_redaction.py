"""Redaction: every occurrence of every secret is blanked, in time and memory linear in the text
and the secrets (issue 7, item 4: a 500-character key raised RecursionError and wrote no report;
a 4 MB one took over 600 MB)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from mastoaudit.redact import HEAD, MIN_SECRET_LENGTH, REDACTED, Redactor

from .conftest import HOSTILE, no_traceback, run_bounded


def reference(text: str, secrets: list[str]) -> str:
    """What must be blanked, the slow and obvious way: every occurrence of every secret, and for a
    secret longer than HEAD every place its first HEAD characters stand, as far as it goes on."""
    covered = [False] * len(text)
    for secret in {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}:
        for start in range(len(text)):
            if len(secret) <= HEAD:
                if text.startswith(secret, start):
                    covered[start:start + len(secret)] = [True] * len(secret)
            elif text.startswith(secret[:HEAD], start):
                n = HEAD
                while n < len(secret) and start + n < len(text) and text[start + n] == secret[n]:
                    n += 1
                covered[start:start + n] = [True] * n
    out, i = [], 0
    while i < len(text):
        if covered[i]:
            while i < len(text) and covered[i]:
                i += 1
            out.append(REDACTED)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


ALPHABET = st.sampled_from("ab")  # two letters: secrets overlap, repeat and prefix each other
secret_lists = st.lists(st.text(ALPHABET, min_size=4, max_size=24), min_size=1, max_size=6)


@HOSTILE
@given(secrets=secret_lists, data=st.data())
def test_union_of_every_occurrence_is_blanked(secrets, data):
    pieces = data.draw(st.lists(st.one_of(st.sampled_from(secrets), st.text(st.sampled_from("abc"), max_size=6)),
                                max_size=12))
    text = "".join(pieces)
    assert Redactor(secrets).scrub(text) == reference(text, secrets)


@HOSTILE
@given(secret=st.text(st.characters(blacklist_categories=("Cs",)), min_size=HEAD + 1, max_size=200),
       cut=st.integers(min_value=HEAD, max_value=200))
def test_a_long_secret_cut_short_is_blanked_as_far_as_it_goes(secret, cut):
    text = "key: " + secret[:cut] + "…"
    scrubbed = Redactor([secret]).scrub(text)
    assert secret[:HEAD] not in scrubbed and scrubbed == reference(text, [secret])


def test_item_4_a_pem_key_and_a_long_password_are_redacted():
    key = "-----BEGIN PRIVATE KEY-----\n" + "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" * 50 + "\n-----END PRIVATE KEY-----"
    password = "p" * 5000
    redactor = Redactor([key, password])
    scrubbed = redactor.scrub(f"SAML_PRIVATE_KEY={key}\nDB_PASS={password}")
    assert scrubbed == f"SAML_PRIVATE_KEY={REDACTED}\nDB_PASS={REDACTED}"


def test_item_4_a_report_is_written_with_a_4_mb_secret_within_bounds():
    """A pasted 4 MB value in .env.production: the lint finishes under a 1 GB address-space limit
    and no part of the value is in the report."""
    value = ("Zq9" + "abcdefghijklmnopqrstuvwxyz0123456789" * 120_000)[: 4 * 1024 * 1024 - 4096]  # under the cap
    with tempfile.TemporaryDirectory(prefix="mastoaudit-bigsecret-") as tmp:
        env = Path(tmp) / "live" / ".env.production"
        env.parent.mkdir()
        env.write_text(f"LOCAL_DOMAIN=a.example\nSECRET_KEY_BASE={value}\nOTP_SECRET={value[:600]}\n")
        proc = run_bounded("lint", tmp, "-f", "json", "-o", "-", memory_mb=1024, timeout=120)
    no_traceback(proc)
    assert proc.returncode in (0, 1, 3)
    assert value[:HEAD] not in proc.stdout and "Zq9abcdefgh" not in proc.stdout
    assert json.loads(proc.stdout)["findings"]


def test_ten_thousand_secrets_build_and_scrub():
    secrets = [f"Zq9{n:06d}secret{n * 7919:08d}" for n in range(10_000)]
    redactor = Redactor(secrets)
    text = " ".join(secrets[::97])
    assert set(redactor.scrub(text).split()) == {REDACTED}


def test_url_passwords_are_blanked_without_rescanning():
    redactor = Redactor()
    assert redactor.scrub("redis://:hunter2@localhost:6379") == f"redis://:{REDACTED}@localhost:6379"
    long = "a" * 200_000 + "://"  # a scheme scan at every position would be quadratic
    assert redactor.scrub(long) == long
