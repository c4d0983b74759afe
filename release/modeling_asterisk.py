"""Asterisk: a tiny bidirectional transformer for sentence embeddings (arXiv 2411.05691).

Read top to bottom: attention, MLP, layer, embeddings, pooling, then the models. Every token's final hidden
state is projected into the embedding space (`AsteriskPooler.projection`): those are `last_hidden_state`,
the token features `pipeline("feature-extraction")` returns. The sentence embedding is their masked mean
(`pooler_output`), which equals the projection of the mean hidden state since the map is linear; so plain
mean pooling, as sentence-transformers and most users apply it, gives the sentence embedding with no custom
code, and the same pooling feeds `encode`, the classification head and distillation.

This file is shipped to the Hub beside the weights: relative imports only, no network, no pickles.
"""

import itertools
import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerFast
from transformers.activations import ACT2FN
from transformers.modeling_outputs import BaseModelOutputWithPooling, SequenceClassifierOutput

from .configuration_asterisk import AsteriskConfig

try:  # transformers >= 5: these initialisers leave weights loaded from a checkpoint untouched
    from transformers import initialization as init
except ImportError:  # pragma: no cover - older transformers
    from torch.nn import init


class AsteriskAttention(nn.Module):
    """Bidirectional multi-head self-attention: `scaled_dot_product_attention` ("sdpa", the default), or the
    explicit softmax ("eager"), which can also return the attention probabilities."""

    def __init__(self, config: AsteriskConfig):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout_p = config.attention_probs_dropout_prob

    def forward(self, hidden_states: torch.Tensor, key_mask: torch.Tensor | None,
                output_attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, length, width = hidden_states.shape
        qkv = self.qkv(hidden_states).view(batch, length, 3, self.num_heads, self.head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, T, D)
        dropout_p = self.dropout_p if self.training else 0.0
        probabilities = None
        if output_attentions or self.config._attn_implementation == "eager":
            scores = query @ key.transpose(-1, -2) / self.head_dim**0.5  # (B, H, T, T)
            if key_mask is not None:
                scores = scores.masked_fill(~key_mask, torch.finfo(scores.dtype).min)
            probabilities = scores.softmax(dim=-1)
            attended = F.dropout(probabilities, p=dropout_p, training=self.training) @ value  # (B, H, T, D)
        else:
            attended = F.scaled_dot_product_attention(query, key, value, attn_mask=key_mask, dropout_p=dropout_p)
        output = self.out_proj(attended.transpose(1, 2).reshape(batch, length, width))
        return output, probabilities


class AsteriskMLP(nn.Module):
    def __init__(self, config: AsteriskConfig):
        super().__init__()
        self.fc_in = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = ACT2FN[config.hidden_act]
        self.fc_out = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc_out(self.act(self.fc_in(hidden_states)))


class AsteriskLayer(nn.Module):
    """Pre-norm transformer layer: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, config: AsteriskConfig):
        super().__init__()
        self.attn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attn = AsteriskAttention(config)
        self.mlp_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = AsteriskMLP(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, key_mask: torch.Tensor | None,
                output_attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, probabilities = self.attn(self.attn_norm(hidden_states), key_mask, output_attentions)
        hidden_states = hidden_states + self.dropout(attended)
        return hidden_states + self.dropout(self.mlp(self.mlp_norm(hidden_states))), probabilities


class AsteriskEmbeddings(nn.Module):
    """Token embeddings plus learned absolute position embeddings."""

    def __init__(self, config: AsteriskConfig):
        super().__init__()
        self.token_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids=None, position_ids=None, inputs_embeds=None) -> torch.Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.token_embeddings(input_ids)
        return self.dropout(inputs_embeds + self.position_embeddings(position_ids))


def masked_mean(hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of `hidden_states` (B, T, C) over the positions where `attention_mask` (B, T) is 1.

    A row with no tokens (an empty text) gives a zero vector instead of NaN.
    """
    mask = attention_mask.unsqueeze(-1).to(hidden_states.dtype)  # (B, T, 1)
    summed = (hidden_states * mask).sum(dim=1)  # (B, C)
    return summed / mask.sum(dim=1).clamp(min=1.0)


class AsteriskPooler(nn.Module):
    """Projects each token into the embedding space; the sentence embedding is the masked mean of those."""

    def __init__(self, config: AsteriskConfig):
        super().__init__()
        self.projection = nn.Linear(config.hidden_size, config.projection_dim)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(token features (B, T, projection_dim), sentence embeddings (B, projection_dim))."""
        token_features = self.projection(hidden_states)
        return token_features, masked_mean(token_features, attention_mask)


class AsteriskPreTrainedModel(PreTrainedModel):
    config_class = AsteriskConfig
    config: AsteriskConfig
    base_model_prefix = "asterisk"
    main_input_name = "input_ids"
    _no_split_modules = ["AsteriskLayer"]
    _supports_sdpa = True
    _supports_attention_backend = False  # its own two paths: "sdpa" and "eager"

    def _init_weights(self, module):
        # The paper: normal embeddings, Xavier-uniform attention and MLP weights.
        if isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
        elif isinstance(module, nn.Linear):
            init.xavier_uniform_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)


class AsteriskModel(AsteriskPreTrainedModel):
    """The Asterisk encoder. `last_hidden_state` holds the token features in the embedding space;
    `pooler_output`, their masked mean, is the sentence embedding (not L2-normalised)."""

    def __init__(self, config: AsteriskConfig):
        super().__init__(config)
        self.embeddings = AsteriskEmbeddings(config)
        self.layers = nn.ModuleList([AsteriskLayer(config) for _ in range(config.num_hidden_layers)])
        self.final_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.pooler = AsteriskPooler(config)
        self._encode_tokenizer = None
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.token_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.token_embeddings = value

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling | tuple:
        """
        Args:
            input_ids: (B, T) token ids, T <= `max_position_embeddings`.
            attention_mask: (B, T), 1 for tokens and 0 for padding. If omitted, positions holding
                `pad_token_id` are treated as padding.
            position_ids: (B, T). If omitted, each sequence counts its own tokens from 0, so left and
                right padding give the same result.
            inputs_embeds: (B, T, C) instead of `input_ids`.
            output_attentions: also return every layer's attention probabilities (B, H, T, T).
            output_hidden_states: also return the embeddings output and every layer's output.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        if input_ids is not None:
            self._check_input_ids(input_ids)
            batch, length = input_ids.shape
            device = input_ids.device
        else:
            batch, length = inputs_embeds.shape[:2]
            device = inputs_embeds.device
        if length > self.config.max_position_embeddings:
            raise ValueError(
                f"Sequence length {length} exceeds max_position_embeddings={self.config.max_position_embeddings}; "
                "truncate the input (tokenizer(..., truncation=True)) or use model.encode, which truncates."
            )

        if attention_mask is None:
            if input_ids is not None and self.config.pad_token_id is not None:
                attention_mask = (input_ids != self.config.pad_token_id).long()
            else:
                attention_mask = torch.ones(batch, length, dtype=torch.long, device=device)
        if position_ids is None:
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)

        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (output_hidden_states if output_hidden_states is not None
                                else self.config.output_hidden_states)
        hidden_states = self.embeddings(input_ids, position_ids, inputs_embeds)
        key_mask = _attention_key_mask(attention_mask)
        all_hidden_states = [hidden_states] if output_hidden_states else None
        all_attentions = [] if output_attentions else None
        for layer in self.layers:
            hidden_states, probabilities = layer(hidden_states, key_mask, output_attentions)
            if output_hidden_states:
                all_hidden_states.append(hidden_states)
            if output_attentions:
                all_attentions.append(probabilities)
        token_features, pooled = self.pooler(self.final_norm(hidden_states), attention_mask)

        output = BaseModelOutputWithPooling(
            last_hidden_state=token_features,
            pooler_output=pooled,
            hidden_states=tuple(all_hidden_states) if output_hidden_states else None,
            attentions=tuple(all_attentions) if output_attentions else None,
        )
        return output if return_dict is not False else output.to_tuple()

    def _check_input_ids(self, input_ids: torch.Tensor) -> None:
        if input_ids.ndim != 2:
            raise ValueError(f"input_ids must have shape (batch, length), got {tuple(input_ids.shape)}.")
        if input_ids.numel() == 0 or torch.compiler.is_compiling():
            return
        # One host-device synchronisation; the offending id is looked up only when there is one.
        outside = (input_ids < 0) | (input_ids >= self.config.vocab_size)
        if bool(outside.any()):
            bad = int(input_ids[outside][0])
            raise ValueError(
                f"input_ids contains token id {bad}, outside the vocabulary [0, {self.config.vocab_size}). "
                "Was the text tokenised with this model's tokenizer?"
            )

    @torch.inference_mode()
    def encode(
        self,
        texts: str | Sequence[str],
        tokenizer=None,
        batch_size: int = 64,
        normalize: bool = True,
        max_length: int | None = None,
        truncate_dim: int | None = None,
        long_texts: str = "truncate",
    ) -> torch.Tensor:
        """Embed texts as sentence vectors, as `pooler_output` (optionally L2-normalised).

        Texts are sorted by length and padded per batch, so batches waste little work on padding.
        Texts longer than `max_length` tokens (default: `max_position_embeddings`) are truncated to their
        first `max_length` tokens, with one warning per call, or, with `long_texts="chunk"`, cut into
        consecutive windows of `max_length` tokens whose embeddings are averaged, weighted by their token
        counts (before normalising); since the pooling is a token mean followed by a linear projection, that
        is the projection of the mean over all of the text's tokens, each seen in its own window's context.

        Args:
            texts: a string, or a sequence of strings (an empty string is allowed).
            tokenizer: the tokenizer to use; by default the one saved beside the model, loaded from local
                files only (pass one explicitly if the model's folder has none).
            batch_size: texts per forward pass.
            normalize: L2-normalise the embeddings.
            max_length: token limit per text, at most `max_position_embeddings`.
            truncate_dim: keep only the first `truncate_dim` dimensions of each embedding (Matryoshka
                style), before normalising.
            long_texts: "truncate" (the default, what the model was trained on) or "chunk".

        Returns:
            A float32 CPU tensor of shape (len(texts), truncate_dim or projection_dim), or
            (truncate_dim or projection_dim,) for one string.
        """
        # The steps of asterisk_embeddings.text_batching, kept here so the Hub file stands alone (a test pins them).
        single = isinstance(texts, str)
        texts = [texts] if single else texts
        if not isinstance(texts, Sequence):
            raise TypeError(f"texts must be a string or a sequence of strings, got {type(texts).__name__}.")
        for position, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{position}] is {type(text).__name__}, expected str.")
        limit = self.config.max_position_embeddings if max_length is None else max_length
        valid = isinstance(limit, int) and not isinstance(limit, bool)
        if not valid or not 0 < limit <= self.config.max_position_embeddings:
            raise ValueError(f"max_length must be an integer in [1, {self.config.max_position_embeddings}], "
                             f"got {max_length!r}.")
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
        dim = self.config.projection_dim
        if truncate_dim is not None and (
            not isinstance(truncate_dim, int) or isinstance(truncate_dim, bool) or not 0 < truncate_dim <= dim
        ):
            raise ValueError(f"truncate_dim must be an integer in [1, {dim}], got {truncate_dim!r}.")
        if long_texts not in ("truncate", "chunk"):
            raise ValueError(f"long_texts must be 'truncate' or 'chunk', got {long_texts!r}.")
        if not texts:
            return torch.empty(0, truncate_dim or dim)

        tokenizer = tokenizer or self._load_own_tokenizer()
        if len(tokenizer) < self.config.vocab_size:
            raise ValueError(f"The tokenizer has {len(tokenizer)} tokens but the model {self.config.vocab_size}: it is "
                             "not this model's tokenizer (a folder without tokenizer.json gives such an empty one).")
        if long_texts == "chunk":
            # Every window of every text is one row; `owner` maps rows back to texts, weighted by length.
            full = tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False, verbose=False)
            ids, owner = [], []
            for position, row in enumerate(full["input_ids"]):
                windows = [row[i : i + limit] for i in range(0, len(row), limit)] or [row]
                ids.extend(windows)
                owner.extend([position] * len(windows))
        else:
            # Tokenising to limit + 1 tells which texts were longer than the limit, without a second pass.
            ids = tokenizer(
                list(texts), add_special_tokens=False, truncation=True, max_length=limit + 1,
                return_attention_mask=False,
            )["input_ids"]
            truncated = sum(len(row) > limit for row in ids)
            if truncated:
                warnings.warn(
                    f"{truncated} of {len(ids)} texts were longer than {limit} tokens and were truncated to their "
                    f"first {limit} tokens.",  # the ONNX encoder warns with the same words
                    stacklevel=3,  # the caller of encode, past the inference_mode wrapper
                )
            ids = [row[:limit] for row in ids]

        was_training = self.training
        self.eval()
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
        chunks = []
        try:
            for start in range(0, len(order), batch_size):
                batch_rows = [ids[i] for i in order[start : start + batch_size]]
                input_ids, attention_mask = _pad_right(batch_rows, self.config.pad_token_id or 0, self.device)
                chunks.append(self(input_ids=input_ids, attention_mask=attention_mask).pooler_output.float())
        finally:
            self.train(was_training)

        sorted_embeddings = torch.cat(chunks)
        embeddings = torch.empty_like(sorted_embeddings)
        embeddings[torch.tensor(order, device=embeddings.device)] = sorted_embeddings
        if long_texts == "chunk" and len(ids) > len(texts):
            weights = torch.tensor([max(len(row), 1) for row in ids], dtype=embeddings.dtype, device=embeddings.device)
            index = torch.tensor(owner, device=embeddings.device)
            totals = torch.zeros(len(texts), device=embeddings.device).index_add_(0, index, weights)
            summed = torch.zeros(len(texts), dim, device=embeddings.device)
            summed = summed.index_add_(0, index, embeddings * weights[:, None])
            embeddings = summed / totals[:, None]
        if truncate_dim is not None:
            embeddings = embeddings[:, :truncate_dim]
        if normalize:
            embeddings = F.normalize(embeddings, dim=-1)
        embeddings = embeddings.cpu()
        return embeddings[0] if single else embeddings

    def _load_own_tokenizer(self):
        if self._encode_tokenizer is None:
            source = self.name_or_path
            try:
                # The saved tokenizer is a plain fast tokenizer (tokenizer.json): loading it directly skips
                # AutoTokenizer's config lookup, 0.13 s instead of 0.34 s.
                self._encode_tokenizer = PreTrainedTokenizerFast.from_pretrained(source, local_files_only=True)
            except (OSError, ValueError) as error:
                raise ValueError(
                    f"{source!r} has no tokenizer.json, so the model cannot tokenise text: copy the tokenizer files "
                    "beside the weights, or pass tokenizer= (the GPT-2 tokenizer with [PAD] and [MASK]: "
                    "asterisk_embeddings.tokenizer.build_tokenizer())."
                ) from error
        return self._encode_tokenizer


