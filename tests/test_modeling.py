import math

import pytest
import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

from modeling_asterisk import AsteriskConfig, AsteriskModel, masked_mean

SENTENCES = ["The cat sat on the mat.", "Hi", "A considerably longer sentence, with several more tokens in it."]


@pytest.fixture
def model(tiny_config):
    torch.manual_seed(0)
    return AsteriskModel(tiny_config).eval()


def test_output_type_and_shapes(model, tokenizer):
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    output = model(**batch, output_hidden_states=True)
    assert isinstance(output, BaseModelOutputWithPooling)
    assert list(output.keys())[0] == "last_hidden_state"
    # Token features live in the embedding space (projection_dim), the layers' states in hidden_size.
    assert output.last_hidden_state.shape == (3, batch["input_ids"].shape[1], 24)
    assert output.pooler_output.shape == (3, 24)
    assert len(output.hidden_states) == model.config.num_hidden_layers + 1
    assert output.hidden_states[-1].shape[-1] == 32
    assert isinstance(model(**batch, return_dict=False), tuple)


def test_pooler_output_is_the_mean_token_feature_and_the_projected_mean_state(model, tokenizer):
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    output = model(**batch, output_hidden_states=True)
    mask = batch["attention_mask"]
    by_hand = torch.stack([output.last_hidden_state[i, mask[i].bool()].mean(0) for i in range(len(SENTENCES))])
    torch.testing.assert_close(output.pooler_output, by_hand, atol=1e-5, rtol=1e-5)
    # The same vector as projecting the mean final state: plain mean pooling needs no custom module.
    final_states = model.final_norm(output.hidden_states[-1])
    projected_mean = model.pooler.projection(masked_mean(final_states, mask))
    torch.testing.assert_close(output.pooler_output, projected_mean, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
def test_attention_outputs_follow_the_transformers_conventions(tiny_model_dir, tokenizer, implementation):
    model = AsteriskModel.from_pretrained(tiny_model_dir, attn_implementation=implementation).eval()
    assert model.config._attn_implementation == implementation
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        output = model(**batch, output_attentions=True)
        plain = model(**batch)
    assert len(output.attentions) == model.config.num_hidden_layers
    probabilities = output.attentions[0]
    assert probabilities.shape == (3, 4, batch["input_ids"].shape[1], batch["input_ids"].shape[1])
    torch.testing.assert_close(probabilities.sum(-1), torch.ones(probabilities.shape[:-1]))
    padded = ~batch["attention_mask"].bool()
    assert probabilities.permute(0, 1, 3, 2)[padded[:, None, :].expand(-1, 4, -1)].abs().max() == 0  # no key is padding
    torch.testing.assert_close(output.pooler_output, plain.pooler_output, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("side", ["right", "left"])
def test_embedding_is_the_same_alone_or_padded(model, tokenizer, side):
    tokenizer.padding_side = side
    try:
        batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    finally:
        tokenizer.padding_side = "right"
    batched = model(**batch).pooler_output
    for i, sentence in enumerate(SENTENCES):
        alone = model(**tokenizer([sentence], return_tensors="pt")).pooler_output[0]
        torch.testing.assert_close(batched[i], alone, atol=1e-5, rtol=0)


def test_attention_is_bidirectional(model, tokenizer):
    """Changing the last token changes the first token's output (a causal model would not)."""
    a = tokenizer(["the cat sat down"], return_tensors="pt")["input_ids"]
    b = a.clone()
    b[0, -1] = tokenizer.convert_tokens_to_ids("Ġup")
    first_a = model(input_ids=a).last_hidden_state[0, 0]
    first_b = model(input_ids=b).last_hidden_state[0, 0]
    assert not torch.allclose(first_a, first_b, atol=1e-4)


def test_padding_inferred_from_pad_token_when_no_mask(model, tokenizer):
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    torch.testing.assert_close(model(input_ids=batch["input_ids"]).pooler_output, model(**batch).pooler_output)


def test_attention_runs_through_sdpa(model, tokenizer, monkeypatch):
    calls = []
    original = torch.nn.functional.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counting)
    model(**tokenizer(SENTENCES, padding=True, return_tensors="pt"))
    assert len(calls) == model.config.num_hidden_layers


def test_initialisation_follows_the_paper():
    torch.manual_seed(0)
    config = AsteriskConfig(hidden_size=64, num_attention_heads=2, intermediate_size=96, initializer_range=0.05)
    model = AsteriskModel(config)
    token_std = model.embeddings.token_embeddings.weight.std().item()
    assert abs(token_std - 0.05) < 0.002
    assert abs(model.embeddings.position_embeddings.weight.std().item() - 0.05) < 0.01
    qkv = model.layers[0].attn.qkv.weight  # Xavier-uniform: U(-b, b), b = sqrt(6 / (fan_in + fan_out))
    bound = math.sqrt(6 / (64 + 3 * 64))
    assert qkv.abs().max().item() <= bound and qkv.abs().max().item() > 0.95 * bound
    fc_in = model.layers[1].mlp.fc_in.weight
    assert fc_in.abs().max().item() <= math.sqrt(6 / (64 + 96))
    assert torch.count_nonzero(model.layers[0].attn.qkv.bias) == 0


def test_token_ids_outside_vocabulary_raise_clearly(model):
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model(input_ids=torch.tensor([[1, 2, model.config.vocab_size]]))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model(input_ids=torch.tensor([[-1, 2]]))


def test_too_long_input_raises_clearly(model):
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model(input_ids=torch.ones(1, model.config.max_position_embeddings + 1, dtype=torch.long))


def test_all_padding_row_is_finite(model):
    ids = torch.full((2, 4), model.config.pad_token_id)
    ids[0, :2] = torch.tensor([10, 11])
    out = model(input_ids=ids, attention_mask=(ids != model.config.pad_token_id).long())
    assert torch.isfinite(out.pooler_output).all() and torch.isfinite(out.last_hidden_state).all()


def test_gradients_reach_every_parameter(model, tokenizer):
    model.train()
    model(**tokenizer(SENTENCES, padding=True, return_tensors="pt")).pooler_output.pow(2).sum().backward()
    used_rows = {"embeddings.token_embeddings.weight", "embeddings.position_embeddings.weight"}
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or (n not in used_rows and not p.grad.any())]
    assert no_grad == []
