"""Distil one or more sentence-embedding teachers into an Asterisk student.

    accelerate launch train/distill.py --config cpu [--key value ...]
    python train/distill.py --config tiny --output_dir outputs/tiny
    accelerate launch train/distill.py --config release --targets_only      # the teacher pass alone

One CPU, one GPU, several GPUs or nodes are launcher settings (`accelerate launch --multi_gpu ...`, or a
file from train/accelerate_configs/); this script never picks a device, precision or distribution itself.
`batch_size` is the global batch: accelerate splits each batch across processes, so a recipe behaves the
same on any number of them.

`output_dir` is the run folder: `run.json` (the settings), `checkpoints/`, `logs/`, and at the end `model/`,
the exported model folder and nothing else. One run writes to a folder at a time.

Reads top to bottom: config, data, teacher targets, student, loss, loop, export.
"""

from __future__ import annotations

import json
import math
import os
import platform
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

from asterisk_embeddings.saving import save_model_folder  # noqa: E402
from asterisk_embeddings.tokenizer import build_tokenizer  # noqa: E402
from modeling_asterisk import AsteriskConfig, AsteriskModel  # noqa: E402
from train.data_paths import cache_home  # noqa: E402
from train.distillation.batching import DistillationCollator, LengthGroupedBatchSampler  # noqa: E402
from train.distillation.config import ConfigError, parse_config  # noqa: E402
from train.distillation.corpus import column_array, load_corpus, split_rows, teacher_inputs, tokenize_corpus  # noqa: E402
from train.distillation.losses import DistillationLoss  # noqa: E402
from train.distillation.optimization import build_optimizers, clip_gradients  # noqa: E402
from train.distillation.run_folder import RunFolder, RunFolderError  # noqa: E402
from train.distillation.student_init import init_from_teacher_tokens, teacher_token_embeddings  # noqa: E402
from train.distillation.targets import teacher_targets  # noqa: E402
from train.distillation.teacher import DEFAULT_TEACHER, TeacherSpec  # noqa: E402
from train.distillation.tracking import JSONLinesTracker, plot_training_curves  # noqa: E402

INIT_CHOICES = ("teacher_tokens", "random")
TARGET_SPACES = ("projection", "pca")
ATTENTION_KERNELS = ("sdpa", "eager")
MIXED_PRECISIONS = ("no", "bf16", "fp16")


@dataclass
class ExtraTeacher:
    """A further teacher (`extra_teachers` entries); the keys mean what the `teacher_*` keys mean."""

    name: str
    prompt: str | None = None
    prompt_name: str | None = None
    dim: int | None = None
    dtype: str = "auto"
    max_length: int | None = None
    batch_size: int = 32
    trust_remote_code: bool = False
    max_texts: int | None = None
    weight: float = 1.0


