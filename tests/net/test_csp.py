"""The CSP parser and its comparison with Mastodon's own policy, with well-formed and hostile input."""

from __future__ import annotations

import pytest

from mastoaudit.net import csp

# Mastodon 4.5's policy (config/initializers/content_security_policy.rb) for example.social with a media host.
MASTODON = (
    "base-uri 'none'; default-src 'none'; frame-ancestors 'none'; font-src 'self' https://example.social; "
    "img-src 'self' data: blob: https://example.social https://files.example.social; "
    "media-src 'self' data: https://example.social https://files.example.social; manifest-src 'self' "
    "https://example.social; form-action 'self'; child-src 'self' blob: https://example.social; "
    "worker-src 'self' blob: https://example.social; connect-src 'self' data: blob: https://example.social "
    "https://files.example.social wss://example.social; script-src 'self' https://example.social "
    "'wasm-unsafe-eval'; frame-src 'self' https:; style-src 'self' https://example.social 'nonce-AbC+/dEf=='"
)
# Mastodon 4.1 allowed inline styles and any https image.
MASTODON_41 = MASTODON.replace("'nonce-AbC+/dEf=='", "'unsafe-inline'").replace(
    "img-src 'self' data: blob:", "img-src 'self' https: data: blob:")


def issues(*headers: str) -> list[csp.Issue]:
    return csp.compare_with_mastodon(csp.parse_header_values(headers))


def levels(found: list[csp.Issue]) -> dict[str, str]:
    return {i.directive: i.level for i in found}


def test_parses_directives_case_insensitively_and_keeps_nonce_case():
    p = csp.parse_policy("Script-Src 'SELF' HTTPS://Example.Social 'nonce-AbC'; DEFAULT-SRC 'none'")
    assert p.get("script-src") == ("'self'", "https://example.social", "'nonce-AbC'")
    assert p.effective("object-src") == ("'none'",)
    assert p.effective("img-src") == ("'none'",)
    assert p.effective("frame-ancestors") is None  # not a fetch directive: no fallback


def test_repeated_directive_first_wins_and_is_reported():
    p = csp.parse_policy("script-src 'self'; script-src *")
    assert p.get("script-src") == ("'self'",)
    assert p.duplicates == ("script-src",)


def test_worker_src_falls_back_through_child_and_script():
    p = csp.parse_policy("script-src 'self'; default-src 'none'")
    assert p.effective("worker-src") == ("'self'",)
    assert "script-src applies" in p.effective_text("worker-src")


def test_comma_separates_policies_and_repeated_headers_add_policies():
    assert len(csp.parse_header_values(["default-src 'none', script-src 'self'", "img-src *"])) == 3


def test_mastodon_own_policy_has_no_issue():
    assert issues(MASTODON) == []


def test_wasm_unsafe_eval_is_fine_but_unsafe_eval_fails():
    assert issues(MASTODON) == []
    found = levels(issues(MASTODON.replace("'wasm-unsafe-eval'", "'unsafe-eval'")))
    assert found == {"script-src": "fail"}


def test_old_mastodon_inline_styles_are_a_warning_only():
    found = issues(MASTODON_41)
    assert levels(found) == {"style-src": "warn"}
    assert "'unsafe-inline'" in found[0].observed


@pytest.mark.parametrize("script_src", ["'self' 'unsafe-inline'", "'self' https:", "*", "'self' data:",
                                        "'self' http://cdn.example"])
def test_unsafe_script_sources_fail(script_src):
    found = levels(issues(f"default-src 'none'; script-src {script_src}; frame-ancestors 'none'; base-uri 'none'"))
    assert found.get("script-src") == "fail"


def test_unsafe_inline_next_to_a_nonce_is_ignored_by_browsers():
    policy = ("default-src 'none'; script-src 'self' 'unsafe-inline' 'nonce-xyz'; frame-ancestors 'none'; "
              "base-uri 'none'")
    assert issues(policy) == []


