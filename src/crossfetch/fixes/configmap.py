"""The one CA-bundle ConfigMap writer: what Crossplane's ``registryCaBundleConfig`` (and
crossfetch's ``caBundleConfigMapRef``) point at."""

from __future__ import annotations

from typing import Any

from .names import CA_KEY, CROSSPLANE_NAMESPACE


def ca_configmap(name: str, pem: str, *, key: str = CA_KEY,
                 namespace: str | None = CROSSPLANE_NAMESPACE) -> dict[str, Any]:
    """A ConfigMap holding a PEM CA bundle under ``key``."""
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
            "data": {key: pem.strip() + "\n"}}


def ca_configmap_yaml(name: str, pem: str, *, key: str = CA_KEY,
                      namespace: str | None = CROSSPLANE_NAMESPACE) -> str:
    """:func:`ca_configmap` as YAML (the PEM as a literal block)."""
    import yaml

    class _Literal(yaml.SafeDumper):
        pass

    def block(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Literal.add_representer(str, block)
    return yaml.dump(ca_configmap(name, pem, key=key, namespace=namespace), Dumper=_Literal,
                     sort_keys=False)


def kubectl_create_command(name: str, ca_file: str, *, key: str = CA_KEY,
                           namespace: str = CROSSPLANE_NAMESPACE) -> str:
    """``kubectl create configmap`` for a CA file."""
    return f"kubectl -n {namespace} create configmap {name} --from-file={key}={ca_file}"
