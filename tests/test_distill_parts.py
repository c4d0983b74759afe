"""The pieces of distillation, one by one: config parsing, corpus cleaning, batching, losses, targets cache."""

import gzip

import numpy as np
import pytest
import torch

from train.batching import DistillationCollator, LengthGroupedBatchSampler
from train.cli_config import parse_config
from train.corpus import load_corpus, split_heldout, tokenize_corpus
from train.distill import DistillConfig
from train.losses import DistillationLoss
from train.student_init import pca_reduce
from train.teacher import DEFAULT_TEACHER, SentenceEncoder


def test_config_layers_preset_then_command_line(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("learning_rate: 3.0e-3\nmodel: {hidden_size: 64, num_attention_heads: 2}\nmax_steps: 7\n")
    cfg = parse_config(DistillConfig, ["--config", str(preset), "--max_steps", "5", "--model.hidden_size", "32",
                                       "--weight_decay", "1e-2", "--corpus", "[a.txt, b.tsv]", "--max_sentences", "null"])
    assert cfg.learning_rate == 3e-3 and cfg.max_steps == 5 and cfg.weight_decay == 0.01
    assert cfg.model == {"hidden_size": 32, "num_attention_heads": 2}
    assert cfg.corpus == ["a.txt", "b.tsv"] and cfg.max_sentences is None and cfg.config == str(preset)


@pytest.mark.parametrize("argv, message", [
    (["--lr", "1"], "Unknown config key 'lr'"),
    (["--config", "missing.yaml"], "does not exist"),
    (["--target_space", "umap"], "target_space must be one of"),
    (["oops"], "Expected --key value"),
])
def test_config_errors(argv, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        parse_config(DistillConfig, argv)


def test_corpus_counts_and_skips_blank_and_undecodable_lines(tmp_path, tokenizer):
    path = tmp_path / "texts.txt.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(b"first text\n\n   \nbad \xff\xfe bytes\nsecond text\n" + b"word " * 200 + b"\n")
    corpus, stats = load_corpus([str(path)], cache_dir=str(tmp_path / "cache"))
    assert (stats.read, stats.kept, stats.skipped_blank, stats.skipped_non_utf8) == (6, 3, 2, 1)
    assert corpus["text"][:2] == ["first text", "second text"] and corpus["row_id"][:] == [0, 1, 2]
    tokenized = tokenize_corpus(corpus, tokenizer, max_length=16)
    assert tokenized["truncated"][:] == [False, False, True] and tokenized["length"][2] == 16


def test_corpus_mixes_formats_and_reads_tsv_without_quote_handling(tmp_path):
    (tmp_path / "a.tsv").write_text('source\ttext\nx\t"starts with a quote\ny\t2017\n')
    (tmp_path / "b.jsonl").write_text('{"text": "from json"}\n{"text": ""}\n')
    corpus, stats = load_corpus([str(tmp_path / "a.tsv"), str(tmp_path / "b.jsonl")], cache_dir=str(tmp_path / "c"))
    assert corpus["text"][:] == ['"starts with a quote', "2017", "from json"] and stats.skipped_blank == 1


@pytest.mark.parametrize("content, message", [(None, "does not exist"), (b"", "is empty"), (b"\n \n\n", "no usable text")])
def test_corpus_errors(tmp_path, content, message):
    path = tmp_path / "corpus.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises((FileNotFoundError, ValueError), match=message):
        load_corpus([str(path)], cache_dir=str(tmp_path / "cache"))


def test_heldout_split_is_disjoint_and_seeded(tmp_path, tokenizer):
    path = tmp_path / "t.txt"
    path.write_text("\n".join(f"sentence number {i}" for i in range(100)))
    tokenized = tokenize_corpus(load_corpus([str(path)], cache_dir=str(tmp_path / "c"))[0], tokenizer, 8)
    train, heldout = split_heldout(tokenized, 10, seed=1)
    assert len(heldout) == 10 and not set(train["row_id"]) & set(heldout["row_id"])
    assert split_heldout(tokenized, 10, seed=1)[1]["row_id"][:] == heldout["row_id"][:]
    with pytest.raises(ValueError, match="leaves no training data"):
        split_heldout(tokenized, 100, seed=1)


def test_length_grouped_batches_cover_each_index_once_per_epoch():
    lengths = np.random.default_rng(0).integers(1, 60, size=1000)
    sampler = LengthGroupedBatchSampler(lengths, batch_size=32, seed=3, group_batches=4)
    epoch0 = list(sampler)
    assert len(epoch0) == len(sampler) == 31 and all(len(b) == 32 for b in epoch0)
    flat = [i for b in epoch0 for i in b]
    assert len(set(flat)) == len(flat) == 992
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in epoch0])
    assert spread < 20  # grouped: far less than the 59 of random batches
    assert list(sampler) == epoch0  # deterministic
    sampler.set_epoch(1)
    assert list(sampler) != epoch0


def test_collator_pads_and_fetches_targets_by_row_id():
    class Store:
        def rows(self, ids):
            return np.stack([np.full(3, float(i), dtype=np.float32) for i in ids])

    batch = DistillationCollator(Store(), pad_token_id=99)([{"input_ids": [5, 6, 7], "row_id": 4},
                                                            {"input_ids": [8], "row_id": 2}])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 99, 99]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["targets"][:, 0].tolist() == [4.0, 2.0]


def test_losses():
    torch.manual_seed(0)
    teacher = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    for kind in ("kl", "mse"):
        loss_fn = DistillationLoss(1.0, 1.0, 0.5, relational_kind=kind)
        loss, parts = loss_fn(teacher.clone(), teacher)
        assert loss.item() == pytest.approx(0.0, abs=1e-5) and set(parts) == {"cosine", "mse", "relational"}
        student = torch.randn(8, 16, requires_grad=True)
        loss, parts = loss_fn(student, teacher)
        loss.backward()
        assert loss.item() > 0 and parts["relational"] > 0 and student.grad.abs().sum() > 0
    # Scaling the student keeps cosine and relational terms, not the squared error.
    scaled = DistillationLoss(1.0, 0.0, 1.0)(teacher * 3, teacher)[0]
    assert scaled.item() == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ValueError, match="relational_kind"):
        DistillationLoss(relational_kind="cosine")


def test_teacher_errors():
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SentenceEncoder("/no/such/teacher")
    with pytest.raises(ValueError, match="hidden size 384, expected 512"):
        SentenceEncoder(DEFAULT_TEACHER, expected_dim=512)


def test_pca_reduce_keeps_the_main_directions():
    torch.manual_seed(0)
    basis = torch.linalg.qr(torch.randn(32, 32))[0][:, :4]
    data = torch.randn(500, 4) * torch.tensor([5.0, 4.0, 3.0, 2.0]) @ basis.T + 0.01 * torch.randn(500, 32)
    reduced = pca_reduce(data, 4)
    assert reduced.shape == (500, 4)
    explained = reduced.var(0).sum() / (data - data.mean(0)).var(0).sum()
    assert explained > 0.99
