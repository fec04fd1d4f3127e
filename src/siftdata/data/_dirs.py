"""Where a locally installed dataset lives: an explicit root, an environment variable, a default."""

from __future__ import annotations

import os
from pathlib import Path


def choose_data_dir(
    root: str | os.PathLike | None, env_var: str, default: str | os.PathLike
) -> tuple[Path, str]:
    """``root`` if given, else ``$env_var`` if set, else ``default``; with where it came from (for
    error messages)."""
    if root is not None:
        return Path(root), "root"
    if os.environ.get(env_var):
        return Path(os.environ[env_var]), f"${env_var}"
    return Path(default), "the default directory"
