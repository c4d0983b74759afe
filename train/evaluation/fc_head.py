"""The paper's "Asterisk* + FC": a fully connected head on Asterisk, trained with `Trainer` per task.

Settings per classification task, reported beside the logistic-regression protocol:

- `frozen_<n>` / `frozen_full`: the encoder is frozen (`requires_grad_(False)`), only the head trains;
- `finetune_<n>` / `finetune_full`: encoder and head train together;
- `lpft_<n>`: linear probing, then fine-tuning (Kumar et al., 2022): the `frozen` recipe, then the `finetune`
  recipe from the head it trained, so fine-tuning starts from a head that already fits the embedding;
- `selected_<n>`: **Asterisk + FC**, one procedure for every task: the recipe (frozen, finetune or lpft) with the
  best `selection_folds`-fold cross-validated accuracy on the `<n>` training rows alone; its score is that
  recipe's test score. Nothing about the test split enters the choice;
- `logreg_<n>` / `logreg_full`: the baseline on the same rows, for any model (a teacher too): MTEB's logistic
  regression on the frozen embeddings of exactly the rows the FC head trains on;

where `<n>` is the paper's low-data setting (`low_data_samples`, 1,000 training rows drawn with a seeded
RNG) and `full` is the whole train split. The head is `AsteriskForSequenceClassification`'s MLP as the
model folder's config defines it. Scores are accuracy and macro-F1 (scikit-learn) on the full test split.
The SentEval tasks (MR, CR, SUBJ, MPQA) have no train/test split (the harness scores them by k-fold
cross-validation), so `holdout_split` cuts one, stratified and seeded, with `kfold_test_fraction` of the rows
held out: every model trains on the same rows and is scored on the same held-out ones.
The hyper-parameters are `FCConfig`'s documented defaults; they travel into results.json.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score

from train.evaluation.tasks import ClassificationData, KFoldData

logger = logging.getLogger(__name__)


# How the head trains: each recipe is a sequence of stages on one model (`lpft` runs both); `selected_<n>` picks one.
RECIPE_STAGES = {"frozen": ("frozen",), "finetune": ("finetune",), "lpft": ("frozen", "finetune")}
RECIPES = tuple(RECIPE_STAGES)


@dataclass(frozen=True)
class FCConfig:
    """Training settings of the FC evaluation.

    Args:
        low_data_samples: training rows of the low-data setting (the paper: reliable after ~1,000).
        batch_size: training batch size.
        frozen_learning_rate: AdamW learning rate when only the head trains.
        finetune_learning_rate: AdamW learning rate when the encoder trains too.
        low_data_epochs: epochs over the low-data sample.
        full_epochs: epochs over the full train split; 0 skips the two full-data settings (they cost CPU
            time in proportion to the train split: minutes per task on 2 cores).
        weight_decay: AdamW weight decay.
        warmup_fraction: share of the steps with linear warm-up, then linear decay to 0.
        seed: seed of the low-data sample, the head's initialisation and the data order.
        eval_batch_size: batch size of the test-set predictions.
        kfold_test_fraction: share of a SentEval task's rows held out as its test set (`holdout_split`).
        selection_folds: folds of the cross-validation on the low-data rows that picks `selected_<n>`'s recipe.
    """

    low_data_samples: int = 1000
    batch_size: int = 32
    frozen_learning_rate: float = 1e-3
    finetune_learning_rate: float = 2e-4
    low_data_epochs: int = 10
    full_epochs: int = 2
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    seed: int = 42
    eval_batch_size: int = 256
    kfold_test_fraction: float = 0.2
    selection_folds: int = 3

    def __post_init__(self):
        if not 0 < self.kfold_test_fraction < 1:
            raise ValueError(f"kfold_test_fraction must be between 0 and 1, got {self.kfold_test_fraction}.")
        if self.selection_folds < 2:
            raise ValueError(f"selection_folds must be at least 2, got {self.selection_folds}.")

    def settings(self, trainable: bool = True) -> tuple[str, ...]:
        """Setting names: logistic regression on the same training rows (any model; the baseline the FC head is
        compared with), then, for a model that can be trained (`trainable`: an Asterisk folder), the FC head."""
        n, full = self.low_data_samples, self.full_epochs > 0
        logreg = (f"logreg_{n}", *(("logreg_full",) if full else ()))
        if not trainable:
            return logreg
        # the recipes before `selected_<n>`, which reports the test score of the one it picks
        return (*logreg, *(f"{recipe}_{n}" for recipe in RECIPES), f"selected_{n}",
                *(("frozen_full", "finetune_full") if full else ()))

    def describe(self) -> dict:
        return {"name": "Asterisk + FC (AsteriskForSequenceClassification, transformers Trainer)", **asdict(self),
                "settings": list(self.settings())}


def stale_settings(recorded: list[str], old_values: dict, new_values: dict) -> list[str]:
    """The recorded FC settings whose scores the change from `old_values` to `new_values` (FCConfig fields) voids.

    Only the full-data settings read `full_epochs`, so a change of it alone (say, extending a run made with
    `full_epochs=0` to the full train split) keeps the low-data scores; any other change voids every setting.
    """
    changed = {k for k in old_values.keys() | new_values.keys() if old_values.get(k) != new_values.get(k)}
    if not changed:
        return []
    if changed == {"full_epochs"}:
        return [setting for setting in recorded if setting.endswith("_full")]
    return list(recorded)


def low_data_rows(n_rows: int, n_samples: int, seed: int) -> np.ndarray:
    """The rows of the low-data setting: a seeded random sample (all rows when there are fewer)."""
    if n_rows <= n_samples:
        return np.arange(n_rows)
    return np.sort(np.random.RandomState(seed).permutation(n_rows)[:n_samples])


def holdout_split(data: KFoldData, test_fraction: float, seed: int) -> ClassificationData:
    """A SentEval task's one labelled set as a train/test split: `test_fraction` of the rows, stratified by label
    and drawn with `seed`, become the test set; both keep the rows' original order."""
    from sklearn.model_selection import train_test_split

    train_rows, test_rows = train_test_split(np.arange(len(data.texts)), test_size=test_fraction,
                                             stratify=data.labels, random_state=seed)
    train_rows, test_rows = np.sort(train_rows), np.sort(test_rows)
    return ClassificationData(
        train_texts=[data.texts[i] for i in train_rows], train_labels=data.labels[train_rows],
        test_texts=[data.texts[i] for i in test_rows], test_labels=data.labels[test_rows],
        label_names=data.label_names,
    )


