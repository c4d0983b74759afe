"""Export an Asterisk model's sentence-embedding graph to ONNX (fp32 and int8), and run it without PyTorch.

`export_onnx` writes `onnx/model.onnx` and `onnx/model_qint8.onnx` into a model folder, the layout that
sentence-transformers' `backend="onnx"` looks for. The graph takes `input_ids` and `attention_mask`
(int64, any batch size, 1..max_position_embeddings tokens) and returns `sentence_embedding`: the model's
`pooler_output` (masked mean + projection, optionally L2-normalised), computed inside the graph.

`AsteriskOnnxEncoder` embeds texts with ONNX Runtime and the folder's `tokenizer.json` alone (no torch,
no transformers), tokenising and truncating exactly like `AsteriskModel.encode`. This module imports
torch only inside the export functions, so it can be loaded into a lean process by file path as well.

A library helper, not shipped to the Hub.
"""

import contextlib
import copy
import itertools
import json
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ONNX_SUBFOLDER = "onnx"
FP32_FILE_NAME = f"{ONNX_SUBFOLDER}/model.onnx"
INT8_FILE_NAME = f"{ONNX_SUBFOLDER}/model_qint8.onnx"
INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "sentence_embedding"
# Opset 18 is the lowest the torch.export-based exporter (dynamo=True) emits without a version conversion.
OPSET_VERSION = 18


def export_onnx(
    model,
    output_dir: str | os.PathLike | None = None,
    quantize: bool = True,
    normalize: bool = False,
    opset_version: int = OPSET_VERSION,
) -> dict[str, Path]:
    """Export the sentence-embedding graph of `model` to `output_dir/onnx/model.onnx` (+ `model_qint8.onnx`).

    Uses `torch.onnx.export(dynamo=True)` with dynamic batch and length, saved as one self-contained file
    (weights inside, no `.onnx.data` beside it), then `onnxruntime.quantization.quantize_dynamic` for int8
    weights (all MatMuls and the embedding tables; activations are quantised on the fly).

    Args:
        model: an `AsteriskModel`, or the folder of a saved one.
        output_dir: the model folder to write `onnx/` into; defaults to `model` when it is a folder.
        quantize: also write the int8 file.
        normalize: L2-normalise `sentence_embedding` inside the graph. Off by default, so the graph gives
            `pooler_output` exactly as the PyTorch model and its sentence-transformers config do.
        opset_version: ONNX opset of the exported graph.

    Returns:
        `{"fp32": path}` plus `"int8": path` when `quantize`.
    """
    import torch

    from .modeling_asterisk import AsteriskModel

    if isinstance(model, (str, os.PathLike)):
        source = Path(model)
        model = AsteriskModel.from_pretrained(source)
        output_dir = source if output_dir is None else output_dir
    if not isinstance(model, AsteriskModel):
        raise TypeError(f"export_onnx needs an AsteriskModel or its folder, got {type(model).__name__}.")
    if output_dir is None:
        raise ValueError("Pass output_dir: the model folder to write onnx/model.onnx into.")

    onnx_dir = Path(output_dir) / ONNX_SUBFOLDER
    onnx_dir.mkdir(parents=True, exist_ok=True)
    fp32_path = Path(output_dir) / FP32_FILE_NAME
    # Export a float32 CPU copy in eval mode; the caller's model keeps its device, dtype and mode.
    parameter = next(model.parameters())
    if parameter.device.type != "cpu" or parameter.dtype != torch.float32:
        model = copy.deepcopy(model).to(device="cpu", dtype=torch.float32)
    was_training = model.training
    graph = _sentence_embedding_graph(model, normalize)  # puts the model in eval mode
    try:
        # Example with a padded row; the exported graph handles both padded and unpadded batches.
        input_ids = torch.arange(1, 17).view(2, 8)
        attention_mask = torch.ones(2, 8, dtype=torch.long)
        attention_mask[1, 5:] = 0
        batch = torch.export.Dim("batch")
        length = torch.export.Dim("length", max=model.config.max_position_embeddings)
        with warnings.catch_warnings(), _quiet_loggers("torch.onnx._internal.exporter._registration"):
            warnings.simplefilter("ignore")  # exporter chatter: pytree deprecations, torchvision ops it skips
            program = torch.onnx.export(
                graph,
                (input_ids, attention_mask),
                dynamo=True,
                input_names=list(INPUT_NAMES),
                output_names=[OUTPUT_NAME],
                dynamic_shapes={"input_ids": {0: batch, 1: length}, "attention_mask": {0: batch, 1: length}},
                opset_version=opset_version,
                verbose=False,
            )
    finally:
        model.train(was_training)
    partial = fp32_path.with_name(f".{fp32_path.name}.partial")
    program.save(str(partial), external_data=False)  # one file: the weights (56 MB at paper size) sit inside
    os.replace(partial, fp32_path)
    paths = {"fp32": fp32_path}
    if quantize:
        paths["int8"] = quantize_onnx(fp32_path, Path(output_dir) / INT8_FILE_NAME)
    return paths


