"""Fill a config dataclass from defaults, an optional YAML preset and `--key value` command-line overrides.

`--config train/configs/cpu.yaml --max_steps 5 --model.hidden_size 64`: later sources win; values are parsed
as YAML (so `5` is an int, `null` is None, `[a, b]` a list); dotted keys reach into dict fields. Unknown
keys are errors that list the valid ones, so a typo never silently trains the wrong model.
"""

import dataclasses
import sys
from pathlib import Path
from typing import Any

import yaml


def _number_or_same(value: Any) -> Any:
    """YAML 1.1 reads `1e-3` (no dot) as a string; users mean a number."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _set(values: dict, key: str, value: Any, valid: set[str], source: str) -> None:
    value = _number_or_same(value)
    head, _, rest = key.partition(".")
    if head not in valid:
        raise ValueError(f"Unknown config key {head!r} in {source}; valid keys: {', '.join(sorted(valid))}.")
    if rest:
        nested = dict(values.get(head) or {})
        nested[rest] = value
        values[head] = nested
    else:
        values[head] = value


def parse_config(cls, argv: list[str] | None = None):
    """Build a `cls` instance from `--config PATH` (YAML) and `--key value` pairs in `argv`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(f"usage: [--config PRESET.yaml] [--key value ...]\n\n{cls.__doc__}")
        raise SystemExit(0)
    valid = {field.name for field in dataclasses.fields(cls)}
    values: dict[str, Any] = {}

    pairs = []
    while argv:
        key = argv.pop(0)
        if not key.startswith("--"):
            raise ValueError(f"Expected --key value, got {key!r}.")
        key = key[2:].replace("-", "_") if "." not in key else key[2:]
        if "=" in key:
            key, raw = key.split("=", 1)
        elif argv and not argv[0].startswith("--"):
            raw = argv.pop(0)
        else:
            raw = "true"  # a bare flag
        pairs.append((key, raw))

    for key, raw in pairs:
        if key == "config":
            path = Path(raw)
            if not path.is_file():
                raise FileNotFoundError(f"Config file {path} does not exist.")
            for preset_key, value in (yaml.safe_load(path.read_text()) or {}).items():
                _set(values, preset_key, value, valid, str(path))
            values["config"] = str(path) if "config" in valid else values.get("config")
    for key, raw in pairs:
        if key != "config":
            _set(values, key, yaml.safe_load(raw), valid, "the command line")
    return cls(**{key: value for key, value in values.items() if key in valid})
