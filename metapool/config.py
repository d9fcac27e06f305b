"""Read and check ``config.yaml`` before Snakemake uses it: located messages, safe YAML, safe paths.

The workflow (``Snakefile``, ``workflow/rules/common.smk``) calls these functions while Snakemake
parses it, i.e. before any job runs.  Every problem is a :class:`ConfigError` whose message names
the file, the line and column as an editor shows them (both counted from 1), the key
(``outcomes/fever/measure``), the value and what is allowed, e.g.::

    config.yaml, line 31, column 14, key outcomes/fever/measure: value 'PLOO' is not allowed:
    one of PR, PLO, PAS, PFT, RR, OR, RD, PETO, MD, SMD, SMCR, SMCC, MC, GEN; did you mean 'PLO'?

Why the workflow reads ``config.yaml`` itself first (:func:`read_config`): Snakemake's own loader
(``configfile:``) reports any YAML error as "Config file is not valid JSON or YAML" without a
location, keeps the last of two equal keys silently, and is not a safe loader: it resolves
``!!python/name:`` tags and, when the file contains ``__use_yte__: true``, evaluates embedded
Python expressions (YTE templating).  :func:`read_config` parses with ``yaml.SafeLoader`` and
rejects all of these with a located message, so Snakemake only ever loads a file that is plain
YAML data.

Paths (:func:`check_paths`): every file named in the config (``studies``, ``tables``,
``targets`` and any key whose name ends in ``file``, ``files``, ``path``, ``paths``, ``csv``,
``dir``) must be relative to the working directory and stay inside it (no absolute paths, no
``~``, no ``..`` that leaves it); the check is lexical, so a symbolic link inside the working
directory is followed on purpose.  Outputs are written only to fixed names under ``results/``
built from outcome keys, which :func:`check_outcome_keys` restricts to letters, digits and
``_``; no config value can therefore make the pipeline write outside the working directory.

This module imports only the standard library at import time (``yaml`` and ``jsonschema`` when
used; ``metapool/__init__.py`` imports nothing eagerly), so that a run with nothing to do stays fast.
Files given with ``--configfile`` are loaded by Snakemake itself before the workflow is parsed;
``workflow/rules/common.smk`` re-reads them with :func:`read_config` for the same located checks.

Validated against: ``tests/test_bad_input.py`` (one broken config per check, through
:func:`metapool.workflow.load_project`, a few through Snakemake), ``tests/test_hostile_input.py``
and ``tests/test_safety.py``.
"""
from __future__ import annotations

import difflib
import posixpath
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["ConfigError", "read_config", "locate", "config_error", "schema_problems", "check_paths",
           "config_paths", "path_problem", "check_outcome_keys", "setting_keys", "check_numbers",
           "OUTCOME_KEY"]

OUTCOME_KEY = re.compile(r"[A-Za-z0-9_]{1,64}")
"""Outcome keys become file names (``results/pooled/{outcome}.json``): 1 to 64 letters, digits or
``_``, matched with ``fullmatch`` (``$`` would accept a final newline)."""

MAX_CONFIG_BYTES = 1024 * 1024
"""Largest config file read; a bigger one is refused before it is parsed."""
MAX_ALIASES = 100
"""Most YAML aliases (``*name``) allowed; an alias bomb expands a 1 KB file to gigabytes."""
MAX_NODES = 200_000
"""Most values the config may expand to (aliases counted with the size of what they repeat)."""

PATH_KEYS = ("studies", "tables", "targets")
_PATH_SUFFIXES = ("file", "files", "path", "paths", "csv", "dir")
_NO_VALUE = object()


class ConfigError(ValueError):
    """A problem in the config, located as the user sees it.

    Attributes ``path``, ``line``, ``column`` (character position, from 1), ``key`` (a
    ``/``-joined key path), ``value`` and ``allowed`` hold the parts of the message.
    """

    def __init__(self, path, line=None, column=None, key=None, value=_NO_VALUE, allowed=""):
        self.path, self.line, self.column, self.key = path, line, column, key
        self.value = None if value is _NO_VALUE else value
        self.allowed = allowed
        where = [str(path)]
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column}")
        if key:
            where.append(f"key {key}")
        msg = ", ".join(where) + ": "
        if value is not _NO_VALUE:
            msg += f"value {_show(value)} is not allowed: "
        super().__init__(msg + allowed)


