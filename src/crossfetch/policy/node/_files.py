"""Helpers shared by the node-file readers: TOML with line numbers, PEM checks, errors."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, NamedTuple

from ...errors import ConfigError
from ..model import ClientCert, Source

MAX_NODE_FILE_BYTES = 4 * 1024 * 1024
_TOML_LINE = re.compile(r"\s*\(at line (\d+), column (\d+)\)")
_HEADER = re.compile(r"^\s*\[")


def read_text(path: Path, what: str, fix: str) -> str:
    """The file's text, or a :class:`ConfigError` naming it."""
    try:
        if path.stat().st_size > MAX_NODE_FILE_BYTES:
            raise ConfigError(f"{what} is larger than 4 MiB", file=str(path), fix=fix)
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read {what}: {e.strerror}", file=str(path), fix=fix) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} is not UTF-8 text", file=str(path), fix=fix) from None


def load_toml(path: Path, what: str) -> tuple[str, dict[str, Any]]:
    """Parse a TOML file; a syntax error names the file and line (tomllib puts the line in
    its message, so it is read back from there)."""
    text = read_text(path, what, fix=f"check the path of the {what}")
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = _TOML_LINE.search(str(e))
        reason = _TOML_LINE.sub("", str(e)) + (f" (column {m.group(2)})" if m else "")
        raise ConfigError(f"invalid TOML in {what}: {reason}", file=str(path),
                          line=int(m.group(1)) if m else None,
                          fix="fix the TOML syntax at that line (strings need double quotes, "
                          "tables [name], arrays [\"a\", \"b\"])") from None


class TomlLines(NamedTuple):
    """Finds the line of a table header or a key, for error messages and ``explain``.

    tomllib keeps no positions, so this scans the text; it is right for the usual layout
    (one key per line) and returns ``None`` when it cannot tell.
    """

    text: str

    @property
    def _lines(self) -> list[str]:
        return self.text.splitlines()

    def header(self, pattern: str, nth: int = 0) -> int | None:
        """1-based line of the ``nth`` header whose inside matches the regex ``pattern``."""
        rx = re.compile(r"^\s*\[\[?\s*" + pattern + r"\s*\]\]?\s*(#.*)?$")
        seen = 0
        for i, line in enumerate(self._lines):
            if rx.match(line):
                if seen == nth:
                    return i + 1
                seen += 1
        return None

    def key(self, key: str, after: int | None = None) -> int | None:
        """Line of ``key = ...`` in the table starting at line ``after`` (``None``: top level)."""
        rx = re.compile(r"^\s*[\"']?" + re.escape(key) + r"[\"']?\s*=")
        lines = self._lines
        # ``after`` is the 1-based header line, i.e. the 0-based index of the line below it.
        for i in range(after or 0, len(lines)):
            if _HEADER.match(lines[i]):
                return None
            if rx.match(lines[i]):
                return i + 1
        return None


def host_table_pattern(url: str) -> str:
    """Regex for the inside of ``[host."URL"]`` (either quote style)."""
    return r"host\s*\.\s*[\"']" + re.escape(url) + r"[\"']"


def check_ca_file(path: Path, source: Source, fix: str) -> Path:
    """A CA file must exist and hold a PEM certificate."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise ConfigError(f"CA file {path} cannot be read: {e.strerror}", file=source.name,
                          line=source.line, fix=fix) from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ConfigError(f"CA file {path} holds no PEM certificate", file=source.name,
                          line=source.line, fix="give a file with one or more "
                          "-----BEGIN CERTIFICATE----- blocks") from None
    return path


def check_client_pair(cert: Path, key: Path | None, source: Source) -> ClientCert:
    """A client certificate and its key must both exist; ``key=None`` means the certificate
    file must also hold the key (containerd's single-file ``client``)."""
    cert_text = _read_pem(cert, "client certificate", source)
    if "-----BEGIN CERTIFICATE-----" not in cert_text:
        raise ConfigError(f"client certificate {cert} holds no PEM certificate",
                          file=source.name, line=source.line,
                          fix="give a PEM certificate (-----BEGIN CERTIFICATE-----)")
    if key is None:
        if not _has_key(cert_text):
            raise ConfigError(
                f"client certificate {cert} has no key: the file holds no private key and no "
                "key file is given", file=source.name, line=source.line,
                fix=f'give the pair: client = [["{cert}", "/path/to/client.key"]]')
        return ClientCert(cert=cert, key=cert, source=source)
    if not key.exists():
        raise ConfigError(f"client certificate {cert} has no key: {key} does not exist",
                          file=source.name, line=source.line,
                          fix=f"put the certificate's private key at {key}")
    if not _has_key(_read_pem(key, "client key", source)):
        raise ConfigError(f"client key {key} holds no PEM private key", file=source.name,
                          line=source.line, fix="give the unencrypted PEM private key "
                          "(-----BEGIN PRIVATE KEY-----)")
    return ClientCert(cert=cert, key=key, source=source)


def _read_pem(path: Path, what: str, source: Source) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise ConfigError(f"{what} {path} cannot be read: {e.strerror}", file=source.name,
                          line=source.line, fix=f"check the path of the {what}") from None


def _has_key(text: str) -> bool:
    return re.search(r"-----BEGIN [A-Z ]*PRIVATE KEY-----", text) is not None
