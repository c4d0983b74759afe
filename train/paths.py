"""Where the project finds its shared data: `$ASTERISK_DATA_DIR`, else `../shared/data` beside the repo."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_root() -> Path:
    """The folder holding the shared datasets (banking77/, distill_corpus/, ...)."""
    root = Path(os.environ.get("ASTERISK_DATA_DIR", REPO_ROOT.parent / "shared" / "data")).resolve()
    if not root.is_dir():
        raise FileNotFoundError(
            f"Shared data folder {root} does not exist; set ASTERISK_DATA_DIR to the folder that holds "
            "banking77/, distill_corpus/, ... (normally ../shared/data beside the repository)."
        )
    return root
