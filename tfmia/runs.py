"""Run directories: long work checkpoints here and resumes instead of starting over.

A run directory holds ``run.json`` (what kind of run, and its configuration)
and the run's artefacts, each written atomically (temp file, fsync, rename).
Opening an existing directory with a different configuration is refused: a
rerun either resumes the same work or fails loudly, it never mixes two runs.

* The configuration identifies the work, not the names of the functions that
  describe it: a model is fingerprinted by building it (:func:`describe_model`:
  its serialised architecture, compile arguments, training defence and
  weights), data by their bytes (:func:`fingerprint_arrays`), a fit recipe by
  its values (:func:`describe_fit`).  What cannot be fingerprinted is refused
  with a ``ValueError`` naming it (``run_dir=None`` still works).
* Claiming a directory is atomic: ``run.json`` is created exclusively
  (:func:`~tfmia._serialization.create_exclusively`), so of two processes
  starting on one empty directory with different configurations exactly one
  wins and the other is refused.  Writers of the same configuration may share
  a directory; every artefact is replaced whole.
* Opening a directory removes the temporaries that killed writers left
  behind (:func:`~tfmia._serialization.remove_stale_temporaries`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import marshal
import types
from pathlib import Path
from typing import Any

import numpy as np

from ._serialization import (
    atomic_write_text,
    create_exclusively,
    encode_float,
    load_npz,
    remove_stale_temporaries,
    save_npz,
    to_json_text,
)

__all__ = ["RunDirectory", "fingerprint_arrays", "describe_callable", "describe_value", "describe_fit",
           "describe_model", "describe_model_fn"]


def fingerprint_arrays(*arrays) -> str:
    """SHA-256 over the dtype, shape and bytes of each array."""
    digest = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(memoryview(a).cast("B"))
    return digest.hexdigest()


def _cannot_tell(where: str, what: str, remedy: str) -> ValueError:
    return ValueError(f"{where}: a run directory cannot tell {what}, so it could mix this run with another; "
                      f"{remedy}, or use run_dir=None (no checkpoints)")


def describe_callable(fn, where: str = "callable", _active: frozenset = frozenset()):
    """A JSON description of ``fn`` that is the same in every process and differs when ``fn`` computes differently.

    * module-level functions and classes: ``"module.qualname"``;
    * functions defined inside others (closures) and lambdas, which share their
      names: the name, a hash of the compiled code, and the default and
      captured values (described by :func:`describe_value`);
    * ``functools.partial``: the wrapped callable and its bound arguments.

    Anything else (bound methods, callable objects) is refused with a
    ``ValueError`` naming ``where``.
    """
    if isinstance(fn, functools.partial):
        return {"partial": describe_callable(fn.func, where, _active),
                "args": describe_value(list(fn.args), f"{where} (partial args)", _active),
                "keywords": describe_value(fn.keywords, f"{where} (partial keywords)", _active)}
    name = f"{getattr(fn, '__module__', None)}.{getattr(fn, '__qualname__', None)}"
    if isinstance(fn, type) or (isinstance(fn, types.BuiltinFunctionType)
                                and (fn.__self__ is None or isinstance(fn.__self__, types.ModuleType))):
        return name
    if not isinstance(fn, types.FunctionType):
        raise _cannot_tell(where, f"what the {type(fn).__name__} {fn!r} computes",
                           "use a module-level function or a functools.partial of one")
    if fn.__closure__ is None and "<" not in fn.__qualname__:
        return name
    if id(fn) in _active:  # a recursive local function refers to itself
        return name
    active = _active | {id(fn)}
    return {
        "function": name,
        "code": hashlib.sha256(marshal.dumps(fn.__code__)).hexdigest(),
        "defaults": describe_value(list(fn.__defaults__ or ()), f"{where} (defaults of {name})", active),
        "keyword_defaults": describe_value(fn.__kwdefaults__ or {}, f"{where} (defaults of {name})", active),
        "captured": describe_value([cell.cell_contents for cell in fn.__closure__ or ()],
                                   f"{where} (values captured by {name})", active),
    }


def describe_value(value, where: str = "value", _active: frozenset = frozenset()):
    """A JSON description of a setting: scalars as they are, arrays by fingerprint, containers item by item,
    callables by :func:`describe_callable`; anything else is refused with a ``ValueError`` naming ``where``."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return encode_float(value)
    if isinstance(value, np.generic):
        return describe_value(value.item(), where, _active)
    if isinstance(value, np.ndarray):
        return {"array": fingerprint_arrays(value)}
    if isinstance(value, types.ModuleType):
        return {"module": value.__name__}
    if isinstance(value, (list, tuple)):
        return [describe_value(v, f"{where}[{i}]", _active) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): describe_value(v, f"{where}[{k!r}]", _active) for k, v in value.items()}
    if callable(value):
        return describe_callable(value, where, _active)
    raise _cannot_tell(where, f"what the {type(value).__name__} {value!r} stands for",
                       "use numbers, strings, arrays or module-level functions")


