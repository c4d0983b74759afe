"""Export an Asterisk model's sentence-embedding graph to ONNX (fp32 and int8).

`export_onnx` writes `onnx/model.onnx`, `onnx/model_qint8.onnx` and `onnx/model_quint8_avx2.onnx` into a
model folder, the layout that sentence-transformers' `backend="onnx"` looks for (the two int8 graphs differ in
the sign of their weights: `onnx_encoder.int8_file_name` says which one suits the CPU). The graph takes
`input_ids` and `attention_mask` (int64, any batch size, 1..max_position_embeddings tokens) and returns
`sentence_embedding`: the model's `pooler_output` (masked mean + projection, optionally L2-normalised), computed
inside the graph.
`asterisk_embeddings.onnx_encoder` runs it without PyTorch.
"""

import contextlib
import copy
import logging
import os
import warnings
from pathlib import Path

from .onnx_encoder import (
    FP32_FILE_NAME,
    INPUT_NAMES,
    INT8_AVX2_FILE_NAME,
    INT8_FILE_NAME,
    ONNX_SUBFOLDER,
    OUTPUT_NAME,
)

# Opset 18 is the lowest the torch.export-based exporter (dynamo=True) emits without a version conversion.
OPSET_VERSION = 18


def export_onnx(
    model,
    output_dir: str | os.PathLike | None = None,
    quantize: bool = True,
    normalize: bool = False,
    opset_version: int = OPSET_VERSION,
) -> dict[str, Path]:
    """Export the sentence-embedding graph of `model` to `output_dir/onnx/model.onnx` (+ the two int8 graphs).

    Uses `torch.onnx.export(dynamo=True)` with dynamic batch and length, saved as one self-contained file
    (weights inside, no `.onnx.data` beside it), then `onnxruntime.quantization.quantize_dynamic` for int8
    weights (all MatMuls and the embedding tables; activations are quantised on the fly): signed weights in
    `model_qint8.onnx`, unsigned ones in `model_quint8_avx2.onnx` (for x86 CPUs without VNNI).

    Args:
        model: an `AsteriskModel`, or the folder of a saved one.
        output_dir: the model folder to write `onnx/` into; defaults to `model` when it is a folder.
        quantize: also write the int8 files.
        normalize: L2-normalise `sentence_embedding` inside the graph. Off by default, so the graph gives
            `pooler_output` exactly as the PyTorch model and its sentence-transformers config do.
        opset_version: ONNX opset of the exported graph.

    Returns:
        `{"fp32": path}` plus `"int8"` and `"int8_avx2"` paths when `quantize`.
    """
    import torch

    from modeling_asterisk import AsteriskModel

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
        paths["int8_avx2"] = quantize_onnx(fp32_path, Path(output_dir) / INT8_AVX2_FILE_NAME, unsigned_weights=True)
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


QUANTIZATION_METHODS = ("dynamic", "dynamic-per-channel", "matmul-only", "static")


def quantize_onnx(fp32_path: str | os.PathLike, int8_path: str | os.PathLike, method: str = "dynamic",
                  calibration: list[tuple] | None = None, exclude: list[str] | None = None,
                  unsigned_weights: bool = False) -> Path:
    """Write an int8 copy of an fp32 ONNX file.

    Args:
        method: "dynamic" (int8 weights of every MatMul and the embedding tables, activations quantised at run
            time, per tensor), "dynamic-per-channel" (the same, one scale per output channel), "matmul-only"
            (dynamic, the embedding tables stay fp32), or "static" (weights per channel and activations both
            int8, their ranges calibrated on `calibration`, QDQ format).
        calibration: for "static": batches of (input_ids, attention_mask) int64 arrays, e.g. corpus texts
            tokenised as the model reads them.
        exclude: node names left in fp32 (mixed precision), e.g. the graph's most sensitive MatMuls.
        unsigned_weights: uint8 weights instead of int8 (dynamic methods), for x86 CPUs without VNNI, where
            ONNX Runtime's uint8 x int8 products saturate (see `onnx_encoder.INT8_AVX2_FILE_NAME`).
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    if method not in QUANTIZATION_METHODS:
        raise ValueError(f"method must be one of {QUANTIZATION_METHODS}, got {method!r}.")
    if unsigned_weights and method == "static":
        raise ValueError("unsigned_weights applies to the dynamic methods; static quantisation keeps int8 weights.")
    int8_path = Path(int8_path)
    partial = int8_path.with_name(f".{int8_path.name}.partial")
    with _quiet_loggers("root"):  # its advice to pre-process the graph first changes nothing measurable here
        if method == "static":
            if not calibration:
                raise ValueError("Static quantisation needs calibration batches of (input_ids, attention_mask).")

            class Batches(CalibrationDataReader):
                def __init__(self):
                    self.batches = iter(calibration)

                def get_next(self):
                    batch = next(self.batches, None)
                    return None if batch is None else dict(zip(INPUT_NAMES, batch))

            quantize_static(Path(fp32_path), partial, Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=["MatMul", "Gemm"], nodes_to_exclude=exclude or [],
                            extra_options={"ActivationSymmetric": True})
        else:
            quantize_dynamic(Path(fp32_path), partial,
                             weight_type=QuantType.QUInt8 if unsigned_weights else QuantType.QInt8,
                             per_channel=method == "dynamic-per-channel",
                             op_types_to_quantize=["MatMul"] if method == "matmul-only" else None,
                             nodes_to_exclude=exclude or [])
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


__all__ = ["FP32_FILE_NAME", "INT8_AVX2_FILE_NAME", "INT8_FILE_NAME", "export_onnx", "quantize_onnx"]
