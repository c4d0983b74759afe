"""Asterisk configuration.

The defaults reproduce the model of "Asterisk*: Keep it Simple" (arXiv 2411.05691): a 2-layer, 2-head,
256-dimensional bidirectional transformer over the GPT-2 vocabulary plus `[PAD]` and `[MASK]`, with
14,019,584 parameters.

This file is shipped to the Hub beside the weights, so it imports only from `transformers` and the
standard library.
"""

from transformers.configuration_utils import PreTrainedConfig

# GPT-2's byte-level BPE has 50,257 tokens; Asterisk appends [PAD] and [MASK] after them.
GPT2_VOCAB_SIZE = 50257
ALLOWED_ACTIVATIONS = ("gelu", "gelu_new", "relu", "silu", "tanh")
# Every saved folder names all three Auto classes, so a Hub user can load an encoder checkpoint straight
# into AutoModelForSequenceClassification (new head) and vice versa.
AUTO_MAP = {
    "AutoConfig": "configuration_asterisk.AsteriskConfig",
    "AutoModel": "modeling_asterisk.AsteriskModel",
    "AutoModelForSequenceClassification": "modeling_asterisk.AsteriskForSequenceClassification",
}


class AsteriskConfig(PreTrainedConfig):
    r"""
    Configuration of an Asterisk sentence-embedding model ([`AsteriskModel`]) and of its classification
    variant ([`AsteriskForSequenceClassification`], the paper's "Asterisk* + FC").

    Args:
        vocab_size (`int`, defaults to 50259):
            Number of token ids: GPT-2's 50,257 byte-level BPE tokens, then `[PAD]` (50257) and `[MASK]` (50258).
        hidden_size (`int`, defaults to 256):
            Width of the token representations and of every transformer layer.
        num_hidden_layers (`int`, defaults to 2):
            Number of pre-norm transformer layers.
        num_attention_heads (`int`, defaults to 2):
            Attention heads per layer; `hidden_size` must be divisible by it (head size 128 by default).
        intermediate_size (`int`, defaults to 512):
            Inner width of each layer's MLP (256 -> 512 -> 256).
        hidden_act (`str`, defaults to `"gelu"`):
            MLP activation, one of `"gelu"`, `"gelu_new"`, `"relu"`, `"silu"`, `"tanh"`.
        max_position_embeddings (`int`, defaults to 128):
            Number of learned absolute positions, hence the longest input in tokens. Longer texts are
            truncated by the tokenizer and by [`AsteriskModel.encode`].
        projection_dim (`int`, defaults to 256):
            Size of the token features (`last_hidden_state`) and of the sentence embedding (their masked mean):
            each final hidden state goes through a `hidden_size -> projection_dim` linear layer (with bias).
        hidden_dropout_prob (`float`, defaults to 0.0):
            Dropout on embeddings, attention output and MLP output, in [0, 1). Distillation works best
            without it, so it is off by default.
        attention_probs_dropout_prob (`float`, defaults to 0.0):
            Dropout on the attention probabilities, in [0, 1).
        layer_norm_eps (`float`, defaults to 1e-5):
            Epsilon of every LayerNorm (PyTorch's default, as in the paper's `nn.TransformerEncoderLayer`).
        initializer_range (`float`, defaults to 0.02):
            Standard deviation of the normal initialisation of the token and position embeddings.
            Attention and MLP weights use Xavier-uniform, as in the paper.
        pad_token_id (`int`, defaults to 50257):
            Id of `[PAD]`. Padding is also read from `attention_mask`; this id is what tokenizers pad with.
        bos_token_id, eos_token_id (`int`, default to 50256):
            GPT-2's `<|endoftext|>`, as the tokenizer declares them (the model adds no special tokens itself;
            matching ids keep `Trainer` and sentence-transformers from rewriting the config).
        mask_token_id (`int`, defaults to 50258):
            Id of `[MASK]`.
        matryoshka_dims (`list[int]`, *optional*):
            Sizes the sentence embedding was trained to be cut to (Matryoshka representation learning), largest
            first: its first `d` dimensions stand on their own for each `d` listed (`encode(truncate_dim=d)`,
            sentence-transformers' `truncate_dim`). `None`: trained at full size only. Metadata, no parameters.
        classifier_hidden_sizes (`list[int]`, defaults to `[256]`):
            Hidden layer widths of the fully connected head of [`AsteriskForSequenceClassification`];
            `[]` makes it a single linear layer on the sentence embedding.
        classifier_activation (`str`, defaults to `"relu"`):
            Activation between the head's layers, one of `"gelu"`, `"gelu_new"`, `"relu"`, `"silu"`, `"tanh"`.
        classifier_dropout (`float`, defaults to 0.1):
            Dropout before each linear layer of the head, in [0, 1).

    Example:

    ```python
    >>> from modeling_asterisk import AsteriskConfig, AsteriskModel
    >>> model = AsteriskModel(AsteriskConfig())
    >>> model.num_parameters()
    14019584
    ```
    """

    model_type = "asterisk"

    vocab_size: int = GPT2_VOCAB_SIZE + 2
    hidden_size: int = 256
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 512
    hidden_act: str = "gelu"
    max_position_embeddings: int = 128
    projection_dim: int = 256
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    pad_token_id: int | None = GPT2_VOCAB_SIZE
    mask_token_id: int | None = GPT2_VOCAB_SIZE + 1
    matryoshka_dims: list[int] | None = None
    classifier_hidden_sizes: list[int] | None = None
    classifier_activation: str = "relu"
    classifier_dropout: float = 0.1
    bos_token_id: int | None = GPT2_VOCAB_SIZE - 1
    eos_token_id: int | None = GPT2_VOCAB_SIZE - 1

    def __post_init__(self, **kwargs):
        if self.classifier_hidden_sizes is None:
            # A mutable default cannot be a dataclass field default; [256] is the documented one.
            self.classifier_hidden_sizes = [256]
        super().__post_init__(**kwargs)
        if getattr(self, "auto_map", None) is None:
            self.auto_map = dict(AUTO_MAP)
        self._check_values()

    def _check_values(self):
        """Raise a `ValueError` naming the first field whose value is not allowed."""
        for name in (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
            "projection_dim",
        ):
            _require(name, getattr(self, name), _is_positive_int, "a positive integer")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads}); allowed values of num_attention_heads are the divisors of hidden_size."
            )
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"):
            _require(name, getattr(self, name), _is_probability, "a number in [0, 1)")
        for name in ("layer_norm_eps", "initializer_range"):
            _require(name, getattr(self, name), _is_positive_number, "a positive number")
        for name in ("hidden_act", "classifier_activation"):
            _require(name, getattr(self, name), lambda v: v in ALLOWED_ACTIVATIONS, f"one of {ALLOWED_ACTIVATIONS}")
        for name in ("pad_token_id", "mask_token_id", "bos_token_id", "eos_token_id"):
            _require(
                name,
                getattr(self, name),
                lambda v: v is None or (_is_int(v) and 0 <= v < self.vocab_size),
                f"None or an integer in [0, vocab_size={self.vocab_size})",
            )
        _require(
            "matryoshka_dims",
            self.matryoshka_dims,
            lambda v: v is None or (isinstance(v, (list, tuple)) and all(
                _is_positive_int(x) and x <= self.projection_dim for x in v)),
            f"None or a list of integers in [1, projection_dim={self.projection_dim}]",
        )
        _require(
            "classifier_hidden_sizes",
            self.classifier_hidden_sizes,
            lambda v: isinstance(v, (list, tuple)) and all(_is_positive_int(x) for x in v),
            "a list of positive integers (possibly empty)",
        )


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_positive_int(value) -> bool:
    return _is_int(value) and value > 0


def _is_positive_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _is_probability(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1


def _require(name: str, value, is_allowed, allowed: str) -> None:
    if not is_allowed(value):
        raise ValueError(f"AsteriskConfig.{name} must be {allowed}, got {value!r}.")


__all__ = ["AsteriskConfig"]
