"""Client certificates from ``kubernetes.io/tls`` Secrets (ImageConfig ``clientCertSecretRef``).

``spec.registry.tls.clientCertSecretRef: {name: ...}`` is crossfetch's own addition to the
ImageConfig API. The Secret's ``tls.crt`` and ``tls.key`` are written to 0600 files in a
private (0700) temporary directory, because the TLS library only loads key files from disk;
the directory is removed when the loader is closed or the process exits.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import weakref
from pathlib import Path

from ..errors import ConfigError
from .model import ClientCert, Source
from .objects import ImageConfig, ObjectSet
from .resolver import ClientCertLoader

TLS_SECRET_TYPE = "kubernetes.io/tls"  # noqa: S105 (a type name, not a secret)


def _fix(name: str) -> str:
    return (f"create it with: kubectl create secret tls {name} --cert=client.crt "
            f"--key=client.key --dry-run=client -o yaml > {name}.yaml, and pass that file "
            "with --config")


class SecretClientCerts:
    """A :class:`~crossfetch.policy.resolver.ClientCertLoader` over the Secrets of an
    :class:`ObjectSet`; each Secret is written once, on first use."""

    def __init__(self, objects: ObjectSet) -> None:
        self.objects = objects
        self._dir: Path | None = None
        self._done: dict[str, ClientCert] = {}
        self._finalizer: weakref.finalize[..., SecretClientCerts] | None = None

    def __call__(self, secret_name: str, ic: ImageConfig) -> ClientCert:
        if secret_name in self._done:
            return self._done[secret_name]
        secret = self.objects.secrets.get(secret_name)
        where = f"ImageConfig {ic.name} clientCertSecretRef"
        if secret is None:
            raise ConfigError(f"{where} names Secret {secret_name!r}, which is in none of the "
                              "--config files", fix=_fix(secret_name))
        if secret.type != TLS_SECRET_TYPE:
            raise ConfigError(f"Secret {secret_name} has type {secret.type!r}; "
                              f"{where} needs a {TLS_SECRET_TYPE} Secret", fix=_fix(secret_name))
        cert, key = secret.data.get("tls.crt"), secret.data.get("tls.key")
        if not cert or b"-----BEGIN CERTIFICATE-----" not in cert:
            raise ConfigError(f"Secret {secret_name} has no PEM certificate under tls.crt",
                              fix=_fix(secret_name))
        if not key or not re.search(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----", key):
            raise ConfigError(f"Secret {secret_name}: the certificate has no key (tls.key "
                              "holds no PEM private key)", fix=_fix(secret_name))
        d = self._private_dir()
        cert_path = _write_private(d / f"{len(self._done)}-tls.crt", cert)
        key_path = _write_private(d / f"{len(self._done)}-tls.key", key)
        result = ClientCert(cert=cert_path, key=key_path,
                            source=Source("secret", secret.source.name or secret_name))
        self._done[secret_name] = result
        return result

    def _private_dir(self) -> Path:
        if self._dir is None:
            path = tempfile.mkdtemp(prefix="crossfetch-client-certs-")  # mode 0700
            self._dir = Path(path)
            # finalize also runs at interpreter exit, so the keys never outlive the process.
            self._finalizer = weakref.finalize(self, shutil.rmtree, path, True)
        return self._dir

    def close(self) -> None:
        """Remove the written files (also done at exit)."""
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        self._dir = None
        self._done.clear()


def _write_private(path: Path, data: bytes) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def client_cert_loader(objects: ObjectSet) -> ClientCertLoader | None:
    """A loader for ImageConfig ``clientCertSecretRef`` Secrets among ``objects``."""
    return SecretClientCerts(objects)
