"""Secrets (API keys) known to this process, and redaction of them from anything written or printed."""

from __future__ import annotations

import logging
import os
import threading

_secrets: set[str] = set()
_lock = threading.Lock()
REDACTED = "[REDACTED]"


def register_secret(value: str | None) -> None:
    """Remember a secret so that every bundle, log line and error message has it blanked out."""
    if value and len(value) >= 6:  # short strings would blank out ordinary words
        with _lock:
            _secrets.add(value)


def api_key_from_env(var: str) -> str | None:
    """Read an API key from the environment and register it as a secret."""
    value = os.environ.get(var) or None
    register_secret(value)
    return value


def redact(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that blanks secrets out of every record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _secrets:
            record.msg = redact(record.getMessage())
            record.args = ()
        return True
