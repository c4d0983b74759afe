"""The published model in release/: loaded as a Hub user loads it, it must compute the stored reference embeddings.

The reference (tests/data/release_reference.json) was written when the release was made
(`python scripts/write_release_reference.py`); a code change that alters what the published weights compute,
in the package or in the release's own copy of the code, fails here.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from modeling_asterisk import AsteriskModel

from .conftest import REPO_ROOT, run_fresh_python

RELEASE = REPO_ROOT / "release"
REFERENCE = Path(__file__).parent / "data" / "release_reference.json"
HUB_FILES = {"config.json", "model.safetensors", "configuration_asterisk.py", "modeling_asterisk.py", "tokenizer.json",
             "tokenizer_config.json", "modules.json", "sentence_bert_config.json", "1_Pooling/config.json",
             "config_sentence_transformers.json", "README.md", "training_info.json", "evaluation/results.json"}


@pytest.fixture(scope="module")
def reference():
    return json.loads(REFERENCE.read_text())


def test_release_is_a_complete_hub_folder_without_pickles():
    files = {p.relative_to(RELEASE).as_posix() for p in RELEASE.rglob("*") if p.is_file()}
    assert HUB_FILES <= files, sorted(HUB_FILES - files)
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pkl", ".pth"))]
    assert json.loads((RELEASE / "config.json").read_text())["dtype"] == "float32"  # computed in float32
    with safe_open(str(RELEASE / "model.safetensors"), framework="np") as handle:
        assert {handle.get_slice(name).get_dtype() for name in handle.keys()} <= {"F16", "F32"}
    card = (RELEASE / "README.md").read_text()
    assert card.startswith("---") and "model-index" in card and "trust_remote_code=True" in card


def test_the_packages_code_computes_the_published_embeddings(reference):
    model = AsteriskModel.from_pretrained(RELEASE).eval()
    assert next(model.parameters()).dtype == torch.float32
    expected = np.array(reference["embeddings"], dtype=np.float32)
    np.testing.assert_allclose(model.encode(reference["texts"]).numpy(), expected, atol=1e-5, rtol=0)


def test_a_hub_user_gets_the_published_embeddings(reference, tmp_path):
    (tmp_path / "reference.json").write_text(json.dumps(reference))
    run_fresh_python(
        f"""
        import json
        import numpy as np
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers import AutoModel, AutoTokenizer, pipeline

        folder = {str(RELEASE)!r}
        reference = json.load(open("reference.json"))
        texts, expected = reference["texts"], np.array(reference["embeddings"], dtype=np.float32)
        model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        np.testing.assert_allclose(model.encode(texts).numpy(), expected, atol=1e-5, rtol=0)

        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
        # the tokenizer alone is plain GPT-2 + [PAD]/[MASK]: it loads with no remote code at all (README)
        from transformers import PreTrainedTokenizerFast
        plain = PreTrainedTokenizerFast.from_pretrained(folder)
        assert plain(texts, truncation=True)["input_ids"] == tokenizer(texts, truncation=True)["input_ids"]
        assert plain.model_max_length == 128 and plain.pad_token == "[PAD]"
        with torch.no_grad():
            pooled = model(**tokenizer(texts, padding=True, truncation=True, return_tensors="pt")).pooler_output
        np.testing.assert_allclose(torch.nn.functional.normalize(pooled, dim=-1).numpy(), expected, atol=1e-5)

        st = SentenceTransformer(folder, trust_remote_code=True, device="cpu")
        np.testing.assert_allclose(st.encode(texts), expected, atol=1e-5, rtol=0)

        extractor = pipeline("feature-extraction", model=folder, trust_remote_code=True)
        mean = torch.tensor(extractor(texts[0]))[0].mean(dim=0)
        np.testing.assert_allclose(torch.nn.functional.normalize(mean, dim=0).numpy(), expected[0], atol=1e-5)
        """,
        cwd=tmp_path,
    )