class AsteriskClassificationHead(nn.Module):
    """The paper's "+ FC": a small fully connected network on the sentence embedding."""

    def __init__(self, config: AsteriskConfig):
        super().__init__()
        layers = []
        width = config.projection_dim
        for hidden in config.classifier_hidden_sizes:
            layers += [
                nn.Dropout(config.classifier_dropout),
                nn.Linear(width, hidden),
                ACT2FN[config.classifier_activation],
            ]
            width = hidden
        layers += [nn.Dropout(config.classifier_dropout), nn.Linear(width, config.num_labels)]
        self.net = nn.Sequential(*layers)

    def forward(self, sentence_embedding: torch.Tensor) -> torch.Tensor:
        return self.net(sentence_embedding)


class AsteriskForSequenceClassification(AsteriskPreTrainedModel):
    """Asterisk with a fully connected head on its sentence embedding.

    The loss follows transformers: `problem_type` "regression" -> MSE, "single_label_classification" ->
    cross-entropy, "multi_label_classification" -> BCE-with-logits; inferred from `num_labels` and the
    labels' dtype when unset. To train the head alone, freeze the encoder in the training code:
    `model.asterisk.requires_grad_(False)`.
    """

    def __init__(self, config: AsteriskConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.asterisk = AsteriskModel(config)
        self.classifier = AsteriskClassificationHead(config)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput | tuple:
        encoded = self.asterisk(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        logits = self.classifier(encoded.pooler_output)
        loss = self._loss(logits, labels) if labels is not None else None
        output = SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=encoded.hidden_states,
                                          attentions=encoded.attentions)
        return output if return_dict is not False else output.to_tuple()

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        labels = labels.to(logits.device)
        if self.config.problem_type is None:
            if self.num_labels == 1:
                self.config.problem_type = "regression"
            elif labels.dtype in (torch.long, torch.int):
                self.config.problem_type = "single_label_classification"
            else:
                self.config.problem_type = "multi_label_classification"
        if self.config.problem_type == "regression":
            if self.num_labels == 1:
                return F.mse_loss(logits.squeeze(-1), labels.squeeze(-1).to(logits.dtype))
            return F.mse_loss(logits, labels.to(logits.dtype))
        if self.config.problem_type == "single_label_classification":
            return F.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1))
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


