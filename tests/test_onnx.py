"""ONNX export: graph interface, parity with PyTorch (fp32 and int8), bad inputs, int8 accuracy, loaders."""

import csv
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from asterisk_embeddings.onnx_encoder import (
    FP32_FILE_NAME,
    INT8_AVX2_FILE_NAME,
    INT8_FILE_NAME,
    OUTPUT_NAME,
    AsteriskOnnxEncoder,
    int8_file_for,
    int8_file_name,
)
from asterisk_embeddings.onnx_export import export_onnx
from asterisk_embeddings.saving import save_model_folder
from asterisk_embeddings.text_batching import pad_right
from benchmarks.truncation import int8_accuracy, load_task
from modeling_asterisk import AsteriskConfig, AsteriskModel

from .conftest import TINY

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ODD_TEXTS = ["", "日本語のテキスト", "Привет, мир", "🙂🚀 emoji! 👩‍👩‍👧", "مرحبا بالعالم", "mixed 中文 and English ✓",
             " "]


@pytest.fixture(scope="module")
def tiny_dir(tiny_model_dir, tmp_path_factory):
    """A copy of the tiny model folder (hidden 32, 4 heads, 24-d embeddings, 40 tokens) with its ONNX files."""
    folder = tmp_path_factory.mktemp("onnx") / "tiny"
    shutil.copytree(tiny_model_dir, folder)
    export_onnx(folder)
    return folder


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return AsteriskModel.from_pretrained(tiny_dir).eval()


@pytest.fixture(scope="module")
def paper_dir(tokenizer, tmp_path_factory):
    """A paper-size (14M parameters, 256-d), randomly initialised model with its ONNX files."""
    torch.manual_seed(0)
    folder = save_model_folder(AsteriskModel(AsteriskConfig()), tokenizer, tmp_path_factory.mktemp("onnx") / "paper")
    export_onnx(folder)
    return folder


@pytest.fixture(scope="module")
def real_sentences(data_dir):
    texts = []
    for task, count in (("sst2", 300), ("emotion", 200), ("trec", 100)):
        with open(data_dir / task / "test.csv", encoding="utf-8", newline="") as handle:
            texts += [row["text"] for _, row in zip(range(count), csv.DictReader(handle))]
    return texts


def encoder(folder, file_name=FP32_FILE_NAME):
    return AsteriskOnnxEncoder(folder, file_name, num_threads=1)


def test_export_writes_self_contained_graphs_with_dynamic_axes(tiny_dir):
    assert sorted(p.name for p in (tiny_dir / "onnx").iterdir()) == [
        "model.onnx", "model_qint8.onnx", "model_quint8_avx2.onnx"]
    for file_name in (FP32_FILE_NAME, INT8_FILE_NAME, INT8_AVX2_FILE_NAME):
        graph = onnx.load(str(tiny_dir / file_name))  # no external data: the weights are inside
        onnx.checker.check_model(graph)
        session = ort.InferenceSession(str(tiny_dir / file_name), providers=["CPUExecutionProvider"])
        inputs = {i.name: i for i in session.get_inputs()}
        assert list(inputs) == ["input_ids", "attention_mask"]
        for node in inputs.values():
            assert node.type == "tensor(int64)" and all(isinstance(d, str) for d in node.shape)
        (output,) = session.get_outputs()
        assert output.name == OUTPUT_NAME and isinstance(output.shape[0], str)
        assert output.shape[1] == TINY["projection_dim"]


@pytest.mark.parametrize("batch, length", [(1, 1), (3, 7), (5, 40), (64, 13)])
def test_graph_matches_pooler_output_for_any_batch_and_length(tiny, tiny_dir, batch, length):
    generator = torch.Generator().manual_seed(batch * 100 + length)
    input_ids = torch.randint(0, tiny.config.vocab_size, (batch, length), generator=generator)
    attention_mask = torch.ones(batch, length, dtype=torch.long)
    if batch > 1:
        attention_mask[1, length // 2 :] = 0  # a padded row
    if batch > 2:
        attention_mask[2] = 0  # a row with no tokens at all (an empty text)
    with torch.no_grad():
        expected = tiny(input_ids=input_ids, attention_mask=attention_mask).pooler_output.numpy()
    session = encoder(tiny_dir).session
    (actual,) = session.run([OUTPUT_NAME], {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()})
    np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=1e-5)


# The unsigned-weight graph is accurate on every CPU; the signed one only where int8 products cannot saturate (on an
# AVX2-only CPU it fell to cosine 0.84 here), so it is checked through `int8_file_name`, which gives it to such CPUs.
@pytest.mark.parametrize("file_name, min_cosine", [(FP32_FILE_NAME, 0.9999), (INT8_AVX2_FILE_NAME, 0.99),
                                                   (int8_file_name(), 0.99)])
