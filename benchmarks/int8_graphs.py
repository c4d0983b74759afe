"""How close each int8 ONNX graph of an Asterisk model stays to its fp32 graph on this CPU, and how fast it runs.

    python benchmarks/int8_graphs.py --model release --output_dir outputs/int8-graphs

ONNX Runtime's int8 products saturate on x86 CPUs without VNNI when the weights are signed, so which graph is
accurate depends on the CPU (docs/speed.md, "int8 on CPUs without VNNI"). The model is exported once into
`<output_dir>/model/` (fp32), then quantised with `quantize_dynamic` in each setting: int8 weights (the shipped
`model_qint8.onnx`), int8 with `reduce_range`, int8 per channel with `reduce_range`, uint8 weights (the shipped
`model_quint8_avx2.onnx`). Each graph embeds the same real benchmark texts (`benchmarks/encode.py`'s short and
long texts) on `--threads` threads; the table gives texts/s (second pass, after a warm-up pass) and the cosine
of every text's vector to the fp32 graph's (mean and lowest). Writes `int8_graphs.json` and `int8_graphs.md`.
"""

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SETTINGS = {  # name -> quantize_dynamic keyword arguments (weight_type as a QuantType name)
    "int8 weights (model_qint8.onnx)": {"weight_type": "QInt8"},
    "int8 weights, reduce_range": {"weight_type": "QInt8", "reduce_range": True},
    "int8 weights per channel, reduce_range": {"weight_type": "QInt8", "per_channel": True, "reduce_range": True},
    "uint8 weights (model_quint8_avx2.onnx)": {"weight_type": "QUInt8"},
}


def measure(folder: Path, file_name: str, texts: list[str], threads: int) -> tuple:
    """(vectors, texts per second) of one graph, timed on a second pass."""
    from asterisk_embeddings.onnx_encoder import AsteriskOnnxEncoder

    encoder = AsteriskOnnxEncoder(folder, file_name, num_threads=threads)
    vectors = encoder.encode(texts)
    start = time.perf_counter()
    encoder.encode(texts)
    return vectors, len(texts) / (time.perf_counter() - start)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="an Asterisk model folder")
    parser.add_argument("--output_dir", type=Path, required=True)
    parser.add_argument("--num_short", type=int, default=1000)
    parser.add_argument("--num_long", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data_dir", default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from onnxruntime.quantization import QuantType, quantize_dynamic

    from asterisk_embeddings.onnx_encoder import FP32_FILE_NAME, cpu_flags, int8_file_name
    from asterisk_embeddings.onnx_export import export_onnx
    from benchmarks.encode import load_sentences
    from train.data_paths import data_root

    folder = args.output_dir / "model"
    if not (folder / FP32_FILE_NAME).is_file():  # a copy: never write into the caller's folder
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(args.model, folder, ignore=shutil.ignore_patterns("onnx", "evaluation", "*.png"))
        export_onnx(folder, quantize=False)
    sentences = load_sentences(Path(args.data_dir) if args.data_dir else data_root(), args.num_short, args.num_long)
    texts = sentences["short"] + sentences["long"]

    reference, speed = measure(folder, FP32_FILE_NAME, texts, args.threads)
    rows = [{"graph": "fp32 (model.onnx)", "texts_per_s": speed, "cosine_mean": 1.0, "cosine_min": 1.0}]
    for number, (name, settings) in enumerate(SETTINGS.items()):
        file_name = f"onnx/int8_setting_{number}.onnx"
        options = {**settings, "weight_type": getattr(QuantType, settings["weight_type"])}
        quantize_dynamic(folder / FP32_FILE_NAME, folder / file_name, **options)
        vectors, speed = measure(folder, file_name, texts, args.threads)
        cosine = (vectors * reference).sum(axis=1)  # both L2-normalised by encode
        rows.append({"graph": name, "settings": settings, "texts_per_s": speed,
                     "cosine_mean": float(cosine.mean()), "cosine_min": float(cosine.min())})
        print(f"{name}: {speed:.0f} texts/s, cosine {cosine.mean():.4f} / {cosine.min():.4f}", flush=True)

    flags = cpu_flags() or set()
    record = {"model": str(args.model), "texts": {"short": args.num_short, "long": args.num_long},
              "threads": args.threads, "machine": platform.machine(),
              "int8_flags": sorted(flags & {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"}),
              "int8_file_name": int8_file_name(), "rows": rows}
    lines = [f"int8 graphs of {args.model} on {platform.machine()} (flags: {', '.join(record['int8_flags']) or '-'}; "
             f"`int8_file_name()` picks `{record['int8_file_name']}`), {len(texts)} texts, {args.threads} thread(s)",
             "", "| graph | texts/s | cosine to fp32, mean / lowest |", "|---|---|---|"]
    lines += [f"| {r['graph']} | {r['texts_per_s']:.0f} | {r['cosine_mean']:.4f} / {r['cosine_min']:.4f} |"
              for r in rows]
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "int8_graphs.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.output_dir / "int8_graphs.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return record


if __name__ == "__main__":
    main()
