"""Fill a typed config dataclass from its defaults, an optional YAML preset and `--key value` overrides.

    --config cpu                     a preset by name (train/configs/cpu.yaml) or a path to a YAML file
    --max_steps 5 --model.hidden_size 64 --corpus "[a.txt, b.jsonl]" --teacher_dim null

Later sources win. Every value is checked against the field's type annotation and converted: an `int` field
takes `5` but not `1e1`, `32.5` or `abc`; a `str` field keeps `--output_dir 2024` as the string "2024"; `null`
sets an optional field to None; a bare `--flag` means true. Fields whose metadata names a `schema` (a class
with annotations, e.g. the student's `AsteriskConfig`) accept a mapping, or dotted keys, checked against the
schema's own fields and types. Unknown keys and wrong types are errors that name the key and what it takes,
so a typo never silently trains the wrong model.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

import yaml

PRESET_DIR = Path(__file__).resolve().parent.parent / "configs"
_INT = re.compile(r"^[+-]?\d+$")
_NULL = {"null", "none", "~"}
_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


class ConfigError(ValueError):
    """A preset or command-line value that the config does not accept; the message names the key."""


def preset_path(name_or_path: str) -> Path:
    """A preset name (`cpu`, `release`...) -> train/configs/<name>.yaml; anything else is a path."""
    path = Path(name_or_path).expanduser()
    if path.suffix not in (".yaml", ".yml") and (PRESET_DIR / f"{name_or_path}.yaml").is_file():
        return PRESET_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PRESET_DIR.glob("*.yaml")))
        raise FileNotFoundError(f"Config file {path} does not exist (presets: {known}).")
    return path


def _type_name(annotation) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def coerce(value: Any, annotation, key: str, from_text: bool, schema=None) -> Any:
    """`value` converted to `annotation`, or `ConfigError` naming `key`. `from_text`: a command-line string."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (value is None or (from_text and str(value).strip().lower() in _NULL)):
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return coerce(value, option, key, from_text, schema)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: none of {options} accepts {value!r}.")
    if annotation is Any:
        return yaml.safe_load(value) if from_text else value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if from_text and str(value).strip().lower() in _TRUE | _FALSE:
            return str(value).strip().lower() in _TRUE
        raise ConfigError(f"{key} takes true or false, got {value!r}.")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if from_text and _INT.match(str(value).strip()):
            return int(value)
        raise ConfigError(f"{key} takes an integer, got {value!r}.")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string; it means a number
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key} takes a number, got {value!r}.")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key} takes a string, got {type(value).__name__} {value!r} (quote it in YAML).")
    if origin is list:
        if from_text:
            parsed = yaml.safe_load(value)
            value = parsed if isinstance(parsed, list) else [value]
        if not isinstance(value, list):
            raise ConfigError(f"{key} takes a list, got {value!r}.")
        item = args[0] if args else Any
        return [coerce(v, item, f"{key}[{i}]", False, schema) for i, v in enumerate(value)]
    if origin is dict or annotation is dict:
        if from_text:
            value = yaml.safe_load(value)
        if not isinstance(value, dict):
            raise ConfigError(f"{key} takes a mapping, got {value!r}.")
        if not schema:
            return value
        return {k: coerce_schema_value(schema, k, v, f"{key}.{k}", False) for k, v in value.items()}
    raise ConfigError(f"{key}: unsupported field type {annotation!r}.")  # pragma: no cover - a programming error


def _schema_hints(schema) -> dict:
    hints = {}
    for klass in reversed(schema.__mro__):
        if klass is object:
            continue
        try:
            hints.update(typing.get_type_hints(klass))
        except (NameError, TypeError):
            hints.update({k: v for k, v in getattr(klass, "__annotations__", {}).items() if not isinstance(v, str)})
    return {k: v for k, v in hints.items() if not k.startswith("_") and typing.get_origin(v) is not typing.ClassVar}


def coerce_schema_value(schema, name: str, value: Any, key: str, from_text: bool) -> Any:
    hints = _schema_hints(schema)
    if name not in hints:
        raise ConfigError(f"Unknown key {key!r}: {schema.__name__} has no field {name!r}; its fields: "
                          f"{', '.join(sorted(hints))}.")
    return coerce(value, hints[name], key, from_text)


def parse_config(cls, argv: list[str] | None = None):
    """Build a `cls` instance from `--config PRESET` (YAML) and `--key value` pairs in `argv`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(f"usage: [--config PRESET] [--key value ...]\n\n{cls.__doc__}\n\nKeys and defaults:")
        for field in dataclasses.fields(cls):
            default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
            print(f"  --{field.name} ({_type_name(field.type)}, default {default!r})")
        raise SystemExit(0)
    hints = typing.get_type_hints(cls)
    fields = {field.name: field for field in dataclasses.fields(cls)}

    pairs = []
    while argv:
        token = argv.pop(0)
        if not token.startswith("--") or len(token) == 2:
            raise ConfigError(f"Expected --key value, got {token!r}.")
        key = token[2:]
        if "=" in key:
            key, raw = key.split("=", 1)
        elif argv and not argv[0].startswith("--"):
            raw = argv.pop(0)
        else:
            raw = "true"  # a bare flag
        head, dot, rest = key.partition(".")
        pairs.append((head.replace("-", "_") + dot + rest, raw))

    values: dict[str, Any] = {}

    def set_value(key: str, value: Any, from_text: bool, source: str) -> None:
        head, _, rest = key.partition(".")
        if head not in fields:
            raise ConfigError(f"Unknown config key {head!r} in {source}; valid keys: {', '.join(sorted(fields))}.")
        schema = fields[head].metadata.get("schema")
        try:
            if rest:
                if schema is None:
                    raise ConfigError(f"{head} has no sub-keys (got {key!r}).")
                nested = dict(values.get(head) or {})
                nested[rest] = coerce_schema_value(schema, rest, value, key, from_text)
                values[head] = nested
            else:
                values[head] = coerce(value, hints[head], head, from_text, schema)
        except ConfigError as error:
            raise ConfigError(f"{error} ({source})") from None

    for key, raw in pairs:
        if key == "config":
            path = preset_path(raw)
            try:
                preset = yaml.safe_load(path.read_text())
            except yaml.YAMLError as error:
                raise ConfigError(f"Config file {path} is not valid YAML: {error}") from error
            if preset is None:
                preset = {}
            if not isinstance(preset, dict):
                raise ConfigError(f"Config file {path} must hold a mapping of keys to values, got a "
                                  f"{type(preset).__name__}.")
            for preset_key, value in preset.items():
                set_value(str(preset_key), value, False, str(path))
            if "config" in fields:
                values["config"] = str(path)
    for key, raw in pairs:
        if key != "config":
            set_value(key, raw, True, "the command line")
    return cls(**values)
