import logging

import numpy as np
import pandas as pd
import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments
from transformers.modeling_outputs import SequenceClassifierOutput

from modeling_asterisk import AsteriskConfig, AsteriskForSequenceClassification, AsteriskModel

from .conftest import TINY


def _batch(tokenizer, n=4):
    return tokenizer(["a b c", "d e", "f", "g h i j"][:n], padding=True, return_tensors="pt")


@pytest.mark.parametrize(
    "num_labels, labels, problem_type, loss_fn",
    [
        (3, torch.tensor([0, 2, 1, 1]), "single_label_classification", torch.nn.functional.cross_entropy),
        (1, torch.tensor([0.5, -1.0, 2.0, 0.0]), "regression", None),
        (3, torch.tensor([[1.0, 0, 1], [0, 0, 0], [0, 1, 0], [1, 1, 1]]), "multi_label_classification",
         torch.nn.functional.binary_cross_entropy_with_logits),
    ],
)
def test_problem_type_is_inferred_and_loss_matches(tokenizer, num_labels, labels, problem_type, loss_fn):
    torch.manual_seed(0)
    model = AsteriskForSequenceClassification(AsteriskConfig(**TINY, num_labels=num_labels))
    output = model(**_batch(tokenizer), labels=labels)
    assert isinstance(output, SequenceClassifierOutput)
    assert model.config.problem_type == problem_type
    assert output.logits.shape == (4, num_labels)
    if problem_type == "regression":
        expected = torch.nn.functional.mse_loss(output.logits.squeeze(-1), labels)
    else:
        expected = loss_fn(output.logits, labels)
    torch.testing.assert_close(output.loss, expected)


def test_head_shape_follows_config():
    config = AsteriskConfig(**TINY, num_labels=5, classifier_hidden_sizes=[16, 8], classifier_activation="gelu")
    head = AsteriskForSequenceClassification(config).classifier.net
    widths = [(m.in_features, m.out_features) for m in head if isinstance(m, torch.nn.Linear)]
    assert widths == [(24, 16), (16, 8), (8, 5)]
    linear_only = AsteriskForSequenceClassification(AsteriskConfig(**TINY, num_labels=2, classifier_hidden_sizes=[]))
    assert [(m.in_features, m.out_features) for m in linear_only.classifier.net if isinstance(m, torch.nn.Linear)] == [
        (24, 2)
    ]


def test_head_reads_the_sentence_embedding(tokenizer):
    torch.manual_seed(0)
    model = AsteriskForSequenceClassification(AsteriskConfig(**TINY, num_labels=3)).eval()
    batch = _batch(tokenizer)
    expected = model.classifier(model.asterisk(**batch).pooler_output)
    torch.testing.assert_close(model(**batch).logits, expected)


def test_frozen_encoder_trains_only_the_head(tokenizer):
    torch.manual_seed(0)
    model = AsteriskForSequenceClassification(AsteriskConfig(**TINY, num_labels=2))
    model.asterisk.requires_grad_(False)  # how the FC evaluation freezes it; the config does not carry it
    assert "freeze_encoder" not in model.config.to_dict()
    encoder_before = {k: v.clone() for k, v in model.asterisk.state_dict().items()}
    head_before = {k: v.clone() for k, v in model.classifier.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model(**_batch(tokenizer), labels=torch.tensor([0, 1, 0, 1])).loss.backward()
    optimizer.step()
    assert all(p.grad is None for p in model.asterisk.parameters())
    assert all(torch.equal(v, model.asterisk.state_dict()[k]) for k, v in encoder_before.items())
    assert any(not torch.equal(v, model.classifier.state_dict()[k]) for k, v in head_before.items())


def test_classifier_loads_encoder_weights_from_an_embedding_folder(tiny_model_dir, tokenizer):
    encoder = AsteriskModel.from_pretrained(tiny_model_dir)
    classifier = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=3)
    assert isinstance(classifier, AsteriskForSequenceClassification)
    batch = _batch(tokenizer)
    torch.testing.assert_close(classifier.asterisk(**batch).pooler_output, encoder(**batch).pooler_output)


def test_trainer_fine_tunes_on_real_trec(tmp_path, tokenizer, data_dir, caplog):
    """600 real TREC questions (6 classes): the training loss falls and held-out accuracy beats chance."""
    frame = pd.read_csv(data_dir / "trec" / "train.csv").sample(n=800, random_state=0)
    train, held_out = frame.iloc[:600], frame.iloc[600:]

    def encode(rows):
        return Dataset.from_dict({"text": rows.text.tolist(), "label": rows.label.tolist()}).map(
            lambda b: tokenizer(b["text"], truncation=True, max_length=40), batched=True, remove_columns=["text"]
        )

    torch.manual_seed(0)
    config = AsteriskConfig(
        hidden_size=64, num_attention_heads=2, intermediate_size=128, projection_dim=64,
        max_position_embeddings=40, num_labels=6, classifier_dropout=0.0,
    )
    model = AsteriskForSequenceClassification(config)
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=16, num_train_epochs=6, learning_rate=3e-3,
        logging_steps=5, save_strategy="no", report_to=[], use_cpu=True, seed=0, disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=encode(train), processing_class=tokenizer)
    with caplog.at_level(logging.WARNING):
        trainer.train()
    # The config's pad/bos/eos ids are the tokenizer's: Trainer has nothing to rewrite, and says nothing.
    assert "PAD/BOS/EOS" not in caplog.text
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:3])
    predictions = trainer.predict(encode(held_out))
    accuracy = (predictions.predictions.argmax(-1) == predictions.label_ids).mean()
    majority = held_out.label.value_counts(normalize=True).max()  # 0.27: what always guessing one class gets
    assert accuracy > majority + 0.15, f"held-out accuracy {accuracy:.3f} vs majority class {majority:.3f}"
