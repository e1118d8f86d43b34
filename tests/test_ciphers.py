"""The one cipher-string rule (mastoaudit/ciphers.py): OpenSSL's own expansion, Mozilla's profile as
sslyze ships it (read without importing sslyze), suites sorted by how bad they are."""

from __future__ import annotations

import ssl
import subprocess
import sys

from mastoaudit import ciphers


def test_the_profile_is_the_one_the_network_checks_use():
    from mastoaudit.probes.tls_sslyze import load_profile

    mine = ciphers.mozilla_profile("intermediate")
    theirs = load_profile("intermediate")
    assert mine.version == theirs.version and mine.name == "intermediate"
    assert len(mine.suites) == 9 and "ECDHE-RSA-AES128-GCM-SHA256" in mine.suites
    assert mine.server_preferred_order is False  # Mozilla: clients choose among strong suites
    assert ciphers.judge(mine.openssl_string).verdict == "pass"


def test_reading_the_profile_does_not_import_sslyze():
    code = ("import sys\nfrom mastoaudit import ciphers\nciphers.judge('HIGH')\n"
            "print('sslyze' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_expansion_is_openssl_s():
    """The same call nginx makes (SSL_CTX_set_cipher_list): aliases resolve, '!' removes, TLS 1.3
    suites are left out (ssl_ciphers does not set them)."""
    expansion = ciphers.expand("ECDHE+AESGCM:!ECDSA")
    assert {s.name for s in expansion.suites} == {"ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256"}
    assert expansion.openssl == ssl.OPENSSL_VERSION and expansion.error is None
    assert ciphers.expand("NOTHING-HERE").error


def test_suites_are_sorted_by_how_bad_they_are():
    j = ciphers.judge("HIGH:!aNULL:!MD5")
    assert "AES256-GCM-SHA384" in j.no_forward_secrecy  # static RSA
    assert "ECDHE-RSA-AES256-SHA" in j.cbc  # SHA-1 CBC, kept by this string
    assert "ECDHE-ECDSA-AES256-CCM" in j.other  # AEAD and forward secret, but not the profile's
    assert all("PSK" in n or "SRP" in n or "DSS" in n for n in j.inert) and j.inert
    assert not j.broken and j.verdict == "weak"
    anonymous = ciphers.judge("HIGH")
    assert anonymous.verdict == "fail" and any(why.startswith("anonymous") for _, why in anonymous.broken)


def test_names_this_openssl_lacks_are_judged_by_name():
    j = ciphers.judge("RC4-SHA:ECDHE-RSA-AES128-GCM-SHA256")
    assert j.verdict == "fail" and "though this OpenSSL lacks it" in j.explain()
    assert ciphers.judge("HIGH:!aNULL:@SECLEVEL=0").seclevel_zero
