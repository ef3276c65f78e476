"""Named registries: one small mechanism behind losses, samplers, backbones and datasets.

A :class:`Registry` maps lowercase names (and aliases) to entries, lists them with fnmatch
patterns, suggests close names for typos, and can pull extra entries from a Python entry-point
group when first listed or asked for a name it does not have (how third-party packages add
losses, in the style of timm's ``@register_model`` and torchvision's ``get_model``).

A plugin whose every name reads ``<prefix>:<name>`` (the PML adapter: ``pml:*``) is declared
in the group ``<group>.namespaces`` under the entry-point name ``<prefix>`` (the miner registry
shares the losses' group: one hook per prefix registers both). It is imported
only when one of its names is asked for, or when a listing includes namespaces, so that the
zoo's own names (and ``losszoo list``) never pay for importing a large third-party library.

A namespace too large to register name by name (every timm model is a backbone) is declared in
code instead, as a :class:`Namespace`: it resolves ``<prefix>:<name>`` when asked for, lists its
names for a pattern starting with ``<prefix>:``, and shows in a full listing as one entry
(``timm:<name>``).
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, TypeVar

T = TypeVar("T")

_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_.\-]*(:[a-z0-9_.\-]+)?$")


def check_name(name: str, kind: str = "name") -> str:
    """Return ``name`` if it is a valid registry name (lowercase, starts with a letter)."""
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise ValueError(
            f"invalid {kind} {name!r}: use lowercase letters, digits, '_', '-', '.', "
            "starting with a letter (e.g. 'normsoftmax')"
        )
    return name


@dataclass(frozen=True)
class Namespace(Generic[T]):
    """The entries ``<prefix>:<name>`` a registry resolves by code, one at a time.

    ``lookup(name)``: the entry of ``name`` (after the prefix), ``KeyError`` when there is none,
    ``ImportError`` (saying what to install) when the library behind it is missing;
    ``listing(pattern)``: its names matching an fnmatch pattern; ``available()``: whether that
    library is installed (a listing shows the namespace only then), checked without importing it.
    """

    prefix: str
    lookup: Callable[[str], T]
    listing: Callable[[str], list[str]]
    available: Callable[[], bool]

    @property
    def placeholder(self) -> str:
        """How a listing shows the whole namespace: ``<prefix>:<name>``."""
        return f"{self.prefix}:<name>"


class Registry(Generic[T]):
    """A name -> entry table with aliases, fnmatch listing and lazy entry-point plugins.

    ``entry_point_group`` names a group whose entry points are imported once, on the first
    listing or the first lookup of a name not registered yet (so that looking up a built-in
    entry imports no plugin: the pml adapter alone takes ~1.5 s to import);
    importing a plugin module is expected to register its entries (a decorator runs). A plugin
    that fails to import is reported with a warning naming it and otherwise ignored.
    """

    def __init__(self, kind: str, entry_point_group: str | None = None,
                 namespace_group: str | None = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        # Where namespace plugins are declared: ``<entry_point_group>.namespaces`` unless another
        # kind's group is shared (a plugin prefix registering losses and miners has one hook).
        self.namespace_group = namespace_group or (entry_point_group and f"{entry_point_group}.namespaces")
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}
        self._plugins_loaded = entry_point_group is None
        self._namespaces_loaded: set[str] = set()
        self._resolved: dict[str, Namespace[T]] = {}  # namespaces declared in code, by prefix

    def reload_plugins(self) -> None:
        """Read the entry-point groups again (after installing a plugin in a running process)."""
        self._plugins_loaded = self.entry_point_group is None
        self._namespaces_loaded = set()
        self._load_plugins()

    # -- writing ------------------------------------------------------------------------------
    def add(self, name: str, entry: T, aliases: tuple[str, ...] = ()) -> T:
        for key in (name, *aliases):
            check_name(key, f"{self.kind} name")
            if key in self._entries or key in self._aliases:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            if self._namespace_of(key) is not None:
                prefix = key.partition(":")[0]
                raise ValueError(f"{self.kind} names starting with '{prefix}:' are reserved for {prefix} "
                                 f"(the namespace {self._resolved[prefix].placeholder})")
        if len(set(aliases)) != len(aliases) or name in aliases:
            raise ValueError(f"duplicate aliases for {self.kind} {name!r}: {aliases}")
        self._entries[name] = entry
        for alias in aliases:
            self._aliases[alias] = name
        return entry

    def add_namespace(self, namespace: Namespace[T]) -> Namespace[T]:
        """Declare ``namespace``: names ``<prefix>:<name>`` are resolved by it from now on."""
        check_name(namespace.prefix, f"{self.kind} namespace")
        if ":" in namespace.prefix or namespace.prefix in self._resolved:
            raise ValueError(f"{self.kind} namespace {namespace.prefix!r} is invalid or already declared")
        self._resolved[namespace.prefix] = namespace
        return namespace

    def remove(self, name: str) -> None:
        canonical = self.canonical(name)
        del self._entries[canonical]
        for alias in [a for a, target in self._aliases.items() if target == canonical]:
            del self._aliases[alias]

    @contextlib.contextmanager
    def scoped(self) -> Iterator[Registry[T]]:
        """Undo every registration made inside the block (for tests and notebooks)."""
        self._load_plugins()
        saved = (dict(self._entries), dict(self._aliases), self._plugins_loaded,
                 set(self._namespaces_loaded), dict(self._resolved))
        try:
            yield self
        finally:
            (self._entries, self._aliases, self._plugins_loaded, self._namespaces_loaded,
             self._resolved) = saved

    # -- reading ------------------------------------------------------------------------------
    def canonical(self, name: str) -> str:
        """Resolve an alias to its canonical name; raise ``KeyError`` with suggestions (a name
        of a namespace declared in code is looked up by it: ``ImportError`` when its library
        is missing)."""
        key = name.lower() if isinstance(name, str) else name
        namespace = self._namespace_of(key)
        if namespace is not None:
            namespace.lookup(key.partition(":")[2])
            return key
        if key not in self._entries and key not in self._aliases:
            prefix = key.partition(":")[0] if isinstance(key, str) and ":" in key else None
            if prefix in self.namespaces():
                self._load_namespace(prefix)
            else:
                self._load_plugins()
        if key in self._entries:
            return key
        if key in self._aliases:
            return self._aliases[key]
        known = sorted([*self._entries, *self._aliases])
        close = difflib.get_close_matches(str(key), known, n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        more = "".join(f"; or '{namespace.placeholder}'" for namespace in self._resolved.values())
        raise KeyError(f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(known)}{more}")

    def get(self, name: str) -> T:
        key = name.lower() if isinstance(name, str) else name
        namespace = self._namespace_of(key)
        if namespace is not None:
            return namespace.lookup(key.partition(":")[2])
        return self._entries[self.canonical(name)]

    def names(self, pattern: str = "*", *, namespaced: bool = True) -> list[str]:
        """Canonical names matching the fnmatch ``pattern``, sorted; only names without a
        ``prefix:`` when ``namespaced`` is false (and then no namespace plugin is imported).
        A namespace declared in code shows as its placeholder (``timm:<name>``), when its
        library is installed; a pattern starting with its prefix (``timm:resnet*``) lists its
        names instead."""
        pattern = pattern.lower()
        namespace = self._namespace_of(pattern)
        if namespace is not None:
            if not namespace.available():
                return []
            return sorted(f"{namespace.prefix}:{name}" for name in namespace.listing(pattern.partition(":")[2]))
        self._load_plugins()
        if namespaced:
            for prefix in self.namespaces():
                if prefix not in self._resolved:
                    self._load_namespace(prefix)
        found = [n for n in self._entries if fnmatch.fnmatchcase(n, pattern) and (namespaced or ":" not in n)]
        if namespaced:
            found += [ns.placeholder for ns in self._resolved.values()
                      if ns.available() and fnmatch.fnmatchcase(ns.placeholder, pattern)]
        return sorted(found)

    def namespaces(self) -> list[str]:
        """The prefixes declared by namespace plugins (entry-point names; nothing imported)
        and in code (:meth:`add_namespace`)."""
        declared = set(self._resolved)
        if self.namespace_group is not None:
            declared |= {ep.name for ep in entry_points(group=self.namespace_group)}
        return sorted(declared)

    def aliases(self) -> dict[str, str]:
        self._load_plugins()
        return dict(self._aliases)

    def __contains__(self, name: object) -> bool:
        try:
            self.canonical(name)  # type: ignore[arg-type]
        except (KeyError, ImportError):
            return False
        return True

    def _namespace_of(self, key: object) -> Namespace[T] | None:
        """The namespace declared in code that ``key`` (lowercase) is a name of, if any."""
        if not isinstance(key, str) or ":" not in key:
            return None
        return self._resolved.get(key.partition(":")[0])

    # -- plugins ------------------------------------------------------------------------------
    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True  # set first: a plugin's own registration reads the registry
        for ep in entry_points(group=self.entry_point_group):
            self._load_entry_point(ep)

    def _load_namespace(self, prefix: str) -> None:
        if prefix in self._namespaces_loaded:
            return
        self._namespaces_loaded.add(prefix)
        for ep in entry_points(group=self.namespace_group, name=prefix):
            self._load_entry_point(ep)

    def _load_entry_point(self, ep: EntryPoint) -> None:
        try:
            loaded = ep.load()
            if callable(loaded) and not isinstance(loaded, type):
                loaded()  # a `register()` hook function
        except Exception as exc:  # a broken plugin must never break the zoo
            warnings.warn(
                f"losszoo: could not load {self.kind} plugin {ep.name!r} ({ep.value}) "
                f"from entry-point group {ep.group!r}: {exc!r}",
                RuntimeWarning,
                stacklevel=4,
            )

