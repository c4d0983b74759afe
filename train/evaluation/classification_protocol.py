"""Scoring frozen embeddings: MTEB v1's logistic-regression protocol, SentEval's k-fold protocol, and STS.

MTEB v1 (followed: mteb 1.1.0, whose classification code is unchanged from 1.0.2; `AbsTask`,
`AbsTaskClassification._undersample_data`, `evaluators.Evaluator`, `logRegClassificationEvaluator`):

- `n_experiments` = 10 experiments; `samples_per_label` = 8 by default, task metadata may override it
  (EmotionClassification: 16).
- Each experiment undersamples the train split: the index array (initially `arange(n)`, kept between
  experiments) is shuffled in place with NumPy's global RNG, then the first `samples_per_label` rows of
  each label in that order are kept. The RNG is re-seeded with 42 before every shuffle: `AbsTask.__init__`
  seeds it before the first experiment and every evaluator's `Evaluator.__init__(seed=42)` re-seeds it,
  which happens after each undersampling. So every experiment applies the same permutation once more.
- The test set is the full test split, embedded once. (MTEB's 2,048-sample test cap belongs to newer tasks;
  Banking77, Emotion and IMDB were scored on all 3,080 / 2,000 / 25,000 test texts.)
- `LogisticRegression(random_state=42, n_jobs=-1, max_iter=100)` on the embeddings as the model returns
  them (no extra scaling or normalisation), accuracy and macro-F1 on the test set (plus average precision
  for binary tasks), averaged over experiments. The main score is accuracy.

SentEval (MR, CR, SUBJ, MPQA; `InnerKFoldClassifier` with `usepytorch=False`, `kfold=10`, seed 1111): outer
`StratifiedKFold(10, shuffle=True, random_state=1111)`; in each outer fold the L2 strength is chosen among
C = 2^-2 ... 2^3 by an inner `StratifiedKFold(10)`, then `LogisticRegression(C, random_state=1111)` is
refitted on the outer training folds; test accuracy is averaged over the outer folds. As in SentEval the
texts are ordered by (number of words, label) before the folds are drawn.

STS: cosine similarity of the two sentences' embeddings, Spearman (main score) and Pearson correlation
with the gold scores, as MTEB's STSEvaluator reports `cos_sim`.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import sklearn
from scipy.stats import pearsonr, spearmanr
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, average_precision_score, f1_score
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

MTEB_VERSION_FOLLOWED = "mteb 1.1.0 (its classification code is that of 1.0.2)"


@dataclass(frozen=True)
class MTEBClassificationProtocol:
    """MTEB v1 `AbsTaskClassification` with method "logReg". Defaults are MTEB's."""

    n_experiments: int = 10
    samples_per_label: int = 8
    max_iter: int = 100
    seed: int = 42
    n_jobs: int = -1

    def describe(self) -> dict:
        return {
            "name": "MTEB v1 AbsTaskClassification (logReg)",
            "version_followed": MTEB_VERSION_FOLLOWED,
            **asdict(self),
            "undersampling": "per label, first samples_per_label in an index order shuffled in place by "
                             "np.random re-seeded with `seed` before each experiment (cumulative)",
            "classifier": f"sklearn LogisticRegression(random_state={self.seed}, n_jobs={self.n_jobs}, "
                          f"max_iter={self.max_iter})",
            "test_set": "full test split",
            "main_score": "accuracy",
            "f1": "macro",
            "scikit_learn": sklearn.__version__,
        }


@dataclass(frozen=True)
class SentEvalKFoldProtocol:
    """SentEval's `InnerKFoldClassifier` with scikit-learn logistic regression."""

    kfold: int = 10
    seed: int = 1111
    regularization: tuple[float, ...] = tuple(2.0**t for t in range(-2, 4))

    def describe(self) -> dict:
        return {
            "name": "SentEval InnerKFoldClassifier (sklearn LogReg)",
            **asdict(self),
            "classifier": f"sklearn LogisticRegression(C=best inner-CV C, random_state={self.seed})",
            "main_score": "accuracy (mean over outer folds)",
            "f1": "macro, mean over outer folds",
            "scikit_learn": sklearn.__version__,
        }