def _show(v) -> str:
    s = repr(v) if not isinstance(v, str) else repr(v if len(v) <= 60 else v[:57] + "...")
    return s if len(s) <= 80 else s[:77] + "..."


def _suggest(value, candidates: Iterable[str], cutoff: float = 0.6) -> str:
    close = difflib.get_close_matches(str(value), [str(c) for c in candidates], n=1, cutoff=cutoff)
    return f"; did you mean {close[0]!r}?" if close else ""


def _keypath(parts: Sequence) -> str:
    return "/".join(str(p) for p in parts)


# --------------------------------------------------------------------------- reading YAML
def _loader():
    """A SafeLoader (libyaml if available) that refuses duplicate keys, with their lines."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class StrictLoader(base):  # type: ignore[misc, valid-type]
        pass

    def construct_mapping(loader, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:           # the keys written here (not merged in by <<)
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = loader.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:                    # unhashable key: the constructor reports it
                continue
            if first is not None:
                raise _Duplicate(key, first, key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        return yaml.constructor.SafeConstructor.construct_mapping(loader, node, deep=deep)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return StrictLoader


class _Duplicate(Exception):
    def __init__(self, key, first_line, mark):
        super().__init__(key)
        self.key, self.first_line, self.mark = key, first_line, mark


def read_config(path) -> dict:
    """Parse a config file safely and return it as a dict.

    Raises
    ------
    ConfigError
        The file is missing, empty, not UTF-8, not valid YAML (line and column of the error),
        uses a YAML tag that is not plain data (``!!python/...``), enables YTE templating
        (``__use_yte__``), repeats a key, or is not a mapping at the top level.
    """
    import yaml

    p = Path(path)
    if not p.is_file():
        what = "is a directory, not a file" if p.is_dir() else "file not found"
        raise ConfigError(path, allowed=f"{what} (looked in {Path.cwd()}); the workflow reads "
                                        "config.yaml from the working directory (--directory)")
    size = p.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(path, allowed=f"the file has {size:,} bytes; a config of at most "
                                        f"{MAX_CONFIG_BYTES // 1024} KiB is read (put data in CSV files "
                                        "listed under tables:)")
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(path, allowed=f"not UTF-8 text ({exc.reason} at byte {exc.start}); save "
                                        "the file as UTF-8") from None
    m = re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", text)
    if m:
        line = text.count("\n", 0, m.start()) + 1
        raise ConfigError(path, line, None, allowed=f"a control character (\\x{ord(m.group()):02x}) is not "
                                                    "allowed in the config file")
    if not text.strip():
        raise ConfigError(path, allowed="the file is empty; expected studies:, tables: and outcomes: "
                                        "(see docs/workflow.md)")
    _check_expansion(path, text)
    try:
        data = yaml.load(text, Loader=_loader())  # noqa: S506 - a SafeLoader subclass
    except _Duplicate as d:
        raise ConfigError(path, d.mark.line + 1, d.mark.column + 1, str(d.key), _NO_VALUE,
                          f"the key {d.key!r} appears twice in one mapping (first on line "
                          f"{d.first_line}); YAML would silently keep only the last one") from None
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        raise ConfigError(path, mark.line + 1 if mark else None, mark.column + 1 if mark else None,
                          allowed=f"{exc.problem}; only plain YAML data is allowed (mappings, "
                                  "lists, text, numbers, true/false): tags such as !!python/... "
                                  "are refused") from None
    except yaml.MarkedYAMLError as exc:
        mark, ctx = exc.problem_mark or exc.context_mark, exc.context_mark
        why = exc.problem or exc.context or "syntax error"
        if exc.context and ctx is not None and ctx is not mark:
            why += f" ({exc.context} that starts on line {ctx.line + 1}, column {ctx.column + 1})"
        hint = _yaml_hint(text, mark)
        raise ConfigError(path, mark.line + 1 if mark else None, mark.column + 1 if mark else None,
                          allowed=f"invalid YAML: {why}{hint}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(path, allowed=f"invalid YAML: {exc}") from None
    if data is None:
        raise ConfigError(path, allowed="the file has no settings (only comments or blank lines); "
                                        "expected studies:, tables: and outcomes: (see docs/workflow.md)")
    if not isinstance(data, dict):
        raise ConfigError(path, 1, 1, None, type(data).__name__,
                          "the top level must be a mapping (studies:, tables:, outcomes:, ...)")
    if "__use_yte__" in data:
        line = next((i for i, ln in enumerate(text.splitlines(), 1) if "__use_yte__" in ln), None)
        raise ConfigError(path, line, None, "__use_yte__", data["__use_yte__"],
                          "YTE templating runs Python code from the config file; remove the key "
                          "(the config must be plain data)")
    check_numbers(data, [str(path)])
    return data


def _check_expansion(path, text: str) -> None:
    """Refuse YAML whose aliases would expand it beyond :data:`MAX_NODES` values (an alias bomb),
    before anything is built: one pass over the parser events, counting each alias as the size
    of the node it repeats."""
    import yaml

    sizes: dict = {}          # anchor -> number of values in its node
    stack: list = []          # [anchor, count] of the open collections
    total, aliases = 0, 0
    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        for ev in yaml.parse(text, Loader=base):
            if isinstance(ev, yaml.AliasEvent):
                aliases += 1
                n = sizes.get(ev.anchor, 1)
                if aliases > MAX_ALIASES:
                    raise ConfigError(path, ev.start_mark.line + 1, ev.start_mark.column + 1,
                                      allowed=f"more than {MAX_ALIASES} YAML aliases (*name); write the "
                                              "values out")
            elif isinstance(ev, (yaml.ScalarEvent,)):
                n = 1
                if ev.anchor:
                    sizes[ev.anchor] = 1
            elif isinstance(ev, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                stack.append([ev.anchor, 1])
                continue
            elif isinstance(ev, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                anchor, n = stack.pop()
                if anchor:
                    sizes[anchor] = n
            else:
                continue
            total += n
            if stack:
                stack[-1][1] += n
            if total > MAX_NODES or any(c > MAX_NODES for _, c in stack[-1:]):
                raise ConfigError(path, ev.start_mark.line + 1, ev.start_mark.column + 1,
                                  allowed=f"the YAML expands to more than {MAX_NODES:,} values (aliases "
                                          "repeat the nodes they name); write a plain config")
    except yaml.YAMLError:
        return                  # the full parse below reports the syntax error with its location


def _yaml_hint(text: str, mark) -> str:
    if mark is None:
        return ""
    lines = text.splitlines()
    line = lines[mark.line] if mark.line < len(lines) else ""
    if "\t" in line[: len(line) - len(line.lstrip())] or "\t" in line:
        return " (a tab character: indent with spaces)"
    if re.search(r":\s*[^'\"\s][^#]*:\s", line):
        return " (a value that contains ': ' must be quoted)"
    return ""


# --------------------------------------------------------------------------- locating keys
def locate(path, keys: Sequence) -> tuple[int | None, int | None]:
    """Line and column (from 1) of the value at ``keys`` in the YAML file ``path``.

    Falls back to the deepest key that exists; ``(None, None)`` if the file cannot be read.
    Used for messages only (it parses the file again).
    """
    import yaml

    try:
        node = yaml.compose(Path(path).read_text(encoding="utf-8-sig"), Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None, None
    if node is None:
        return None, None
    found = node
    for k in keys:
        nxt = None
        if isinstance(found, yaml.MappingNode):
            nxt = next((v for kn, v in found.value if kn.value == str(k)), None)
        elif isinstance(found, yaml.SequenceNode) and isinstance(k, int) and k < len(found.value):
            nxt = found.value[k]
        if nxt is None:
            break
        found = nxt
    return found.start_mark.line + 1, found.start_mark.column + 1


def _key_node_mark(path, keys: Sequence, name: str):
    """Line/column of the key ``name`` inside the mapping at ``keys`` (for unknown keys)."""
    import yaml

    try:
        node = yaml.compose(Path(path).read_text(encoding="utf-8-sig"), Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None, None
    for k in keys:
        if isinstance(node, yaml.MappingNode):
            node = next((v for kn, v in node.value if kn.value == str(k)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(k, int) and k < len(node.value):
            node = node.value[k]
        else:
            node = None
        if node is None:
            return None, None
    if isinstance(node, yaml.MappingNode):
        for kn, _ in node.value:
            if kn.value == name:
                return kn.start_mark.line + 1, kn.start_mark.column + 1
    return None, None


def config_error(files: Sequence, keys: Sequence, value=_NO_VALUE, allowed="", *,
                 key_name=None) -> ConfigError:
    """A ConfigError located in the last of ``files`` that holds ``keys``."""
    path, line, col = (files[-1] if files else "config.yaml"), None, None
    for f in reversed(list(files)):
        line, col = (_key_node_mark(f, keys, key_name) if key_name is not None else locate(f, keys))
        if line is not None:
            path = f
            break
    shown = list(keys) + ([key_name] if key_name is not None else [])
    return ConfigError(path, line, col, _keypath(shown) or "(top level)", value, allowed)


# --------------------------------------------------------------------------- schema
def schema_problems(config: Mapping, schema: Mapping, files: Sequence = ("config.yaml",),
                    limit: int = 10) -> list[ConfigError]:
    """Schema violations of ``config`` as located :class:`ConfigError` objects (at most ``limit``).

    ``schema`` is the JSON schema (``workflow/schemas/config.schema.yaml``); ``files`` are the
    config files in the order Snakemake read them (a key is located in the last one holding it).
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errs = sorted(validator.iter_errors(config), key=lambda e: (list(map(str, e.absolute_path)),
                                                               e.validator))
    out = []
    for e in _leaf_errors(errs)[:limit]:
        out.append(_schema_error(e, files))
    return out


