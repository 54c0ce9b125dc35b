"""The top-level keys a recipe may hold, and the check that names a typo'd one before anything loads.

``fastcurl train`` parses a recipe into ``FastCuRLConfig`` (a ``GRPOConfig``, so a ``TrainingArguments``) and the
CLI's ``RunArguments``. Importing TRL to list their fields takes seconds, which ``fastcurl plan`` must not spend, so
the field names are read from the classes' source files with ``ast`` (about 50 ms), following each base class to
the file it is imported from. ``fastcurl train --help`` reads the fields' defaults and help the same way.
``tests/test_cli_errors.py`` and ``tests/test_first_hour.py`` keep both equal to the imported dataclasses'.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any

# The dataclasses `fastcurl train` parses a recipe into: (top-level package, file inside it, class).
RECIPE_DATACLASSES = (("fastcurl", "curriculum/config.py", "FastCuRLConfig"), ("fastcurl", "cli.py", "RunArguments"))
# Classes that lazily-initialised packages re-export from a submodule (their __init__ does not define them).
LAZY_REEXPORTS = {("trl", "GRPOConfig"): "trainer.grpo_config", ("transformers", "TrainingArguments"): "training_args"}
# Keys TRL's parser reads from a recipe itself (``env``: environment variables to set).
PARSER_KEYS = frozenset({"env"})


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)  # finds a top-level package without importing it
    return Path(spec.origin).parent if spec and spec.origin else None


def _module_file(module: str, importer: Path, level: int) -> Path | None:
    """The source file of ``module`` as imported from ``importer`` (``level`` dots of a relative import)."""
    if level:
        base = importer.parent
        for _ in range(level - 1):
            base = base.parent
    else:
        top, _, module = module.partition(".")
        base = _package_dir(top)
        if base is None:
            return None
    path = base.joinpath(*module.split(".")) if module else base
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _class_fields(path: Path, name: str, seen: set[tuple[Path, str]]) -> dict[str, ast.AnnAssign] | None:
    """Annotated class attributes of ``name`` in ``path`` and of its bases (a subclass's definition wins), with
    their source nodes; None where a base cannot be found."""
    if (path, name) in seen:
        return {}
    seen.add((path, name))
    tree = ast.parse(path.read_text())
    node = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name), None)
    if node is None:
        return None
    own = {n.target.id: n for n in node.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
           and "ClassVar" not in ast.unparse(n.annotation)}
    fields: dict[str, ast.AnnAssign] = {}
    for base in node.bases:
        base_name = ast.unparse(base)
        if base_name in ("object", "Generic"):
            continue
        where = path if any(isinstance(n, ast.ClassDef) and n.name == base_name for n in tree.body) else None
        for item in tree.body:
            if where is None and isinstance(item, ast.ImportFrom) and any(a.name == base_name for a in item.names):
                module = item.module or ""
                if not item.level and (module, base_name) in LAZY_REEXPORTS:
                    module = f"{module}.{LAZY_REEXPORTS[module, base_name]}"
                where = _module_file(module, path, item.level)
        inherited = _class_fields(where, base_name, seen) if where else None
        if inherited is None:
            return None
        fields = {**inherited, **fields}
    return {**fields, **own}


def dataclass_fields_from_source(package: str, file: str, cls: str) -> dict[str, ast.AnnAssign] | None:
    """``cls``'s fields as written in its source (and its bases'), without importing it; None if unreadable."""
    root = _package_dir(package)
    return _class_fields(root / file, cls, set()) if root else None


def field_default_and_help(node: ast.AnnAssign) -> tuple[Any, str] | None:
    """A ``field(default=..., metadata={"help": ...})`` definition's default value and help, when both are
    literals in the source (a ``default_factory`` of ``list``/``dict`` or a lambda returning a literal counts);
    None otherwise."""
    try:
        value = node.value
        if value is None:
            return None
        if not (isinstance(value, ast.Call) and ast.unparse(value.func) in ("field", "dataclasses.field")):
            return ast.literal_eval(value), ""
        arguments = {k.arg: k.value for k in value.keywords}
        if "default" in arguments:
            default = ast.literal_eval(arguments["default"])
        elif "default_factory" in arguments:
            factory = arguments["default_factory"]
            named = {"list": [], "dict": {}}
            if isinstance(factory, ast.Name) and factory.id in named:
                default = named[factory.id]
            elif isinstance(factory, ast.Lambda):
                default = ast.literal_eval(factory.body)
            else:
                return None
        else:
            default = None
        metadata = arguments.get("metadata")
        if metadata is None:
            return default, ""
        if not isinstance(metadata, ast.Dict):
            return None
        helps = [v for k, v in zip(metadata.keys, metadata.values)
                 if isinstance(k, ast.Constant) and k.value == "help"]
        return default, ast.literal_eval(helps[0]) if helps else ""
    except (ValueError, TypeError, SyntaxError, KeyError):
        return None


@lru_cache(maxsize=1)
def recipe_field_names() -> frozenset[str] | None:
    """Every top-level key a recipe may set; None when a source file cannot be read (the check is then skipped)."""
    names: set[str] = set(PARSER_KEYS)
    for package, file, cls in RECIPE_DATACLASSES:
        fields = dataclass_fields_from_source(package, file, cls)
        if fields is None:
            return None
        names |= set(fields)
    return frozenset(name for name in names if not name.startswith("_"))


def check_recipe_keys(recipe: Any, source: str) -> None:
    """Fail naming each unknown top-level key of ``recipe`` (read from ``source``), with the nearest known one."""
    known = recipe_field_names()
    if known is None or not isinstance(recipe, dict):
        return
    unknown = [key for key in recipe if key not in known]
    if not unknown:
        return
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), known, n=1)
        hints.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    raise ValueError(f"{source}: unknown top-level field{'s' if len(unknown) > 1 else ''} {', '.join(hints)}. "
                     "Top-level fields are FastCuRLConfig's (GRPOConfig's and the run's: `fastcurl train --help_all` "
                     "lists them); a stage's own fields go under stages:.")


STRING_BOOLS = {"true", "false", "yes", "no", "t", "f", "y", "n", "1", "0"}  # transformers' string_to_bool


def check_value(key: str, value: Any, kind: str | None, many: bool, source: str, optional: bool = False) -> None:
    """``value`` of recipe field ``key`` is what its flag of ``kind`` ('int', 'float', 'bool', 'str'; None: not
    checked here) takes, as argparse would read it, or an error naming the field and what it must be. An
    ``optional`` field (``int | None``) also takes the word ``None``, as TRL's parser reads it."""
    if value is None or kind is None or optional and isinstance(value, str) and value.strip().lower() == "none":
        return
    for item in value if many and isinstance(value, list) else [value]:
        expected = None
        if isinstance(item, list):
            if not (kind == "str" and all(isinstance(x, str) for x in item)):  # report_to: [tensorboard]
                expected = "a single value, not a list"
        elif kind == "int" and (isinstance(item, bool) or not isinstance(item, (int, str))
                                or isinstance(item, str) and not item.strip().lstrip("+-").isdigit()):
            expected = "an integer"
        elif kind == "float" and (isinstance(item, bool) or not isinstance(item, (int, float, str))
                                  or isinstance(item, str) and not _is_number(item)):
            expected = "a number"
        elif kind == "bool" and not (isinstance(item, bool) or isinstance(item, str)
                                     and item.lower() in STRING_BOOLS):
            expected = "true or false"
        elif kind == "str" and isinstance(item, (int, float)) and not isinstance(item, bool):
            expected = "a string"
        if expected:
            raise ValueError(f"{source}: {key} must be {expected}{' (or a list of them)' if many else ''}, "
                             f"got {value!r}.")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _kind_of(annotation: str) -> tuple[str | None, bool, bool]:
    """('int' | 'float' | 'bool' | 'str' | None, takes several, may be None) from a field's annotation as
    written."""
    text = annotation.replace(" ", "")
    optional = text.startswith("Optional[") and text.endswith("]")
    if optional:
        text = text[len("Optional["):-1]
    parts = [part for part in text.split("|") if part != "None"]
    optional = optional or len(parts) < len(text.split("|"))
    if len(parts) != 1:
        return None, False, optional
    for prefix in ("list[", "List["):
        if parts[0].startswith(prefix) and parts[0].endswith("]"):
            inner = parts[0][len(prefix):-1]
            return (inner if inner in ("int", "float", "bool", "str") else None), True, optional
    return (parts[0] if parts[0] in ("int", "float", "bool", "str") else None), False, optional


@lru_cache(maxsize=1)
def recipe_field_kinds() -> dict[str, tuple[str | None, bool, bool]] | None:
    """Each top-level field's kind read from the source, as ``fastcurl train``'s parser takes it (the test keeps
    them equal to the parser's); None when a source file cannot be read."""
    kinds: dict[str, tuple[str | None, bool, bool]] = {}
    for package, file, cls in RECIPE_DATACLASSES:
        fields = dataclass_fields_from_source(package, file, cls)
        if fields is None:
            return None
        kinds.update({name: _kind_of(ast.unparse(node.annotation)) for name, node in fields.items()})
    return kinds


def check_recipe_types(recipe: Any, source: str, strings: bool = True) -> bool:
    """Each top-level value as ``fastcurl train``'s parser accepts it, without TRL (``fastcurl plan`` uses it too;
    ``strings=False`` leaves strings to argparse). False when the sources could not be read (nothing checked)."""
    kinds = recipe_field_kinds()
    if kinds is None or not isinstance(recipe, dict):
        return kinds is not None
    for key, value in recipe.items():
        if key != "stages" and key in kinds and (strings or not isinstance(value, str)):
            kind, many, optional = kinds[key]
            check_value(key, value, kind, many, source, optional)
    return True
