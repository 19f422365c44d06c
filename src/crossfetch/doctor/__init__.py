"""``crossfetch doctor``: staged checks that say why a pull fails, and the fix.

``from crossfetch.doctor import Doctor`` — names are imported lazily so that importing
``crossfetch.doctor.netpol`` alone stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .checks import DEFAULT_TIMEOUT, Doctor
    from .report import Check, Report, Status, render_text

__all__ = ["DEFAULT_TIMEOUT", "Check", "Doctor", "Report", "Status", "render_text"]


def __getattr__(name: str) -> Any:
    if name in ("Doctor", "DEFAULT_TIMEOUT"):
        from . import checks

        return getattr(checks, name)
    if name in ("Check", "Report", "Status", "render_text"):
        from . import report

        return getattr(report, name)
    raise AttributeError(name)
