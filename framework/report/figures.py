"""Matplotlib without a display, the SIMULATED mark, and saving a figure: shared by every chart module."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from visionbench.results.model import Bundle


def plt():
    """``matplotlib.pyplot`` on the Agg backend (imported on first use: start-up does not pay for it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def simulated_mark(bundle: Mapping[str, Any]) -> str | None:
    """ "SIMULATED", with the emulator's time scale, for a run that was not made against the real services."""
    if not Bundle.of(bundle).simulated:
        return None
    scale = Bundle.of(bundle).time_scale
    if isinstance(scale, float):
        return f"SIMULATED: emulator, time scale {scale:g} (times are x{scale:g} of the modelled ones)"
    if scale == "default":
        return "SIMULATED: emulator, at its profiles' own time scale (none set in the config)"
    return "SIMULATED: emulator or fake provider, not the real services"


def mark(fig, bundle: Mapping[str, Any]) -> None:
    """The SIMULATED mark, top left of the figure, above the title, where no data can hide it."""
    text = simulated_mark(bundle)
    if text:
        fig.text(
            0.01,
            0.995,
            text,
            ha="left",
            va="top",
            fontsize=8,
            fontweight="bold",
            color="#9b1c1c",
            bbox={"boxstyle": "round,pad=0.25", "facecolor": "#fff3cd", "edgecolor": "#e0c266"},
        )


def top_room(fig, bundle: Mapping[str, Any]) -> None:
    """Leave a band of about 0.3 inch above the titles for the SIMULATED mark."""
    if Bundle.of(bundle).simulated:
        band = 0.3 / fig.get_figheight()
        fig.subplots_adjust(top=fig.subplotpars.top - band)
        if fig._suptitle is not None:
            fig._suptitle.set_y(1 - band)


def save(fig, path: Path, bundle: Mapping[str, Any] | None = None) -> Path:
    """Lay out (with room for the SIMULATED mark of ``bundle``'s run), write as PNG (110 dpi) and close ``fig``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    if bundle is not None:
        top_room(fig, bundle)
    fig.savefig(path, dpi=110)
    plt().close(fig)
    return path
