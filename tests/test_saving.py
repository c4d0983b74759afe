"""A saved folder is complete, loads in a fresh process without this package, and fails clearly when damaged."""

import json
import shutil

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from asterisk_embeddings.saving import check_model_folder, save_model_folder
from modeling_asterisk import AsteriskModel

from .conftest import run_fresh_python

TEXTS = ["A saved model must give identical outputs.", "short", ""]


def _reference(folder):
    model = AsteriskModel.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        output = model(**tokenizer(TEXTS, padding=True, return_tensors="pt"))
    return output.last_hidden_state, output.pooler_output


def test_folder_contents(tiny_model_dir):
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "configuration_asterisk.py", "modeling_asterisk.py",
            "tokenizer.json", "tokenizer_config.json", "modules.json", "sentence_bert_config.json"} <= names
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in names)
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_asterisk.AsteriskModel"


def test_shipped_code_is_self_contained(tiny_model_dir):
    for name in ("configuration_asterisk.py", "modeling_asterisk.py"):
        source = (tiny_model_dir / name).read_text()
        imports = [line.strip() for line in source.splitlines() if line.strip().startswith(("import ", "from "))]
        assert not [line for line in imports if "modeling_asterisk" in line and not line.startswith("from .")]
        for module in ("requests", "urllib", "http", "socket", "pickle", "huggingface_hub"):
            assert not [line for line in imports if module in line], f"{name} imports {module}"
        for call in ("torch.load(", "hf_hub_download(", "snapshot_download(", "from_pretrained("):
            uses = [line for line in source.splitlines() if call in line]
            # The one from_pretrained: encode() loading the tokenizer saved beside the model, local files only
            # (the other mention is the error message telling the user what to pass instead).
            allowed = ("PreTrainedTokenizerFast.from_pretrained(source, local_files_only=True)",)
            assert all(any(a in line for a in allowed) for line in uses), f"{name} calls {call}: {uses}"
    assert "local_files_only=True" in (tiny_model_dir / "modeling_asterisk.py").read_text()


def test_in_process_auto_classes(tiny_model_dir):
    model = AutoModel.from_pretrained(tiny_model_dir)
    assert isinstance(model, AsteriskModel)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert (tokenizer.pad_token_id, tokenizer.mask_token_id, tokenizer.model_max_length) == (50257, 50258, 40)


def test_fresh_process_without_the_package_gives_identical_outputs(tiny_model_dir, tmp_path):
    hidden, pooled = _reference(tiny_model_dir)
    torch.save({"hidden": hidden, "pooled": pooled}, tmp_path / "reference.pt")
    run_fresh_python(
        f"""
        import importlib.util, torch
        assert importlib.util.find_spec("modeling_asterisk") is None or True
        try:
            import modeling_asterisk
            raise SystemExit("modeling_asterisk should not be importable here")
        except ImportError:
            pass
        from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer, pipeline
        folder = {str(tiny_model_dir)!r}
        texts = {TEXTS!r}
        model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
        with torch.no_grad():
            out = model(**tokenizer(texts, padding=True, return_tensors="pt"))
        ref = torch.load("reference.pt")
        torch.testing.assert_close(out.pooler_output, ref["pooled"], atol=0, rtol=0)
        torch.testing.assert_close(out.last_hidden_state, ref["hidden"], atol=0, rtol=0)
        torch.testing.assert_close(model.encode(texts, normalize=False), ref["pooled"], atol=1e-5, rtol=0)

        classifier = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True, num_labels=3)
        assert type(classifier).__name__ == "AsteriskForSequenceClassification"
        assert classifier(**tokenizer(texts, padding=True, return_tensors="pt")).logits.shape == (3, 3)

        extractor = pipeline("feature-extraction", model=folder, trust_remote_code=True)
        features = torch.tensor(extractor(texts[0]))[0]  # (T, projection_dim): the token features
        n = len(tokenizer(texts[0])["input_ids"])
        torch.testing.assert_close(features, ref["hidden"][0, :n], atol=1e-5, rtol=0)
        # The card's recipe: the mean of the token features is the sentence embedding, text by text.
        for i, text in enumerate(texts[:2]):
            mean = torch.tensor(extractor(text))[0].mean(dim=0)
            torch.testing.assert_close(mean, ref["pooled"][i], atol=1e-5, rtol=0)
        print("FRESH-OK")
        """,
        cwd=tmp_path,
    )


def test_sentence_transformers_returns_the_normalised_embedding_of_encode(tiny_model_dir, tmp_path):
    _, pooled = _reference(tiny_model_dir)
    encoded = AsteriskModel.from_pretrained(tiny_model_dir).encode(TEXTS)
    torch.testing.assert_close(encoded, torch.nn.functional.normalize(pooled, dim=-1), atol=1e-6, rtol=0)
    torch.save(encoded, tmp_path / "encoded.pt")
    run_fresh_python(
        f"""
        import torch
        from sentence_transformers import SentenceTransformer
        st = SentenceTransformer({str(tiny_model_dir)!r}, trust_remote_code=True, device="cpu")
        assert st.get_embedding_dimension() == 24 and st.max_seq_length == 40
        got = st.encode({TEXTS!r}, convert_to_tensor=True)
        torch.testing.assert_close(got, torch.load("encoded.pt"), atol=1e-5, rtol=0)
        """,
        cwd=tmp_path,
    )