def _sentence_embedding_graph(model, normalize: bool):
    """An nn.Module (input_ids, attention_mask) -> pooler_output, optionally L2-normalised."""
    import torch.nn.functional as F
    from torch import nn

    class AsteriskSentenceEmbedding(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            embedding = self.model(input_ids=input_ids, attention_mask=attention_mask).pooler_output
            return F.normalize(embedding, dim=-1) if normalize else embedding

    return AsteriskSentenceEmbedding().eval()


def quantize_onnx(fp32_path: str | os.PathLike, int8_path: str | os.PathLike) -> Path:
    """Write an int8 copy of an fp32 ONNX file: dynamic quantisation of weights (activations at run time)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8_path = Path(int8_path)
    partial = int8_path.with_name(f".{int8_path.name}.partial")
    with _quiet_loggers("root"):  # its advice to pre-process the graph first changes nothing measurable here
        quantize_dynamic(Path(fp32_path), partial, weight_type=QuantType.QInt8)
    os.replace(partial, int8_path)
    return int8_path


@contextlib.contextmanager
def _quiet_loggers(*names: str):
    """Raise the given loggers to ERROR for the duration of the block."""
    loggers = [logging.getLogger(None if name == "root" else name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


class AsteriskOnnxEncoder:
    """Sentence embeddings from an exported Asterisk graph with ONNX Runtime and the Rust tokenizer only.

    Gives the same vectors as `AsteriskModel.encode` (up to float rounding, or int8 quantisation error
    with `file_name=INT8_FILE_NAME`), with the same truncation and warning.

    Args:
        model_dir: the model folder (holds `config.json`, `tokenizer.json` and `onnx/`).
        file_name: the ONNX file inside `model_dir`: `FP32_FILE_NAME` or `INT8_FILE_NAME`.
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

    def tokenize(self, texts: Sequence[str], max_length: int | None = None) -> list[list[int]]:
        """Token ids of `texts`, each cut to its first `max_length` tokens (one warning if any was longer)."""
        limit = self._limit(max_length)
        # As AsteriskModel.encode: no special tokens; tokenising to limit + 1 tells which texts were longer.
        self.tokenizer.enable_truncation(max_length=limit + 1)
        ids = [encoding.ids for encoding in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]
        truncated = sum(len(row) > limit for row in ids)
        if truncated:
            warnings.warn(
                f"{truncated} of {len(ids)} texts were longer than {limit} tokens and were truncated to their "
                f"first {limit} tokens.",
                stacklevel=3,
            )
        return [row[:limit] for row in ids]

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
        single = isinstance(texts, str)
        texts = [texts] if single else texts
        if not isinstance(texts, Sequence):
            raise TypeError(f"texts must be a string or a sequence of strings, got {type(texts).__name__}.")
        for position, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{position}] is {type(text).__name__}, expected str.")
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
        if truncate_dim is not None and not 0 < truncate_dim <= self.dim:
            raise ValueError(f"truncate_dim must be in [1, {self.dim}], got {truncate_dim}.")
        limit = self._limit(max_length)
        if not texts:
            return np.empty((0, truncate_dim or self.dim), dtype=np.float32)

        ids = self.tokenize(texts, limit)
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        order = np.argsort(-lengths, kind="stable")  # longest first, ties in input order
        embeddings = np.empty((len(ids), self.dim), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            input_ids, attention_mask = pad_right([ids[i] for i in rows], self.pad_token_id)
            feed = {INPUT_NAMES[0]: input_ids, INPUT_NAMES[1]: attention_mask}
            embeddings[rows] = self.session.run([OUTPUT_NAME], feed)[0]
        if truncate_dim is not None:
            embeddings = np.ascontiguousarray(embeddings[:, :truncate_dim])
        if normalize:  # as torch.nn.functional.normalize: x / max(||x||, 1e-12)
            embeddings /= np.maximum(np.linalg.norm(embeddings, axis=-1, keepdims=True), 1e-12)
        return embeddings[0] if single else embeddings

    def _limit(self, max_length: int | None) -> int:
        limit = max_length or self.max_position_embeddings
        if not 0 < limit <= self.max_position_embeddings:
            raise ValueError(f"max_length must be in [1, {self.max_position_embeddings}], got {max_length}.")
        return limit


def pad_right(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad token id lists into int64 (input_ids, attention_mask) arrays, at least one column wide."""
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    width = max(1, int(lengths.max(initial=0)))
    attention_mask = np.arange(width) < lengths[:, None]  # (B, T)
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    # Boolean-mask assignment fills row by row, left to right: the order of the concatenated rows.
    tokens = itertools.chain.from_iterable(rows)
    input_ids[attention_mask] = np.fromiter(tokens, dtype=np.int64, count=int(lengths.sum()))
    return input_ids, attention_mask.astype(np.int64)


__all__ = [
    "AsteriskOnnxEncoder",
    "FP32_FILE_NAME",
    "INT8_FILE_NAME",
    "OUTPUT_NAME",
    "export_onnx",
    "pad_right",
    "quantize_onnx",
]