def test_paper_size_graphs_match_pytorch_on_real_sentences(paper_dir, real_sentences, file_name, min_cosine):
    model = AsteriskModel.from_pretrained(paper_dir)
    expected = model.encode(real_sentences).numpy()
    actual = encoder(paper_dir, file_name).encode(real_sentences)
    cosine = (actual * expected).sum(axis=1)
    assert actual.shape == expected.shape == (len(real_sentences), 256)
    assert cosine.min() >= min_cosine, f"{file_name}: lowest cosine {cosine.min():.6f} < {min_cosine}"


@pytest.mark.parametrize("machine, flags, expected", [
    ("x86_64", {"avx2", "fma", "avx512_vnni"}, INT8_FILE_NAME),   # Zen 4, Ice Lake and later Xeons
    ("x86_64", {"avx2", "avx_vnni"}, INT8_FILE_NAME),             # Alder Lake and later clients
    ("x86_64", {"avx2", "amx_int8", "amx_tile"}, INT8_FILE_NAME),  # Sapphire Rapids
    ("x86_64", {"avx2", "fma"}, INT8_AVX2_FILE_NAME),             # Zen 3, Haswell-Skylake: saturating products
    ("x86_64", {"avx512f", "avx512bw"}, INT8_AVX2_FILE_NAME),     # AVX-512 without VNNI saturates too
    ("x86_64", None, INT8_AVX2_FILE_NAME),                        # flags unknown: the graph accurate everywhere
    ("aarch64", None, INT8_FILE_NAME), ("arm64", set(), INT8_FILE_NAME),
])
def test_the_int8_graph_is_chosen_by_the_cpus_int8_instructions(machine, flags, expected):
    assert int8_file_for(machine, flags) == expected


def test_an_older_export_without_the_unsigned_graph_falls_back_with_a_warning(tiny_dir, tmp_path, monkeypatch):
    import asterisk_embeddings.onnx_encoder as onnx_encoder

    monkeypatch.setattr(onnx_encoder, "cpu_flags", lambda: {"avx2"})  # this machine's flags, whatever they are
    monkeypatch.setattr(onnx_encoder.platform, "machine", lambda: "x86_64")
    assert onnx_encoder.int8_file_name(tiny_dir) == INT8_AVX2_FILE_NAME
    older = shutil.copytree(tiny_dir, tmp_path / "older")
    (older / INT8_AVX2_FILE_NAME).unlink()
    with pytest.warns(UserWarning, match="model_quint8_avx2.onnx does not exist .* re-export with export_onnx"):
        assert onnx_encoder.int8_file_name(older) == INT8_FILE_NAME


def test_tokenisation_and_truncation_match_the_pytorch_path(tiny_dir, tokenizer, real_sentences):
    texts = real_sentences[:200] + ODD_TEXTS + ["word " * 10_000]
    limit = 40
    expected = tokenizer(texts, add_special_tokens=False, truncation=True, max_length=limit + 1)["input_ids"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert encoder(tiny_dir).tokenize(texts) == [row[:limit] for row in expected]


def test_bad_inputs_behave_as_in_pytorch(tiny, tiny_dir, tokenizer):
    onnx_encoder = encoder(tiny_dir)
    assert onnx_encoder.encode([]).shape == (0, 24)
    assert onnx_encoder.encode([], truncate_dim=8).shape == (0, 8)

    empty = onnx_encoder.encode("")
    assert empty.shape == (24,) and np.isfinite(empty).all()
    np.testing.assert_allclose(empty, tiny.encode("").numpy(), atol=1e-5)

    odd = onnx_encoder.encode(ODD_TEXTS)
    assert odd.shape == (len(ODD_TEXTS), 24) and np.isfinite(odd).all()
    np.testing.assert_allclose(odd, tiny.encode(ODD_TEXTS).numpy(), atol=1e-5)
    np.testing.assert_allclose(
        onnx_encoder.encode(ODD_TEXTS, truncate_dim=8), tiny.encode(ODD_TEXTS, truncate_dim=8).numpy(), atol=1e-5
    )

    long_text = "word " * 10_000
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        long = onnx_encoder.encode([long_text, "short"])
        reference = tiny.encode([long_text, "short"]).numpy()
    messages = [str(w.message) for w in caught if "truncated" in str(w.message)]
    assert messages == ["1 of 2 texts were longer than 40 tokens and were truncated to their first 40 tokens."] * 2
    np.testing.assert_allclose(long, reference, atol=1e-5)
    prefix = tokenizer.decode(tokenizer(long_text)["input_ids"][:40])
    np.testing.assert_allclose(long[0], onnx_encoder.encode(prefix), atol=1e-6)

    with pytest.raises(TypeError, match=r"texts\[1\]"):
        onnx_encoder.encode(["ok", None])
    with pytest.raises(ValueError, match="max_length"):
        onnx_encoder.encode(["ok"], max_length=41)


def test_int8_accuracy_within_half_a_point_on_sst2(paper_dir, data_dir):
    """Random paper-size model (CI has no trained one): SST-2, full train (6,920) and test (1,821) splits.

    On random features the probe reaches only ~61%, so many test texts sit near the decision boundary and
    float-level noise alone moves accuracy by 0.2-0.4 points; SST-2 is the largest test split among the
    small tasks (one text = 0.05 points) and the full train split gave the steadiest difference. Measured
    here: 0.00 points (trec's 500-text test split gave -0.8 on the same model). The trained model's figure
    is measured with benchmarks/truncation.py --int8.
    """
    task = load_task("sst2", data_dir)
    scores = int8_accuracy(AsteriskModel.from_pretrained(paper_dir), paper_dir, task, num_threads=1)
    assert scores["pytorch_fp32"] > 55  # the probe does learn something from the random features
    assert abs(scores["difference"]) <= 0.5, scores


def test_export_from_a_model_object_keeps_its_state_and_can_normalise(tiny_model_dir, tmp_path):
    model = AsteriskModel.from_pretrained(tiny_model_dir).train()
    paths = export_onnx(model, tmp_path, quantize=False, normalize=True)
    assert model.training and set(paths) == {"fp32"} and not (tmp_path / INT8_FILE_NAME).exists()
    session = ort.InferenceSession(str(paths["fp32"]), providers=["CPUExecutionProvider"])
    input_ids, attention_mask = pad_right([[10, 20, 30], [], [7]], 50257)
    (out,) = session.run([OUTPUT_NAME], {"input_ids": input_ids, "attention_mask": attention_mask})
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), [1.0, 0.0, 1.0], atol=1e-5)  # the empty text: zero
    with pytest.raises(ValueError, match="output_dir"):
        export_onnx(model)


