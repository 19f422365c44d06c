"""The one ImageConfig writer (``pkg.crossplane.io/v1beta1``).

Crossplane ships ``matchImages``, ``rewriteImage`` and ``registry.authentication.pullSecretRef``
(crossplane ``cluster/crds/pkg.crossplane.io_imageconfigs.yaml`` at 0cbbdef; ImageConfig since
v1.18). ``registry.tls`` and ``allowCredentialsOverPlainHTTP`` are crossfetch's own: a caller
that writes them for a person labels the step with :data:`~.fix.CROSSFETCH_ONLY`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .names import object_name

API_VERSION = "pkg.crossplane.io/v1beta1"
KIND = "ImageConfig"


class TLS(NamedTuple):
    """crossfetch's ``spec.registry.tls`` block (the upstream design proposal's field names)."""

    mode: str | None = None
    ca_configmap: tuple[str, str] | None = None
    """(ConfigMap name, key) for ``caBundleConfigMapRef``."""
    client_cert_secret: str | None = None


def imageconfig(prefix: str, *, name: str | None = None, rewrite: str | None = None,
                pull_secret: str | None = None, tls: TLS | None = None,
                allow_plain_http_credentials: bool | None = None) -> dict[str, Any]:
    """An ImageConfig object matching ``prefix`` (a raw string prefix, as Crossplane matches)."""
    spec: dict[str, Any] = {"matchImages": [{"type": "Prefix", "prefix": prefix}]}
    registry: dict[str, Any] = {}
    authn: dict[str, Any] = {}
    if pull_secret:
        authn["pullSecretRef"] = {"name": pull_secret}
    if allow_plain_http_credentials is not None:
        authn["allowCredentialsOverPlainHTTP"] = allow_plain_http_credentials
    if authn:
        registry["authentication"] = authn
    if tls is not None:
        block: dict[str, Any] = {}
        if tls.mode:
            block["mode"] = tls.mode
        if tls.ca_configmap:
            block["caBundleConfigMapRef"] = {"name": tls.ca_configmap[0],
                                             "key": tls.ca_configmap[1]}
        if tls.client_cert_secret:
            block["clientCertSecretRef"] = {"name": tls.client_cert_secret}
        registry["tls"] = block
    if registry:
        spec["registry"] = registry
    if rewrite:
        spec["rewriteImage"] = {"prefix": rewrite}
    return {"apiVersion": API_VERSION, "kind": KIND,
            "metadata": {"name": name or object_name(prefix.rstrip("/"))}, "spec": spec}


def to_yaml(*docs: dict[str, Any]) -> str:
    """Objects as one multi-document YAML text (what ``kubectl apply -f`` and ``--config``
    read)."""
    import yaml

    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


def imageconfig_yaml(prefix: str, **kw: Any) -> str:
    """:func:`imageconfig` as YAML."""
    return to_yaml(imageconfig(prefix, **kw))
