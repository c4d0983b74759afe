"""Encode speed of Asterisk (PyTorch fp32, ONNX fp32 and int8) against the teacher and a static peer.

    python benchmarks/encode.py --output_dir outputs/speed [--model DIR_OR_NAME ...]

On the same real sentences from ../shared/data (short: ~15 words from the emotion and SST-2 test and
validation splits; long: 100-word segments of IMDB test reviews) it measures, for every model and setting:
encode throughput (sentences/s and tokens/s) at batch sizes 1, 32 and 256; per-call latency p50/p95;
tokenisation time on its own; import time, model load time and peak resident memory of the process. The
encode figures include tokenisation, as real users pay it. Each model and setting runs in a fresh Python
process (this file with --worker), so one model's memory, thread pool or imports do not touch another's; the
ONNX settings' processes import neither torch nor transformers. Every model is loaded and run through the
evaluation harness's embedders (train/evaluation/embedders.py).

Models (`--model`, repeatable): an Asterisk folder (PyTorch fp32, ONNX fp32 and ONNX int8; the ONNX files
are exported if the folder has none), `asterisk-random` (a paper-size randomly initialised Asterisk: speed
does not depend on training), `sentence-transformers/all-MiniLM-L6-v2` or another sentence-transformers /
transformers folder (PyTorch fp32, through sentence-transformers), `wordllama` (static embeddings). The
teacher is always run: every figure is also given as a ratio to it. `--pretokenized` (implied by
`--device cuda`) adds forward-only throughput
on pre-tokenised, length-sorted batches in `--dtype` (bf16 on a GPU).

Writes DIR/results.json, DIR/results.md and DIR/speed.png.
"""

import argparse
import csv
import gzip
import importlib
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: make modeling_asterisk and train importable
    sys.path.insert(0, str(REPO_ROOT))

TEACHER = "sentence-transformers/all-MiniLM-L6-v2"
WORDLLAMA = "wordllama"
RANDOM_ASTERISK = "asterisk-random"
SHORT_SOURCES = ("emotion/test.csv", "emotion/validation.csv", "sst2/test.csv", "sst2/validation.csv")
SHORT_WORDS = (12, 18)  # inclusive: ~15 words
LONG_SOURCE = "imdb/test.csv.gz"
LONG_WORDS = 100
CPU_SETTINGS = ("pytorch-fp32", "onnx-fp32", "onnx-int8", "static-fp32")
DTYPE_NAMES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
METRICS = ("sentences_per_s", "tokens_per_s", "latency_ms_p50", "latency_ms_p95", "load_s", "peak_rss_mb")


# ----------------------------------------------------------------------------------------------------------
# Data


