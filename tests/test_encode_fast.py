"""AsteriskModel.encode's fast path: truncate_dim, vectorised padding, batch independence on real sentences."""

import csv
import gzip
import io
import warnings

import pytest
import torch
import torch.nn.functional as F

from asterisk_embeddings import text_batching
from modeling_asterisk import AsteriskModel
from modeling_asterisk.modeling_asterisk import _pad_right

# The tiny model reads 40 tokens; some SST-2 sentences are longer, as intended.
pytestmark = [pytest.mark.filterwarnings("ignore:.*were truncated to their first"),
              pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return AsteriskModel.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def sentences(data_dir):
    with open(data_dir / "sst2" / "test.csv", encoding="utf-8", newline="") as handle:
        return [row["text"] for _, row in zip(range(64), csv.DictReader(handle))]


def test_truncate_dim_cuts_then_normalises(model, sentences):
    raw = model.encode(sentences, normalize=False)
    for dim in (1, 8, 24):
        torch.testing.assert_close(model.encode(sentences, truncate_dim=dim), F.normalize(raw[:, :dim], dim=-1))
        torch.testing.assert_close(model.encode(sentences, truncate_dim=dim, normalize=False), raw[:, :dim])
    single = model.encode(sentences[0], truncate_dim=8)
    assert single.shape == (8,) and torch.isclose(single.norm(), torch.tensor(1.0))
    assert model.encode([], truncate_dim=8).shape == (0, 8)


@pytest.mark.parametrize("bad", [0, -1, 25, 2.5, True, "8"])
def test_truncate_dim_outside_the_embedding_raises(model, bad):
    with pytest.raises(ValueError, match="truncate_dim"):
        model.encode(["text"], truncate_dim=bad)


def test_pad_right_matches_a_row_by_row_reference():
    for rows in ([[5, 6, 7], [], [8], [1, 2, 3, 4]], [[], []], [[9]]):
        input_ids, attention_mask = _pad_right(rows, 50257, torch.device("cpu"))
        width = max(1, max(map(len, rows)))
        expected_ids = torch.tensor([row + [50257] * (width - len(row)) for row in rows])
        expected_mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
        assert input_ids.dtype == attention_mask.dtype == torch.long
        assert torch.equal(input_ids, expected_ids) and torch.equal(attention_mask, expected_mask)


def test_the_hub_copy_of_the_batching_steps_matches_the_library(model, tokenizer, sentences):
    """encode() keeps its own copy of asterisk_embeddings.text_batching (the Hub file stands alone): pinned here."""
    for rows in ([[5, 6, 7], [], [8], [1, 2, 3, 4]], [[], []], [[9]]):
        ids, mask = _pad_right(rows, 50257, torch.device("cpu"))
        library_ids, library_mask = text_batching.pad_right(rows, 50257)
        assert ids.tolist() == library_ids.tolist() and mask.tolist() == library_mask.tolist()
    long_texts = sentences[:5] + ["word " * 200] * 2
    tokenized = text_batching.tokenize_to_limit(
        lambda t, n: tokenizer(t, add_special_tokens=False, truncation=True, max_length=n)["input_ids"], long_texts, 40)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        encoded = model.encode(long_texts, batch_size=3, normalize=False)
    assert [str(w.message) for w in caught if "truncated" in str(w.message)] == [tokenized.warning()]
    library = torch.empty_like(encoded)
    with torch.no_grad():
        for rows, input_ids, attention_mask in text_batching.length_sorted_batches(tokenized.ids, 3, 50257):
            output = model(input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(attention_mask))
            library[torch.from_numpy(rows)] = output.pooler_output
    torch.testing.assert_close(encoded, library, atol=1e-5, rtol=0)


@pytest.mark.parametrize("bad", [0, -3, 41, 2.5, True])
def test_max_length_outside_the_window_raises(model, bad):
    with pytest.raises(ValueError, match=r"max_length must be an integer in \[1, 40\]"):
        model.encode(["text"], max_length=bad)


def test_length_sorted_batches_match_each_text_alone(model, tokenizer, sentences):
    """Dynamic padding and reordering change nothing: each embedding equals the text's own forward pass."""
    batched = model.encode(sentences, batch_size=7, normalize=False)
    with torch.no_grad():
        alone = torch.cat([
            model(**tokenizer([text], return_tensors="pt", truncation=True, max_length=40)).pooler_output
            for text in sentences
        ])
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)


def test_truncation_warning_points_at_the_caller(model):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.encode(["word " * 100])
    assert [w.filename for w in caught if "truncated" in str(w.message)] == [__file__]


def test_encode_restores_training_mode(model):
    model.train()
    try:
        model.encode(["a text"])
        assert model.training
    finally:
        model.eval()


@pytest.mark.slow
def test_compiled_model_encodes_the_same(tiny_model_dir, sentences):
    model = AsteriskModel.from_pretrained(tiny_model_dir)
    eager = model.encode(sentences, batch_size=16)
    model.compile(dynamic=True)
    torch.testing.assert_close(model.encode(sentences, batch_size=16), eager, atol=1e-5, rtol=1e-5)


def test_chunk_mode_averages_windows_by_token_count(model, data_dir):
    """long_texts="chunk": a long review = the token-weighted mean of its windows' embeddings; short texts
    are untouched, and nothing warns about truncation."""
    limit = model.config.max_position_embeddings
    with open(data_dir / "imdb" / "test.csv.gz", "rb") as raw:
        reader = csv.DictReader(io.TextIOWrapper(gzip.GzipFile(fileobj=raw), encoding="utf-8"))
        review = next(row["text"] for row in reader if len(row["text"]) > 2000)
    tokenizer = model._load_own_tokenizer()
    ids = tokenizer(review, add_special_tokens=False)["input_ids"]
    windows = [ids[i : i + limit] for i in range(0, len(ids), limit)]
    assert len(windows) >= 3 and len(windows[-1]) < limit  # a ragged last window exercises the weights
    pieces = [tokenizer.decode(window) for window in windows]
    per_window = model.encode(pieces, normalize=False, tokenizer=tokenizer)
    # decode->encode round-trips GPT-2 byte-level BPE, so each piece re-tokenises to its window
    assert [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in pieces] == [len(w) for w in windows]
    weights = torch.tensor([len(w) for w in windows], dtype=torch.float32)
    expected = (per_window * weights[:, None]).sum(0) / weights.sum()

    short = ["A short sentence.", ""]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # chunk mode must not warn about truncation
        chunked = model.encode([short[0], review, short[1]], normalize=False, long_texts="chunk", batch_size=2)
    torch.testing.assert_close(chunked[1], expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(chunked[[0, 2]], model.encode(short, normalize=False), atol=1e-5, rtol=1e-4)
    assert not torch.allclose(chunked[1], model.encode(review, normalize=False), atol=1e-3)
    with pytest.raises(ValueError, match="long_texts must be"):
        model.encode(short, long_texts="average")
