"""Sentence embeddings from an exported Asterisk graph with ONNX Runtime and the Rust tokenizer: no torch, no
transformers. `asterisk_embeddings.onnx_export` writes the graph.
"""

import json
import os
import platform
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .text_batching import check_texts, l2_normalize, length_sorted_batches, tokenize_to_limit

ONNX_SUBFOLDER = "onnx"
FP32_FILE_NAME = f"{ONNX_SUBFOLDER}/model.onnx"
# Two int8 graphs, named as sentence-transformers names its quantised exports: signed 8-bit weights for CPUs whose
# int8 kernels accumulate without saturating (x86 with VNNI or AMX, ARM), unsigned ones for the other x86 CPUs.
# ONNX Runtime multiplies unsigned activations by signed weights there with an instruction (vpmaddubsw) whose 16-bit
# sums saturate: on an AVX2-only CPU the signed graph of a random paper-size model fell to cosine 0.84 against
# PyTorch (SST-2 -2.5 points); the unsigned one kept 0.9996 (docs/speed.md). `int8_file_name` picks.
INT8_FILE_NAME = f"{ONNX_SUBFOLDER}/model_qint8.onnx"
INT8_AVX2_FILE_NAME = f"{ONNX_SUBFOLDER}/model_quint8_avx2.onnx"
INT8_FILE_NAMES = (INT8_FILE_NAME, INT8_AVX2_FILE_NAME)
INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "sentence_embedding"
_NO_SATURATION_FLAGS = {"avx512_vnni", "avx_vnni", "amx_int8"}  # /proc/cpuinfo flags of int8 dot products