def setting_rows(n_rows: int, setting: str, config: FCConfig) -> np.ndarray:
    """The training rows a setting uses: the whole train split for `*_full`, else the seeded low-data sample."""
    if setting.endswith("_full"):
        return np.arange(n_rows)
    return low_data_rows(n_rows, config.low_data_samples, config.seed)


def logreg_scores(train_vectors: np.ndarray, train_labels: np.ndarray, test_vectors: np.ndarray,
                  test_labels: np.ndarray) -> dict:
    """The `logreg_*` baseline: MTEB v1's logistic regression fitted once on the given rows' frozen embeddings."""
    from train.evaluation.classification_protocol import MTEBClassificationProtocol, logistic_regression_scores

    scores = logistic_regression_scores(train_vectors, train_labels, test_vectors, test_labels,
                                        MTEBClassificationProtocol())
    return {**scores, "n_train": len(train_labels), "n_test": len(test_labels)}


def train_fc(folder: str | Path, data: ClassificationData, setting: str, config: FCConfig = FCConfig()) -> dict:
    """Train one FC setting (`<recipe>_<n>` or `<recipe>_full`) on `data` and score it on the test split.

    Returns accuracy, f1, n_train, n_test, epochs and seconds.
    """
    recipe, _, size = setting.rpartition("_")
    if recipe not in RECIPES or setting not in config.settings():  # logreg: logreg_scores; selected: select_recipe
        raise ValueError(f"Unknown FC setting {setting!r}; expected one of {config.settings()}.")
    started = time.perf_counter()
    rows = setting_rows(len(data.train_texts), setting, config)
    epochs = config.full_epochs if size == "full" else config.low_data_epochs
    predicted = fit_and_predict(folder, [data.train_texts[i] for i in rows], data.train_labels[rows],
                                data.test_texts, data.label_names, recipe, epochs, config)
    return {
        "accuracy": float(accuracy_score(data.test_labels, predicted)),
        "f1": float(f1_score(data.test_labels, predicted, average="macro")),
        "n_train": int(len(rows)),
        "n_test": int(len(data.test_labels)),
        "epochs": int(epochs),
        "seconds": round(time.perf_counter() - started, 1),
    }