STS_PROTOCOL = {"name": "MTEB v1 STSEvaluator (cos_sim)", "main_score": "spearman of cosine similarity",
                "also": "pearson of cosine similarity"}


def undersample_experiments(labels: np.ndarray, samples_per_label: int, n_experiments: int,
                            seed: int) -> list[np.ndarray]:
    """The train rows of each experiment, exactly as MTEB v1's `_undersample_data` picks them.

    Returns one index array per experiment, in the order MTEB passes the sampled texts to the classifier.
    """
    labels = np.asarray(labels)
    idxs = np.arange(len(labels))
    experiments = []
    for _ in range(n_experiments):
        # np.random.seed(seed); np.random.shuffle(idxs) in MTEB: the same legacy Mersenne-Twister stream.
        np.random.RandomState(seed).shuffle(idxs)
        counts: dict = defaultdict(int)
        chosen = []
        for i in idxs:
            if counts[labels[i]] < samples_per_label:
                chosen.append(i)
                counts[labels[i]] += 1
        experiments.append(np.array(chosen, dtype=np.int64))
    return experiments


def single_threaded_math():
    """BLAS / OpenMP limited to one thread while fitting the small logistic regressions.

    Their matrix-vector products are tiny; on a busy 2-core machine OpenBLAS's thread hand-off made each
    fit 30-100x slower (0.6 s instead of 6-20 ms on 3,400 x 256), and results do not depend on it.
    """
    return threadpool_limits(limits=1)


def logistic_regression_scores(x_train, y_train, x_test, y_test, protocol: MTEBClassificationProtocol) -> dict:
    """One MTEB v1 experiment: fit `LogisticRegression`, score accuracy / macro-F1 (/ AP when binary)."""
    classifier = LogisticRegression(random_state=protocol.seed, n_jobs=protocol.n_jobs, max_iter=protocol.max_iter)
    with warnings.catch_warnings(), single_threaded_math():
        # max_iter=100 is MTEB's setting and often stops lbfgs early; that is the protocol, not a problem.
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        classifier.fit(x_train, y_train)
    predicted = classifier.predict(x_test)
    scores = {"accuracy": float(accuracy_score(y_test, predicted)),
              "f1": float(f1_score(y_test, predicted, average="macro"))}
    if len(np.unique(y_train)) == 2:
        scores["ap"] = float(average_precision_score(y_test, predicted))
    return scores


def run_mteb_classification(
    embed_train: Callable[[np.ndarray], np.ndarray],
    train_labels: np.ndarray,
    test_embeddings: np.ndarray,
    test_labels: np.ndarray,
    protocol: MTEBClassificationProtocol,
    progress: Callable | None = None,
) -> dict:
    """MTEB v1 logistic-regression classification.

    Args:
        embed_train: returns the embeddings of the given train rows (called once, for all rows any
            experiment uses, so the model embeds only those).
        train_labels, test_labels: integer labels.
        test_embeddings: embeddings of the whole test split.
        progress: optional wrapper for the experiment loop (e.g. tqdm).

    Returns:
        accuracy, f1 (and ap for binary tasks) averaged over experiments, their standard deviations
        (`accuracy_std`...), `main_score` (= accuracy), `n_train` (rows per experiment), `n_test`,
        and `scores_per_experiment`.
    """
    train_labels = np.asarray(train_labels)
    experiments = undersample_experiments(train_labels, protocol.samples_per_label, protocol.n_experiments,
                                          protocol.seed)
    needed = np.unique(np.concatenate(experiments))
    vectors = embed_train(needed)
    row_of = {int(row): i for i, row in enumerate(needed)}
    per_experiment = []
    loop = progress(experiments) if progress else experiments
    with single_threaded_math():
        for rows in loop:
            x_train = vectors[[row_of[int(r)] for r in rows]]
            per_experiment.append(
                logistic_regression_scores(x_train, train_labels[rows], test_embeddings, test_labels, protocol)
            )
    result = _average(per_experiment)
    result.update(main_score=result["accuracy"], n_train=int(len(experiments[0])), n_test=int(len(test_labels)),
                  n_train_texts_embedded=int(len(needed)), scores_per_experiment=per_experiment)
    return result


