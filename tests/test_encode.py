import warnings

import pytest
import torch

from modeling_asterisk import AsteriskModel


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return AsteriskModel.from_pretrained(tiny_model_dir)


def test_encode_matches_pooler_output_and_normalises(model, tokenizer):
    texts = ["short", "a somewhat longer text to embed here", "", "middle length text"]
    raw = model.encode(texts, batch_size=3, normalize=False)
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**batch).pooler_output
    torch.testing.assert_close(raw, expected, atol=1e-5, rtol=1e-5)
    unit = model.encode(texts, batch_size=2)
    # Unit vectors, but for the empty text: no token, so the mean of no token features, the zero vector.
    torch.testing.assert_close(unit.norm(dim=-1), torch.tensor([1.0, 1.0, 0.0, 1.0]), atol=1e-5, rtol=0)


def test_encode_is_order_preserving_whatever_the_batch_size(model):
    texts = [("word " * n).strip() for n in (5, 1, 9, 3, 7, 2)]
    reference = model.encode(texts, batch_size=len(texts))
    for batch_size in (1, 2, 4):
        torch.testing.assert_close(model.encode(texts, batch_size=batch_size), reference, atol=1e-5, rtol=0)


def test_encode_loads_the_saved_tokenizer_by_itself(model, tokenizer):
    torch.testing.assert_close(model.encode(["hello there"]), model.encode(["hello there"], tokenizer=tokenizer))


def test_empty_inputs(model):
    assert model.encode([]).shape == (0, 24)
    single = model.encode("")
    assert single.shape == (24,) and torch.isfinite(single).all() and single.norm() == 0


def test_long_text_is_truncated_with_one_warning(model, tokenizer):
    limit = model.config.max_position_embeddings
    long_text = "word " * 500
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        embeddings = model.encode([long_text, "short", long_text])
    messages = [str(w.message) for w in caught if "truncated" in str(w.message)]
    assert len(messages) == 1 and messages[0].startswith("2 of 3 texts")
    prefix = tokenizer.decode(tokenizer(long_text)["input_ids"][:limit])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the prefix itself fits: no warning
        torch.testing.assert_close(embeddings[0], model.encode([prefix])[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "texts, position",
    [(["ok", None], 1), ([3, "ok"], 0), (["a", "b", b"bytes"], 2)],
)
def test_non_string_items_raise_type_error_with_position(model, texts, position):
    with pytest.raises(TypeError, match=rf"texts\[{position}\]"):
        model.encode(texts)


def test_mixed_scripts_and_emoji_are_finite(model):
    out = model.encode(["日本語のテキスト", "Привет, мир", "🙂🚀 emoji!", "مرحبا"])
    assert out.shape == (4, 24) and torch.isfinite(out).all()
