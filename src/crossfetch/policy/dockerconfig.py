"""Docker's credential formats as keychain sources: ``auths`` maps and their host matching,
pull Secrets and ``--pull-secret`` files, and ``config.json`` (which may name a helper).
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .credhelpers import run_helper
from .hosts import glob_host, key_path, normalize_host, same_registry
from .model import Credential, Source
from .objects import ObjectSet, Secret

DOCKERCONFIGJSON = "kubernetes.io/dockerconfigjson"
DOCKERCFG = "kubernetes.io/dockercfg"
MAX_FILE = 4 * 1024 * 1024


def match_auths(auths: Mapping[str, Any], registry: str, repository: str = "",
                *, kubelet: bool = False) -> str | None:
    """The ``auths`` key that answers ``registry`` (``host[:port]``), or ``None``.

    Docker config files match on the host alone. Kubernetes pull secrets (``kubelet=True``)
    also allow ``*.example.com`` wildcards and path prefixes, the most specific winning.
    """
    best: tuple[int, str] | None = None
    for key in auths:
        host = normalize_host(str(key))
        path = key_path(str(key)) if kubelet else ""
        if not (same_registry(host, registry) or (kubelet and "*" in host
                                                     and glob_host(host, registry.lower()))):
            continue
        if path and not (repository == path or repository.startswith(path + "/")):
            continue
        score = len(path) * 2 + (0 if "*" in host else 1)
        if best is None or score > best[0]:
            best = (score, str(key))
    return best[1] if best else None


def _credential_from_entry(entry: Any, source: Source, where: str) -> Credential:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: the entry is not an object", fix="each auths entry is "
                          '{"auth": base64("user:password")} or {"username": ..., "password": ...}')
    username = entry.get("username")
    password = entry.get("password")
    auth = entry.get("auth")
    if auth:
        try:
            decoded = base64.b64decode(str(auth), validate=True).decode()
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise ConfigError(f"{where}: \"auth\" is not base64 of user:password",
                              fix="re-create it: echo -n USER:PASSWORD | base64 -w0") from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise ConfigError(f"{where}: \"auth\" does not hold user:password",
                              fix="re-create it: echo -n USER:PASSWORD | base64 -w0")
    identity = entry.get("identitytoken") or entry.get("identityToken")
    registry_token = entry.get("registrytoken") or entry.get("registryToken")
    return Credential(username=str(username) if username else None,
                      password=str(password) if password else None,
                      identity_token=str(identity) if identity else None,
                      registry_token=str(registry_token) if registry_token else None,
                      source=source)


def _auths_of(doc: Any, where: str, *, legacy: bool = False) -> dict[str, Any]:
    """The ``auths`` map of a docker config document (``legacy``: a ``.dockercfg`` map)."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: not a JSON object", fix='a .dockerconfigjson looks like '
                          '{"auths": {"registry.example": {"auth": "..."}}}')
    auths = doc if legacy and "auths" not in doc else doc.get("auths", {})
    if not isinstance(auths, dict):
        raise ConfigError(f"{where}: \"auths\" is not an object")
    return auths


# --- sources ----------------------------------------------------------------------------


class CredentialSource:
    """One place credentials may come from."""

    def describe(self, registry: str, repository: str) -> Source | None:
        raise NotImplementedError

    def resolve(self, registry: str, repository: str) -> Credential | None:
        raise NotImplementedError


class AuthsSource(CredentialSource):
    """A parsed ``auths`` map: a pull Secret, a ``--pull-secret`` file."""

    def __init__(self, auths: dict[str, Any], source: Source, kubelet: bool = True) -> None:
        self.auths, self.source, self.kubelet = auths, source, kubelet

    def __repr__(self) -> str:  # never the credentials
        return f"AuthsSource(source={self.source}, kubelet={self.kubelet})"

    def describe(self, registry: str, repository: str) -> Source | None:
        key = match_auths(self.auths, registry, repository, kubelet=self.kubelet)
        return Source(self.source.kind, f"{self.source.name} [{key}]") if key else None

    def resolve(self, registry: str, repository: str) -> Credential | None:
        key = match_auths(self.auths, registry, repository, kubelet=self.kubelet)
        if key is None:
            return None
        src = Source(self.source.kind, f"{self.source.name} [{key}]")
        return _credential_from_entry(self.auths[key], src, f"{self.source.name} auths[{key}]")


def secret_source(secret: Secret, why: str = "") -> AuthsSource:
    """An ``auths`` source from a ``kubernetes.io/dockerconfigjson`` (or dockercfg) Secret."""
    name = f"Secret {secret.name}" + (f" ({why})" if why else "")
    where = f"{name} from {secret.source.name}"
    if secret.type == DOCKERCONFIGJSON:
        raw = secret.data.get(".dockerconfigjson")
        key = ".dockerconfigjson"
    elif secret.type == DOCKERCFG:
        raw = secret.data.get(".dockercfg")
        key = ".dockercfg"
    else:
        raise ConfigError(f"{where} has type {secret.type!r}, not {DOCKERCONFIGJSON}",
                          fix="create it with kubectl create secret docker-registry NAME "
                          "--docker-server=HOST --docker-username=USER --docker-password=... "
                          "--dry-run=client -o yaml")
    if raw is None:
        raise ConfigError(f"{where} has no {key} key", fix=f"put the docker config JSON under "
                          f"data.{key} (base64) or stringData.{key}")
    try:
        doc = json.loads(raw.decode())
    except (ValueError, UnicodeDecodeError):
        raise ConfigError(f"{where}: {key} is not JSON", fix="check the Secret's contents "
                          "(kubectl get secret -o jsonpath='{.data.\\.dockerconfigjson}' | "
                          "base64 -d)") from None
    return AuthsSource(_auths_of(doc, where, legacy=key == ".dockercfg"),
                       Source("secret", where))