def senteval_order(texts: list[str], labels: np.ndarray) -> np.ndarray:
    """SentEval's row order: sorted by (number of words, label), stable."""
    return np.array(sorted(range(len(texts)), key=lambda i: (len(texts[i].split()), int(labels[i]))), dtype=np.int64)


def run_senteval_kfold(embeddings: np.ndarray, labels: np.ndarray, protocol: SentEvalKFoldProtocol,
                       progress: Callable | None = None) -> dict:
    """SentEval's nested k-fold logistic regression on embeddings already in SentEval order."""
    labels = np.asarray(labels)
    outer = StratifiedKFold(n_splits=protocol.kfold, shuffle=True, random_state=protocol.seed)
    inner = StratifiedKFold(n_splits=protocol.kfold, shuffle=True, random_state=protocol.seed)
    per_fold, dev_scores, chosen = [], [], []
    folds = list(outer.split(embeddings, labels))
    with single_threaded_math():
        for train_idx, test_idx in (progress(folds) if progress else folds):
            x_train, y_train = embeddings[train_idx], labels[train_idx]
            inner_folds = list(inner.split(x_train, y_train))
            reg_scores = []
            for reg in protocol.regularization:
                accs = [_fit(reg, protocol.seed, x_train[a], y_train[a]).score(x_train[b], y_train[b])
                        for a, b in inner_folds]
                reg_scores.append(round(100 * float(np.mean(accs)), 2))
            best = protocol.regularization[int(np.argmax(reg_scores))]
            dev_scores.append(max(reg_scores) / 100)
            chosen.append(best)
            classifier = _fit(best, protocol.seed, x_train, y_train)
            predicted = classifier.predict(embeddings[test_idx])
            per_fold.append({"accuracy": float(accuracy_score(labels[test_idx], predicted)),
                             "f1": float(f1_score(labels[test_idx], predicted, average="macro"))})
    result = _average(per_fold)
    result.update(main_score=result["accuracy"], dev_accuracy=float(np.mean(dev_scores)), chosen_C=chosen,
                  n_train=int(len(folds[0][0])), n_test=int(len(folds[0][1])), n_total=int(len(labels)),
                  scores_per_fold=per_fold)
    return result


def _fit(reg: float, seed: int, x, y) -> LogisticRegression:
    classifier = LogisticRegression(C=reg, random_state=seed)
    with warnings.catch_warnings(), single_threaded_math():
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier.fit(x, y)
    return classifier


def sts_scores(embeddings1: np.ndarray, embeddings2: np.ndarray, gold: np.ndarray) -> dict:
    """Spearman (main score) and Pearson correlation between cosine similarities and gold scores."""
    a = embeddings1 / np.maximum(np.linalg.norm(embeddings1, axis=1, keepdims=True), 1e-12)
    b = embeddings2 / np.maximum(np.linalg.norm(embeddings2, axis=1, keepdims=True), 1e-12)
    cosine = np.sum(a * b, axis=1)
    spearman = float(spearmanr(gold, cosine).statistic)
    pearson = float(pearsonr(gold, cosine).statistic)
    return {"spearman": spearman, "pearson": pearson, "main_score": spearman, "n_test": int(len(gold))}


def _average(scores: list[dict]) -> dict:
    out = {}
    for key in scores[0]:
        values = np.array([s[key] for s in scores], dtype=np.float64)
        out[key] = float(values.mean())
        out[f"{key}_std"] = float(values.std())
    return out


__all__ = [
    "MTEB_VERSION_FOLLOWED",
    "MTEBClassificationProtocol",
    "SentEvalKFoldProtocol",
    "STS_PROTOCOL",
    "undersample_experiments",
    "logistic_regression_scores",
    "run_mteb_classification",
    "senteval_order",
    "run_senteval_kfold",
    "sts_scores",
    "single_threaded_math",
]