def describe_fit(fit) -> dict:
    """A :class:`~tfmia.training.FitConfig` by value (arrays in ``fit_kwargs`` by fingerprint, not ``repr``)."""
    return {"epochs": fit.epochs, "batch_size": fit.batch_size, "shuffle": fit.shuffle,
            "fit_kwargs": describe_value(fit.fit_kwargs, "fit.fit_kwargs")}


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _without_keras_names(config):
    """A serialised Keras config with its object names replaced by ``#0, #1, ...`` in order of appearance.

    Keras numbers automatic names per process (``dense_3``, ``adam_1``), so
    the same architecture serialises differently from one build to the next.
    Names sit in ``name`` fields, in graph references (``keras_history``,
    ``input_layers``, ``output_layers``) and as keys of per-output settings;
    a dtype policy's ``name`` (``"float32"``) is a setting and is kept.
    Renaming is one-to-one, so configs that differ in anything but names
    still differ.
    """
    labels: dict[str, str] = {}

    def label(name):
        return labels.setdefault(name, f"#{len(labels)}") if isinstance(name, str) else name

    def reference(ref):  # [name, node, tensor], or a list of them
        if isinstance(ref, list) and ref and isinstance(ref[0], str):
            return [label(ref[0]), *ref[1:]]
        return [reference(r) for r in ref] if isinstance(ref, list) else ref

    def walk(node, is_policy=False):
        if isinstance(node, list):
            return [walk(v) for v in node]
        if not isinstance(node, dict):
            return node
        policy_inside = str(node.get("class_name", "")).endswith("DTypePolicy")
        out = {}
        for key in sorted(node):
            value = node[key]
            if key == "name" and not is_policy:
                out[key] = label(value)
            elif key in ("keras_history", "input_layers", "output_layers"):
                out[key] = reference(value)
            else:
                out[key] = walk(value, is_policy=key == "config" and policy_inside)
        return out

    def rename_keys(node):
        if isinstance(node, list):
            return [rename_keys(v) for v in node]
        if isinstance(node, dict):
            return {labels.get(k, k): rename_keys(v) for k, v in node.items()}
        return node

    return rename_keys(walk(config))


def _serialized_function_names(config) -> set[str]:
    """Names of the plain Python functions in a serialised config: Keras records them by name alone."""
    if isinstance(config, list):
        return set().union(*map(_serialized_function_names, config))
    if not isinstance(config, dict):
        return set()
    own = {config["config"]} if config.get("class_name") == "function" else set()
    return own.union(*map(_serialized_function_names, config.values()))


def _describe_functions(config, candidates, where: str) -> list:
    """:func:`describe_callable` of each function the serialised ``config`` names, found among ``candidates``.

    ``candidates`` are the live objects that may hold them (functions, or
    objects whose attributes are); a name with no function behind it is
    refused: the fingerprint would miss it.
    """
    names = _serialized_function_names(config)
    held = [c for c in candidates if isinstance(c, types.FunctionType)]
    held += [v for c in candidates if not isinstance(c, types.FunctionType) and hasattr(c, "__dict__")
             for v in vars(c).values() if isinstance(v, types.FunctionType)]
    found = {id(f): f for f in held if f.__name__ in names}
    missing = names - {f.__name__ for f in found.values()}
    if missing:
        raise _cannot_tell(where, f"which functions {sorted(missing)} in its configuration are",
                           "pass functions as layer or compile arguments (activation=, loss=, metrics=)")
    described = [describe_callable(f, f"{where}: function {f.__name__!r}") for f in found.values()]
    return sorted(described, key=lambda d: json.dumps(d, sort_keys=True))


