"""Keeping credentials out of the log.

At log level debug, botocore writes every request's headers (`Authorization`, which carries the
access key id and the signature; `X-Amz-Security-Token`), its canonical request and its
signature; a presigned URL carries the same in its query string, and an STS or SSO response body
the secret key itself. `RedactingFilter`, on every handler the app installs, rewrites each
record's final message (arguments, traceback and stack included) so none of that reaches a file:

- values of fields that hold credentials, wherever they appear (`Authorization: …`,
  `x-amz-security-token:…`, `X-Amz-Signature=…`, `Credential=…`, `aws_secret_access_key = …`,
  `"SessionToken": "…"`, `<SecretAccessKey>…</SecretAccessKey>`, `Bearer …`);
- anything shaped like an AWS access key id (`AKIA…`, `ASIA…`);
- every exact string registered with `register_secret` — the app registers each secret it reads
  (keyring, credential providers, the AWS and API-key environment variables at start), in plain
  and URL-encoded form, so even a secret in an unexpected place is caught.

No third-party imports: `app/secrets.py` and the backup code import this module.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from urllib.parse import quote, quote_plus

REDACTED = "[REDACTED]"
# Shorter "secrets" would blank ordinary words all over the log, and protect little.
MIN_SECRET_LENGTH = 4
# Environment variables that hold secrets, registered at start (see `register_environment`).
SECRET_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
              "AWS_SECURITY_TOKEN", "LANCEDB_SYNC_EMBED_API_KEY")

_lock = threading.Lock()
_secrets: set[str] = set()
_exact: re.Pattern[str] | None = None

# Where a field's name ends and its value begins: quote, ":" or "=", blanks (or the characters
# \n and \r of a repr'd string), an opening quote. Atomic, so a value already replaced by
# [REDACTED] cannot be re-matched by giving some of this back: redacting twice changes nothing.
_SEP = r"""(?>['"]?(?:\s|\\[rn])*[:=](?:\s|\\[rn])*(?:b?['"])?)"""
_NOT_DONE = r"(?!\[REDACTED\])"
_VALUE = _NOT_DONE + r"""[^\s'"&,;<>}\]\\]+"""
# Names are matched without a word boundary in front: in a repr'd string a name follows the two
# characters \n, and too much redaction is the safe side. Each pattern comes with the words (in
# lower case) a line must contain for it to be worth running: most lines contain none, and
# looking for a word is far cheaper than running the pattern.
_FIELDS: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = (
    # A header: quoted (as in a dict's repr) up to its quote, else up to the end of the line (or
    # of the header inside a repr'd request, where line breaks are the characters \r\n).
    (("authorization",),
     re.compile(r"""(?i)(authorization(?>['"]?\s*[:=]\s*))""" + _NOT_DONE
                + r"""(b?'[^']*'|b?"[^"]*"|[^\r\n'"\\]+)""")),
    (("secret", "token", "api", "password"),
     re.compile(r"(?i)((?:secret[_-]?access[_-]?key|secret[_-]?key|session[_-]?token"
                r"|security[_-]?token|access[_-]?token|refresh[_-]?token|api[_-]?key"
                r"|client[_-]?secret|password)" + _SEP + r")(" + _VALUE + r")")),
    # Signatures and credential scopes: query parameters, botocore's "Signature:\n<hex>" line.
    (("signature", "credential", "awsaccesskeyid"),
     re.compile(r"(?i)((?:signature|credential)\b" + _SEP + r"|awsaccesskeyid=)(" + _VALUE
                + r")")),
    (("<secretaccesskey>", "<sessiontoken>", "<securitytoken>"),
     re.compile(r"(?i)(<(?:SecretAccessKey|SessionToken|SecurityToken)>)([^<]*)")),
    (("bearer",), re.compile(r"(?i)(\bbearer\s+)(" + _NOT_DONE + r"[A-Za-z0-9\-._~+/]+=*)")),
)
_KEY_ID_PREFIXES = ("AKIA", "ASIA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA", "AGPA", "APKA", "ABIA",
                    "ACCA", "A3T")
_KEY_ID = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|AIDA|AROA|AIPA|ANPA|ANVA|AGPA|APKA|ABIA|ACCA"
                     r"|A3T[A-Z0-9])[A-Z0-9]{12,}(?![A-Z0-9])")


def register_secret(value: object) -> None:
    """Never write `value` to the log from now on (in this process). Empty or very short values
    are ignored; registering a value twice is harmless."""
    if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
        return
    global _exact
    # As sent in a URL's path or query string, too.
    forms = {value, quote(value, safe=""), quote(value, safe="/"), quote_plus(value)}
    with _lock:
        if forms <= _secrets:
            return
        _secrets.update(forms)
        # Longest first, so a secret that contains another is replaced whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _exact = re.compile("|".join(re.escape(s) for s in ordered))


def register_secrets(values: Iterable[object]) -> None:
    for value in values:
        register_secret(value)


def register_environment(env: Mapping[str, str] | None = None) -> None:
    """Register the secrets the environment hands the app (and botocore) at start."""
    env = os.environ if env is None else env
    register_secrets(env.get(name) for name in SECRET_ENV)


def redact(text: str) -> str:
    """`text` with every credential this module recognises replaced by [REDACTED]."""
    lower = text.lower()
    for words, pattern in _FIELDS:
        if any(w in lower for w in words):
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    if any(p in text for p in _KEY_ID_PREFIXES):
        text = _KEY_ID.sub(REDACTED, text)
    exact = _exact
    if exact is not None:
        text = exact.sub(REDACTED, text)
    return text


class RedactingFilter(logging.Filter):
    """Redacts the final message of every record a handler writes (see the module docstring).

    It formats the message itself (`record.getMessage()`), so secrets passed as arguments are
    caught too, then stores the result with no arguments left; the traceback text is formatted
    and redacted here as well, and the formatter reuses it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_lancedb_sync_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:
            # A format string that does not fit its arguments: logging would print both to
            # stderr, unredacted. Log them as text instead.
            message = f"{record.msg} (arguments that did not fit: {record.args!r})"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        record._lancedb_sync_redacted = True
        return True
