"""Build a paper-size Asterisk, save it as a Hub-ready folder, reload it with AutoModel and embed a few texts.

Stands in for the main job until distillation exists: shows the package end to end on CPU in seconds.
"""

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import AutoModel  # noqa: E402

from modeling_asterisk import AsteriskConfig, AsteriskModel, build_tokenizer  # noqa: E402
from modeling_asterisk.saving import save_model_folder  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--output_dir", default="outputs/demo")
args = parser.parse_args()

torch.manual_seed(0)
model = AsteriskModel(AsteriskConfig())
print(f"Asterisk parameters: {model.num_parameters():,}")
folder = save_model_folder(model, build_tokenizer(), args.output_dir, overwrite=True)
reloaded = AutoModel.from_pretrained(folder)
embeddings = reloaded.encode(["Asterisk is a tiny embedding model.", "It runs fast on a CPU."])
print(f"saved to {folder}; embeddings {tuple(embeddings.shape)}, cosine {float(embeddings[0] @ embeddings[1]):.3f}")
