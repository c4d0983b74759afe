"""Batches for distillation: length-grouped (little padding) but shuffled, and a collator that pads and
attaches each text's cached teacher target."""

import numpy as np
import torch
from torch.utils.data import Sampler


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Shuffles indices, sorts them by length within windows of `group_batches` batches, then shuffles the batches.

    Batches hold texts of similar length (so padding wastes little compute) while every epoch sees a new,
    seeded order. The last incomplete batch is dropped so every batch has exactly `batch_size` items (the
    global batch, which accelerate splits across processes).
    """

    def __init__(self, lengths: list[int] | np.ndarray, batch_size: int, seed: int, group_batches: int = 64):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}.")
        if len(lengths) < batch_size:
            raise ValueError(f"The training set ({len(lengths)} texts) is smaller than one batch ({batch_size}).")
        self.lengths = np.asarray(lengths)
        self.batch_size, self.seed, self.group_batches = batch_size, seed, group_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths) // self.batch_size

    def __iter__(self):
        rng = np.random.default_rng((self.seed, self.epoch))
        order = rng.permutation(len(self.lengths))
        window = self.batch_size * self.group_batches
        grouped = []
        for start in range(0, len(order), window):
            chunk = order[start : start + window]
            grouped.append(chunk[np.argsort(-self.lengths[chunk], kind="stable")])
        grouped = np.concatenate(grouped)[: len(self) * self.batch_size]
        batches = grouped.reshape(len(self), self.batch_size)
        for index in rng.permutation(len(batches)):
            yield batches[index].tolist()


class DistillationCollator:
    """Pads `input_ids` to the batch's longest text and looks up each row's target from every teacher.

    `targets` and `target_masks` hold one tensor per teacher; a row that a teacher did not score (a teacher
    with `max_texts` covers part of the corpus) has a zero target and mask False for that teacher.
    """

    def __init__(self, targets: list, pad_token_id: int):
        self.targets, self.pad_token_id = targets, pad_token_id

    def __call__(self, rows: list[dict]) -> dict:
        length = max(len(row["input_ids"]) for row in rows)
        input_ids = torch.full((len(rows), length), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, : len(row["input_ids"])] = torch.as_tensor(row["input_ids"])
            attention_mask[i, : len(row["input_ids"])] = 1
        row_ids = np.array([row["row_id"] for row in rows])
        looked_up = [teacher.rows(row_ids) for teacher in self.targets]
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "targets": [torch.from_numpy(vectors) for vectors, _ in looked_up],
            "target_masks": [torch.from_numpy(mask) for _, mask in looked_up],
        }