def _attention_key_mask(attention_mask: torch.Tensor) -> torch.Tensor | None:
    """(B, T) 0/1 mask -> (B, 1, 1, T) boolean keys mask for SDPA, or None when nothing is padded.

    A row with no tokens at all may attend everywhere: its output is discarded by the pooling, and
    an all-False row would make SDPA return NaN.
    """
    keys = attention_mask.bool()
    # On CPU, skipping an all-True mask lets SDPA take its fastest path; on an accelerator the check would
    # cost a host-device synchronisation per forward, so the mask is always passed there.
    if keys.device.type != "cpu" or torch.compiler.is_compiling() or not bool(keys.all()):
        keys = keys | ~keys.any(dim=-1, keepdim=True)
        return keys[:, None, None, :]
    return None


def _pad_right(rows: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id lists to the longest one (at least 1, so empty texts still form a batch)."""
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    attention_mask = np.arange(max(1, int(lengths.max()))) < lengths[:, None]  # (B, T)
    input_ids = np.full(attention_mask.shape, pad_id, dtype=np.int64)
    # Boolean-mask assignment fills row by row, left to right: the order of the concatenated rows.
    tokens = itertools.chain.from_iterable(rows)
    input_ids[attention_mask] = np.fromiter(tokens, dtype=np.int64, count=int(lengths.sum()))
    return torch.from_numpy(input_ids).to(device), torch.from_numpy(attention_mask).long().to(device)


__all__ = [
    "AsteriskModel",
    "AsteriskForSequenceClassification",
    "AsteriskPreTrainedModel",
    "AsteriskPooler",
    "masked_mean",
]
