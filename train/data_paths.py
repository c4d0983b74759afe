"""Where the project finds its shared data and keeps its long-lived caches."""

import gzip
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_root() -> Path:
    """The folder holding the shared datasets: `$ASTERISK_DATA_DIR`, else `../shared/data` beside the repo."""
    root = Path(os.environ.get("ASTERISK_DATA_DIR", REPO_ROOT.parent / "shared" / "data")).resolve()
    if not root.is_dir():
        raise FileNotFoundError(
            f"Shared data folder {root} does not exist; set ASTERISK_DATA_DIR to the folder that holds "
            "banking77/, distill_corpus/, ... (normally ../shared/data beside the repository)."
        )
    return root


def cache_home() -> Path:
    """Caches that outlive a checkout (teacher targets): `$ASTERISK_CACHE`, else `$XDG_CACHE_HOME/asterisk`,
    i.e. `~/.cache/asterisk`, beside the Hugging Face caches."""
    if os.environ.get("ASTERISK_CACHE"):
        return Path(os.environ["ASTERISK_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "asterisk"


def corpus_texts() -> list[str]:
    """Every text of the distillation corpus (`distill_corpus/sentences.tsv.gz`: `source<TAB>text` lines after a
    header), in file order, as the benchmarks sample it."""
    with gzip.open(data_root() / "distill_corpus" / "sentences.tsv.gz", "rt", encoding="utf-8") as handle:
        next(handle)  # the header
        return [line.rstrip("\n").split("\t", 1)[-1] for line in handle]
