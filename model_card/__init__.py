"""The Hub model card of an Asterisk release: `template.md` rendered from the files of the release folder.

`render_model_card(folder, repo_id)` returns a `huggingface_hub.ModelCard`; `validate_in_fresh_process.py`
is the script `push_to_hub.py` runs to load a release as a Hub user would. Not shipped to the Hub.
"""

from .render import (
    DEFAULT_LICENSE,
    MTEB_DATASETS,
    PLACEHOLDER_REPO_ID,
    build_card_data,
    count_parameters,
    eval_results,
    release_facts,
    render_model_card,
)

__all__ = [
    "DEFAULT_LICENSE",
    "MTEB_DATASETS",
    "PLACEHOLDER_REPO_ID",
    "build_card_data",
    "count_parameters",
    "eval_results",
    "release_facts",
    "render_model_card",
]
