import json

import pytest

from modeling_asterisk import AsteriskConfig, AsteriskModel


def test_defaults_reproduce_the_paper():
    config = AsteriskConfig()
    assert (config.vocab_size, config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (
        50259, 256, 2, 2,
    )
    assert (config.intermediate_size, config.max_position_embeddings, config.projection_dim) == (512, 128, 256)
    assert (config.pad_token_id, config.mask_token_id, config.hidden_act) == (50257, 50258, "gelu")
    assert AsteriskModel(config).num_parameters() == 14_019_584


@pytest.mark.parametrize(
    "field, value, allowed",
    [
        ("hidden_size", 0, "positive integer"),
        ("num_hidden_layers", -1, "positive integer"),
        ("num_attention_heads", 3, "divisors of hidden_size"),
        ("hidden_act", "swish2", "one of"),
        ("classifier_activation", "nope", "one of"),
        ("hidden_dropout_prob", 1.5, "[0, 1)"),
        ("layer_norm_eps", 0, "positive number"),
        ("pad_token_id", 50259, "vocab_size"),
        ("classifier_hidden_sizes", [64, 0], "positive integers"),
        ("max_position_embeddings", 12.5, "positive integer"),
        ("eos_token_id", -1, "vocab_size"),
    ],
)
def test_invalid_values_name_the_field_and_allowed_values(field, value, allowed):
    with pytest.raises(ValueError) as error:
        AsteriskConfig(**{field: value})
    assert field in str(error.value) and allowed in str(error.value)


def test_round_trip_and_auto_map(tmp_path):
    config = AsteriskConfig(hidden_size=48, num_attention_heads=3, classifier_hidden_sizes=[], num_labels=4)
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "asterisk"
    assert set(saved["auto_map"]) == {"AutoConfig", "AutoModel", "AutoModelForSequenceClassification"}
    loaded = AsteriskConfig.from_pretrained(tmp_path)
    assert (loaded.hidden_size, loaded.classifier_hidden_sizes, loaded.num_labels) == (48, [], 4)


def test_every_field_is_documented():
    doc = AsteriskConfig.__doc__
    fields = [name for name in AsteriskConfig.__annotations__ if not name.startswith("_")]
    assert fields, "config declares no fields"
    assert [name for name in fields if f"{name} (" not in doc and f"{name}, " not in doc] == []


def test_special_token_ids_match_the_tokenizer(tokenizer):
    """Trainer and sentence-transformers compare them with the tokenizer's and rewrite the config when they differ."""
    config = AsteriskConfig()
    assert (config.pad_token_id, config.bos_token_id, config.eos_token_id) == (
        tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id)