@dataclass
class DistillConfig:
    """Every key can be set in a preset (train/configs/*.yaml, or `--config NAME`) or on the command line."""

    output_dir: str = "outputs/distill"  # the run folder: run.json, checkpoints/, logs/, model/
    config: str | None = None  # the preset this run was read from (recorded, not read again)
    # Data
    corpus: list[str] = field(default_factory=lambda: ["distill_corpus/sentences.tsv.gz"])  # under the data root
    text_column: str = "text"
    max_sentences: int | None = None  # a seeded random subset of the corpus; None = all of it
    heldout_sentences: int = 2000  # never trained on; the held-out cosine to each teacher is measured on them
    max_length: int = 128  # student tokens per text: the exported model's max_position_embeddings
    # Teacher (any sentence-transformers folder or cached Hub id); `extra_teachers` adds more
    teacher: str = DEFAULT_TEACHER  # folder or Hub id; the default is read offline from PyPI
    teacher_prompt: str | None = None  # text before every input; overrides teacher_prompt_name
    teacher_prompt_name: str | None = None  # one of the teacher's prompts; None: the folder's default prompt
    teacher_dim: int | None = None  # expected teacher embedding size, a check only (None: accept the teacher's)
    # Forward dtype of the teacher pass; "auto": bf16 where the hardware has it, else fp32 (bf16 vs fp32 targets:
    # cosine >= 0.9999; emulated bf16 is 5.5x slower than fp32 on an AVX2 CPU; teacher.fast_dtype).
    teacher_dtype: str = "auto"
    teacher_max_length: int | None = None  # None: the teacher folder's max_seq_length
    teacher_batch_size: int = 32
    teacher_trust_remote_code: bool = False
    teacher_max_texts: int | None = None  # training texts this teacher scores (a seeded sample); None: all
    teacher_weight: float = 1.0  # weight of this teacher's loss
    extra_teachers: list[dict] = field(default_factory=list, metadata={"schema": ExtraTeacher})
    targets_chunk_rows: int = 4096  # texts per shard (the unit of resumption) of the teacher pass
    targets_only: bool = False  # run the teacher pass and stop (cached for later runs)
    # Student
    model: dict = field(default_factory=dict, metadata={"schema": AsteriskConfig})  # AsteriskConfig overrides
    init: str = "teacher_tokens"  # or "random" (the paper)
    init_teacher: str | None = None  # whose token embeddings initialise the student; None: the (first) teacher
    init_with_prompt: bool = False  # whether the teacher's prompt precedes each token text for teacher_tokens
    target_space: str = "projection"  # trainable student->teacher map dropped at export, or fixed "pca"
    matryoshka_dims: list[int] | None = None  # e.g. [128, 64, 32]: prefixes trained to be used alone (+ the full size)
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
    # SparseAdam for the token table (the touched rows only), AdamW for the rest: ~half a CPU step saved; one
    # process only. See train/distillation/optimization.py.
    sparse_token_updates: bool = False
    # The student's attention kernel while training ("sdpa" or "eager"); the exported model keeps "sdpa". Under
    # bf16 autocast on a CPU, eager's backward is several times faster than sdpa's (docs/distillation.md).
    attn_implementation: str = "sdpa"
    # Autocast dtype of the student ("no", "bf16", "fp16"); None: the launcher's (`accelerate launch
    # --mixed_precision`). Set in a preset, it makes the preset's one command reproduce the run.
    mixed_precision: str | None = None
    epochs: float = 5
    max_steps: int | None = None  # overrides epochs when set
    seed: int = 42
    # Bookkeeping
    log_every: int = 10
    eval_every: int = 250
    checkpoint_every: int = 500
    keep_checkpoints: int = 2  # newest complete checkpoints kept (>= 1)
    resume_from_checkpoint: str | None = None  # "latest" or a checkpoint folder
    overwrite_output_dir: bool = False  # start over in a run folder that holds an earlier run
    cache_dir: str | None = None  # teacher targets, token init, datasets cache; None: ~/.cache/asterisk
    num_workers: int = 0
    max_nonfinite_steps: int = 25  # consecutive skipped steps before giving up
    max_skipped_fraction: float = 0.1  # a run that skipped more of its steps than this exports nothing

    def __post_init__(self):
        positive = ("max_length", "heldout_sentences", "batch_size", "gradient_accumulation_steps", "log_every",
                    "eval_every", "checkpoint_every", "keep_checkpoints", "targets_chunk_rows", "teacher_batch_size")
        checks = [(getattr(self, name) > 0, f"{name} must be a positive integer, got {getattr(self, name)}")
                  for name in positive]
        checks += [
            (self.output_dir.strip() != "", "output_dir must name a folder, got an empty string"),
            (self.init in INIT_CHOICES, f"init must be one of {INIT_CHOICES}, got {self.init!r}"),
            (self.attn_implementation in ATTENTION_KERNELS,
             f"attn_implementation must be one of {ATTENTION_KERNELS}, got {self.attn_implementation!r}"),
            (self.mixed_precision in (None, *MIXED_PRECISIONS),
             f"mixed_precision must be one of {MIXED_PRECISIONS} (or null: the launcher's), "
             f"got {self.mixed_precision!r}"),
            (self.target_space in TARGET_SPACES,
             f"target_space must be one of {TARGET_SPACES}, got {self.target_space!r}"),
            (self.max_steps is None or self.max_steps > 0, f"max_steps must be positive, got {self.max_steps}"),
            (self.max_sentences is None or self.max_sentences > 0,
             f"max_sentences must be positive, got {self.max_sentences}"),
            (self.epochs > 0, f"epochs must be positive, got {self.epochs}"),
            (self.learning_rate > 0, f"learning_rate must be positive, got {self.learning_rate}"),
            (0 <= self.max_skipped_fraction < 1,
             f"max_skipped_fraction must be in [0, 1), got {self.max_skipped_fraction}"),
            (self.teacher_max_texts is None or self.teacher_max_texts > 0,
             f"teacher_max_texts must be positive, got {self.teacher_max_texts}"),
            ("max_position_embeddings" not in self.model or self.model["max_position_embeddings"] == self.max_length,
             "the student's token limit is max_length; do not set model.max_position_embeddings"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        for i, extra in enumerate(self.extra_teachers):
            if "name" not in extra:
                raise ConfigError(f"extra_teachers[{i}] names no teacher (its 'name' key).")

    def teachers(self) -> list[tuple[TeacherSpec, int | None, float]]:
        """(spec, max_texts, loss weight) of every teacher, the main one first."""
        main = TeacherSpec(self.teacher, self.teacher_prompt, self.teacher_prompt_name, self.teacher_dtype,
                           self.teacher_max_length, self.teacher_dim, self.teacher_trust_remote_code,
                           self.teacher_batch_size)
        out = [(main, self.teacher_max_texts, self.teacher_weight)]
        for extra in map(lambda values: ExtraTeacher(**values), self.extra_teachers):
            spec = TeacherSpec(extra.name, extra.prompt, extra.prompt_name, extra.dtype, extra.max_length, extra.dim,
                               extra.trust_remote_code, extra.batch_size)
            out.append((spec, extra.max_texts, extra.weight))
        return out


    def init_teacher_spec(self) -> TeacherSpec:
        """The teacher whose token embeddings initialise the student: a configured teacher's spec if named."""
        specs = [spec for spec, _, _ in self.teachers()]
        if self.init_teacher is None:
            return specs[0]
        return next((spec for spec in specs if spec.name == self.init_teacher),
                    TeacherSpec(self.init_teacher, dtype=self.teacher_dtype))


# Keys that change what a run trains; a resumed run must keep them (the others are bookkeeping).
BOOKKEEPING_KEYS = ("output_dir", "config", "resume_from_checkpoint", "overwrite_output_dir", "log_every",
                    "eval_every", "checkpoint_every", "keep_checkpoints", "num_workers", "targets_only", "cache_dir",
                    "targets_chunk_rows", "teacher_batch_size", "max_nonfinite_steps", "max_skipped_fraction")


class StudentWithTeacherHeads(nn.Module):
    """The student plus maps from its embedding into each teacher's space (all dropped at export).

    One map per teacher and per Matryoshka prefix: the first `d` dimensions of the embedding go through their own
    `d -> teacher_dim` head, so every prefix is trained to stand on its own. Without Matryoshka the only prefix is
    the whole embedding.
    """

    def __init__(self, student: AsteriskModel, teacher_dims: list[int], prefix_dims: list[int]):
        super().__init__()
        self.student = student
        self.prefix_dims = prefix_dims
        self.to_teachers = nn.ModuleList(
            nn.ModuleList(nn.Linear(prefix, dim) for prefix in prefix_dims) for dim in teacher_dims
        )

    def forward(self, input_ids, attention_mask) -> list[list[torch.Tensor]]:
        """Per teacher, per prefix (the whole embedding first): the student mapped into the teacher's space."""
        embedding = self.student(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        return [[head(embedding[:, :prefix]) for head, prefix in zip(heads, self.prefix_dims)]
                for heads in self.to_teachers]


def main(argv: list[str] | None = None) -> Path:
    started = time.perf_counter()
    cfg = parse_config(DistillConfig, argv)
    run = RunFolder(cfg.output_dir)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available():
        # `accelerate launch --multi_gpu --num_processes N` on a machine without GPUs otherwise starts N
        # independent single-process runs; this makes them one gloo process group on the CPU.
        os.environ.setdefault("ACCELERATE_USE_CPU", "1")
    run.stop_with_launcher()
    run.lock(int(os.environ.get("RANK", "0")))
    settings = {k: v for k, v in asdict(cfg).items() if k not in BOOKKEEPING_KEYS}
    run.check_start(settings, cfg.resume_from_checkpoint, cfg.overwrite_output_dir, cfg.targets_only,
                    is_main=int(os.environ.get("RANK", "0")) == 0)
    accelerator = Accelerator(
        mixed_precision=cfg.mixed_precision,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        dataloader_config=DataLoaderConfiguration(split_batches=True),
        log_with=[JSONLinesTracker("distill", run.logs)],
    )
    if accelerator.num_processes != int(os.environ.get("WORLD_SIZE", "1")):
        raise RuntimeError(f"Launched {os.environ['WORLD_SIZE']} processes but accelerate formed a group of "
                           f"{accelerator.num_processes}; check the launcher configuration.")
    # A teacher pass alone trains nothing, so it may run on many processes whatever the training settings.
    if cfg.sparse_token_updates and accelerator.num_processes > 1 and not cfg.targets_only:
        raise ConfigError(f"sparse_token_updates needs a single training process, not {accelerator.num_processes} "
                          "(data-parallel processes all-reduce dense gradients); launch one process or set "
                          "--sparse_token_updates false.")
    if cfg.batch_size % accelerator.num_processes:
        raise ValueError(f"batch_size={cfg.batch_size} must be divisible by the {accelerator.num_processes} processes.")
    set_seed(cfg.seed)
    log = accelerator.print
    cache_root = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else cache_home()

    # ---- Data: load, clean, tokenise (cached), split off the held-out rows ------------------------------------
    tokenizer = build_tokenizer(cfg.max_length)
    with accelerator.main_process_first():
        corpus, corpus_stats = load_corpus(cfg.corpus, cfg.text_column, cfg.max_sentences, cfg.seed,
                                           str(cache_root / "datasets"))
        tokenized = tokenize_corpus(corpus, tokenizer, cfg.max_length)
    corpus_stats.truncated = int(column_array(tokenized, "truncated").sum())
    log(f"Corpus: {corpus_stats.kept:,} texts ({corpus_stats.truncated:,} truncated to {cfg.max_length} tokens).")
    heldout_rows, train_order = split_rows(len(tokenized), cfg.heldout_sentences, cfg.seed)

    # ---- Teacher targets: each teacher scores the held-out rows and its share of the training rows ------------
    targets_started = time.perf_counter()
    targets = []
    for spec, max_texts, _ in cfg.teachers():
        covered = train_order if max_texts is None else train_order[:max_texts]
        rows = np.concatenate([heldout_rows, covered])
        targets.append(teacher_targets(
            spec, rows, len(tokenized), lambda r: teacher_inputs(tokenized, tokenizer, r), cache_root,
            device=accelerator.device, process_index=accelerator.process_index,
            num_processes=accelerator.num_processes, barrier=accelerator.wait_for_everyone,
            chunk_rows=cfg.targets_chunk_rows, progress=accelerator.is_local_main_process,
        ))
        how = (f"{targets[-1].computed:,} encoded now, the rest read from cache" if targets[-1].computed
               else "read from cache")
        log(f"Teacher {spec.name}: {len(rows):,} texts x {targets[-1].dim} ({how}) in {targets[-1].store.folder}.")
    targets_seconds = time.perf_counter() - targets_started
    if cfg.targets_only:
        log(f"Teacher targets ready in {targets_seconds:.0f} s (--targets_only: no training).")
        run.unlock()
        return run.path
    covered = np.logical_or.reduce([t.has for t in targets])
    train_rows = train_order[covered[train_order]]  # training rows some teacher scored, in the seeded order
    train_set = tokenized.select(np.sort(train_rows)).select_columns(["input_ids", "row_id"])
    train_lengths = np.minimum(column_array(tokenized, "length")[np.sort(train_rows)], cfg.max_length)
    heldout_set = tokenized.select(heldout_rows).select_columns(["input_ids", "row_id"])
    log(f"Training on {len(train_rows):,} texts; {len(heldout_rows):,} held out.")

    # ---- Student ----------------------------------------------------------------------------------------------
    student_config = AsteriskConfig(**{**cfg.model, "max_position_embeddings": cfg.max_length})
    if cfg.matryoshka_dims:
        if not all(0 < d <= student_config.projection_dim for d in cfg.matryoshka_dims):
            raise ConfigError(f"matryoshka_dims {cfg.matryoshka_dims} must lie in [1, projection_dim="
                              f"{student_config.projection_dim}].")
        student_config.matryoshka_dims = sorted(set(cfg.matryoshka_dims) | {student_config.projection_dim},
                                                reverse=True)
    student = AsteriskModel(student_config)
    student.config._attn_implementation = cfg.attn_implementation  # training only: reset to sdpa at export
    if cfg.init == "teacher_tokens":
        init_spec = cfg.init_teacher_spec()
        with accelerator.main_process_first():  # the main process fills the cache, the others read it
            token_vectors = teacher_token_embeddings(tokenizer, init_spec, student_config.hidden_size, cache_root,
                                                     device=accelerator.device, with_prompt=cfg.init_with_prompt)
        init_from_teacher_tokens(student, token_vectors)
    prefix_dims = [student_config.projection_dim, *sorted(set(cfg.matryoshka_dims or []) -
                                                           {student_config.projection_dim}, reverse=True)]
    model = StudentWithTeacherHeads(student, [t.dim for t in targets], prefix_dims)
    if cfg.target_space == "pca":
        # Fixed maps: the student learns each teacher's top principal coordinates; the map adds the rest back.
        for head, teacher in zip((heads[0] for heads in model.to_teachers), targets):
            sample_rows = np.flatnonzero(teacher.has)
            sample_rows = np.random.default_rng(cfg.seed).permutation(sample_rows)[:50_000]
            sample = torch.from_numpy(teacher.vectors[np.sort(sample_rows)].astype(np.float32))
            mean = sample.mean(0)
            _, _, components = torch.linalg.svd(sample - mean, full_matrices=False)
            with torch.no_grad():
                head.weight.copy_(components[: student_config.projection_dim].T)
                head.bias.copy_(mean)
            head.requires_grad_(False)
    loss_fn = DistillationLoss(cfg.cosine_weight, cfg.mse_weight, cfg.relational_weight, cfg.relational_kind,
                               cfg.relational_temperature)
    teacher_weights = [weight for _, _, weight in cfg.teachers()]

    # ---- Optimiser, schedule, batches ----------------------------------------------------------------------
    optimizers = build_optimizers(model, student.get_input_embeddings(), cfg.learning_rate, cfg.weight_decay,
                                  cfg.sparse_token_updates)
    batch_sampler = LengthGroupedBatchSampler(train_lengths, cfg.batch_size, cfg.seed)
    collator = DistillationCollator(targets, student_config.pad_token_id)
    train_loader = DataLoader(train_set, batch_sampler=batch_sampler, collate_fn=collator, num_workers=cfg.num_workers)
    heldout_loader = DataLoader(heldout_set, batch_size=256, collate_fn=collator)
    steps_per_epoch = len(batch_sampler) // cfg.gradient_accumulation_steps
    if steps_per_epoch == 0:
        raise ValueError("Fewer batches than gradient_accumulation_steps: lower batch_size or accumulation.")
    total_steps = cfg.max_steps or math.ceil(cfg.epochs * steps_per_epoch)
    schedulers = [get_scheduler(cfg.lr_scheduler, optimizer, num_warmup_steps=int(cfg.warmup_ratio * total_steps),
                                num_training_steps=total_steps) for optimizer in optimizers]
    model, train_loader, *prepared = accelerator.prepare(model, train_loader, *optimizers, *schedulers)
    optimizers, schedulers = prepared[:len(optimizers)], prepared[len(optimizers):]
    accelerator.init_trackers("distill", config={k: v for k, v in asdict(cfg).items()})

    # ---- Resume ------------------------------------------------------------------------------------------------
    progress = {"step": 0, "batches": 0, "train_seconds": 0.0, "sentences": 0, "tokens": 0, "nonfinite_skipped": 0}
    resumed_from = None
    if cfg.resume_from_checkpoint:
        checkpoint = run.find_checkpoint(cfg.resume_from_checkpoint)
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
    heldout_cosines = None
    consecutive_nonfinite = 0
    model.train()
    while progress["step"] < total_steps:
        epoch, done_in_epoch = divmod(progress["batches"], batches_per_epoch)
        batch_sampler.set_epoch(epoch)
        loader = accelerator.skip_first_batches(train_loader, done_in_epoch) if done_in_epoch else train_loader
        tick = time.perf_counter()
        for batch in loader:
            with accelerator.accumulate(model):
                predictions = model(batch["input_ids"], batch["attention_mask"])
                loss, parts = 0.0, {}
                for number, (per_prefix, target, mask, weight) in enumerate(
                        zip(predictions, batch["targets"], batch["target_masks"], teacher_weights)):
                    suffix = "" if len(predictions) == 1 else f"_t{number}"
                    for prefix, predicted in zip(prefix_dims, per_prefix):
                        # Every prefix counts as much as the whole (Matryoshka representation learning's plain sum),
                        # so the full-size term keeps its weight.
                        prefix_loss, prefix_parts = loss_fn(predicted, target, mask)
                        loss = loss + weight * prefix_loss
                        tag = suffix if prefix == prefix_dims[0] else f"{suffix}_d{prefix}"
                        parts.update({f"{name}{tag}": value for name, value in prefix_parts.items()})
                accelerator.backward(loss)
                grad_norm = None
                if accelerator.sync_gradients:
                    grad_norm = (clip_gradients(model.parameters(), cfg.max_grad_norm) if cfg.sparse_token_updates
                                 else accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm))
                    if torch.isfinite(grad_norm):
                        for optimizer, scheduler in zip(optimizers, schedulers):
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
                    for optimizer in optimizers:
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
                    "lr": schedulers[0].get_last_lr()[0],
                    "grad_norm": float(grad_norm) if grad_norm is not None else None,
                    "sentences_per_s": window["sentences"] / max(window["seconds"], 1e-9),
                    "tokens_per_s": window["tokens"] / max(window["seconds"], 1e-9),
                    "epoch": progress["batches"] / batches_per_epoch,
                }
                accelerator.log(metrics, step=step)
                bar.set_postfix(loss=f"{metrics['loss']:.4f}", cos=f"{(heldout_cosines or [0])[0]:.4f}",
                                sent_s=f"{metrics['sentences_per_s']:.0f}")
                window = {"loss": 0.0, "count": 0, "sentences": 0, "tokens": 0, "seconds": 0.0}
                parts_window = {}
            if step % cfg.eval_every == 0 or step == total_steps:
                heldout_cosines = heldout_cosine_to_teachers(accelerator, model, heldout_loader)
                accelerator.log(cosine_metrics(heldout_cosines), step=step)
                bar.set_postfix(cos=f"{heldout_cosines[0]:.4f}")
            if step % cfg.checkpoint_every == 0 or step == total_steps:
                run.save_checkpoint(accelerator, progress, cfg.keep_checkpoints)
            tick = time.perf_counter()
            if step >= total_steps:
                break
    bar.close()
    print(f"[rank {accelerator.process_index}/{accelerator.num_processes}] trained {progress['batches']} batches of "
          f"{cfg.batch_size // accelerator.num_processes} texts on {accelerator.device}", flush=True)

    # ---- Export: the student alone, atomically, with its training record -----------------------------------
    if heldout_cosines is None:  # resumed after the last step: measure once more
        heldout_cosines = heldout_cosine_to_teachers(accelerator, model, heldout_loader)
    check_trained(heldout_cosines, progress, cfg.max_skipped_fraction)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        accelerator.unwrap_model(model).student.config._attn_implementation = "sdpa"
        info = training_info(cfg, accelerator, corpus_stats, len(train_rows), len(heldout_rows), progress,
                             heldout_cosines, targets_seconds, time.perf_counter() - started, resumed_from, targets)
        plot_training_curves(run.logs / "metrics.jsonl", run.logs / "training_curves.png")
        save_model_folder(
            accelerator.unwrap_model(model).student, tokenizer, run.model_dir, overwrite=True,
            extra_files={"training_info.json": json.dumps(info, indent=2) + "\n",
                         "training_curves.png": (run.logs / "training_curves.png").read_bytes()},
        )
        log(f"Saved the student to {run.model_dir} (held-out cosine to teacher {heldout_cosines[0]:.4f}).")
    accelerator.end_training()
    run.unlock()
    return run.model_dir


@torch.no_grad()
def heldout_cosine_to_teachers(accelerator, model, heldout_loader) -> list[float]:
    """Mean cosine between the student (mapped into each teacher's space) and that teacher, on the held-out texts."""
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.eval()
    totals, count = None, 0
    with accelerator.autocast():
        for batch in heldout_loader:
            batch = {k: ([t.to(accelerator.device) for t in v] if isinstance(v, list) else v.to(accelerator.device))
                     for k, v in batch.items()}
            predictions = unwrapped(batch["input_ids"], batch["attention_mask"])
            sums = [torch.nn.functional.cosine_similarity(per_prefix[0].float(), t, dim=-1).sum().item()
                    for per_prefix, t in zip(predictions, batch["targets"])]
            totals = sums if totals is None else [a + b for a, b in zip(totals, sums)]
            count += len(batch["input_ids"])
    unwrapped.train()
    return [total / count for total in totals]


def cosine_metrics(cosines: list[float]) -> dict:
    out = {"heldout_cosine": cosines[0]}
    if len(cosines) > 1:
        out.update({f"heldout_cosine_t{i}": value for i, value in enumerate(cosines)})
    return out


def check_trained(cosines: list[float], progress: dict, max_skipped_fraction: float) -> None:
    """Refuse to export a model that did not train: a non-finite held-out cosine or mostly skipped steps."""
    if not all(math.isfinite(c) for c in cosines):
        raise FloatingPointError(f"The held-out cosine to the teacher is not finite ({cosines}): the student or the "
                                 "teacher targets hold NaN/inf. Nothing was exported.")
    skipped, steps = progress["nonfinite_skipped"], max(progress["step"], 1)
    if skipped / steps > max_skipped_fraction:
        raise FloatingPointError(f"{skipped} of {steps} steps had non-finite gradients and were skipped (more than "
                                 f"max_skipped_fraction={max_skipped_fraction}); nothing was exported. Check the "
                                 "teacher targets and lower learning_rate.")


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


def training_info(cfg, accelerator, corpus_stats, n_train, n_heldout, progress, heldout_cosines, targets_seconds,
                  wall_seconds, resumed_from, targets) -> dict:
    train_seconds = progress["train_seconds"]
    teachers = []
    for (_, max_texts, weight), teacher, cosine in zip(cfg.teachers(), targets, heldout_cosines):
        described = {k: v for k, v in teacher.description.items() if k not in ("folder", "store")}
        teachers.append({**described, "max_texts": max_texts, "texts_scored": int(teacher.has.sum()) - n_heldout,
                         "loss_weight": weight, "final_heldout_cosine": round(cosine, 5)})
    return {
        "teacher": cfg.teacher,
        "teacher_dim": targets[0].dim,
        "teacher_prompt": targets[0].description["prompt"],
        "teachers": teachers,
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
        "matryoshka_dims": cfg.matryoshka_dims,
        "loss": {"cosine": cfg.cosine_weight, "mse": cfg.mse_weight, "relational": cfg.relational_weight,
                 "relational_kind": cfg.relational_kind},
        "final_heldout_cosine": round(heldout_cosines[0], 5),
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
    try:
        main()
    except (ConfigError, RunFolderError, FileNotFoundError, FileExistsError, FloatingPointError, ValueError) as error:
        # Bad input and refusals: the message names the file or key and the fix; a traceback would bury it.
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