def _leaf_errors(errs) -> list:
    """Replace oneOf/anyOf errors by their most specific sub-error; one error per location."""
    out, seen = [], set()
    for e in errs:
        while e.validator in ("oneOf", "anyOf") and e.context:
            # the most specific sub-error: deepest, and not "wrong type" of a branch that does not apply
            e = max(e.context, key=lambda c: (len(c.absolute_path), c.validator != "type"))
        where = tuple(map(str, e.absolute_path))
        if where in seen:
            continue
        seen.add(where)
        out.append(e)
    return out


def _schema_error(e, files) -> ConfigError:
    keys = list(e.absolute_path)
    v, schema = e.validator, e.schema
    if v == "enum":
        allowed = "one of " + ", ".join(map(str, e.validator_value)) + _suggest(e.instance, e.validator_value)
        return config_error(files, keys, e.instance, allowed)
    if v == "additionalProperties" and isinstance(e.instance, Mapping):
        known = list((schema.get("properties") or {}).keys())
        extra = [k for k in e.instance if k not in known]
        name = extra[0] if extra else None
        if name is not None and known:
            allowed = (f"unknown key {name!r}{_suggest(name, known)} (allowed keys here: "
                       f"{', '.join(known)})")
            return config_error(files, keys, _NO_VALUE, allowed, key_name=name)
    if v == "required":
        missing = [r for r in e.validator_value if r not in (e.instance or {})]
        return config_error(files, keys, _NO_VALUE, f"the key {missing[0]!r} is required here")
    if v == "propertyNames":
        return config_error(files, keys, _NO_VALUE, f"{e.message} (names: letters, digits and '_')")
    if v == "type":
        want = e.validator_value if isinstance(e.validator_value, str) else " or ".join(e.validator_value)
        words = {"array": "a list", "object": "a mapping", "string": "text", "number": "a number",
                 "integer": "a whole number", "boolean": "true or false"}
        return config_error(files, keys, e.instance, words.get(want, want))
    if v in ("maxLength", "minLength"):
        what = "at most" if v == "maxLength" else "at least"
        return config_error(files, keys, e.instance, f"text of {what} {e.validator_value} characters "
                                                      f"(this has {len(str(e.instance)):,})")
    if v in ("maxItems", "minItems"):
        what = "at most" if v == "maxItems" else "at least"
        return config_error(files, keys, e.instance, f"a list of {what} {e.validator_value} items")
    if v == "pattern":
        return config_error(files, keys, e.instance, "letters, digits and '_' only")
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        op = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[v]
        return config_error(files, keys, e.instance, f"a number {op} {e.validator_value}")
    return config_error(files, keys, e.instance if keys else _NO_VALUE, e.message)


