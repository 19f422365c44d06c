"""Credential sources, resolved per registry host, and redaction of their secrets.

Order, first source that has an entry for the host wins:

1. ``--username`` with ``--password-stdin`` (only for the registry the reference resolves to);
2. the ``kubernetes.io/dockerconfigjson`` Secret named by the ImageConfig ``pullSecretRef``
   that matches the *rewritten* reference (as Crossplane does);
3. ``--pull-secret`` files, in the order given (Secret YAML or a bare ``.dockerconfigjson``);
4. Docker ``config.json`` (``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``):
   ``credHelpers[host]``, then ``credsStore``, then ``auths`` (Docker's own order).

Nothing is read from a helper until a registry actually asks for credentials, so an anonymous
pull never runs one; a helper that is missing or fails is an :class:`AuthError`, never a
silent fall back to anonymous.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Mapping, Sequence

from ..errors import ConfigError
from ..reference import Reference
from .dockerconfig import (
    AuthsSource,
    CredentialSource,
    DockerConfigSource,
    load_pull_secret_file,
    secret_source,
)
from .hosts import same_registry
from .model import Credential, Keychain, Source
from .objects import ImageConfig, ObjectSet
from .resolver import KeychainProvider

__all__ = ["REDACTED", "FlagSource", "SourceKeychain", "credential_secrets",
           "keychain_provider", "redact"]

REDACTED = "***"


# --- redaction --------------------------------------------------------------------------


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret (and its base64 forms) replaced by ``***``."""
    variants: set[str] = set()
    for s in secrets:
        if not s or len(s) < 3:  # a 1-2 character "secret" would mangle everything
            continue
        variants.add(s)
        variants.add(base64.b64encode(s.encode()).decode().rstrip("="))
    for v in sorted(variants, key=len, reverse=True):
        text = text.replace(v, REDACTED)
    return text


def credential_secrets(cred: Credential | None) -> list[str]:
    """Every value that must never be shown for ``cred``, including its Basic header."""
    if cred is None:
        return []
    out = cred.secrets()
    if cred.password is not None:
        out.append(base64.b64encode(f"{cred.username or ''}:{cred.password}".encode()).decode())
    return out


class FlagSource(CredentialSource):
    """``--username`` and ``--password-stdin``: for the reference's own registry only."""

    def __init__(self, registry: str, username: str, password: str) -> None:
        self.registry, self.username, self.password = registry, username, password

    def __repr__(self) -> str:
        return f"FlagSource(registry={self.registry!r}, username={self.username!r})"

    def _source(self) -> Source:
        return Source("flag", "--username/--password-stdin")

    def describe(self, registry: str, repository: str) -> Source | None:
        return self._source() if same_registry(registry, self.registry) else None

    def resolve(self, registry: str, repository: str) -> Credential | None:
        if not same_registry(registry, self.registry):
            return None
        # Docker's convention: user name "<token>" means the secret is an identity token.
        if self.username == "<token>":
            return Credential(identity_token=self.password, source=self._source())
        return Credential(username=self.username, password=self.password, source=self._source())


# --- the keychain -----------------------------------------------------------------------


class SourceKeychain:
    """The :class:`~crossfetch.policy.model.Keychain` of one resolved reference."""

    def __init__(self, repository: str, sources: tuple[CredentialSource, ...]) -> None:
        self.repository, self.sources = repository, sources

    def describe(self, registry: str) -> Source | None:
        for s in self.sources:
            found = s.describe(registry, self.repository)
            if found is not None:
                return found
        return None

    def resolve(self, registry: str) -> Credential | None:
        for s in self.sources:
            cred = s.resolve(registry, self.repository)
            if cred is not None:
                return cred
        return None


class _Provider:
    """Builds the keychain for each resolved reference (see the module docstring)."""

    def __init__(self, objects: ObjectSet, files: list[AuthsSource], flag: tuple[str, str] | None,
                 docker: DockerConfigSource) -> None:
        self.objects = objects
        self.files = files
        self.flag = flag
        self.docker = docker
        self._secrets: dict[tuple[str, str], AuthsSource] = {}

    def __call__(self, resolved: Reference, pull_secret: ImageConfig | None) -> Keychain | None:
        sources: list[CredentialSource] = []
        if self.flag is not None:
            sources.append(FlagSource(resolved.registry, self.flag[0], self.flag[1]))
        if pull_secret is not None and pull_secret.pull_secret:
            sources.append(self._secret(pull_secret))
        sources.extend(self.files)
        sources.append(self.docker)
        return SourceKeychain(resolved.repository, tuple(sources))

    def _secret(self, ic: ImageConfig) -> AuthsSource:
        name = ic.pull_secret
        assert name is not None
        key = (ic.name, name)
        if key not in self._secrets:
            secret = self.objects.secrets.get(name)
            if secret is None:
                raise ConfigError(
                    f"ImageConfig {ic.name} names pullSecretRef {name!r}, which is "
                    "in none of the --config files",
                    fix=f"add the Secret to a --config file: kubectl create secret "
                    f"docker-registry {name} --docker-server=HOST --docker-username=USER "
                    "--docker-password=... --dry-run=client -o yaml > secret.yaml")
            self._secrets[key] = secret_source(secret, f"pullSecretRef of ImageConfig {ic.name}")
        return self._secrets[key]


def keychain_provider(objects: ObjectSet, *, pull_secret_files: Sequence[str] = (),
                      username: str | None = None, password: str | None = None,
                      env: Mapping[str, str] | None = None) -> KeychainProvider | None:
    """Builds per-reference keychains from every credential source (see module docstring).

    ``--pull-secret`` files are parsed here, so a broken one fails before any request.
    """
    env = os.environ if env is None else env
    files = [load_pull_secret_file(f) for f in pull_secret_files]
    flag = (username, password) if username is not None and password is not None else None
    return _Provider(objects, files, flag, DockerConfigSource(env))
