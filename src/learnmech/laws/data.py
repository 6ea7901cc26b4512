"""Published scaling data: the Chinchilla points digitised by Epoch AI (Besiroglu et al. 2024).

The CSV ships inside the package (``learnmech/laws/published/``, with its provenance and licence note in
``PROVENANCE.md`` beside it) and is read through :mod:`importlib.resources`, so it is found in any installation and
from any working directory. ``$LEARNMECH_DATA`` (a directory holding the file, or the file itself) overrides it.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np

from .._checks import positive_int

__all__ = ["CHINCHILLA_FILE", "find_data_file", "load_chinchilla", "drop_highest"]

CHINCHILLA_FILE = "chinchilla_svg_extracted.csv"
_ENV = "LEARNMECH_DATA"
_PACKAGE_DIR = "published"  # package data folder of learnmech.laws


def find_data_file(filename: str = CHINCHILLA_FILE) -> Path:
    """Path of a data file: ``$LEARNMECH_DATA`` if set, else the copy shipped in the package.

    FileNotFoundError saying where it looked when it is in neither place.
    """
    looked: list[str] = []
    override = os.environ.get(_ENV)
    if override:
        candidate = Path(override)
        candidate = candidate if candidate.is_file() else candidate / filename
        if candidate.is_file():
            return candidate
        looked.append(f"${_ENV} -> {candidate}")
    shipped = resources.files("learnmech.laws").joinpath(_PACKAGE_DIR, filename)
    if shipped.is_file():
        # Installed as plain files (wheel, sdist, editable): a real path. A zipped install is not supported by
        # setuptools' default zip_safe=False, so str() of the traversable is a filesystem path here.
        return Path(str(shipped))
    looked.append(f"the package data learnmech/laws/{_PACKAGE_DIR}/")
    raise FileNotFoundError(
        f"could not find {filename}: looked in {'; '.join(looked)}. Set {_ENV} to its directory."
    )


def drop_highest(loss: np.ndarray, count: int) -> np.ndarray:
    """Boolean mask (n,) keeping all points except the ``count`` with the highest loss (Besiroglu et al. 2024)."""
    count = positive_int(count, "exclude_highest", minimum=0)
    loss = np.asarray(loss, dtype=float)
    if count >= loss.size:
        raise ValueError(f"exclude_highest must be smaller than the number of points ({loss.size}), got {count}")
    keep = np.ones(loss.size, dtype=bool)
    if count:
        keep[np.argsort(loss, kind="stable")[loss.size - count:]] = False
    return keep


def load_chinchilla(exclude_highest: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 245 Chinchilla runs Epoch AI extracted from Hoffmann et al. (2022) figure 4, as (N, D, loss).

    N (n,): model parameters; D (n,): training tokens = training FLOP / (6 N), as Epoch AI derived them;
    loss (n,): final training loss (nats/token). ``exclude_highest``: drop that many highest-loss points
    (5 in Besiroglu et al. 2024, whose fit this reproduces).
    """
    import pandas as pd

    table = pd.read_csv(find_data_file(CHINCHILLA_FILE))
    N = table["Model Size"].to_numpy(dtype=float)
    flop = table["Training FLOP"].to_numpy(dtype=float)
    loss = table["loss"].to_numpy(dtype=float)
    keep = drop_highest(loss, exclude_highest)
    return N[keep], flop[keep] / (6.0 * N[keep]), loss[keep]
