"""Secrets (API keys) known to this process, and redaction of them from anything written or printed."""

from __future__ import annotations

import logging
import os
import threading
from typing import TextIO

_secrets: set[str] = set()
_longest_first: tuple[str, ...] = ()  # a secret that holds another is blanked out first
_lock = threading.Lock()
REDACTED = "[REDACTED]"


def register_secret(value: str | None) -> None:
    """Remember a secret so that every bundle, log line and error message has it blanked out."""
    global _longest_first
    if value and len(value) >= 6:  # short strings would blank out ordinary words
        with _lock:
            _secrets.add(value)
            _longest_first = tuple(sorted(_secrets, key=len, reverse=True))


def api_key_from_env(var: str) -> str | None:
    """Read an API key from the environment and register it as a secret."""
    value = os.environ.get(var) or None
    register_secret(value)
    return value


def redact(text: str) -> str:
    for secret in _longest_first:
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


class RedactingWriter:
    """Writes text to ``out`` with secrets blanked out, in pieces: a big document never sits in memory whole.

    Text is held back until ``chunk`` characters have come, and the last (longest secret - 1) characters of
    each piece wait for the next one, so a secret split across two writes is still caught.
    """

    def __init__(self, out: TextIO, chunk: int = 1 << 16) -> None:
        self.out, self.chunk = out, chunk
        self._pending: list[str] = []
        self._size = 0

    def write(self, text: str) -> None:
        self._pending.append(text)
        self._size += len(text)
        if self._size >= self.chunk:
            self._drain(keep=len(_longest_first[0]) - 1 if _longest_first else 0)

    def close(self) -> None:
        """Write what is still held back (``out`` stays open)."""
        self._drain(keep=0)

    def _drain(self, keep: int) -> None:
        text = redact("".join(self._pending))
        cut = max(0, len(text) - keep)
        self.out.write(text[:cut])
        self._pending = [text[cut:]]
        self._size = len(self._pending[0])
