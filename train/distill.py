"""Distil a sentence-embedding teacher into an Asterisk student.

    accelerate launch train/distill.py --config train/configs/cpu.yaml [--key value ...]
    python train/distill.py --config train/configs/tiny.yaml --output_dir outputs/tiny

One CPU, one GPU, several GPUs or nodes are launcher settings (`accelerate launch --multi_gpu ...`, or a
file from train/accelerate_configs/); this script never picks a device, precision or distribution itself.
`batch_size` is the global batch: accelerate splits each batch across processes, so a recipe behaves the
same on any number of them.

Reads top to bottom: config, data, teacher targets, student, loss, loop, export.
"""

import json
import math
import os
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if __package__ in (None, ""):  # run as a file: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from accelerate import Accelerator, DataLoaderConfiguration  # noqa: E402
from accelerate.utils import set_seed  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402
from transformers import get_scheduler  # noqa: E402

from modeling_asterisk import AsteriskConfig, AsteriskModel, build_tokenizer  # noqa: E402
from modeling_asterisk.saving import save_model_folder  # noqa: E402
from train.batching import DistillationCollator, LengthGroupedBatchSampler  # noqa: E402
from train.cli_config import parse_config  # noqa: E402
from train.corpus import column_array, load_corpus, split_heldout, tokenize_corpus  # noqa: E402
from train.losses import DistillationLoss  # noqa: E402
from train.student_init import init_from_teacher_tokens, pca_reduce, teacher_token_embeddings  # noqa: E402
from train.targets import compute_teacher_targets  # noqa: E402
from train.teacher import DEFAULT_TEACHER  # noqa: E402
from train.tracking import JSONLinesTracker, plot_training_curves  # noqa: E402

INIT_CHOICES = ("teacher_tokens", "random")
TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
TARGET_SPACES = ("projection", "pca")


