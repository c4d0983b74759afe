"""The teacher (a SentenceTransformer, whatever its modules and prompts) and the teacher-target store."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from train.distillation.targets import TargetStore, teacher_targets, text_keys
from train.distillation.teacher import DEFAULT_TEACHER, Teacher, TeacherSpec, fast_dtype

from .conftest import build_tiny_teacher

TEXTS = ["a first text", "a second, longer text about cards", "third", "fourth one here", "x"]


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory):
    return build_tiny_teacher(tmp_path_factory.mktemp("teacher"), prompts={"classification": "classify: ",
                              "query": "query: "}, default_prompt="classification")


def test_the_teacher_is_what_sentence_transformers_makes_of_its_folder(tiny_teacher):
    from sentence_transformers import SentenceTransformer

    teacher = Teacher(TeacherSpec(str(tiny_teacher), dtype="float32"))
    assert teacher.dim == 12 and teacher.prompt == "classify: " and teacher.normalizes
    assert [type(m).__name__ for m in teacher.model] == ["Transformer", "Pooling", "Dense", "Normalize"]
    own = SentenceTransformer(str(tiny_teacher), device="cpu").encode(TEXTS, prompt_name="classification")
    np.testing.assert_allclose(teacher.encode(TEXTS), own, atol=1e-6)
    assert Teacher(TeacherSpec(str(tiny_teacher), prompt_name="query", dtype="float32")).prompt == "query: "
    assert Teacher(TeacherSpec(str(tiny_teacher), prompt="", dtype="float32")).prompt == ""


@pytest.mark.parametrize("pooling", ["cls", "max"])
def test_pooling_saved_in_sentence_transformers_6s_format_is_honoured(tmp_path, pooling):
    folder = build_tiny_teacher(tmp_path, pooling=pooling, dense_dim=None)
    assert json.loads((folder / "1_Pooling" / "config.json").read_text())["pooling_mode"] == pooling
    mean_folder = build_tiny_teacher(tmp_path / "mean", pooling="mean", dense_dim=None)  # same seed, same weights
    pooled = Teacher(TeacherSpec(str(folder), dtype="float32")).encode(TEXTS)
    mean = Teacher(TeacherSpec(str(mean_folder), dtype="float32")).encode(TEXTS)
    assert not np.allclose(pooled, mean, atol=1e-3)  # not read as mean pooling


@pytest.mark.parametrize("damage, error, message", [
    ("no tokenizer", ValueError, "has no tokenizer files"),
    ("not a model", ValueError, "is not a model: it has neither modules.json nor config.json"),
])
def test_a_teacher_folder_that_cannot_work_is_named(tiny_teacher, tmp_path, damage, error, message):
    folder = shutil.copytree(tiny_teacher, tmp_path / "teacher")
    if damage == "no tokenizer":
        for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
            (folder / name).unlink(missing_ok=True)
    else:
        for name in ("modules.json", "config.json"):
            (folder / name).unlink()
    with pytest.raises(error, match=message):
        Teacher(TeacherSpec(str(folder)))


def test_teacher_settings_errors():
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Teacher(TeacherSpec("/no/such/teacher"))
    with pytest.raises(FileNotFoundError, match="neither a folder nor a Hub model in the local Hugging Face cache"):
        Teacher(TeacherSpec("nobody/no-such-model"))
    with pytest.raises(ValueError, match="gives 384-d embeddings, but teacher_dim is 512"):
        Teacher(TeacherSpec(DEFAULT_TEACHER, dim=512))
    with pytest.raises(ValueError, match="has no prompt named 'classification'"):
        Teacher(TeacherSpec(DEFAULT_TEACHER, prompt_name="classification"))
    with pytest.raises(ValueError, match="a prompt or a prompt_name, not both"):
        TeacherSpec(DEFAULT_TEACHER, prompt="x", prompt_name="y")


def _cpu_flags() -> set[str]:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        pytest.skip("no /proc/cpuinfo to read the CPU's flags from")
    line = next((line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")), "flags:")
    return set(line.split(":", 1)[1].split())


def test_auto_dtype_is_bf16_only_where_the_cpu_multiplies_bf16_and_the_store_names_the_resolved_dtype(
        tiny_teacher, tmp_path):
    """Emulated bf16 ran the nomic teacher 5.5x slower than fp32 on an AVX2 CPU: "auto" picks by the CPU's flags."""
    native = bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})
    assert fast_dtype("cpu") == ("bfloat16" if native else "float32")
    teacher = Teacher(TeacherSpec(str(tiny_teacher), dtype="auto"))
    assert teacher.spec.dtype == fast_dtype("cpu") == teacher.identity()["dtype"] == teacher.describe()["dtype"]
    assert next(teacher.model.parameters()).dtype == getattr(torch, fast_dtype("cpu"))
    explicit = Teacher(TeacherSpec(str(tiny_teacher), dtype=fast_dtype("cpu")))
    # "auto" and the dtype it resolves to compute the same targets, so they share one store.
    assert TargetStore.for_teacher(tmp_path, teacher).folder == TargetStore.for_teacher(tmp_path, explicit).folder
    with pytest.raises(ValueError, match="teacher dtype must be one of .*'auto'.*got 'bf16'"):
        TeacherSpec(str(tiny_teacher), dtype="bf16")


