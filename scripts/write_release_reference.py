"""Write tests/data/release_reference.json: a few texts and the embeddings the published model (release/) gives.

    python scripts/write_release_reference.py

Run it when release/ is replaced, never to make a failing test pass: tests/test_release.py checks that the
package's code and the release's own code still compute these vectors.
"""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from modeling_asterisk import AsteriskModel  # noqa: E402

TEXTS = [
    "I would like to cancel the card I ordered yesterday.",
    "The movie was a complete waste of time.",
    "What is the capital of Australia?",
    "ok",
    "",
    "A very long text that goes on and on. " * 40,  # truncated at the model's token limit
]


def main() -> None:
    model = AsteriskModel.from_pretrained(REPO / "release").eval()
    embeddings = model.encode(TEXTS).numpy()
    path = REPO / "tests" / "data" / "release_reference.json"
    path.parent.mkdir(exist_ok=True)
    rows = [[round(float(v), 7) for v in row] for row in embeddings]
    path.write_text(json.dumps({"texts": TEXTS, "embeddings": rows}, indent=1) + "\n")
    print(f"wrote {path} ({len(TEXTS)} texts x {embeddings.shape[1]} dimensions)")


if __name__ == "__main__":
    main()
