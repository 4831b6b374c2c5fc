"""Name -> builder registries for models, backends and datasets.

One generic :class:`Registry` serves every kind of component.  Entries are registered with a
decorator, carry free-form metadata (a model's default recipe, for example) and are looked up by
name or alias.  Built-in components live in the packages ``zoo``, ``backends`` and ``datasets``;
each registry imports its package the first time it is queried, so that a lookup never depends on
an import that happened somewhere else.  Third-party components register from their own modules,
loaded with :func:`import_extra_modules` (``--extra_modules``) or through the Python entry-point
group ``alexnet_zoo.plugins``.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, TypeVar, Union

__all__ = [
    "BACKENDS",
    "DATASETS",
    "ENTRY_POINT_GROUP",
    "MODELS",
    "OPTIMIZERS",
    "SCHEDULES",
    "Entry",
    "Registry",
    "RegistryError",
    "import_extra_modules",
]

ENTRY_POINT_GROUP = "alexnet_zoo.plugins"

T = TypeVar("T")
Patterns = Union[str, Sequence[str], None]


class RegistryError(KeyError, ValueError):
    """Raised for unknown or duplicate names; the message says what to do instead."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes.
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Entry:
    """One registered component.

    Attributes:
        name: canonical name.
        target: the registered callable (builder function or class), or where to find it,
            ``"package.module:attribute"``, imported the first time :attr:`obj` is read (lazy entries:
            listing names and metadata then imports nothing heavy).
        aliases: other names that resolve to this entry.
        metadata: free-form, read-only facts about the entry (e.g. a model's default recipe).
        module: the module that defines the component, to tell users where it came from.
    """

    name: str
    target: Union[str, Callable[..., Any]]
    aliases: tuple = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    module: str = ""

    @property
    def obj(self) -> Callable[..., Any]:
        """The registered callable; a lazy entry's module is imported on first use."""
        if not isinstance(self.target, str):
            return self.target
        module, _, attribute = self.target.partition(":")
        try:
            return getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as e:
            raise RegistryError(f"{self.name!r} is registered as {self.target!r}, which cannot be loaded: {e}") from e


class Registry:
    """A named collection of components of one kind ("model", "backend", "dataset").

    Args:
        kind: what the entries are, used in messages.
        builtin_package: package whose import registers the built-in entries. It is imported
            lazily, on the first query, so ``registry.py`` itself stays free of heavy imports.
    """

    def __init__(self, kind: str, builtin_package: Optional[str] = None) -> None:
        self.kind = kind
        self._builtin_package = builtin_package
        self._builtins_loaded = builtin_package is None
        self._entries: Dict[str, Entry] = {}
        self._aliases: Dict[str, str] = {}
        self._lock = threading.RLock()

    # -- registration -------------------------------------------------------------------------

    def register(
        self, name: Optional[str] = None, *, aliases: Iterable[str] = (), **metadata: Any
    ) -> Callable[[T], T]:
        """Decorator that registers a builder under ``name`` (default: its ``__name__``).

        Args:
            name: the canonical name. Names are case-sensitive and must be unique across names
                and aliases of this registry.
            aliases: other names for the same entry.
            **metadata: facts stored with the entry (see :meth:`metadata`).

        Returns:
            A decorator that returns the builder unchanged.

        Raises:
            RegistryError: if the name or an alias is already taken.
        """

        def decorator(obj: T) -> T:
            self.add(name or obj.__name__, obj, aliases=aliases, **metadata)
            return obj

        return decorator

    def register_lazy(self, name: str, target: str, *, aliases: Iterable[str] = (), **metadata: Any) -> Entry:
        """Registers the component at ``target`` (``"package.module:attribute"``) without importing it.

        The built-in models, backends and datasets register this way from modules that import no
        TensorFlow, so ``--list``, ``--help`` and resolving a configuration stay fast; the target is
        imported the first time it is built. A test checks that every lazy target loads.

        Args:
            name: the canonical name (see :meth:`register`).
            target: ``"package.module:attribute"`` of the builder or class.
            aliases: other names for the same entry.
            **metadata: facts stored with the entry.
        """
        if not isinstance(target, str) or ":" not in target:
            raise RegistryError(f"A lazy {self.kind} target is 'package.module:attribute', got {target!r}.")
        return self.add(name, target, aliases=aliases, **metadata)

    def add(self, name: str, obj: Union[str, Callable[..., Any]], *, aliases: Iterable[str] = (),
            **metadata: Any) -> Entry:
        """Registers ``obj`` without the decorator syntax; see :meth:`register`."""
        aliases = tuple(aliases)
        if not isinstance(name, str) or not name:
            raise RegistryError(f"A {self.kind} name must be a non-empty string, got {name!r}.")
        with self._lock:
            for key in (name,) + aliases:
                if key in self._entries or key in self._aliases:
                    owner = self._entries.get(self._aliases.get(key, key))
                    where = f" by {owner.module}" if owner and owner.module else ""
                    raise RegistryError(
                        f"{self.kind} {key!r} is already registered{where}; pick another name "
                        f"(registered {self.kind}s: {', '.join(self.list())})."
                    )
            module = obj.partition(":")[0] if isinstance(obj, str) else getattr(obj, "__module__", "")
            entry = Entry(name, obj, aliases, dict(metadata), module)
            self._entries[name] = entry
            for alias in aliases:
                self._aliases[alias] = name
        return entry

    def unregister(self, name: str) -> None:
        """Removes an entry and its aliases (mainly for tests and interactive sessions)."""
        with self._lock:
            entry = self.entry(name)
            del self._entries[entry.name]
            for alias in entry.aliases:
                self._aliases.pop(alias, None)

    # -- lookup -------------------------------------------------------------------------------

    def _load_builtins(self) -> None:
        if self._builtins_loaded:
            return
        with self._lock:
            if not self._builtins_loaded:
                self._builtins_loaded = True
                importlib.import_module(self._builtin_package)

    def entry(self, name: str) -> Entry:
        """Returns the :class:`Entry` for ``name`` or one of its aliases.

        Raises:
            RegistryError: for an unknown name; the message lists the known names and the
                closest match.
        """
        self._load_builtins()
        key = self._aliases.get(name, name)
        if key in self._entries:
            return self._entries[key]
        known = self.list()
        candidates = known + sorted(self._aliases)
        close = difflib.get_close_matches(str(name), candidates, n=1, cutoff=0.5)
        hint = f" Did you mean {self._aliases.get(close[0], close[0])!r}?" if close else ""
        raise RegistryError(
            f"Unknown {self.kind} {name!r}.{hint} Known {self.kind}s: {', '.join(known) or '(none)'}. "
            f"To add your own, register it in a module and pass --extra_modules=your.module."
        )

    def get(self, name: str) -> Callable[..., Any]:
        """Returns the registered builder for ``name`` (or an alias); see :meth:`entry`."""
        return self.entry(name).obj

    def metadata(self, name: str) -> Mapping[str, Any]:
        """Returns the metadata registered with ``name``."""
        return self.entry(name).metadata

    def list(self, include: Patterns = None, exclude: Patterns = None) -> List[str]:
        """Sorted canonical names, filtered with fnmatch-style wildcards.

        Args:
            include: pattern or patterns a name must match (any of them); all names if None.
            exclude: pattern or patterns that drop a name.
        """
        self._load_builtins()
        names = sorted(self._entries)
        if include is not None:
            patterns = [include] if isinstance(include, str) else list(include)
            names = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
        if exclude is not None:
            patterns = [exclude] if isinstance(exclude, str) else list(exclude)
            names = [n for n in names if not any(fnmatch.fnmatchcase(n, p) for p in patterns)]
        return names

    def __contains__(self, name: object) -> bool:
        self._load_builtins()
        return name in self._entries or name in self._aliases

    def __len__(self) -> int:
        self._load_builtins()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, entries={self.list()})"