def test_a_folder_saved_the_standard_way_loads_right_in_sentence_transformers(tiny_model_dir, tokenizer, tmp_path):
    """save_pretrained alone (as after a Trainer fine-tune): no sentence-transformers files, so its defaults
    apply (mean pooling of the token features), and they give the model's sentence embedding."""
    model = AsteriskModel.from_pretrained(tiny_model_dir)
    model.save_pretrained(tmp_path / "plain")
    tokenizer.save_pretrained(tmp_path / "plain")
    assert not (tmp_path / "plain" / "modules.json").exists()
    _, pooled = _reference(tiny_model_dir)
    torch.save(pooled, tmp_path / "pooled.pt")
    run_fresh_python(
        f"""
        import torch
        from sentence_transformers import SentenceTransformer
        st = SentenceTransformer({str(tmp_path / "plain")!r}, trust_remote_code=True, device="cpu")
        got = st.encode({TEXTS[:2]!r}, convert_to_tensor=True)
        torch.testing.assert_close(got, torch.load("pooled.pt")[:2], atol=1e-5, rtol=0)
        """,
        cwd=tmp_path,
    )


def test_saved_tokenizer_truncates_at_the_model_limit_whatever_it_was_used_for(tiny_model_dir, tokenizer, tmp_path):
    from tokenizers import Tokenizer

    model = AsteriskModel.from_pretrained(tiny_model_dir)
    tokenizer("word " * 300, truncation=True, max_length=41)  # the fast tokenizer keeps the last setting
    tokenizer.backend_tokenizer.enable_truncation(max_length=129)
    tokenizer.backend_tokenizer.enable_padding(pad_id=50257, pad_token="[PAD]")
    folder = save_model_folder(model, tokenizer, tmp_path / "limit")
    plain = Tokenizer.from_file(str(folder / "tokenizer.json"))  # what ONNX, Rust and JS runtimes read
    assert len(plain.encode("word " * 300, add_special_tokens=False).ids) == 40
    assert len(plain.encode("short").ids) == 1  # and no padding
    assert json.loads((folder / "tokenizer_config.json").read_text())["model_max_length"] == 40


def test_missing_weights_file_is_named(tiny_model_dir, tmp_path):
    broken = shutil.copytree(tiny_model_dir, tmp_path / "broken")
    (broken / "model.safetensors").unlink()
    with pytest.raises(OSError, match="model.safetensors"):
        AsteriskModel.from_pretrained(broken)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "no tokenizer"])
def test_a_damaged_folder_is_named_before_loading(tiny_model_dir, tmp_path, damage):
    broken = shutil.copytree(tiny_model_dir, tmp_path / "broken")
    weights = broken / "model.safetensors"
    data = weights.read_bytes()
    if damage == "no tokenizer":
        (broken / "tokenizer.json").unlink()
        message = r"lacks tokenizer\.json \(without it the model cannot tokenise text\)"
    else:
        weights.write_bytes(b"not a safetensors file" * 4 if damage == "garbage" else data[: len(data) // 2])
        message = r"model\.safetensors.*corrupt or incomplete"
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        check_model_folder(broken)


def test_encode_without_the_folders_tokenizer_says_so(tiny_model_dir, tmp_path):
    broken = shutil.copytree(tiny_model_dir, tmp_path / "no_tokenizer")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (broken / name).unlink()
    model = AsteriskModel.from_pretrained(broken)
    with pytest.raises(ValueError, match="has no tokenizer.json, so the model cannot tokenise text"):
        model.encode(["a text"])
    empty = AutoTokenizer.from_pretrained(tiny_model_dir)
    empty = type(empty)(vocab={"a": 0}, merges=[])  # a tokenizer that is not this model's
    with pytest.raises(ValueError, match="not this model's tokenizer"):
        AsteriskModel.from_pretrained(tiny_model_dir).encode(["a text"], tokenizer=empty)


def test_save_is_atomic_and_refuses_to_overwrite(tiny_model_dir, tokenizer, tmp_path, monkeypatch):
    model = AsteriskModel.from_pretrained(tiny_model_dir)
    target = tmp_path / "out"
    save_model_folder(model, tokenizer, target)
    with pytest.raises(FileExistsError):
        save_model_folder(model, tokenizer, target)

    # A save that dies half-way leaves the previous complete folder untouched and no look-alike folder.
    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(type(tokenizer), "save_pretrained", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        save_model_folder(model, tokenizer, tmp_path / "new")
    assert not (tmp_path / "new").exists()
    with pytest.raises(RuntimeError, match="disk full"):
        save_model_folder(model, tokenizer, target, overwrite=True)
    assert AsteriskModel.from_pretrained(target) is not None
    assert (target / "tokenizer.json").is_file()


def test_update_in_place_keeps_other_files_and_writes_config_last(tiny_model_dir, tokenizer, tmp_path, monkeypatch):
    model = AsteriskModel.from_pretrained(tiny_model_dir)
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints" / "step_1").mkdir(parents=True)
    (run_dir / "checkpoints" / "step_1" / "state.txt").write_text("keep me")
    (run_dir / "onnx").mkdir()
    (run_dir / "onnx" / "model.onnx").write_text("exported from older weights")
    save_model_folder(model, tokenizer, run_dir, overwrite=True, extra_files={"notes/info.json": "{}"})
    assert (run_dir / "checkpoints" / "step_1" / "state.txt").read_text() == "keep me"
    assert not (run_dir / "onnx").exists()  # stale exports of the previous weights are removed
    assert (run_dir / "notes" / "info.json").is_file() and (run_dir / "config.json").is_file()

    # Killed while moving files into place: no config.json, so the folder does not look like a model.
    import asterisk_embeddings.saving as saving

    real_replace, moved = saving.os.replace, []

    def dies_after_two(src, dst):
        if len(moved) == 2:
            raise KeyboardInterrupt("killed")
        moved.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(saving.os, "replace", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        save_model_folder(model, tokenizer, run_dir, overwrite=True)
    assert not (run_dir / "config.json").exists()
    with pytest.raises((OSError, ValueError), match="config"):
        AutoModel.from_pretrained(run_dir)
