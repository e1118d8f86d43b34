"""Judgments the checks of several components share: one answer to each question, written once.

A check module holds the checks of one component (checks/<component>.py); where the checks of two
components ask the same question of the same kind of fact (is this compose service published beyond
loopback? what answered on the scanned ports? is this .env value a template?), the answer lives here,
in a module named after the fact it reads. What is not a judgment of a fact but a rule of its own
lives in a module of its own: addresses.py (address scope, host:port), templating.py (templates),
passwords.py (password strength).
"""