def test_onnx_encoder_runs_without_torch_or_transformers(tiny_dir):
    code = f"""
        import sys
        from asterisk_embeddings.onnx_encoder import AsteriskOnnxEncoder, INT8_FILE_NAME
        out = AsteriskOnnxEncoder({str(tiny_dir)!r}, INT8_FILE_NAME).encode(["hello world", ""])
        assert out.shape == (2, 24), out.shape
        assert "torch" not in sys.modules and "transformers" not in sys.modules, "heavy imports"
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_sentence_transformers_resolves_the_onnx_layout(tiny_dir):
    """The files sit where sentence-transformers' backend="onnx" looks, for both the default and int8."""
    from sentence_transformers.backend.utils import backend_should_export

    for kwargs, file_name in (({}, "model.onnx"), ({"file_name": INT8_FILE_NAME}, "model_qint8.onnx")):
        export, resolved = backend_should_export(Path(tiny_dir), True, dict(kwargs), "model.onnx", "*.onnx", "ONNX")
        assert not export and resolved["subfolder"] == "onnx" and resolved["file_name"] == file_name


def test_sentence_transformers_onnx_backend_loads_the_files(tiny, tiny_dir, real_sentences):
    # sentence-transformers runs ONNX models through optimum.onnxruntime, which optimum-onnx provides; every
    # optimum-onnx release requires transformers < 4.58 (this project uses 5.x), so it cannot be installed.
    pytest.importorskip("optimum.onnxruntime", reason="optimum-onnx needs transformers<4.58; not installable here")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(
        str(tiny_dir), backend="onnx", model_kwargs={"file_name": INT8_FILE_NAME}, trust_remote_code=True
    )
    actual = model.encode(real_sentences[:32], normalize_embeddings=True)
    cosine = (actual * tiny.encode(real_sentences[:32]).numpy()).sum(axis=1)
    assert cosine.min() >= 0.99


def test_truncated_embeddings_agree_across_pytorch_sentence_transformers_and_onnx(tiny, tiny_dir, real_sentences):
    """Matryoshka-style truncation: the first d dimensions, then L2-normalised, whichever runtime embeds."""
    from sentence_transformers import SentenceTransformer

    texts = real_sentences[:16]
    expected = tiny.encode(texts, truncate_dim=8).numpy()
    assert expected.shape == (16, 8)
    np.testing.assert_allclose(np.linalg.norm(expected, axis=1), 1.0, atol=1e-5)
    st = SentenceTransformer(str(tiny_dir), trust_remote_code=True, device="cpu", truncate_dim=8)
    np.testing.assert_allclose(st.encode(texts, normalize_embeddings=True), expected, atol=1e-5)
    np.testing.assert_allclose(encoder(tiny_dir).encode(texts, truncate_dim=8), expected, atol=1e-5)