def test_store_is_keyed_by_what_the_teacher_computes(tiny_teacher, tmp_path):
    def store_for(**kwargs):
        return TargetStore.for_teacher(tmp_path, Teacher(TeacherSpec(str(tiny_teacher), dtype="float32", **kwargs)))

    first = store_for()
    assert store_for().folder == first.folder
    assert store_for(prompt_name="query").folder != first.folder  # another prompt, other vectors
    assert store_for(max_length=16).folder != first.folder
    edited = shutil.copytree(tiny_teacher, tmp_path / "edited")
    config = json.loads((edited / "1_Pooling" / "config.json").read_text())
    (edited / "1_Pooling" / "config.json").write_text(json.dumps({**config, "pooling_mode": "max"}))
    edited_store = TargetStore.for_teacher(tmp_path, Teacher(TeacherSpec(str(edited), dtype="float32")))
    assert edited_store.folder != first.folder  # an edited pooling config never reuses stale targets


def test_targets_are_computed_once_reused_by_text_and_shared_between_teacher_runs(tiny_teacher, tmp_path):
    spec = TeacherSpec(str(tiny_teacher), dtype="float32")
    texts = [f"text number {i}" for i in range(50)]
    rows = np.array([3, 1, 4, 15, 9, 26, 5, 35])
    first = teacher_targets(spec, rows, 50, lambda r: [texts[i] for i in r], tmp_path, chunk_rows=3, progress=False)
    assert first.computed == 8 and first.has.sum() == 8 and first.has[rows].all()
    assert len(first.store.shard_ids()) == 3  # chunks of 3: a kill loses one at most
    expected = Teacher(spec).encode([texts[i] for i in rows])
    vectors, mask = first.rows(rows)
    np.testing.assert_allclose(vectors, expected, atol=2e-3)  # stored as float16
    assert mask.all() and not first.rows(np.array([0]))[1].any()
    # Another corpus holding some of the same texts at other rows: only the new texts are encoded.
    shuffled = texts[::-1]
    second = teacher_targets(spec, np.arange(50), 50, lambda r: [shuffled[i] for i in r], tmp_path, chunk_rows=16,
                             progress=False)
    assert second.computed == 42
    np.testing.assert_allclose(second.rows(np.array([49 - 3]))[0], first.rows(np.array([3]))[0])


def test_a_damaged_store_is_named_never_used(tiny_teacher, tmp_path):
    spec = TeacherSpec(str(tiny_teacher), dtype="float32")
    texts = [f"text number {i}" for i in range(10)]
    targets = teacher_targets(spec, np.arange(10), 10, lambda r: [texts[i] for i in r], tmp_path, chunk_rows=10,
                              progress=False)
    (shard,) = targets.store.shard_ids()
    vectors = targets.store.folder / f"{shard}.vectors.npy"
    original = vectors.read_bytes()

    vectors.write_bytes(original[: len(original) // 2])  # truncated
    with pytest.raises(ValueError, match=rf"{shard}\.vectors\.npy is corrupt"):
        teacher_targets(spec, np.arange(10), 10, lambda r: [texts[i] for i in r], tmp_path, progress=False)
    vectors.write_bytes(original)

    meta_path = targets.store.folder / f"{shard}.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "identity": "0123456789abcdef"}))  # a shard of another teacher
    with pytest.raises(ValueError, match="was written by another teacher"):
        teacher_targets(spec, np.arange(10), 10, lambda r: [texts[i] for i in r], tmp_path, progress=False)


def test_the_store_refuses_non_finite_vectors(tmp_path):
    store = TargetStore(tmp_path / "store", {"dim": 4})
    with pytest.raises(FloatingPointError, match="non-finite vectors for 1 texts"):
        store.add(text_keys(["a", "b"]), np.array([[0.0, 1, 0, 0], [np.nan, 0, 0, 0]], dtype=np.float32))
    assert store.shard_ids() == []