MODELS = Registry("model", builtin_package="zoo")
BACKENDS = Registry("backend", builtin_package="backends")
DATASETS = Registry("dataset", builtin_package="datasets")
# The optimizer stack's parts, registered (lazily) by training/__init__.py.
OPTIMIZERS = Registry("optimizer", builtin_package="training")
SCHEDULES = Registry("schedule", builtin_package="training")


def import_extra_modules(modules: Union[str, Sequence[str], None]) -> List[str]:
    """Imports user modules that register their own models, backends or datasets.

    Args:
        modules: dotted module names, as a list or a comma-separated string. A name may also be a
            path to a ``.py`` file.

    Returns:
        The names of the modules imported.

    Raises:
        ImportError: naming the module that failed and why.
    """
    if modules is None:
        return []
    if isinstance(modules, str):
        modules = [m for m in modules.split(",")]
    imported = []
    for name in (m.strip() for m in modules):
        if not name:
            continue
        try:
            if name.endswith(".py"):
                _import_file(name)
            else:
                importlib.import_module(name)
        except ImportError as e:
            raise ImportError(
                f"--extra_modules: cannot import {name!r} ({e}). Make sure the module is on "
                "PYTHONPATH (or pass a path to a .py file)."
            ) from e
        imported.append(name)
    return imported


def load_entry_point_plugins() -> List[str]:
    """Imports every module advertised in the ``alexnet_zoo.plugins`` entry-point group."""
    from importlib import metadata as importlib_metadata

    eps = importlib_metadata.entry_points()
    group = eps.select(group=ENTRY_POINT_GROUP) if hasattr(eps, "select") else eps.get(ENTRY_POINT_GROUP, [])
    loaded = []
    for ep in group:
        ep.load()
        loaded.append(ep.name)
    return loaded


def _import_file(path: str) -> None:
    import importlib.util
    import os
    import sys

    if not os.path.isfile(path):
        raise ImportError(f"no such file: {path}")
    mod_name = "_extra_" + os.path.splitext(os.path.basename(path))[0]
    loaded = sys.modules.get(mod_name)
    if loaded is not None and os.path.abspath(getattr(loaded, "__file__", "")) == os.path.abspath(path):
        return  # main.py imports --extra_modules before and after flag parsing; register once
    spec = importlib.util.spec_from_file_location(mod_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    spec.loader.exec_module(module)