def describe_model(model, *, weights: bool = True, compile: bool = True) -> dict:
    """What a Keras model is, as far as training and inference go, with names left out.

    ``architecture``: SHA-256 of the serialised model
    (``keras.saving.serialize_keras_object``: layers, their settings and
    graph) with Keras's object names canonicalised, plus the functions the
    layers hold; ``compile``: the same for the compile arguments (optimizer
    and its settings, loss, metrics), None for an uncompiled model or
    ``compile=False`` (work that does not depend on them);
    ``defense``: the training defence of a defended model
    (``TrainingDefense.description()``), else None; ``weights`` (if asked):
    :func:`fingerprint_arrays` of the weights.

    Raises ``ValueError`` naming the part that cannot be described (a custom
    layer without ``get_config``, a callable whose behaviour cannot be fingerprinted).
    """
    import keras

    from .defenses.adaptive import TrainingDefense

    where = f"model {model.name!r}"
    try:
        serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(model)))  # JSON: lists, not tuples
    except Exception as exc:  # Keras raises NotImplementedError, TypeError, ValueError... for what it cannot serialise
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _cannot_tell(where, f"what the model is: its configuration does not serialise ({reason})",
                           "give its custom layers and objects a get_config()") from exc
    serialized = _without_keras_names(serialized)
    compile_config = serialized.pop("compile_config", None)
    layers = model._flatten_layers(include_self=True, recursive=True)
    description = {
        "architecture": _digest({"config": serialized,
                                 "functions": _describe_functions(serialized, layers, f"{where} (layers)")}),
        "compile": None,
        "defense": None,
    }
    if compile and model.compiled:
        compile_arguments = keras.tree.flatten(model._compile_config.config)  # losses, metrics, optimizer
        description["compile"] = _digest({"config": compile_config, "functions": _describe_functions(
            compile_config, compile_arguments, f"{where} (compile arguments)")})
    defense = getattr(model, "defense", None)
    if isinstance(defense, TrainingDefense):
        description["defense"] = defense.description()
    if weights:
        description["weights"] = fingerprint_arrays(*model.get_weights())
    return description


def describe_model_fn(model_fn, *, seed: int) -> dict:
    """:func:`describe_model` of ``model_fn()`` built with ``seed``: ``weights`` are its initial weights."""
    from .training import build_model

    return describe_model(build_model(model_fn, seed=seed))


def _canonical(config: dict) -> dict:
    """Round-trip through JSON so that tuples and lists compare equal."""
    return json.loads(json.dumps(config, sort_keys=True))


_MISSING = object()


def _differences(old, new, path: str = "") -> list[str]:
    """The dotted paths at which two JSON configurations differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new)):
            found += _differences(old.get(key, _MISSING), new.get(key, _MISSING), f"{path}.{key}" if path else key)
        return found
    return [] if old == new else [path or "(everything)"]


class RunDirectory:
    """A folder owned by one run of kind ``kind`` with configuration ``config`` (JSON-able)."""

    MANIFEST = "run.json"

    def __init__(self, path, kind: str, config: dict[str, Any]):
        self.root = Path(path)
        self.kind = kind
        self.config = _canonical(config)
        self.root.mkdir(parents=True, exist_ok=True)
        self._claim()
        remove_stale_temporaries(self.root)

    @classmethod
    def stored_config(cls, path, kind: str) -> dict | None:
        """The configuration recorded in ``path``'s manifest by a run of ``kind``; None when there is
        none (or it cannot be read: claiming the directory then says why)."""
        try:
            existing = json.loads((Path(path) / cls.MANIFEST).read_text())
        except (OSError, json.JSONDecodeError):
            return None
        if not isinstance(existing, dict) or existing.get("kind") != kind or not isinstance(existing.get("config"), dict):
            return None
        return existing["config"]

    def _claim(self) -> None:
        """Create the manifest exclusively, or check that the one there describes this run."""
        manifest = self.root / self.MANIFEST
        record = to_json_text({"kind": self.kind, "config": self.config}).encode()
        if not manifest.exists() and create_exclusively(manifest, record):
            return
        try:
            existing = json.loads(manifest.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"run_dir {self.root}: {self.MANIFEST} is not valid JSON ({exc})") from None
        if not isinstance(existing, dict):
            raise ValueError(f"run_dir {self.root}: {self.MANIFEST} is not a run manifest")
        if existing.get("kind") != self.kind:
            raise ValueError(f"run_dir {self.root} holds a {existing.get('kind')!r} run, not a {self.kind!r} run")
        if existing.get("config") != self.config:
            differing = _differences(existing.get("config", {}), self.config)
            raise ValueError(
                f"run_dir {self.root} was made with a different configuration "
                f"(differs in: {', '.join(differing)}); use a new directory or the original settings"
            )

    def path(self, name: str) -> Path:
        return self.root / name

    def has(self, name: str) -> bool:
        return (self.root / name).exists()

    def save_arrays(self, name: str, **arrays) -> Path:
        return save_npz(self.root / name, **arrays)

    def load_arrays(self, name: str) -> dict[str, np.ndarray]:
        return load_npz(self.root / name)

    def save_json(self, name: str, obj) -> Path:
        return atomic_write_text(self.root / name, to_json_text(obj))

    def load_json(self, name: str):
        return json.loads((self.root / name).read_text())