def select_recipe(folder: str | Path, data: ClassificationData, config: FCConfig = FCConfig()) -> dict:
    """`selected_<n>`: the recipe with the best mean accuracy over a stratified, seeded `selection_folds`-fold
    cross-validation on the low-data training rows (ties go to the earlier recipe in `RECIPES`). Only those rows
    are read: the test split plays no part in the choice.

    Returns choice, cv_accuracy (recipe -> mean fold accuracy), folds and seconds.
    """
    import warnings

    from sklearn.model_selection import StratifiedKFold

    started = time.perf_counter()
    rows = low_data_rows(len(data.train_texts), config.low_data_samples, config.seed)
    texts, labels = [data.train_texts[i] for i in rows], data.train_labels[rows]
    with warnings.catch_warnings():  # many-class tasks have labels with fewer rows than folds: expected here
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        folds = list(StratifiedKFold(config.selection_folds, shuffle=True, random_state=config.seed)
                     .split(np.zeros(len(labels)), labels))
    cv_accuracy = {}
    for recipe in RECIPES:
        scores = []
        for fit_rows, check_rows in folds:
            predicted = fit_and_predict(folder, [texts[i] for i in fit_rows], labels[fit_rows],
                                        [texts[i] for i in check_rows], data.label_names, recipe,
                                        config.low_data_epochs, config)
            scores.append(accuracy_score(labels[check_rows], predicted))
        cv_accuracy[recipe] = float(np.mean(scores))
    choice = max(RECIPES, key=lambda recipe: cv_accuracy[recipe])  # max keeps the first of equal scores
    logger.info("FC recipe by %d-fold CV on %d rows: %s (%s)", len(folds), len(rows), choice,
                ", ".join(f"{r} {100 * a:.2f}" for r, a in cv_accuracy.items()))
    return {"choice": choice, "cv_accuracy": cv_accuracy, "folds": len(folds),
            "seconds": round(time.perf_counter() - started, 1)}


def fit_and_predict(folder: str | Path, train_texts: list[str], train_labels: np.ndarray, predict_texts: list[str],
                    label_names: list[str], recipe: str, epochs: int, config: FCConfig) -> np.ndarray:
    """Train a fresh `AsteriskForSequenceClassification` from `folder` with `recipe` on the given rows; return
    its predicted label ids for `predict_texts`."""
    from datasets import Dataset
    from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments
    from transformers import logging as hf_logging

    import modeling_asterisk  # noqa: F401  (registers the Auto classes)
    from modeling_asterisk import AsteriskForSequenceClassification

    if recipe not in RECIPES:
        raise ValueError(f"Unknown FC recipe {recipe!r}; expected one of {RECIPES}.")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized classifier weights" is expected here
    try:
        torch.manual_seed(config.seed)
        model = AsteriskForSequenceClassification.from_pretrained(
            folder, num_labels=len(label_names),
            id2label=dict(enumerate(label_names)), label2id={n: i for i, n in enumerate(label_names)},
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    max_length = model.config.max_position_embeddings

    def dataset(texts: list[str], labels: np.ndarray) -> Dataset:
        encoded = tokenizer(texts, truncation=True, max_length=max_length)
        return Dataset.from_dict({"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
                                  "labels": labels.astype(np.int64).tolist()})

    train_set = dataset(train_texts, train_labels)
    # Length-sorted prediction batches waste little compute on padding; predictions are put back in order below.
    order = np.argsort([len(t) for t in predict_texts], kind="stable")
    predict_set = dataset([predict_texts[i] for i in order], np.zeros(len(order), dtype=np.int64))
    steps = math.ceil(len(train_texts) / config.batch_size) * epochs
    learning_rates = {"frozen": config.frozen_learning_rate, "finetune": config.finetune_learning_rate}
    with tempfile.TemporaryDirectory(prefix="asterisk-fc-") as work_dir:
        for stage in RECIPE_STAGES[recipe]:  # a later stage continues from the head the earlier one trained
            model.asterisk.requires_grad_(stage != "frozen")  # a training choice: the saved config says nothing
            args = TrainingArguments(
                output_dir=work_dir,
                per_device_train_batch_size=config.batch_size,
                per_device_eval_batch_size=config.eval_batch_size,
                num_train_epochs=epochs,
                learning_rate=learning_rates[stage],
                weight_decay=config.weight_decay,
                warmup_steps=int(config.warmup_fraction * steps),
                lr_scheduler_type="linear",
                save_strategy="no",
                logging_strategy="no",
                report_to=[],
                use_cpu=not torch.cuda.is_available(),
                seed=config.seed,
                disable_tqdm=False,
                dataloader_num_workers=0,
            )
            trainer = Trainer(model=model, args=args, train_dataset=train_set,
                              data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer)
            trainer.train()
        logits = trainer.predict(predict_set).predictions
    predicted = np.empty(len(order), dtype=np.int64)
    predicted[order] = np.asarray(logits).argmax(-1)
    return predicted


__all__ = ["RECIPES", "FCConfig", "fit_and_predict", "holdout_split", "low_data_rows", "select_recipe", "train_fc"]
