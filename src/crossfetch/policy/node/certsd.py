"""Docker ``certs.d`` and containers ``certs.d`` directories (``<root>/<host[:port]>/``).

``*.crt`` files are extra CAs; ``<name>.cert`` with ``<name>.key`` is a client pair. A
certificate without its key (or a key without its certificate) is an error, as in Docker.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from ...errors import ConfigError
from ..model import ClientCert, Source
from ._files import check_ca_file, check_client_pair

KIND = "certs.d"


class CertsEntry(NamedTuple):
    """What one ``<root>/<host>/`` directory holds."""

    directory: Path
    ca_files: tuple[Path, ...]
    client: ClientCert | None
    source: Source


def read_certs_dir(d: Path, kind: str = KIND) -> CertsEntry | None:
    """Read one host directory; ``None`` when it holds no certificate files."""
    try:
        files = sorted(p for p in d.iterdir() if p.is_file())
    except OSError as e:
        raise ConfigError(f"cannot list {kind} directory: {e.strerror}", file=str(d),
                          fix="check the directory's permissions") from None
    source = Source(kind, str(d))
    cas = [p for p in files if p.suffix == ".crt"]
    certs = [p for p in files if p.suffix == ".cert"]
    keys = [p for p in files if p.suffix == ".key"]
    if not (cas or certs or keys):
        return None
    for key in keys:
        if key.with_suffix(".cert") not in certs:
            raise ConfigError(f"client key {key.name} has no certificate: "
                              f"{key.with_suffix('.cert').name} is missing", file=str(key),
                              fix=f"put the client certificate next to it as "
                              f"{key.with_suffix('.cert').name}, or remove the key")
    pairs = [check_client_pair(c, c.with_suffix(".key"), Source(kind, str(c)))
             for c in certs]
    ca_files = tuple(check_ca_file(p, Source(kind, str(p)),
                                   "remove the file or replace it with a PEM CA certificate")
                     for p in cas)
    return CertsEntry(d, ca_files, pairs[0] if pairs else None, source)


class CertsDirs:
    """Several ``certs.d`` roots, searched in order; entries are read once."""

    def __init__(self, roots: list[tuple[Path, str]]) -> None:
        self.roots = roots
        self._cache: dict[str, CertsEntry | None] = {}

    def for_host(self, host: str) -> CertsEntry | None:
        """The first root's ``<host>`` directory that holds certificate files."""
        if host not in self._cache:
            found = None
            for root, kind in self.roots:
                d = root / host
                if d.is_dir():
                    found = read_certs_dir(d, kind)
                    if found is not None:
                        break
            self._cache[host] = found
        return self._cache[host]
