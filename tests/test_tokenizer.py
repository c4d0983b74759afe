import hashlib

import pytest

from asterisk_embeddings import tokenizer as tokenization_asterisk
from asterisk_embeddings.tokenizer import build_tokenizer, gpt2_vocabulary_files


def test_official_gpt2_vocabulary(tokenizer):
    assert tokenizer("Hello world")["input_ids"] == [15496, 995]
    assert len(tokenizer) == 50259
    assert tokenizer.convert_tokens_to_ids(["[PAD]", "[MASK]", "<|endoftext|>"]) == [50257, 50258, 50256]
    assert tokenizer.pad_token == "[PAD]" and tokenizer.mask_token == "[MASK]"
    assert tokenizer.model_max_length == 128


def test_files_are_checked_against_gpt2_hashes():
    for name, path in gpt2_vocabulary_files().items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == tokenization_asterisk.GPT2_FILES[name][1]


def test_tampered_vocabulary_fails_loudly(monkeypatch):
    package_name, _ = tokenization_asterisk.GPT2_FILES["merges.txt"]
    monkeypatch.setitem(tokenization_asterisk.GPT2_FILES, "merges.txt", (package_name, "0" * 64))
    with pytest.raises(RuntimeError, match="not the official GPT-2 vocabulary"):
        build_tokenizer()


def test_padding_and_truncation(tokenizer):
    batch = tokenizer(["one", "one two three"], padding=True)
    assert batch["input_ids"][0][1:] == [50257, 50257] and batch["attention_mask"][0] == [1, 0, 0]
    long = tokenizer("word " * 300, truncation=True)["input_ids"]
    assert len(long) == 128
