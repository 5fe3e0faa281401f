"""Matplotlib without a display, and saving a figure: shared by every chart module."""

from __future__ import annotations

from pathlib import Path


def plt():
    """``matplotlib.pyplot`` on the Agg backend (imported on first use: start-up does not pay for it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def save(fig, path: Path) -> Path:
    """Lay out, write as PNG (110 dpi) and close ``fig``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt().close(fig)
    return path