@dataclass
class DistillConfig:
    """Every key can be set in a preset (train/configs/*.yaml) or on the command line (--key value)."""

    output_dir: str = "outputs/distill"  # the model folder; checkpoints/ and logs/ live inside it
    config: str | None = None  # the preset file this run was read from (recorded, not read again)
    # Data
    corpus: list[str] = field(default_factory=lambda: ["distill_corpus/sentences.tsv.gz"])  # under the data root
    text_column: str = "text"
    max_sentences: int | None = None  # a seeded random subset of the corpus; None = all of it
    heldout_sentences: int = 2000  # never trained on; the held-out cosine to the teacher is measured on them
    max_length: int = 128  # student tokens per text; the teacher reads the same (decoded) text
    # Teacher
    teacher: str = DEFAULT_TEACHER  # folder or Hub id; the default is read offline from PyPI
    teacher_dim: int | None = 384  # expected teacher embedding size (None: accept any)
    teacher_dtype: str = "bfloat16"  # forward dtype for targets; bf16 vs fp32 targets: cosine >= 0.9999
    teacher_max_length: int | None = None  # None: the teacher folder's max_seq_length
    teacher_batch_size: int = 128
    targets_chunk_rows: int = 4096  # rows per unit of work (and of resumption) when encoding targets
    # Student
    model: dict = field(default_factory=dict)  # AsteriskConfig overrides; {} = the paper's architecture
    init: str = "teacher_tokens"  # or "random" (the paper)
    target_space: str = "projection"  # trainable 256->384 map dropped at export, or fixed "pca" of the targets
    # Loss
    cosine_weight: float = 1.0
    mse_weight: float = 1.0
    relational_weight: float = 0.0
    relational_kind: str = "kl"
    relational_temperature: float = 0.05
    # Optimisation
    batch_size: int = 256  # global batch per forward pass (split across processes)
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    lr_scheduler: str = "cosine"
    max_grad_norm: float = 1.0
    epochs: float = 5
    max_steps: int | None = None  # overrides epochs when set
    seed: int = 42
    # Bookkeeping
    log_every: int = 10
    eval_every: int = 250
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    resume_from_checkpoint: str | None = None  # "latest" or a checkpoint folder
    cache_dir: str = ".cache"  # teacher targets, token init, datasets cache
    num_workers: int = 0
    max_nonfinite_steps: int = 25  # consecutive skipped steps before giving up

    def __post_init__(self):
        if isinstance(self.corpus, str):
            self.corpus = [self.corpus]
        checks = [
            (self.init in INIT_CHOICES, f"init must be one of {INIT_CHOICES}"),
            (self.target_space in TARGET_SPACES, f"target_space must be one of {TARGET_SPACES}"),
            (self.teacher_dtype in TORCH_DTYPES, f"teacher_dtype must be one of {tuple(TORCH_DTYPES)}"),
            (self.batch_size > 0 and self.gradient_accumulation_steps > 0, "batch sizes must be positive"),
            (self.max_steps is None or self.max_steps > 0, "max_steps must be positive"),
            (self.epochs > 0, "epochs must be positive"),
            (min(self.log_every, self.eval_every, self.checkpoint_every) > 0, "log/eval/checkpoint intervals must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


class StudentWithTeacherHead(nn.Module):
    """The student plus the map from its embedding into the teacher's space (dropped at export)."""

    def __init__(self, student: AsteriskModel, teacher_dim: int):
        super().__init__()
        self.student = student
        self.to_teacher = nn.Linear(student.config.projection_dim, teacher_dim)

    def forward(self, input_ids, attention_mask):
        embedding = self.student(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        return self.to_teacher(embedding)


def main(argv: list[str] | None = None) -> Path:
    started = time.perf_counter()
    cfg = parse_config(DistillConfig, argv)
    output_dir = Path(cfg.output_dir)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available():
        # `accelerate launch --multi_gpu --num_processes N` on a machine without GPUs otherwise starts N
        # independent single-process runs; this makes them one gloo process group on the CPU.
        os.environ.setdefault("ACCELERATE_USE_CPU", "1")
    accelerator = Accelerator(
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        dataloader_config=DataLoaderConfiguration(split_batches=True),
        log_with=[JSONLinesTracker("distill", output_dir / "logs")],
    )
    if accelerator.num_processes != int(os.environ.get("WORLD_SIZE", "1")):
        raise RuntimeError(f"Launched {os.environ['WORLD_SIZE']} processes but accelerate formed a group of "
                           f"{accelerator.num_processes}; check the launcher configuration.")
    if cfg.batch_size % accelerator.num_processes:
        raise ValueError(f"batch_size={cfg.batch_size} must be divisible by the {accelerator.num_processes} processes.")
    set_seed(cfg.seed)
    log = accelerator.print

    # ---- Data: load, clean, tokenise (cached), split off the held-out slice --------------------------------
    tokenizer = build_tokenizer(cfg.max_length)
    datasets_cache = str(Path(cfg.cache_dir) / "datasets")
    with accelerator.main_process_first():
        corpus, corpus_stats = load_corpus(cfg.corpus, cfg.text_column, cfg.max_sentences, cfg.seed, datasets_cache)
        tokenized = tokenize_corpus(corpus, tokenizer, cfg.max_length)
    corpus_stats.truncated = int(column_array(tokenized, "truncated").sum())
    log(f"Corpus: {corpus_stats.kept:,} texts ({corpus_stats.truncated:,} truncated to {cfg.max_length} tokens).")

    # ---- Teacher targets: from the cache, or encoded now (sharded across processes) ------------------------
    targets_started = time.perf_counter()
    targets = compute_teacher_targets(
        accelerator, tokenized, tokenizer, cfg.teacher, cfg.cache_dir, cfg.teacher_dtype, cfg.teacher_max_length,
        cfg.teacher_batch_size, cfg.teacher_dim, cfg.targets_chunk_rows,
    )
    targets_seconds = time.perf_counter() - targets_started
    how = "read from cache" if targets.from_cache else f"computed in {targets_seconds:.0f} s"
    log(f"Teacher targets: {targets.meta['rows']:,} x {targets.dim} from {targets.folder} ({how}).")
    train_set, heldout_set = split_heldout(tokenized, cfg.heldout_sentences, cfg.seed)
    train_lengths = column_array(train_set, "length")
    train_set = train_set.select_columns(["input_ids", "row_id"])
    heldout_set = heldout_set.select_columns(["input_ids", "row_id"])

    # ---- Student ----------------------------------------------------------------------------------------------
    student_config = AsteriskConfig(**{"max_position_embeddings": max(128, cfg.max_length), **cfg.model})
    student = AsteriskModel(student_config)
    if cfg.init == "teacher_tokens":
        with accelerator.main_process_first():  # the main process fills the cache, the others read it
            token_vectors = teacher_token_embeddings(tokenizer, cfg.teacher, student_config.hidden_size, cfg.cache_dir,
                                                     device=accelerator.device, dtype=TORCH_DTYPES[cfg.teacher_dtype])
        init_from_teacher_tokens(student, token_vectors)
    model = StudentWithTeacherHead(student, targets.dim)
    if cfg.target_space == "pca":
        # Fixed map: the student learns the targets' top principal coordinates; the map adds the rest back.
        rows = np.random.default_rng(cfg.seed).permutation(column_array(train_set, "row_id"))[:50_000]
        sample = torch.from_numpy(targets.rows(rows))
        mean = sample.mean(0)
        _, _, components = torch.linalg.svd(sample - mean, full_matrices=False)
        with torch.no_grad():
            model.to_teacher.weight.copy_(components[: student_config.projection_dim].T)
            model.to_teacher.bias.copy_(mean)
        model.to_teacher.requires_grad_(False)
    loss_fn = DistillationLoss(cfg.cosine_weight, cfg.mse_weight, cfg.relational_weight, cfg.relational_kind,
                               cfg.relational_temperature)

    # ---- Optimiser, schedule, batches ----------------------------------------------------------------------
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    # fused: one kernel for all parameters; the default per-tensor loop is ~50x slower on CPU for the
    # 12.9M-parameter token table.
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.learning_rate, fused=True)
    batch_sampler = LengthGroupedBatchSampler(train_lengths, cfg.batch_size, cfg.seed)
    collator = DistillationCollator(targets, student_config.pad_token_id)
    train_loader = DataLoader(train_set, batch_sampler=batch_sampler, collate_fn=collator, num_workers=cfg.num_workers)
    heldout_loader = DataLoader(heldout_set, batch_size=256, collate_fn=collator)
    steps_per_epoch = len(batch_sampler) // cfg.gradient_accumulation_steps
    if steps_per_epoch == 0:
        raise ValueError("Fewer batches than gradient_accumulation_steps: lower batch_size or accumulation.")
    total_steps = cfg.max_steps or math.ceil(cfg.epochs * steps_per_epoch)
    scheduler = get_scheduler(cfg.lr_scheduler, optimizer, num_warmup_steps=int(cfg.warmup_ratio * total_steps),
                              num_training_steps=total_steps)
    model, optimizer, train_loader, scheduler = accelerator.prepare(model, optimizer, train_loader, scheduler)
    accelerator.init_trackers("distill", config={k: v for k, v in asdict(cfg).items()})

    # ---- Resume ------------------------------------------------------------------------------------------------
    progress = {"step": 0, "batches": 0, "train_seconds": 0.0, "sentences": 0, "tokens": 0, "nonfinite_skipped": 0}
    resumed_from = None
    if cfg.resume_from_checkpoint:
        checkpoint = find_checkpoint(output_dir, cfg.resume_from_checkpoint)
        accelerator.load_state(str(checkpoint))
        progress = json.loads((checkpoint / "progress.json").read_text())
        resumed_from = str(checkpoint)
        log(f"Resumed from {checkpoint} at step {progress['step']}.")

    # ---- Loop ----------------------------------------------------------------------------------------------------
    batches_per_epoch = len(batch_sampler)
    bar = tqdm(total=total_steps, initial=progress["step"], desc="Distilling", unit="step",
               disable=not accelerator.is_local_main_process)
    window = {"loss": 0.0, "count": 0, "sentences": 0, "tokens": 0, "seconds": 0.0}
    parts_window: dict[str, float] = {}
    heldout_cosine = None
    consecutive_nonfinite = 0
    model.train()
    while progress["step"] < total_steps:
        epoch, done_in_epoch = divmod(progress["batches"], batches_per_epoch)
        batch_sampler.set_epoch(epoch)
        loader = accelerator.skip_first_batches(train_loader, done_in_epoch) if done_in_epoch else train_loader
        tick = time.perf_counter()
        for batch in loader:
            with accelerator.accumulate(model):
                predicted = model(batch["input_ids"], batch["attention_mask"])
                loss, parts = loss_fn(predicted, batch["targets"])
                accelerator.backward(loss)
                grad_norm = None
                if accelerator.sync_gradients:
                    grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                    if torch.isfinite(grad_norm):
                        optimizer.step()
                        scheduler.step()
                        consecutive_nonfinite = 0
                    else:  # a NaN/inf step is skipped (as on bf16 GPUs), never applied
                        progress["nonfinite_skipped"] += 1
                        consecutive_nonfinite += 1
                        if consecutive_nonfinite > cfg.max_nonfinite_steps:
                            bar.close()  # so the error, not a half-drawn bar, is the last line the user sees
                            raise FloatingPointError(f"{consecutive_nonfinite} consecutive non-finite steps at step "
                                                     f"{progress['step']}: lower learning_rate or check the data.")
                    optimizer.zero_grad(set_to_none=True)
            progress["batches"] += 1
            sentences = batch["input_ids"].shape[0] * accelerator.num_processes
            tokens = int(batch["attention_mask"].sum()) * accelerator.num_processes
            progress["sentences"] += sentences
            progress["tokens"] += tokens
            window["sentences"] += sentences
            window["tokens"] += tokens
            if torch.isfinite(loss):
                window["loss"] += loss.item()
                window["count"] += 1
                for name, value in parts.items():
                    parts_window[name] = parts_window.get(name, 0.0) + value.item()
            if not accelerator.sync_gradients:
                continue

            progress["step"] += 1
            now = time.perf_counter()
            window["seconds"] += now - tick
            progress["train_seconds"] += now - tick
            bar.update(1)
            step = progress["step"]
            if step % cfg.log_every == 0 or step == total_steps:
                count = max(window["count"], 1)
                metrics = {
                    "loss": window["loss"] / count,
                    **{f"loss_{name}": value / count for name, value in parts_window.items()},
                    "lr": scheduler.get_last_lr()[0],
                    "grad_norm": float(grad_norm) if grad_norm is not None else None,
                    "sentences_per_s": window["sentences"] / max(window["seconds"], 1e-9),
                    "tokens_per_s": window["tokens"] / max(window["seconds"], 1e-9),
                    "epoch": progress["batches"] / batches_per_epoch,
                }
                accelerator.log(metrics, step=step)
                bar.set_postfix(loss=f"{metrics['loss']:.4f}", cos=f"{heldout_cosine or 0:.4f}",
                                sent_s=f"{metrics['sentences_per_s']:.0f}")
                window = {"loss": 0.0, "count": 0, "sentences": 0, "tokens": 0, "seconds": 0.0}
                parts_window = {}
            if step % cfg.eval_every == 0 or step == total_steps:
                heldout_cosine = heldout_cosine_to_teacher(accelerator, model, heldout_loader)
                accelerator.log({"heldout_cosine": heldout_cosine}, step=step)
                bar.set_postfix(cos=f"{heldout_cosine:.4f}")
            if step % cfg.checkpoint_every == 0 or step == total_steps:
                save_checkpoint(accelerator, output_dir, progress, cfg.keep_checkpoints)
            tick = time.perf_counter()
            if step >= total_steps:
                break
    bar.close()
    print(f"[rank {accelerator.process_index}/{accelerator.num_processes}] trained {progress['batches']} batches of "
          f"{cfg.batch_size // accelerator.num_processes} texts on {accelerator.device}", flush=True)

    # ---- Export: the student alone, atomically, with its training record -----------------------------------
    if heldout_cosine is None:  # resumed after the last step: measure once more
        heldout_cosine = heldout_cosine_to_teacher(accelerator, model, heldout_loader)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        info = training_info(cfg, accelerator, corpus_stats, len(train_set), len(heldout_set), progress, heldout_cosine,
                             targets_seconds, time.perf_counter() - started, resumed_from, targets.meta)
        plot_training_curves(output_dir / "logs" / "metrics.jsonl", output_dir / "logs" / "training_curves.png")
        save_model_folder(
            accelerator.unwrap_model(model).student, tokenizer, output_dir, overwrite=True,
            extra_files={"training_info.json": json.dumps(info, indent=2) + "\n",
                         "training_curves.png": (output_dir / "logs" / "training_curves.png").read_bytes()},
        )
        log(f"Saved the student to {output_dir} (held-out cosine to teacher {heldout_cosine:.4f}).")
    accelerator.end_training()
    return output_dir


@torch.no_grad()
def heldout_cosine_to_teacher(accelerator, model, heldout_loader) -> float:
    """Mean cosine between the student (mapped into teacher space) and the teacher on the held-out texts."""
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.eval()
    total, count = 0.0, 0
    with accelerator.autocast():
        for batch in heldout_loader:
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            predicted = unwrapped(batch["input_ids"], batch["attention_mask"]).float()
            total += torch.nn.functional.cosine_similarity(predicted, batch["targets"], dim=-1).sum().item()
            count += len(predicted)
    unwrapped.train()
    return total / count


def find_checkpoint(output_dir: Path, which: str) -> Path:
    """`latest` = the newest complete checkpoint in output_dir/checkpoints; anything else is a folder path."""
    if which != "latest":
        path = Path(which)
        if not (path / "progress.json").is_file():
            raise FileNotFoundError(f"{path} is not a complete checkpoint (no progress.json).")
        return path
    complete = sorted(p for p in (output_dir / "checkpoints").glob("step_*")
                      if p.is_dir() and (p / "progress.json").is_file())
    if not complete:
        raise FileNotFoundError(f"No complete checkpoint in {output_dir / 'checkpoints'} to resume from.")
    return complete[-1]


def save_checkpoint(accelerator, output_dir: Path, progress: dict, keep: int) -> None:
    """save_state into a staging folder, then rename: `progress.json` is written last, marking it complete."""
    final = output_dir / "checkpoints" / f"step_{progress['step']:08d}"
    staging = final.with_name(final.name + ".partial")
    if accelerator.is_main_process and staging.exists():
        shutil.rmtree(staging)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (staging / "progress.json").write_text(json.dumps(progress))
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
        for old in sorted(p for p in final.parent.glob("step_*") if not p.name.endswith(".partial"))[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()


def hardware_description(accelerator) -> dict:
    device = accelerator.device
    info = {"device": device.type, "num_processes": accelerator.num_processes,
            "mixed_precision": accelerator.mixed_precision, "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "platform": platform.platform()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
        info["cpu"] = f"{cpu} ({os.cpu_count()} logical cores)"
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    return info


def training_info(cfg, accelerator, corpus_stats, n_train, n_heldout, progress, heldout_cosine, targets_seconds,
                  wall_seconds, resumed_from, targets_meta) -> dict:
    train_seconds = progress["train_seconds"]
    return {
        "teacher": cfg.teacher,
        "teacher_dim": targets_meta["dim"],
        "corpus": cfg.corpus,
        "corpus_stats": asdict(corpus_stats),
        "train_sentences": n_train,
        "heldout_sentences": n_heldout,
        "max_length": cfg.max_length,
        "steps": progress["step"],
        "epochs": round(progress["batches"] / max(1, n_train // cfg.batch_size), 3),
        "sentences_seen": progress["sentences"],
        "global_batch_size": cfg.batch_size * cfg.gradient_accumulation_steps,
        "init": cfg.init,
        "target_space": cfg.target_space,
        "loss": {"cosine": cfg.cosine_weight, "mse": cfg.mse_weight, "relational": cfg.relational_weight,
                 "relational_kind": cfg.relational_kind},
        "final_heldout_cosine": round(heldout_cosine, 5),
        "train_seconds": round(train_seconds, 1),
        "teacher_targets_seconds": round(targets_seconds, 1),
        "wall_seconds": round(wall_seconds, 1),
        "train_sentences_per_s": round(progress["sentences"] / max(train_seconds, 1e-9), 1),
        "train_tokens_per_s": round(progress["tokens"] / max(train_seconds, 1e-9), 1),
        "nonfinite_steps_skipped": progress["nonfinite_skipped"],
        "resumed_from": resumed_from,
        "hardware": hardware_description(accelerator),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "config": asdict(cfg),
    }


if __name__ == "__main__":
    main()