# --------------------------------------------------------------------------- paths
def config_paths(config: Mapping) -> list[tuple[list, str]]:
    """``(key path, value)`` of every file path in the config (see the module docstring)."""
    out: list[tuple[list, Any]] = []

    def is_path_key(name) -> bool:
        name = str(name).lower()
        return name in PATH_KEYS or name.endswith(_PATH_SUFFIXES)

    def walk(node, keys, inherited):
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(v, keys + [k], is_path_key(k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, keys + [i], inherited)
        elif inherited:
            out.append((keys, node))

    for k, v in config.items():
        if k in ("outcomes", "defaults", *PATH_KEYS) or is_path_key(k):
            walk(v, [k], is_path_key(k))
    return out


def path_problem(value) -> str | None:
    """Why ``value`` is not an acceptable data path (None if it is)."""
    if not isinstance(value, str) or not value.strip():
        return "a file path (text) relative to the working directory"
    v = value.strip().replace("\\", "/")
    if v.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", v):
        return ("a path relative to the working directory; absolute paths (and ~) are refused so "
                "that a review folder is self-contained and results do not depend on the machine: "
                "copy the file (or link it) into the working directory")
    norm = posixpath.normpath(v)
    if norm == ".." or norm.startswith("../"):
        return ("a path inside the working directory; '..' must not lead out of it: copy the file "
                "(or link it) into the working directory")
    return None


def check_paths(config: Mapping, files: Sequence = ("config.yaml",), *, must_exist=True) -> None:
    """Every data path is relative, inside the working directory and (optionally) an existing file.

    Raises
    ------
    ConfigError
        Naming the key (e.g. ``tables/2``), its line in the config file, the value and the rule.
    """
    for keys, value in config_paths(config):
        why = path_problem(value)
        if why:
            raise config_error(files, keys, value, why)
    if must_exist:
        for keys, value in config_paths(config):
            p = Path(value)
            if not p.exists():
                raise config_error(files, keys, value, f"file not found (paths are relative to {Path.cwd()})")
            if not p.is_file():
                raise config_error(files, keys, value, "a file, not a directory")


def check_outcome_keys(config: Mapping, files: Sequence = ("config.yaml",)) -> None:
    """Outcome keys are file-name safe (letters, digits, '_'): outputs stay inside results/."""
    for key in (config.get("outcomes") or {}):
        if not isinstance(key, str) or not OUTCOME_KEY.fullmatch(key):
            raise config_error(files, ["outcomes"], _NO_VALUE,
                               f"outcome key {key!r} is not allowed: 1 to 64 letters, digits and '_' "
                               "only (the key becomes a file name in results/)", key_name=str(key))


def setting_keys(config: Mapping, outcome: str, name: str) -> list:
    """Where an outcome's setting ``name`` comes from: its own entry, ``defaults`` or neither."""
    own = (config.get("outcomes") or {}).get(outcome) or {}
    if name in own:
        return ["outcomes", outcome, name]
    if name in (config.get("defaults") or {}):
        return ["defaults", name]
    return ["outcomes", outcome]


def check_numbers(config: Mapping, files: Sequence = ("config.yaml",)) -> None:
    """Every number in the config is finite: YAML's ``.nan`` and ``.inf`` pass a JSON schema's
    ``type: number`` and every comparison with it is false, so they are refused here."""
    import math

    def walk(node, keys):
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(v, keys + [k])
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, keys + [i])
        elif isinstance(node, float) and not math.isfinite(node):
            raise config_error(files, keys, node, "a finite number (.nan and .inf are not numbers a "
                                                  "setting can take)")

    walk(config, [])