def test_strict_dynamic_ignores_host_and_scheme_sources():
    policy = ("default-src 'none'; script-src 'strict-dynamic' 'nonce-xyz' https:; frame-ancestors 'none'; "
              "base-uri 'none'")
    assert issues(policy) == []


def test_no_policy_fails_and_missing_directives_warn():
    assert levels(issues()) == {"content-security-policy": "fail"}
    found = levels(issues("script-src 'self'"))
    assert found == {"object-src": "warn", "default-src": "warn", "frame-ancestors": "warn", "base-uri": "warn",
                     "style-src": "warn"}


def test_framing_by_anyone_fails():
    assert levels(issues(MASTODON.replace("frame-ancestors 'none'", "frame-ancestors *")))["frame-ancestors"] == "fail"


def test_a_weakness_counts_only_when_every_policy_has_it():
    # The second policy blocks inline script: browsers enforce both, so scripts are safe.
    assert "script-src" not in levels(issues("script-src 'unsafe-inline'", MASTODON))
    assert levels(issues("script-src 'unsafe-inline'", "img-src *"))["script-src"] == "fail"


def test_media_policy():
    assert csp.media_issues(csp.parse_header_values(["default-src 'none'; form-action 'none'"])) == []
    assert csp.media_issues(csp.parse_header_values(["default-src 'none'; sandbox"])) == []  # stricter
    assert levels(csp.media_issues([])) == {"content-security-policy": "fail"}
    assert levels(csp.media_issues(csp.parse_header_values(["default-src 'none'"]))) == {"form-action": "warn"}
    found = levels(csp.media_issues(csp.parse_header_values(["default-src 'self'; form-action 'none'"])))
    assert found == {"script-src": "fail"}
    assert levels(csp.media_issues(csp.parse_header_values(["sandbox allow-scripts"])))["script-src"] == "fail"


def test_host_sources_give_the_media_host():
    p = csp.parse_policy(MASTODON)
    assert csp.host_sources(p.get("img-src")) == ["example.social", "files.example.social"]
    assert csp.host_sources(("https://cdn.example:8443/path", "'self'", "https:", "*.example")) == [
        "cdn.example", "*.example"]


# --- hostile input -----------------------------------------------------------------------------------


def test_huge_policy_is_truncated_and_said():
    p = csp.parse_policy("default-src 'none'; img-src " + "a" * (2 * csp.MAX_POLICY_CHARS))
    assert p.get("default-src") == ("'none'",)
    assert any("longer than" in i for i in p.invalid)
    assert len(p.raw) <= csp.MAX_POLICY_CHARS + 10


def test_binary_junk_and_control_characters_are_reported_escaped():
    junk = "script-src 'self' \x00\x1b[31m\xff\u202e; de\x07fault-src 'none'; \udcff"
    p = csp.parse_policy(junk)
    assert p.get("script-src") == ("'self'",)
    assert not p.has("default-src")
    assert p.invalid and all("\x1b" not in i and "\x00" not in i for i in p.invalid)
    assert "\x1b" not in p.raw
    found = csp.compare_with_mastodon([p])
    assert any(i.message.startswith("unreadable part") for i in found)


def test_too_many_directives_and_sources_are_bounded():
    p = csp.parse_policy("; ".join(f"x-{i} a" for i in range(500)))
    assert len(p.directives) == csp.MAX_DIRECTIVES
    p = csp.parse_policy("img-src " + " ".join(f"h{i}.example" for i in range(5000)))
    assert len(p.get("img-src")) == csp.MAX_SOURCES


def test_not_text_is_an_invalid_policy_not_a_crash():
    p = csp.parse_policy(b"script-src *")  # type: ignore[arg-type]
    assert p.empty and p.invalid
    assert csp.parse_header_values([";;;", "   "]) and csp.compare_with_mastodon(csp.parse_header_values([";;;"]))
