"""Optional extras: features whose libraries are installed only on request
(``pip install 'crossfetch[cri]'``). A missing extra is a usage error that says what to install,
never an ImportError traceback."""

from __future__ import annotations

import importlib.util

from .errors import UsageError


class MissingExtra(UsageError):
    """A feature's optional libraries are not installed."""

    default_cause = "missing-extra"


def require_extra(extra: str, feature: str, *modules: str) -> None:
    """Raise :class:`MissingExtra` unless every module in ``modules`` can be imported.

    Only looks the modules up; nothing is imported, so the check costs no start-up time."""
    missing = [m for m in modules if importlib.util.find_spec(m.split(".")[0]) is None]
    if missing:
        raise MissingExtra(
            f"{feature} needs the optional extra 'crossfetch[{extra}]' "
            f"(missing: {', '.join(missing)})",
            fix=f"pip install 'crossfetch[{extra}]'",
            detail={"extra": extra, "missing": missing},
        )
