"""SSH daemon: the administrators' way onto the servers (T-ADMIN-ACCESS, T-HOST-COMPROMISE)."""

from __future__ import annotations

from collections.abc import Iterator

from mastoaudit.checkdef import Remediation, check, failed, passed, warned
from mastoaudit.facts import FactSet
from mastoaudit.model import Outcome
from mastoaudit.parsers.sshd import SshdConfig

SSHD_MAN = "https://man.openbsd.org/sshd_config"


def _configs(facts: FactSet) -> list[SshdConfig]:
    return facts.all("sshd_config")


@check(
    id="host.sshd-root-login",
    title="SSH refuses logins as root",
    component="host",
    severity="high",
    threats=["T-ADMIN-ACCESS", "T-HOST-COMPROMISE"],
    needs=["sshd_config"],
    rationale="""Root is the account every attacker tries first, and a root session leaves no
        trace of which administrator acted. Administrators log in as themselves and use sudo.""",
    remediation=Remediation("Set PermitRootLogin to no.", "PermitRootLogin no"),
    references=[SSHD_MAN],
    tags=["ssh", "cis"],
)
def sshd_root_login(facts: FactSet) -> Iterator[Outcome]:
    for conf in _configs(facts):
        setting = conf.get("PermitRootLogin")
        if setting is None:
            yield warned("PermitRootLogin is not set: OpenSSH then allows root logins with a key",
                         at=conf.at(), observed="unset (prohibit-password)", expected="no")
        elif setting.value.lower() == "no":
            yield passed("root logins are refused", at=setting.location, observed=setting.value, expected="no")
        elif setting.value.lower() in ("prohibit-password", "without-password", "forced-commands-only"):
            yield warned(f"root may log in with a key (PermitRootLogin {setting.value})", at=setting.location,
                         observed=setting.value, expected="no")
        elif setting.value.lower() == "yes":
            yield failed("root may log in over SSH, with a password too", at=setting.location,
                         observed=setting.value, expected="no")
        else:
            yield warned("PermitRootLogin has a value sshd does not take (templated or mistyped)",
                         at=setting.location, observed=setting.value, expected="no")


@check(
    id="host.sshd-password-auth",
    title="SSH accepts keys only, not passwords",
    component="host",
    severity="high",
    threats=["T-ADMIN-ACCESS", "T-HOST-COMPROMISE"],
    needs=["sshd_config"],
    rationale="""Password logins are brute-forced around the clock on every public address; keys
        are not. OpenSSH accepts passwords unless PasswordAuthentication is no, and keyboard-
        interactive authentication through PAM asks for the same password.""",
    remediation=Remediation(
        "Turn off password and keyboard-interactive authentication once every administrator has a key.",
        "PasswordAuthentication no\nKbdInteractiveAuthentication no",
    ),
    references=[SSHD_MAN],
    tags=["ssh", "cis"],
)
def sshd_password_auth(facts: FactSet) -> Iterator[Outcome]:
    for conf in _configs(facts):
        pw = conf.get("PasswordAuthentication")
        kbd = conf.get("KbdInteractiveAuthentication") or conf.get("ChallengeResponseAuthentication")
        pam = conf.get("UsePAM")
        if pw is not None and pw.value.lower() not in ("yes", "no"):
            yield warned("PasswordAuthentication has a value sshd does not take (templated or mistyped)",
                         at=pw.location, observed=pw.value, expected="no")
        elif pw is None or pw.value.lower() == "yes":
            yield failed("SSH accepts passwords" + ("" if pw else " (PasswordAuthentication unset: default yes)"),
                         at=pw.location if pw else conf.at(), observed=pw.value if pw else "unset (yes)",
                         expected="no")
        elif kbd is not None and kbd.value.lower() == "yes" and pam is not None and pam.value.lower() == "yes":
            yield failed("keyboard-interactive authentication through PAM still asks for passwords",
                         at=kbd.location, observed=f"{kbd.keyword} yes with UsePAM yes", expected="no")
        else:
            yield passed("password authentication is off", at=pw.location, observed=pw.value, expected="no")


@check(
    id="host.sshd-empty-passwords",
    title="SSH refuses accounts with empty passwords",
    component="host",
    severity="critical",
    threats=["T-ADMIN-ACCESS", "T-HOST-COMPROMISE"],
    needs=["sshd_config"],
    rationale="""With PermitEmptyPasswords yes, any system account without a password is a login
        for anyone who knows its name.""",
    remediation=Remediation("Set PermitEmptyPasswords to no (the default).", "PermitEmptyPasswords no"),
    references=[SSHD_MAN],
    tags=["ssh", "cis"],
)
def sshd_empty_passwords(facts: FactSet) -> Iterator[Outcome]:
    for conf in _configs(facts):
        setting = conf.get("PermitEmptyPasswords")
        if setting is None:
            yield passed("empty passwords are refused (the default)", at=conf.at(), observed="unset (no)",
                         expected="no")
        elif setting.value.lower() == "yes":
            yield failed("accounts with empty passwords may log in", at=setting.location,
                         observed="yes", expected="no")
        elif setting.value.lower() == "no":
            yield passed("empty passwords are refused", at=setting.location, observed="no", expected="no")
        else:
            yield warned("PermitEmptyPasswords has a value sshd does not take (templated or mistyped)",
                         at=setting.location, observed=setting.value, expected="no")
