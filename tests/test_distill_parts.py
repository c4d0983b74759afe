"""The pieces of distillation, one by one: config parsing, corpus cleaning and splitting, batching, losses."""

import gzip

import numpy as np
import pytest
import torch

from train.distill import DistillConfig
from train.distillation.batching import DistillationCollator, LengthGroupedBatchSampler
from train.distillation.config import ConfigError, parse_config
from train.distillation.corpus import load_corpus, split_rows, teacher_inputs, tokenize_corpus
from train.distillation.losses import DistillationLoss
from train.distillation.optimization import build_optimizers, clip_gradients
from train.distillation.student_init import pca_reduce


def test_config_layers_preset_then_command_line(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("learning_rate: 3.0e-3\nmodel: {hidden_size: 64, num_attention_heads: 2}\nmax_steps: 7\n")
    cfg = parse_config(DistillConfig, ["--config", str(preset), "--max_steps", "5", "--model.hidden_size", "32",
                                       "--weight_decay", "1e-2", "--corpus", "[a.txt, b.tsv]",
                                       "--max_sentences", "null"])
    assert cfg.learning_rate == 3e-3 and cfg.max_steps == 5 and cfg.weight_decay == 0.01
    assert cfg.model == {"hidden_size": 32, "num_attention_heads": 2}
    assert cfg.corpus == ["a.txt", "b.tsv"] and cfg.max_sentences is None and cfg.config == str(preset)


def test_config_types_follow_the_annotations(tmp_path):
    cfg = parse_config(DistillConfig, ["--output_dir", "2024", "--teacher_dim", "null", "--batch_size", "16",
                                       "--learning_rate", "2e-3", "--targets_only", "--config", "tiny"])
    assert cfg.output_dir == "2024" and cfg.teacher_dim is None and cfg.batch_size == 16
    assert cfg.learning_rate == 2e-3 and cfg.targets_only is True and cfg.config.endswith("tiny.yaml")
    cfg = parse_config(DistillConfig, ["--extra_teachers", "[{name: a, max_texts: 10, weight: 0.5}]"])
    assert cfg.extra_teachers == [{"name": "a", "max_texts": 10, "weight": 0.5}]
    assert [(spec.name, n, w) for spec, n, w in cfg.teachers()][1] == ("a", 10, 0.5)


@pytest.mark.parametrize("argv, message", [
    (["--lr", "1"], "Unknown config key 'lr'"),
    (["--config", "missing.yaml"], "does not exist"),
    (["--target_space", "umap"], "target_space must be one of"),
    (["oops"], "Expected --key value"),
    (["--batch_size", "abc"], "batch_size takes an integer, got 'abc'"),
    (["--batch_size", "1e1"], "batch_size takes an integer, got '1e1'"),
    (["--batch_size", "32.5"], "batch_size takes an integer, got '32.5'"),
    (["--learning_rate", "abc"], "learning_rate takes a number, got 'abc'"),
    (["--output_dir", ""], "output_dir must name a folder"),
    (["--max_sentences", "0"], "max_sentences must be positive"),
    (["--max_length", "0"], "max_length must be a positive integer"),
    (["--keep_checkpoints", "0"], "keep_checkpoints must be a positive integer"),
    (["--keep_checkpoints", "-1"], "keep_checkpoints must be a positive integer"),
    (["--model.hiden_size", "64"], "AsteriskConfig has no field 'hiden_size'"),
    (["--model.hidden_size", "big"], "model.hidden_size takes an integer"),
    (["--extra_teachers", "[{nam: a}]"], "ExtraTeacher has no field 'nam'"),
    (["--targets_only", "maybe"], "targets_only takes true or false"),
    (["--mixed_precision", "fp8"], "mixed_precision must be one of"),
    (["--attn_implementation", "flash"], "attn_implementation must be one of"),
    (["--sparse_token_updates", "sometimes"], "sparse_token_updates takes true or false"),
])
def test_config_errors_name_the_key(argv, message):
    with pytest.raises((ConfigError, FileNotFoundError), match=message):
        parse_config(DistillConfig, argv)


@pytest.mark.parametrize("content, message", [
    ("- a\n- b\n", "must hold a mapping"),
    ("batch_size: 1e1\n", "batch_size takes an integer"),
    ("output_dir: 2024\n", "output_dir takes a string"),
    ("key: [unclosed\n", "not valid YAML"),
])
def test_preset_errors_name_the_file(tmp_path, content, message):
    preset = tmp_path / "bad.yaml"
    preset.write_text(content)
    with pytest.raises(ConfigError, match=message):
        parse_config(DistillConfig, ["--config", str(preset)])


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


@pytest.mark.parametrize("content, message",
                         [(None, "does not exist"), (b"", "is empty"), (b"\n \n\n", "no usable text")])
def test_corpus_errors(tmp_path, content, message):
    path = tmp_path / "corpus.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises((FileNotFoundError, ValueError), match=message):
        load_corpus([str(path)], cache_dir=str(tmp_path / "cache"))


def test_split_is_one_seeded_permutation():
    heldout, order = split_rows(100, 10, seed=1)
    assert len(heldout) == 10 and len(order) == 90 and not set(heldout) & set(order)
    assert sorted([*heldout, *order]) == list(range(100))
    again_heldout, again_order = split_rows(100, 10, seed=1)
    assert (again_heldout == heldout).all() and (again_order == order).all()
    # A larger held-out set takes more of the same permutation: teacher passes of either run extend each other.
    bigger, rest = split_rows(100, 20, seed=1)
    assert set(heldout) <= set(bigger) and list(order[10:]) == list(rest)
    with pytest.raises(ValueError, match="leaves no training data"):
        split_rows(100, 100, seed=1)


def test_teacher_reads_what_the_student_sees(tmp_path, tokenizer):
    path = tmp_path / "t.txt"
    path.write_text("short text\n" + "a long sentence that goes on " * 5 + "\n")
    tokenized = tokenize_corpus(load_corpus([str(path)], cache_dir=str(tmp_path / "c"))[0], tokenizer, 8)
    texts = teacher_inputs(tokenized, tokenizer, np.array([1, 0]))
    assert texts[1] == "short text"
    assert texts[0] == tokenizer.decode(tokenizer("a long sentence that goes on " * 5)["input_ids"][:8])


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


def test_collator_pads_and_fetches_every_teachers_targets_by_row_id():
    class Targets:
        def __init__(self, dim, has):
            self.dim, self.has = dim, np.array(has)

        def rows(self, ids):
            return np.stack([np.full(self.dim, float(i), dtype=np.float32) for i in ids]), self.has[ids]

    collator = DistillationCollator([Targets(3, [True] * 5), Targets(2, [False, False, True, False, False])], 99)
    batch = collator([{"input_ids": [5, 6, 7], "row_id": 4}, {"input_ids": [8], "row_id": 2}])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 99, 99]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["targets"][0][:, 0].tolist() == [4.0, 2.0] and batch["targets"][1].shape == (2, 2)
    assert batch["target_masks"][0].tolist() == [True, True] and batch["target_masks"][1].tolist() == [False, True]


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