def load_pull_secret_file(path: str | Path) -> AuthsSource:
    """A ``--pull-secret`` file: a Secret YAML (one document) or a bare docker config JSON."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_FILE:
            raise ConfigError("pull secret file is larger than 4 MiB", file=str(p))
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read pull secret: {e.strerror}", file=str(p),
                          fix="check the --pull-secret path") from None
    except UnicodeDecodeError:
        raise ConfigError("pull secret is not UTF-8 text", file=str(p)) from None
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise ConfigError(f"invalid JSON: {getattr(e, 'msg', 'syntax error')}", file=str(p),
                              fix="give a .dockerconfigjson ({\"auths\": {...}}) or a "
                              "Secret YAML") from None
        if not (isinstance(doc, dict) and doc.get("kind") == "Secret"):
            return AuthsSource(_auths_of(doc, str(p)), Source("pull-secret", str(p)))
    objects = ObjectSet()
    try:
        objects.add_text(text, str(p))
    except ConfigError as e:
        raise ConfigError(f"not a Secret or .dockerconfigjson: {e.message}", file=None,
                          fix="give a kubernetes.io/dockerconfigjson Secret YAML or the bare "
                          ".dockerconfigjson JSON") from None
    secrets = list(objects.secrets.values())
    if len(secrets) != 1 or objects.image_configs or objects.config_maps:
        raise ConfigError("a --pull-secret file holds exactly one Secret", file=str(p),
                          fix="split the objects; ImageConfigs go to --config")
    src = secret_source(secrets[0])
    return AuthsSource(src.auths, Source("pull-secret", f"{p} (Secret {secrets[0].name})"))


class DockerConfigSource(CredentialSource):
    """Docker's ``config.json``: ``credHelpers``, ``credsStore`` and ``auths``.

    Loaded on first use, so an unreadable file only matters when a registry wants credentials.
    Helper answers are kept for the life of this object.
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        base = env.get("DOCKER_CONFIG")
        if base:
            self.path = Path(base).expanduser() / "config.json"
        else:
            home = env.get("HOME") or str(Path.home())
            self.path = Path(home) / ".docker" / "config.json"
        self._doc: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._helper_cache: dict[tuple[str, str], Credential | None] = {}

    def _load(self) -> dict[str, Any]:
        if self._doc is not None:
            return self._doc
        try:
            if self.path.stat().st_size > MAX_FILE:
                raise ConfigError(f"Docker config {self.path} is larger than 4 MiB",
                                  file=str(self.path),
                                  fix="check the file, or point DOCKER_CONFIG elsewhere")
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self._doc = {}
            return self._doc
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read Docker config {self.path}: "
                              f"{getattr(e, 'strerror', None) or e}",
                              fix="fix its permissions, or point DOCKER_CONFIG at another "
                              "directory") from None
        try:
            doc = json.loads(text) if text.strip() else {}
        except ValueError:
            raise ConfigError(f"Docker config {self.path} is not valid JSON",
                              fix="repair it (docker login rewrites it) or move it "
                              "away") from None
        if not isinstance(doc, dict):
            raise ConfigError(f"Docker config {self.path} is not a JSON object")
        self._doc = doc
        return doc

    def _helper_for(self, registry: str) -> tuple[str, str] | None:
        """(helper name, which setting named it) for ``registry``."""
        doc = self._load()
        helpers = doc.get("credHelpers") or {}
        if isinstance(helpers, dict):
            key = match_auths(helpers, registry)
            if key is not None:
                return str(helpers[key]), f"credHelpers[{key}]"
        store = doc.get("credsStore")
        if store:
            return str(store), "credsStore"
        return None

    def describe(self, registry: str, repository: str) -> Source | None:
        helper = self._helper_for(registry)
        if helper:
            return Source("credential-helper",
                          f"docker-credential-{helper[0]} ({helper[1]} in {self.path})")
        auths = _auths_of(self._load(), str(self.path)) if self._load() else {}
        key = match_auths(auths, registry)
        return Source("docker-config", f"{self.path} auths[{key}]") if key else None

    def resolve(self, registry: str, repository: str) -> Credential | None:
        helper = self._helper_for(registry)
        if helper:
            cache_key = (helper[0], registry.lower())
            with self._lock:  # parallel blob fetches must not run the helper several times
                if cache_key not in self._helper_cache:
                    self._helper_cache[cache_key] = run_helper(
                        helper[0], registry, env=self.env, why=f"{helper[1]} in {self.path}")
                return self._helper_cache[cache_key]
        auths = _auths_of(self._load(), str(self.path)) if self._load() else {}
        key = match_auths(auths, registry)
        if key is None:
            return None
        src = Source("docker-config", f"{self.path} auths[{key}]")
        cred = _credential_from_entry(auths[key], src, f"{self.path} auths[{key}]")
        if not cred.secrets():
            return None  # an empty marker entry (left by a credsStore that is gone)
        return cred
