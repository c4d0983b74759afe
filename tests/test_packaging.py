"""What `pip install .` gives a user: the model code and the library, nothing with a generic name, and working
model, saving and ONNX paths in a process that cannot see this repository."""

import subprocess
import sys
import textwrap
import zipfile

import pytest

from .conftest import REPO_ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO_ROOT), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out)], check=True, capture_output=True, timeout=300)
    (path,) = out.glob("asterisk_embeddings-*.whl")
    return path


def test_the_wheel_installs_only_its_own_names(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"modeling_asterisk", "asterisk_embeddings"}
    metadata = next(n for n in names if n.endswith("METADATA"))
    requirements = [line for line in zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
                    if line.startswith("Requires-Dist: torch")]
    assert requirements and "==" not in requirements[0]  # a range, not this repository's pin


def test_an_installed_wheel_serves_the_model_saving_and_onnx_paths(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    code = textwrap.dedent(f"""
        import importlib.util, sys
        import asterisk_embeddings, modeling_asterisk
        assert asterisk_embeddings.__file__.startswith({str(site)!r}), asterisk_embeddings.__file__
        assert importlib.util.find_spec("train") is None and importlib.util.find_spec("model_card") is None
        import torch
        from transformers import AutoModel
        from asterisk_embeddings.onnx_encoder import AsteriskOnnxEncoder
        from asterisk_embeddings.onnx_export import export_onnx
        from asterisk_embeddings.saving import save_model_folder
        from asterisk_embeddings.tokenizer import build_tokenizer
        from modeling_asterisk import AsteriskConfig, AsteriskModel
        model = AsteriskModel(AsteriskConfig(hidden_size=32, num_attention_heads=4, intermediate_size=37,
                                             projection_dim=24, max_position_embeddings=40))
        folder = save_model_folder(model, build_tokenizer(), "model")
        loaded = AutoModel.from_pretrained(folder)
        texts = ["an installed package", "embeds text"]
        expected = loaded.encode(texts).numpy()
        export_onnx(folder)
        got = AsteriskOnnxEncoder(folder).encode(texts)
        assert abs(got - expected).max() < 1e-4, abs(got - expected).max()
        print("OK")
    """)
    env = {"PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-3000:]
