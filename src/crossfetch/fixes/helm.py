"""The one Crossplane Helm values writer: ``registryCaBundleConfig``, which mounts a CA bundle
ConfigMap and sets ``--ca-bundle-path`` (crossplane ``cluster/charts/crossplane/values.yaml`` and
``templates/deployment.yaml``; ``CA_BUNDLE_PATH`` in ``cmd/crossplane/core/core.go``)."""

from __future__ import annotations

from .names import CA_KEY, CROSSPLANE_NAMESPACE


def ca_values(name: str, *, key: str = CA_KEY) -> str:
    """Helm values pointing Crossplane's extra CA bundle at ConfigMap ``name`` / ``key``."""
    import yaml

    return yaml.safe_dump({"registryCaBundleConfig": {"name": name, "key": key}},
                          sort_keys=False)


def ca_upgrade_command(name: str, *, key: str = CA_KEY,
                       namespace: str = CROSSPLANE_NAMESPACE) -> str:
    """The ``helm upgrade`` that applies :func:`ca_values` to an installed Crossplane."""
    return (f"helm upgrade crossplane crossplane-stable/crossplane -n {namespace} "
            f"--reuse-values --set registryCaBundleConfig.name={name} "
            f"--set registryCaBundleConfig.key={key}")
