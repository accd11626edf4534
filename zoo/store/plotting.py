"""matplotlib for the pictures zoo draws (curves, forecasts, results): imported on demand, file-only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo.contract.specs import ZooError


def pyplot(what: str = "plotting") -> Any:
    """matplotlib's pyplot on the Agg backend (no display needed), or one line saying how to get it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
    except ImportError:
        raise ZooError(f"{what} needs matplotlib: pip install 'rnn-zoo[plot]'") from None
    return plt


def save_figure(figure: Any, path: str | Path, dpi: int = 110) -> None:
    """Lay out, write and close `figure`; a file that cannot be written is one line."""
    import matplotlib.pyplot as plt

    from zoo.store.files import check_replaceable, replace_atomically

    try:
        check_replaceable(path)
        formats = figure.canvas.get_supported_filetypes()
        suffix = Path(path).suffix[1:].lower()
        figure.tight_layout()  # drawn beside the target, then renamed over it: never written through a link
        replace_atomically(Path(path), lambda tmp: figure.savefig(tmp, dpi=dpi,
                                                                  format=suffix if suffix in formats else "png"))
    except OSError as e:
        raise ZooError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        plt.close(figure)