def _csv_rows(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        yield from csv.DictReader(handle)


def load_sentences(data_dir: Path, num_short: int, num_long: int, seed: int = 0) -> dict[str, list[str]]:
    """{"short": ~15-word texts, "long": 100-word review segments}, real held-out data, shuffled with `seed`."""
    rng = random.Random(seed)
    short = []
    for source in SHORT_SOURCES:
        texts = (row["text"] for row in _csv_rows(data_dir / source))
        short += [text for text in texts if SHORT_WORDS[0] <= len(text.split()) <= SHORT_WORDS[1]]
    short = sorted(set(short))
    rng.shuffle(short)
    _require_texts("short", short, num_short)
    # The first 100 words of each review (its first 3,000 characters hold them; <br /> tags are spaces).
    heads = (re.sub(r"<br\s*/?>", " ", row["text"][:3000]).split() for row in _csv_rows(data_dir / LONG_SOURCE))
    long = [" ".join(words[:LONG_WORDS]) for words in heads if len(words) >= LONG_WORDS]
    rng.shuffle(long)
    _require_texts("long", long, num_long)
    return {"short": short[:num_short], "long": long[:num_long]}


def _require_texts(name: str, pool: list[str], wanted: int) -> None:
    if len(pool) < wanted:
        raise ValueError(f"Only {len(pool)} {name} texts are available, asked for {wanted}.")


# ----------------------------------------------------------------------------------------------------------
# Models: the evaluation harness's embedders (train/evaluation/embedders.py), one per setting. Each has
# `encode` (the model's own encode call), `tokenize` (that call's tokenisation alone) and, for PyTorch models,
# `pad_id` and `forward` (a forward pass on a padded, pre-tokenised batch).

# What a setting imports before its model loads (timed as import_s). The ONNX settings import neither torch
# nor transformers, as an ONNX deployment would not (train.evaluation.embedders imports neither at its top).
LIBRARIES = {
    "asterisk": ("torch", "transformers", "modeling_asterisk"),
    "onnx": ("onnxruntime", "tokenizers", "asterisk_embeddings.onnx_encoder"),
    "transformer": ("torch", "transformers", "sentence_transformers", "train.distillation.teacher"),
    "wordllama": ("wordllama",),
}
HEAVY_MODULES = ("torch", "transformers")


def import_libraries(spec: dict) -> dict[str, str]:
    """Import the setting's libraries and embedder module (and set torch's threads); {library: version}."""
    group = "onnx" if spec["setting"].startswith("onnx-") else spec["kind"]
    modules = [importlib.import_module(name) for name in (*LIBRARIES[group], "train.evaluation.embedders")]
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(spec["threads"])
    return {m.__name__: getattr(m, "__version__", "?") for m in modules if "." not in m.__name__
            and m.__name__ != "modeling_asterisk"}


def load_model(spec: dict):
    """The setting's embedder, loaded as the evaluation harness loads it, then cast to its dtype (and compiled)."""
    from train.evaluation import embedders

    if spec["setting"].startswith("onnx-"):
        return embedders.AsteriskOnnxEmbedder(spec["path"], spec["onnx_file"], num_threads=spec["threads"],
                                              spin=spec["thread_wait"] == "spin")
    if spec["kind"] == "wordllama":
        return embedders.WordLlamaEmbedder()
    if spec["kind"] == "asterisk":
        embedder = embedders.AsteriskEmbedder(spec["path"], device=spec["device"])
    else:  # the teacher, or any sentence-transformers / transformers folder or cached Hub id
        embedder = embedders.SentenceTransformerEmbedder(spec["path"], device=spec["device"])
    if spec["dtype"] != "float32":
        embedder.module.to(getattr(sys.modules["torch"], spec["dtype"]))
    if spec.get("compile"):
        embedder.module.compile(dynamic=True)
    return embedder


# ----------------------------------------------------------------------------------------------------------
# Measurements (inside a worker process)


def _proc_status_mb(field: str) -> float | None:
    """A memory field of /proc/self/status in MB (Linux), or None."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def _rss_mb() -> float | None:
    return _proc_status_mb("VmRSS")


def _peak_rss_mb() -> float | None:
    # VmHWM, not getrusage's ru_maxrss: on Linux ru_maxrss survives fork + exec, so a worker would report
    # the parent's peak if that was higher.
    peak = _proc_status_mb("VmHWM")
    if peak is None and sys.platform == "darwin":
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return peak


def _reset_peak_rss() -> None:
    """Start a new VmHWM (peak RSS) window from the current RSS (Linux >= 4.0; a no-op elsewhere)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _speed_record(num_texts: int, tokens: int, seconds: float, latencies: list[float],
                  tokenize_s: float | None) -> dict:
    """One results.json row: throughput of a pass over `num_texts` texts taking `seconds`, per-call latencies,
    and the tokenisation share (None: the inputs were pre-tokenised)."""
    return {
        "num_texts": num_texts,
        "mean_tokens": tokens / num_texts,
        "sentences_per_s": num_texts / seconds,
        "tokens_per_s": tokens / seconds,
        "latency_ms_p50": _percentile(latencies, 50) * 1e3,
        "latency_ms_p95": _percentile(latencies, 95) * 1e3,
        "latency_calls": len(latencies),
        "tokenize_s": tokenize_s,
        "tokenize_sentences_per_s": None if tokenize_s is None else num_texts / tokenize_s,
        "tokenize_share": 0.0 if tokenize_s is None else tokenize_s / seconds,
        "sentences_per_s_without_tokenization": num_texts / max(seconds - (tokenize_s or 0.0), 1e-9),
    }


def measure_encode(model, texts: list[str], batch_size: int, repeats: int, latency_calls: int) -> dict:
    """Throughput of encode(all texts) and per-call latency of encode(batch_size texts), tokenisation included."""
    tokens = sum(map(len, model.tokenize(texts, batch_size)))
    model.encode(texts[: max(batch_size, 8)], batch_size)  # warm-up
    # Throughput: the whole list per call, as a user embedding a corpus calls encode.
    passes = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.encode(texts, batch_size)
        passes.append(time.perf_counter() - start)
    # Latency: one call per batch of `batch_size` texts, in the data's (shuffled) order.
    chunks = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
    calls = max(min(latency_calls, len(chunks)), min(repeats * len(chunks), 20))
    latencies = []
    for call in range(calls):
        start = time.perf_counter()
        model.encode(chunks[call % len(chunks)], batch_size)
        latencies.append(time.perf_counter() - start)
    # Tokenisation alone, the way this model's encode does it.
    tokenize = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.tokenize(texts, batch_size)
        tokenize.append(time.perf_counter() - start)
    return _speed_record(len(texts), tokens, statistics.median(passes), latencies, statistics.median(tokenize))


def measure_pretokenized(model, texts: list[str], batch_size: int, repeats: int, device: str) -> dict:
    """Forward-only throughput on pre-tokenised, length-sorted batches already on `device`."""
    import torch

    from asterisk_embeddings.text_batching import length_sorted_batches

    ids = model.tokenize(texts)
    # At least 8 batches per pass: repeat the texts when there are fewer (a GPU batch of 2048 or more).
    ids *= -(-8 * batch_size // len(ids))
    batches = [
        (torch.from_numpy(input_ids).to(device), torch.from_numpy(attention_mask).to(device))
        for _, input_ids, attention_mask in length_sorted_batches(ids, batch_size, model.pad_id)
    ]
    tokens = sum(map(len, ids))

    def synchronize():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    with torch.inference_mode():
        for batch in batches:  # warm-up (and compilation, if any)
            model.forward(*batch)
        synchronize()
        passes = []
        for _ in range(repeats):
            start = time.perf_counter()
            for batch in batches:
                model.forward(*batch)
            synchronize()
            passes.append(time.perf_counter() - start)
        latencies = []
        for batch in batches:
            start = time.perf_counter()
            model.forward(*batch)
            synchronize()
            latencies.append(time.perf_counter() - start)
    return _speed_record(len(ids), tokens, statistics.median(passes), latencies, tokenize_s=None)


def _first_forward(model, text: str, device: str) -> None:
    import torch

    from asterisk_embeddings.text_batching import pad_right

    input_ids, attention_mask = pad_right(model.tokenize([text]), model.pad_id)
    with torch.inference_mode():
        model.forward(torch.from_numpy(input_ids).to(device), torch.from_numpy(attention_mask).to(device))
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_worker(spec: dict) -> dict:
    """Measure one model in one setting, in this (fresh) process."""
    from tqdm.auto import tqdm

    warnings.simplefilter("ignore")  # truncation warnings on the long texts are expected
    texts = json.loads(Path(spec["texts_file"]).read_text())
    start = time.perf_counter()
    versions = import_libraries(spec)
    import_s = time.perf_counter() - start
    rss_after_import = _rss_mb()
    pretokenized = spec["setting"].startswith("pretokenized")
    # Load time: from the imported libraries to the first embedding (lazy loading and first-call set-up count).
    start = time.perf_counter()
    model = load_model(spec)
    loaded = time.perf_counter()
    if pretokenized:
        _first_forward(model, texts["short"][0], spec["device"])
    else:
        model.encode(texts["short"][:1], 1)
    load_s = time.perf_counter() - start
    first_call_ms = (time.perf_counter() - loaded) * 1e3
    rss_after_load = _rss_mb()
    peaks = [_peak_rss_mb()]

    jobs = [(data, batch_size) for data in ("short", "long") for batch_size in spec["batch_sizes"]]
    rows = []
    for data, batch_size in tqdm(jobs, desc=f"{spec['model']} {spec['setting']}", file=sys.stderr, leave=False):
        _reset_peak_rss()  # each row gets the process's peak during its own measurement
        if pretokenized:
            row = measure_pretokenized(model, texts[data], batch_size, spec["repeats"], spec["device"])
        else:
            row = measure_encode(model, texts[data], batch_size, spec["repeats"], spec["latency_calls"])
        peaks.append(_peak_rss_mb())
        rows.append({"data": data, "batch_size": batch_size, **row, "peak_rss_mb": peaks[-1]})
    heavy_modules = [name for name in HEAVY_MODULES if name in sys.modules]
    if spec["setting"].startswith("onnx-") and heavy_modules:
        raise RuntimeError(f"The ONNX setting imported {' and '.join(heavy_modules)}, which it promises not to.")
    device_name = None
    if pretokenized and spec["device"].startswith("cuda"):
        device_name = sys.modules["torch"].cuda.get_device_name(spec["device"])
    return {
        "versions": versions,
        "device_name": device_name,
        "import_s": import_s,
        "load_s": load_s,
        "first_call_ms": first_call_ms,
        "rss_after_import_mb": rss_after_import,
        "rss_after_load_mb": rss_after_load,
        "peak_rss_mb": max(peaks) if None not in peaks else None,
        "heavy_modules": heavy_modules,
        "rows": rows,
    }


# ----------------------------------------------------------------------------------------------------------
# Orchestration (main process): models, settings, workers, ratios, outputs


def _model_kind(name: str) -> str:
    if name in (WORDLLAMA, RANDOM_ASTERISK):
        return {WORDLLAMA: "wordllama", RANDOM_ASTERISK: "asterisk"}[name]
    config = Path(name) / "config.json"
    if config.is_file() and json.loads(config.read_text()).get("model_type") == "asterisk":
        return "asterisk"
    return "transformer"


def _display_name(name: str) -> str:
    if name == TEACHER:
        return "all-MiniLM-L6-v2 (teacher)"
    if name == RANDOM_ASTERISK:
        return "Asterisk (paper size)"
    return Path(name).name if Path(name).exists() else name


def prepare_asterisk(name: str, work_dir: Path) -> tuple[Path, Path]:
    """(model folder, folder holding onnx/model.onnx and the int8 graphs) of the Asterisk to benchmark."""
    from asterisk_embeddings.onnx_encoder import FP32_FILE_NAME, INT8_FILE_NAMES
    from asterisk_embeddings.onnx_export import export_onnx

    if name == RANDOM_ASTERISK:
        folder = work_dir / "asterisk-paper-random"
        if not (folder / "config.json").is_file():
            import torch

            from asterisk_embeddings.saving import save_model_folder
            from asterisk_embeddings.tokenizer import build_tokenizer
            from modeling_asterisk import AsteriskConfig, AsteriskModel

            torch.manual_seed(0)
            save_model_folder(AsteriskModel(AsteriskConfig()), build_tokenizer(), folder, overwrite=True)
    else:
        folder = Path(name)
    if all((folder / file_name).is_file() for file_name in (FP32_FILE_NAME, *INT8_FILE_NAMES)):
        return folder, folder
    if name == RANDOM_ASTERISK:
        export_onnx(folder, folder)
        return folder, folder
    # Never write into the caller's folder: export beside copies of its config and tokenizer.
    target = work_dir / f"{folder.name}-onnx"
    target.mkdir(parents=True, exist_ok=True)
    for file in ("config.json", "tokenizer.json"):
        shutil.copyfile(folder / file, target / file)
    export_onnx(folder, target)
    return folder, target


def plan_settings(args) -> list[dict]:
    """One spec per (model, setting); each becomes one worker process."""
    names = list(dict.fromkeys([*(args.model or [RANDOM_ASTERISK, WORDLLAMA]), TEACHER]))
    specs = []
    pretokenized = args.pretokenized or args.device.startswith("cuda")
    dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
    for name in names:
        if name.startswith((".", "/", "~")) and not Path(name).expanduser().exists():
            raise FileNotFoundError(f"--model {name}: no such folder.")
        kind = _model_kind(name)
        if kind == "asterisk":
            settings = ["pytorch-fp32", "onnx-fp32", "onnx-int8"] + (["pytorch-fp32-compiled"] if args.compile else [])
        elif kind == "transformer":
            settings = ["pytorch-fp32"]
        else:
            settings = ["static-fp32"]
        if pretokenized and kind != "wordllama":
            settings.append(f"pretokenized-{DTYPE_NAMES[dtype]}-{args.device.split(':')[0]}")
            if args.compile and kind == "asterisk":
                settings.append(settings[-1] + "-compiled")
        for setting in settings:
            if args.settings and not any(setting.startswith(s) for s in args.settings):
                continue
            pretokenized_setting = setting.startswith("pretokenized")
            specs.append({
                "model": _display_name(name), "name": name, "kind": kind, "setting": setting,
                "threads": args.threads, "thread_wait": args.thread_wait,
                "repeats": args.repeats, "latency_calls": args.latency_calls,
                "batch_sizes": args.pretokenized_batch_sizes if pretokenized_setting else args.batch_sizes,
                "device": args.device if pretokenized_setting else "cpu",
                "dtype": dtype if pretokenized_setting else "float32",
                "compile": setting.endswith("-compiled"),
            })
    return specs


def run_settings(specs: list[dict], texts_file: Path, work_dir: Path, args) -> list[dict]:
    """Run every spec in its own worker process, `args.rounds` times over; each figure is the rounds' median."""
    from tqdm.auto import tqdm

    env = {
        **os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
        "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
        "RAYON_NUM_THREADS": str(args.threads),
    }
    if args.thread_wait == "passive":
        # With OpenMP's default spin-waiting, a PyTorch model on 2 threads runs 10-100x slower as soon as
        # another process wants a core (each op waits for a descheduled thread); PASSIVE sleeps instead.
        # ONNX Runtime's own pool gets the same (allow_spinning=0: AsteriskOnnxEmbedder's spin=False).
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    # Rounds go over all settings in turn, so a busy spell of a shared machine hits every setting alike.
    rounds = [[] for _ in specs]
    jobs = [(r, i) for r in range(args.rounds) for i in range(len(specs))]
    for round_index, index in tqdm(jobs, desc="settings x rounds", file=sys.stderr):
        spec = specs[index]
        spec_file = work_dir / f"spec_{index}.json"
        result_file = work_dir / f"result_{index}_round{round_index}.json"
        spec_file.write_text(json.dumps({**spec, "texts_file": str(texts_file), "result_file": str(result_file)}))
        process = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", str(spec_file)], env=env,
                                 check=False)
        if process.returncode != 0:
            raise RuntimeError(f"The worker for {spec['model']} / {spec['setting']} exited with {process.returncode}.")
        rounds[index].append(json.loads(result_file.read_text()))
    return [{**spec, **_median_of_rounds(results)} for spec, results in zip(specs, rounds)]


def _median_of_rounds(results: list[dict]) -> dict:
    """One worker result whose numbers are the medians over rounds (rows matched by data and batch size)."""

    def median(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    merged = {key: median([r[key] for r in results]) if isinstance(value, (int, float)) else value
              for key, value in results[0].items() if key != "rows"}
    merged["rows"] = []
    for position, row in enumerate(results[0]["rows"]):
        same = [r["rows"][position] for r in results]
        merged["rows"].append({
            key: median([s[key] for s in same]) if isinstance(value, (int, float)) and key != "batch_size" else value
            for key, value in row.items()
        })
        merged["rows"][-1]["sentences_per_s_rounds"] = [s["sentences_per_s"] for s in same]
    merged["rounds"] = len(results)
    return merged


def flatten(results: list[dict], teacher_model: str) -> list[dict]:
    """One row per (model, setting, data, batch size), each with its ratios to the teacher."""
    rows = []
    for result in results:
        for row in result["rows"]:
            rows.append({
                "model": result["model"], "setting": result["setting"], "kind": result["kind"],
                "device": result["device"], "dtype": result["dtype"], "threads": result["threads"],
                "data": row["data"], "batch_size": row["batch_size"],
                **{k: v for k, v in row.items() if k not in ("data", "batch_size")},
                "import_s": result["import_s"], "load_s": result["load_s"], "first_call_ms": result["first_call_ms"],
                "rss_after_import_mb": result["rss_after_import_mb"], "process_peak_rss_mb": result["peak_rss_mb"],
            })
    for row in rows:
        # The teacher in the same kind of setting: encode for encode rows, pre-tokenised for pre-tokenised rows.
        same_kind = "pretokenized" if row["setting"].startswith("pretokenized") else "pytorch-fp32"
        reference = next(
            (r for r in rows if r["model"] == teacher_model and r["setting"].startswith(same_kind)
             and r["data"] == row["data"] and r["batch_size"] == row["batch_size"]),
            None,
        )
        row["ratio_to_teacher"] = {
            metric: row[metric] / reference[metric] if reference and reference[metric] and row[metric] else None
            for metric in METRICS
        }
    return rows


def _find(rows, model, setting, data, batch_size):
    return next((r for r in rows if r["model"] == model and r["setting"] == setting and r["data"] == data
                 and r["batch_size"] == batch_size), None)


def evaluate_targets(rows: list[dict], asterisk_model: str | None) -> list[dict]:
    """The issue's targets, as measured in this run (short sentences; batch 32 unless said otherwise)."""
    if asterisk_model is None:
        return []
    targets = []

    def add(name, measured, goal, higher_is_better=True):
        if measured is None:
            return
        met = measured >= goal if higher_is_better else measured <= goal
        targets.append({"target": name, "goal": goal, "measured": measured, "met": met})

    pytorch = _find(rows, asterisk_model, "pytorch-fp32", "short", 32)
    int8 = _find(rows, asterisk_model, "onnx-int8", "short", 32)
    if pytorch:
        add("PyTorch fp32 sentences/s vs teacher (x)", pytorch["ratio_to_teacher"]["sentences_per_s"], 8.0)
    if pytorch and int8:
        add("ONNX int8 vs PyTorch fp32 sentences/s (x)", int8["sentences_per_s"] / pytorch["sentences_per_s"], 1.5)
    for setting in ("pytorch-fp32", "onnx-fp32", "onnx-int8"):
        single = _find(rows, asterisk_model, setting, "short", 1)
        if single:
            tokens = f"~{single['mean_tokens']:.0f} tokens"
            add(f"{setting} batch-1 latency p50 (ms, {tokens})", single["latency_ms_p50"], 2.0, False)
            add(f"{setting} model load to first embedding (s)", single["load_s"], 0.5, False)
        batch = _find(rows, asterisk_model, setting, "short", 32)
        if batch:
            add(f"{setting} peak RSS, encoding batches of 32 short texts (MB)", batch["peak_rss_mb"], 400.0, False)
    gpu = [
        r for r in rows
        if r["model"] == asterisk_model and r["setting"].startswith("pretokenized") and r["device"].startswith("cuda")
    ]
    if gpu:
        add("GPU pre-tokenised sentences/s (best batch size)", max(r["sentences_per_s"] for r in gpu), 500_000.0)
    return targets


def _cpu_model_name() -> str:
    try:
        output = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in output.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        import platform

        return platform.processor() or "unknown"


def _fmt(value, digits=0):
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def write_markdown(path: Path, report: dict) -> None:
    meta = report["meta"]
    rounds = f", then of {meta['rounds']} rounds" if meta["rounds"] > 1 else ""
    waiting = "sleep: OMP_WAIT_POLICY=PASSIVE, ORT allow_spinning=0" if meta["thread_wait"] == "passive" else "spin"
    lines = [
        "# Encode speed", "",
        f"- Command: `{meta['command']}`",
        (f"- CPU: {meta['cpu_model']}, {meta['cpu_count']} cores visible, {meta['threads']} threads per model "
         f"(idle threads {waiting}); "
         f"load average {meta['load_average_start']} at start, {meta['load_average_end']} at end"),
        (f"- Data: {meta['data']['short']['num_texts']} short texts "
         f"(~{meta['data']['short']['mean_words']:.1f} words), "
         f"{meta['data']['long']['num_texts']} long texts ({LONG_WORDS} words); medians of {meta['repeats']} timed "
         f"passes per measurement{rounds}"),
        "",
        "## Throughput and latency (tokenisation included)", "",
        ("| model | setting | data | batch | sentences/s | tokens/s | x teacher | p50 ms | p95 ms | tokenisation share "
         "| peak RSS MB |"),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        ratio = r["ratio_to_teacher"]["sentences_per_s"]
        lines.append(
            f"| {r['model']} | {r['setting']} | {r['data']} | {r['batch_size']} | {_fmt(r['sentences_per_s'])} | "
            f"{_fmt(r['tokens_per_s'])} | {_fmt(ratio, 2)} | {_fmt(r['latency_ms_p50'], 2)} | "
            f"{_fmt(r['latency_ms_p95'], 2)} | {_fmt(100 * r['tokenize_share'], 0)}% | {_fmt(r['peak_rss_mb'])} |"
        )
    lines += [
        "", "## Load and memory (one process per model and setting)", "",
        ("| model | setting | import s | load s (to first embedding) | of which first call ms | RSS after import MB "
         "| peak RSS MB (whole run) |"),
        "|---|---|---|---|---|---|---|",
    ]
    for m in report["processes"]:
        lines.append(
            f"| {m['model']} | {m['setting']} | {_fmt(m['import_s'], 2)} | {_fmt(m['load_s'], 3)} | "
            f"{_fmt(m['first_call_ms'], 1)} | {_fmt(m['rss_after_import_mb'])} | {_fmt(m['peak_rss_mb'])} |"
        )
    if report["targets"]:
        lines += ["", "## Targets", "", "| target | goal | measured | met |", "|---|---|---|---|"]
        for t in report["targets"]:
            lines.append(f"| {t['target']} | {t['goal']:g} | {t['measured']:.2f} | {'yes' if t['met'] else 'NO'} |")
    path.write_text("\n".join(lines) + "\n")


def plot(path: Path, rows: list[dict]) -> None:
    """Sentences/s per model and setting, by batch size, for short and long texts (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    encode_rows = [r for r in rows if not r["setting"].startswith("pretokenized")]
    series = list(dict.fromkeys((r["model"], r["setting"]) for r in encode_rows))
    batch_sizes = sorted({r["batch_size"] for r in encode_rows})
    figure, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    width = 0.8 / max(len(series), 1)
    for axis, data in zip(axes, ("short", "long")):
        for index, (model, setting) in enumerate(series):
            values, ratios = [], []
            for batch_size in batch_sizes:
                row = _find(encode_rows, model, setting, data, batch_size)
                values.append(row["sentences_per_s"] if row else 0)
                ratios.append(row["ratio_to_teacher"]["sentences_per_s"] if row else None)
            positions = [b + (index - (len(series) - 1) / 2) * width for b in range(len(batch_sizes))]
            bars = axis.bar(positions, values, width, label=f"{model} {setting}")
            for bar, ratio in zip(bars, ratios):
                if ratio is not None and bar.get_height() > 0:
                    axis.annotate(f"{ratio:.1f}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                                  ha="center", va="bottom", fontsize=6, rotation=90)
        axis.set_yscale("log")
        axis.set_xticks(range(len(batch_sizes)), [f"batch {b}" for b in batch_sizes])
        axis.set_title(f"{data} texts" + (" (~15 words)" if data == "short" else f" ({LONG_WORDS} words)"))
        axis.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("sentences / s (tokenisation included; label: x teacher)")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", type=Path, help="where results.json, results.md and speed.png go")
    parser.add_argument(
        "--model", action="extend", nargs="+",
        help=f"models to run (default: {RANDOM_ASTERISK} {WORDLLAMA}); the teacher is always added",
    )
    parser.add_argument("--data_dir", type=Path, default=None,
                        help="shared data (default: train.data_paths.data_root())")
    parser.add_argument("--num_short", type=int, default=1024)
    parser.add_argument("--num_long", type=int, default=512)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 32, 256])
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per measurement (the median is kept)")
    parser.add_argument(
        "--rounds", type=int, default=1,
        help="run all settings this many times, in turn, each in fresh processes; report medians (shared machines)",
    )
    parser.add_argument("--latency_calls", type=int, default=200, help="at most this many timed calls per latency")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per model (torch, ONNX Runtime, Rust)")
    parser.add_argument("--settings", nargs="+", default=None, help="only settings starting with these names")
    parser.add_argument(
        "--thread_wait", choices=("passive", "spin"), default="passive",
        help="idle worker threads sleep (passive: OMP_WAIT_POLICY=PASSIVE, ONNX Runtime allow_spinning=0; "
        "steady on a shared machine) or spin (the libraries' defaults; best on an idle one)",
    )
    parser.add_argument("--compile", action="store_true", help="also run Asterisk with model.compile(dynamic=True)")
    parser.add_argument("--pretokenized", action="store_true", help="also time forward passes on pre-tokenised batches")
    parser.add_argument("--device", default="cpu", help="device of the pre-tokenised setting (cuda: implied)")
    parser.add_argument(
        "--dtype", choices=sorted(DTYPE_NAMES), default=None,
        help="dtype of the pre-tokenised setting (default: bfloat16 on cuda, else float32)",
    )
    parser.add_argument("--pretokenized_batch_sizes", type=int, nargs="+", default=[32, 256, 2048])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is None and args.output_dir is None:
        parser.error("--output_dir is required")
    return args


def main(argv=None) -> dict | None:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.worker is not None:
        spec = json.loads(args.worker.read_text())
        Path(spec["result_file"]).write_text(json.dumps(run_worker(spec)))
        return None

    from asterisk_embeddings.onnx_encoder import FP32_FILE_NAME, int8_file_name
    from train.data_paths import data_root

    output_dir = args.output_dir
    work_dir = output_dir / "work"
    work_dir.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    texts = load_sentences(args.data_dir or data_root(), args.num_short, args.num_long, args.seed)
    texts_file = work_dir / "texts.json"
    texts_file.write_text(json.dumps(texts))

    specs = plan_settings(args)
    for spec in specs:
        if spec["kind"] == "asterisk":
            folder, onnx_folder = prepare_asterisk(spec["name"], work_dir)
            spec["path"] = str(onnx_folder if spec["setting"].startswith("onnx-") else folder)
            spec["onnx_file"] = {"onnx-fp32": FP32_FILE_NAME, "onnx-int8": int8_file_name()}.get(spec["setting"])
        elif spec["kind"] == "transformer":
            spec["path"] = spec["name"]
    results = run_settings(specs, texts_file, work_dir, args)

    teacher_model = _display_name(TEACHER)
    rows = flatten(results, teacher_model)
    asterisk_model = next((s["model"] for s in specs if s["kind"] == "asterisk"), None)
    report = {
        "meta": {
            "command": " ".join(["python", "benchmarks/encode.py", *(argv if argv is not None else sys.argv[1:])]),
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "cpu_model": _cpu_model_name(),
            "cpu_count": os.cpu_count(),
            "threads": args.threads,
            "thread_wait": args.thread_wait,
            "load_average_start": [round(x, 2) for x in load_start],
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
            "repeats": args.repeats,
            "rounds": args.rounds,
            "teacher": teacher_model,
            "gpu": next((r["device_name"] for r in results if r.get("device_name")), None),
            "versions": {k: v for r in results for k, v in r["versions"].items()},
            "data": {
                name: {
                    "num_texts": len(values),
                    "mean_words": sum(len(t.split()) for t in values) / len(values),
                    "sources": list(SHORT_SOURCES) if name == "short" else [LONG_SOURCE],
                }
                for name, values in texts.items()
            },
        },
        "results": rows,
        "processes": [
            {k: r[k] for k in ("model", "setting", "import_s", "load_s", "first_call_ms", "rss_after_import_mb",
                               "rss_after_load_mb", "peak_rss_mb")}
            for r in results
        ],
        "targets": evaluate_targets(rows, asterisk_model),
    }
    (output_dir / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(output_dir / "results.md", report)
    plot(output_dir / "speed.png", rows)
    print((output_dir / "results.md").read_text())
    return report


if __name__ == "__main__":
    main()
