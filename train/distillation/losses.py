"""Distillation losses between student embeddings (already mapped into the teacher's space) and teacher targets.

The paper combines MSE and cosine similarity; `relational_weight` adds an in-batch term that asks the
student's similarity structure to match the teacher's (KL between row-wise softmaxes, or MSE between the
cosine matrices), which directly targets what classification and STS use: who is close to whom.
"""

import torch
import torch.nn.functional as F
from torch import nn

RELATIONAL_KINDS = ("kl", "mse")


class DistillationLoss(nn.Module):
    """`cosine_weight * (1 - cos) + mse_weight * ||s - t||^2 + relational_weight * relational`, batch means.

    The squared error is summed over dimensions (the teacher targets are unit vectors, so it is on the same
    scale as the cosine term) and averaged over the batch.
    """

    def __init__(self, cosine_weight: float = 1.0, mse_weight: float = 1.0, relational_weight: float = 0.0,
                 relational_kind: str = "kl", temperature: float = 0.05):
        super().__init__()
        if relational_kind not in RELATIONAL_KINDS:
            raise ValueError(f"relational_kind must be one of {RELATIONAL_KINDS}, got {relational_kind!r}.")
        if min(cosine_weight, mse_weight, relational_weight) < 0 or cosine_weight + mse_weight + relational_weight == 0:
            raise ValueError("Loss weights must be non-negative and not all zero.")
        if temperature <= 0:
            raise ValueError(f"relational temperature must be positive, got {temperature}.")
        self.cosine_weight, self.mse_weight, self.relational_weight = cosine_weight, mse_weight, relational_weight
        self.relational_kind, self.temperature = relational_kind, temperature

    def forward(self, student: torch.Tensor, teacher: torch.Tensor,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Returns the total loss and its parts (detached), for logging.

        `mask` (B,) selects the rows that have a teacher target; the others do not count. A batch with no such
        row gives a zero loss that still depends on the student (so every process's backward pass matches).
        """
        student, teacher = student.float(), teacher.float()
        if mask is not None and not bool(mask.all()):
            if not bool(mask.any()):
                zero = student.sum() * 0.0
                return zero, {}
            student, teacher = student[mask], teacher[mask]
        parts = {}
        if self.cosine_weight:
            parts["cosine"] = (1 - F.cosine_similarity(student, teacher, dim=-1)).mean()
        if self.mse_weight:
            parts["mse"] = (student - teacher).pow(2).sum(dim=-1).mean()
        if self.relational_weight:
            parts["relational"] = self.relational(student, teacher)
        weights = {"cosine": self.cosine_weight, "mse": self.mse_weight, "relational": self.relational_weight}
        total = sum(weights[name] * value for name, value in parts.items())
        return total, {name: value.detach() for name, value in parts.items()}

    def relational(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        s, t = F.normalize(student, dim=-1), F.normalize(teacher, dim=-1)
        s_sim, t_sim = s @ s.T, t @ t.T  # (B, B) cosine matrices
        if self.relational_kind == "mse":
            return (s_sim - t_sim).pow(2).mean()
        off_diagonal = ~torch.eye(len(s), dtype=torch.bool, device=s.device)  # self-similarity says nothing
        s_logits = (s_sim / self.temperature).masked_fill(~off_diagonal, float("-inf"))
        t_logits = (t_sim / self.temperature).masked_fill(~off_diagonal, float("-inf"))
        t_prob = t_logits.softmax(dim=-1)
        kl = t_prob * (t_logits.log_softmax(dim=-1) - s_logits.log_softmax(dim=-1))
        return kl.masked_fill(~off_diagonal, 0.0).sum(dim=-1).mean()