def int8_file_for(machine: str, cpu_flags: set[str] | None) -> str:
    """The int8 graph for a CPU: `platform.machine()` and its /proc/cpuinfo flags (None: unknown)."""
    if machine.lower() in ("arm64", "aarch64"):
        return INT8_FILE_NAME
    if cpu_flags is not None and cpu_flags & _NO_SATURATION_FLAGS:
        return INT8_FILE_NAME
    return INT8_AVX2_FILE_NAME  # accurate on every CPU; an x86 CPU whose flags cannot be read gets it too


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags as /proc/cpuinfo lists them; None where there is no such file (not Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def int8_file_name(model_dir: str | os.PathLike | None = None) -> str:
    """The int8 graph to run on this CPU (`INT8_FILE_NAME` or `INT8_AVX2_FILE_NAME`, see above). With `model_dir`,
    a folder exported before the unsigned graph existed falls back to `INT8_FILE_NAME`, with a warning."""
    name = int8_file_for(platform.machine(), cpu_flags())
    if model_dir is not None and name != INT8_FILE_NAME and not (Path(model_dir) / name).is_file():
        warnings.warn(f"{Path(model_dir) / name} does not exist (an older export): using {INT8_FILE_NAME}, whose "
                      "accuracy suffers on this CPU (no VNNI); re-export with export_onnx to get the right graph.",
                      stacklevel=2)
        return INT8_FILE_NAME
    return name


class AsteriskOnnxEncoder:
    """Sentence embeddings from an exported Asterisk graph with ONNX Runtime and the Rust tokenizer only.

    Gives the same vectors as `AsteriskModel.encode` (up to float rounding, or int8 quantisation error
    with `file_name=int8_file_name()`), with the same truncation and warning.

    Args:
        model_dir: the model folder (holds `config.json`, `tokenizer.json` and `onnx/`).
        file_name: the ONNX file inside `model_dir`: `FP32_FILE_NAME`, or `int8_file_name()` (the int8 graph
            that is accurate on this CPU: `INT8_FILE_NAME` or `INT8_AVX2_FILE_NAME`).
        num_threads: ONNX Runtime intra-op threads; default: ONNX Runtime's choice (one per core).
        providers: ONNX Runtime execution providers; default CPU.
        session_options: an `onnxruntime.SessionOptions` to start from (e.g. with
            `add_session_config_entry("session.intra_op.allow_spinning", "0")`, which keeps throughput up
            on a machine whose cores other processes also use).
    """

    def __init__(
        self,
        model_dir: str | os.PathLike,
        file_name: str = FP32_FILE_NAME,
        num_threads: int | None = None,
        providers: Sequence[str] | None = None,
        session_options=None,
    ):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        folder = Path(model_dir)
        path = folder / file_name
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist; write it with export_onnx({str(folder)!r}).")
        config = json.loads((folder / "config.json").read_text())
        self.max_position_embeddings = int(config["max_position_embeddings"])
        self.pad_token_id = config.get("pad_token_id") or 0  # as AsteriskModel.encode pads
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        options = session_options or ort.SessionOptions()
        if num_threads is not None:
            options.intra_op_num_threads = num_threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=list(providers or ["CPUExecutionProvider"]))
        self.dim = int(self.session.get_outputs()[0].shape[-1])

    def _encode_batch(self, texts: list[str], max_length: int) -> list[list[int]]:
        self.tokenizer.enable_truncation(max_length=max_length)
        return [encoding.ids for encoding in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    def tokenize(self, texts: Sequence[str], max_length: int | None = None) -> list[list[int]]:
        """Token ids of `texts`, each cut to its first `max_length` tokens (one warning if any was longer)."""
        tokenized = tokenize_to_limit(self._encode_batch, list(texts), self._limit(max_length))
        if tokenized.truncated:
            warnings.warn(tokenized.warning(), stacklevel=3)
        return tokenized.ids

    def encode(
        self,
        texts: str | Sequence[str],
        batch_size: int = 64,
        normalize: bool = True,
        max_length: int | None = None,
        truncate_dim: int | None = None,
    ) -> np.ndarray:
        """Embed texts, as `AsteriskModel.encode` does: length-sorted batches, padded per batch.

        Args:
            texts: a string, or a sequence of strings (an empty string is allowed).
            batch_size: texts per ONNX Runtime call.
            normalize: L2-normalise the embeddings (after truncation).
            max_length: token limit per text, at most `max_position_embeddings` (the default).
            truncate_dim: keep only the first `truncate_dim` dimensions (Matryoshka-style).

        Returns:
            float32 array of shape (len(texts), dim), or (dim,) for one string.
        """
        texts, single = check_texts(texts)
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
        if truncate_dim is not None and not 0 < truncate_dim <= self.dim:
            raise ValueError(f"truncate_dim must be in [1, {self.dim}], got {truncate_dim}.")
        limit = self._limit(max_length)
        if not texts:
            return np.empty((0, truncate_dim or self.dim), dtype=np.float32)

        ids = self.tokenize(texts, limit)
        embeddings = np.empty((len(ids), self.dim), dtype=np.float32)
        for rows, input_ids, attention_mask in length_sorted_batches(ids, batch_size, self.pad_token_id):
            feed = {INPUT_NAMES[0]: input_ids, INPUT_NAMES[1]: attention_mask}
            embeddings[rows] = self.session.run([OUTPUT_NAME], feed)[0]
        if truncate_dim is not None:
            embeddings = np.ascontiguousarray(embeddings[:, :truncate_dim])
        if normalize:
            embeddings = l2_normalize(embeddings)
        return embeddings[0] if single else embeddings

    def _limit(self, max_length: int | None) -> int:
        limit = max_length or self.max_position_embeddings
        if not 0 < limit <= self.max_position_embeddings:
            raise ValueError(f"max_length must be in [1, {self.max_position_embeddings}], got {max_length}.")
        return limit


__all__ = ["AsteriskOnnxEncoder", "FP32_FILE_NAME", "INT8_AVX2_FILE_NAME", "INT8_FILE_NAME", "INT8_FILE_NAMES",
           "OUTPUT_NAME", "cpu_flags", "int8_file_for", "int8_file_name"]