def test_loss_counts_only_rows_with_a_target():
    torch.manual_seed(0)
    teacher = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    student = teacher.clone()
    student[2:] = torch.randn(2, 8)  # wrong rows, but without a target from this teacher
    loss_fn = DistillationLoss(1.0, 1.0)
    mask = torch.tensor([True, True, False, False])
    assert loss_fn(student, teacher, mask)[0].item() == pytest.approx(0.0, abs=1e-6)
    assert loss_fn(student, teacher)[0].item() > 0.1
    none = torch.zeros(4, dtype=torch.bool)
    student = student.requires_grad_(True)
    empty, parts = loss_fn(student, teacher, none)
    empty.backward()  # still part of the graph, so every process runs the same backward pass
    assert empty.item() == 0.0 and parts == {} and student.grad.abs().sum() == 0


def test_pca_reduce_keeps_the_main_directions():
    torch.manual_seed(0)
    basis = torch.linalg.qr(torch.randn(32, 32))[0][:, :4]
    data = torch.randn(500, 4) * torch.tensor([5.0, 4.0, 3.0, 2.0]) @ basis.T + 0.01 * torch.randn(500, 32)
    reduced = pca_reduce(data, 4)
    assert reduced.shape == (500, 4)
    explained = reduced.var(0).sum() / (data - data.mean(0)).var(0).sum()
    assert explained > 0.99


def _embedding_model(sparse: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(50, 8, sparse=sparse), torch.nn.Linear(8, 3))
    return model


def test_clip_gradients_of_a_sparse_table_equal_the_dense_clip():
    ids = torch.tensor([[1, 2, 2, 7], [7, 7, 3, 1]])  # repeated rows: the sparse gradient lists them twice
    models = {sparse: _embedding_model(sparse) for sparse in (False, True)}
    for model in models.values():
        (model(ids).sum() * 10).backward()
    dense_norm = torch.nn.utils.clip_grad_norm_(models[False].parameters(), 0.5)
    sparse_norm = clip_gradients(models[True].parameters(), 0.5)
    assert dense_norm > 0.5  # so the clip does something
    torch.testing.assert_close(sparse_norm, dense_norm)
    for dense, sparse in zip(models[False].parameters(), models[True].parameters()):
        grad = sparse.grad.to_dense() if sparse.grad.is_sparse else sparse.grad
        torch.testing.assert_close(grad, dense.grad)


def test_sparse_token_updates_move_only_the_rows_a_batch_uses():
    model = _embedding_model(sparse=False)
    table = model[0]
    optimizers = build_optimizers(model, table, learning_rate=0.1, weight_decay=0.1, sparse_token_updates=True)
    assert table.sparse and [type(o).__name__ for o in optimizers] == ["AdamW", "SparseAdam"]
    assert all(p is not table.weight for group in optimizers[0].param_groups for p in group["params"])
    before = table.weight.detach().clone()
    used = torch.tensor([[4, 5, 5]])
    for _ in range(3):
        model(used).sum().backward()
        clip_gradients(model.parameters(), 1.0)
        for optimizer in optimizers:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    moved = (table.weight.detach() != before).any(dim=1)
    assert moved[4] and moved[5] and int(moved.sum()) == 2  # no weight decay, no momentum on unused rows
    # The dense default: one AdamW, whose weight decay moves every row.
    dense = _embedding_model(sparse=False)
    optimizers = build_optimizers(dense, dense[0], learning_rate=0.1, weight_decay=0.1, sparse_token_updates=False)
    assert not dense[0].sparse and len(optimizers) == 1
    before = dense[0].weight.detach().clone()
    dense(used).sum().backward()
    optimizers[0].step()
    assert bool((dense[0].weight.detach() != before).all(dim=1).all())
