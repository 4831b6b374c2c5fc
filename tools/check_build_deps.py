"""Checks that the Bazel BUILD files match the Python imports, and fixes them with ``--fix``.

    python tools/check_build_deps.py          # report every mismatch with its fix; exit 1 if any
    python tools/check_build_deps.py --fix    # apply the fixes to the BUILD files, then check again

Every first-party module (a ``.py`` file at the top level or directly in a top-level package
directory) must be in the ``srcs`` of a target in its directory's ``BUILD``. For every target,
each first-party module that its sources import (anywhere in the file: lazy imports count) must
come from a target in its ``deps`` (a registry's ``register_lazy(name, "package.module:attr")`` counts as
an import of that module), and each dep must be imported by one of its sources; a dep
that is only needed at run time (a dynamic import) stays when its line says ``# keep``.

The layering is the ``visibility`` of each package (``package(default_visibility = ...)``): a dep
that the importing package may not see is reported as a layering error, never added by ``--fix``.
Bazel itself enforces the same two rules: visibility at analysis, and at test time a module whose
target is not a dep is absent from the test's runfiles, so its import fails.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Set, Tuple

__all__ = ["Problem", "check", "main"]

# Rules whose targets own Python sources. pytest_test is the macro of tests/pytest.bzl.
PY_RULES = ("py_library", "py_binary", "py_test", "pytest_test")
# Top-level directories that hold no first-party modules of their own.
NOT_PACKAGES = {"third_party", "configs", "docs", "results", "cache"}
# Preference when several targets own the same module (the one others should depend on).
OWNER_RANK = {"py_library": 0, "py_binary": 1, "py_test": 2, "pytest_test": 3}
# pytest markers that get a target of their own (pytest_test's slow / keras2 arguments).
MARKER_TARGETS = ("slow", "keras2")
MISSING = "<missing>"  # a first-party import that names no module of the tree
PYTEST_LOAD = 'load("//tests:pytest.bzl", "pytest_test")'


@dataclass
class Target:
    """One rule call of a BUILD file, as far as the check needs it."""

    package: str  # "" for the top level
    kind: str
    name: str
    srcs: List[str]
    deps: List[str]  # canonical labels
    keep: Set[str]  # deps marked "# keep"
    visibility: Optional[List[str]]
    call: ast.Call

    @property
    def label(self) -> str:
        return f"//{self.package}:{self.name}"


@dataclass
class BuildFile:
    package: str
    path: str
    text: str
    targets: List[Target] = field(default_factory=list)
    default_visibility: List[str] = field(default_factory=lambda: ["//visibility:private"])


@dataclass
class Problem:
    """One mismatch and how to fix it."""

    build: str  # path of the BUILD file to edit, relative to the root
    message: str
    target: str = ""
    add: Tuple[str, ...] = ()
    remove: Tuple[str, ...] = ()
    set_attrs: Tuple[Tuple[str, bool], ...] = ()  # pytest_test's slow / keras2
    drop_target: bool = False  # its sources are gone
    stanza: str = ""  # a whole new target to append
    layering: bool = False  # the import crosses the layering: not fixable by editing deps
    manual: bool = False  # --fix leaves it to a person

    def __str__(self) -> str:
        text = f"{self.build}: {self.message}"
        if self.stanza:
            text += "\n" + "\n".join("    " + line for line in self.stanza.rstrip().splitlines())
        return text


def canonical(label: str, package: str) -> str:
    """``:x`` / ``//p`` / ``//p:x`` -> ``//p:x``, relative to ``package``."""
    if label.startswith(":"):
        return f"//{package}{label}"
    if label.startswith("//") and ":" not in label:
        return f"{label}:{label.rsplit('/', 1)[-1]}"
    return label


def render(label: str, package: str) -> str:
    """The short form a BUILD file of ``package`` writes ``label`` in."""
    pkg, name = label[2:].split(":", 1)
    if pkg == package:
        return f":{name}"
    if pkg and pkg.rsplit("/", 1)[-1] == name:
        return f"//{pkg}"
    return label


def _strings(node: ast.AST) -> Optional[List[str]]:
    if isinstance(node, (ast.List, ast.Tuple)) and all(
            isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
        return [e.value for e in node.elts]
    return None


def parse_build(root: str, package: str) -> BuildFile:
    """Reads ``package``/BUILD (Starlark that parses as Python) into its Python targets."""
    path = os.path.join(root, package, "BUILD")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    build = BuildFile(package, path, text)
    lines = text.splitlines()
    for stmt in ast.parse(text, filename=path).body:
        if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
                and isinstance(stmt.value.func, ast.Name)):
            continue
        call, kind = stmt.value, stmt.value.func.id
        kwargs = {k.arg: k.value for k in call.keywords if k.arg}
        if kind == "package" and "default_visibility" in kwargs:
            build.default_visibility = _strings(kwargs["default_visibility"]) or []
        if kind not in PY_RULES or not isinstance(kwargs.get("name"), ast.Constant):
            continue
        deps, keep = [], set()
        if "deps" in kwargs:
            for elt in getattr(kwargs["deps"], "elts", []):
                if isinstance(elt, ast.Constant) and isinstance(elt.value, str):
                    label = canonical(elt.value, package)
                    deps.append(label)
                    if "# keep" in lines[elt.lineno - 1]:
                        keep.add(label)
        visibility = _strings(kwargs["visibility"]) if "visibility" in kwargs else None
        build.targets.append(Target(package, kind, kwargs["name"].value,
                                    _strings(kwargs.get("srcs", ast.List(elts=[]))) or [],
                                    deps, keep, visibility, call))
    return build


def module_files(root: str) -> Dict[str, str]:
    """First-party module path (relative) -> its package ("" for the top level).

    A top-level directory is a package; so is a directory below one that has a ``BUILD`` file of its
    own (``zoo/nets``), whose modules belong to it rather than to the directory above.
    """
    found = {}

    def add_package(package: str) -> None:
        full = os.path.join(root, package)
        for sub in sorted(os.listdir(full)):
            path = os.path.join(full, sub)
            if sub.endswith(".py") and os.path.isfile(path):
                found[f"{package}/{sub}"] = package
            elif os.path.isdir(path) and os.path.isfile(os.path.join(path, "BUILD")):
                add_package(f"{package}/{sub}")

    for name in sorted(os.listdir(root)):
        full = os.path.join(root, name)
        if name.endswith(".py") and os.path.isfile(full):
            found[name] = ""
        elif (os.path.isdir(full) and not name.startswith((".", "_")) and name not in NOT_PACKAGES
              and not name.startswith("bazel-")):
            add_package(name)
    return found


def _module_name(path: str) -> str:
    stem = path[:-3].replace("/", ".")
    return stem[:-len(".__init__")] if stem.endswith(".__init__") else stem


def _script_dir_bare(path: str, modules: Dict[str, str]) -> bool:
    """Whether modules beside ``path`` import by bare name (a directory that is not a package:
    tests/ and bench/, which pytest or ``python script.py`` puts on sys.path)."""
    package = modules[path]
    return bool(package) and f"{package}/__init__.py" not in modules


def imported_modules(path: str, root: str, modules: Dict[str, str]) -> List[Tuple[str, int, str]]:
    """(first-party module path, line, import as written) for every import in ``path``."""
    by_name = {_module_name(m): m for m in modules}
    package = modules[path]
    local = {}
    if _script_dir_bare(path, modules):  # bare sibling names win over everything (sys.path[0])
        local = {m[len(package) + 1:-3]: m for m in modules if modules[m] == package}
    with open(os.path.join(root, path), encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    found = []

    top_level = {name.split(".")[0] for name in by_name}

    def resolve(dotted: str, module_part: str) -> Optional[str]:
        """The module file of ``dotted`` (a module, or an attribute of ``module_part``);
        MISSING for a first-party name that is neither; None for third-party names."""
        parts = dotted.split(".")
        if parts[0] in local:
            return local[parts[0]]
        if parts[0] not in top_level:
            return None
        if dotted in by_name:
            return by_name[dotted]
        return by_name.get(module_part, MISSING)

    for node in ast.walk(tree):
        names: List[Tuple[str, str, str]] = []  # (dotted name, its module part, the import as written)
        if isinstance(node, ast.Import):
            names = [(a.name, a.name, f"import {a.name}") for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the importing module's package
                pkg_parts = _module_name(path).split(".")
                if not path.endswith("__init__.py"):
                    pkg_parts = pkg_parts[:-1]
                pkg_parts = pkg_parts[:len(pkg_parts) - node.level + 1]
                base = ".".join(pkg_parts + ([base] if base else []))
            written = f"from {'.' * node.level}{node.module or ''} import "
            names = [(f"{base}.{a.name}" if base else a.name, base, written + a.name) for a in node.names]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "register_lazy" and len(node.args) > 1
              and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
            # A lazy registry entry ("package.module:attribute") imports its module when it is built.
            target = node.args[1].value.partition(":")[0]
            names = [(target, target, f"register_lazy(..., {node.args[1].value!r})")]
        for dotted, module_part, written in names:
            module = resolve(dotted, module_part)
            if module and module != path:
                found.append((module, node.lineno, written))
    return found


def pytest_markers(path: str) -> Set[str]:
    """The ``pytest.mark.<name>`` markers a test module uses (anywhere in it)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    return {node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "mark"}


def _visible(dep: Target, build: BuildFile, from_package: str) -> bool:
    if dep.package == from_package:
        return True
    for rule in dep.visibility if dep.visibility is not None else build.default_visibility:
        if rule == "//visibility:public":
            return True
        pkg, _, what = rule[2:].partition(":")
        if what == "__pkg__" and pkg == from_package:
            return True
        if what == "__subpackages__" and (not pkg or from_package == pkg or from_package.startswith(pkg + "/")):
            return True
    return False


def _stanza(path: str, package: str, deps: Sequence[str], is_main: bool) -> str:
    base = os.path.basename(path)
    name = package if base == "__init__.py" else base[:-3]
    if package == "tests" and base.startswith("test_"):
        kind = "pytest_test"
    elif package == "bench" or is_main:
        kind = "py_binary"
    else:
        kind = "py_library"
    lines = [f"{kind}(", f'    name = "{name}",', f'    srcs = ["{base}"],']
    if deps:
        lines.append("    deps = [")
        lines += [f'        "{render(d, package)}",' for d in _sorted(deps, package)]
        lines.append("    ],")
    lines.append(")")
    return "\n".join(lines) + "\n"


def _sorted(labels: Sequence[str], package: str) -> List[str]:
    return sorted(set(labels), key=lambda d: (not render(d, package).startswith(":"), render(d, package)))


def check(root: str) -> List[Problem]:
    """Every mismatch between the BUILD files under ``root`` and the imports of its modules."""
    modules = module_files(root)
    builds: Dict[str, BuildFile] = {}
    packages = set(modules.values()) | {d for d in os.listdir(root) if not d.startswith(".")} | {""}
    for package in sorted(packages):
        if os.path.isfile(os.path.join(root, package, "BUILD")):
            builds[package] = parse_build(root, package)
    owner: Dict[str, Target] = {}
    targets: Dict[str, Target] = {}
    for build in builds.values():
        for target in build.targets:
            targets[target.label] = target
            for src in target.srcs:
                path = f"{build.package}/{src}" if build.package else src
                if path not in owner or OWNER_RANK[target.kind] < OWNER_RANK[owner[path].kind]:
                    owner[path] = target
    problems: List[Problem] = []
    for path, package in modules.items():
        if path in owner:
            continue
        build_rel = os.path.join(package, "BUILD")
        deps = sorted({owner[m].label for m, _, _ in imported_modules(path, root, modules) if m in owner})
        is_main = "__main__" in open(os.path.join(root, path), encoding="utf-8").read() and not package
        stanza = _stanza(path, package, deps, is_main)
        missing = [m for m, _, _ in imported_modules(path, root, modules) if m not in owner and m != MISSING]
        note = f" (and targets for {', '.join(sorted(set(missing)))})" if missing else ""
        if package not in builds:
            note += f"; create {build_rel} with a package(default_visibility = [...]) for its layer"
        problems.append(Problem(build_rel, f"no target has {path} in its srcs; add{note}:", stanza=stanza))
    for build in builds.values():
        rel = os.path.join(build.package, "BUILD")
        for target in build.targets:
            needed: Dict[str, Tuple[str, int, str]] = {}
            own = {f"{build.package}/{s}" if build.package else s for s in target.srcs}
            for src in sorted(own):
                if src not in modules:
                    if not os.path.exists(os.path.join(root, src)):
                        gone = all(not os.path.exists(os.path.join(root, build.package, s)) for s in target.srcs)
                        problems.append(Problem(rel, f"{target.label}: srcs names {src}, which does not exist; "
                                                     f"remove {'the target' if gone else 'it from srcs'}",
                                                target=target.label, drop_target=gone, manual=not gone))
                    continue
                for module, line, dotted in imported_modules(src, root, modules):
                    if module == MISSING:
                        problems.append(Problem(rel, f"{target.label}: {src}:{line}: {dotted}: no such module in "
                                                     f"the tree (not committed yet, or misspelt)", manual=True))
                    if module in own or module not in owner:
                        continue
                    needed.setdefault(owner[module].label, (src, line, dotted))
            if target.kind == "pytest_test" and target.srcs:
                markers = pytest_markers(os.path.join(root, build.package, target.srcs[0]))
                kwargs = {k.arg: k.value for k in target.call.keywords}
                for marker in MARKER_TARGETS:
                    want = marker in markers
                    have = isinstance(kwargs.get(marker), ast.Constant) and kwargs[marker].value is True
                    if want != have:
                        problems.append(Problem(
                            rel, f"{target.label}: set {marker} = {want} ({target.srcs[0]} "
                                 f"{'has' if want else 'has no'} tests marked {marker}: target {target.name}_{marker})",
                            target=target.label, set_attrs=((marker, want),)))
            add, layering = [], []
            for label, (src, line, dotted) in sorted(needed.items()):
                if label in target.deps:
                    continue
                dep = targets[label]
                if _visible(dep, builds[dep.package], build.package):
                    add.append(label)
                else:
                    layering.append(label)
                    problems.append(Problem(
                        rel, f'{target.label}: {src}:{line}: {dotted}, but {label} is not visible to '
                             f'//{build.package} (layering in {os.path.join(dep.package, "BUILD")}): this import '
                             f'crosses the layers; move the code, or change the layering deliberately',
                        target=target.label, layering=True))
            remove = [d for d in target.deps if d not in needed and d not in target.keep]
            unknown = [d for d in target.deps if d.startswith("//") and d not in targets
                       and d.split(":")[0][2:] in builds]
            for label in add:
                src, line, dotted = needed[label]
                problems.append(Problem(rel, f'{target.label}: add "{render(label, build.package)}" to deps '
                                             f'({src}:{line}: {dotted})', target=target.label, add=(label,)))
            for label in remove:
                why = "no such target" if label in unknown else "no source of it imports it"
                problems.append(Problem(rel, f'{target.label}: remove "{render(label, build.package)}" from deps '
                                             f'({why}; a dep needed only at run time says # keep on its line)',
                                        target=target.label, remove=(label,)))
    return problems


def _deps_text(labels: Sequence[str], keep_lines: Dict[str, str], package: str, indent: str) -> str:
    lines = ["["]
    for label in _sorted(labels, package):
        lines.append(keep_lines.get(label) or f'{indent}    "{render(label, package)}",')
    lines.append(f"{indent}]")
    return "\n".join(lines)


def fix(root: str, problems: Sequence[Problem]) -> List[str]:
    """Applies every fixable problem to the BUILD files; returns the BUILD files it wrote."""
    written = []
    by_build: Dict[str, List[Problem]] = {}
    for problem in problems:
        if not (problem.layering or problem.manual):
            by_build.setdefault(problem.build, []).append(problem)
    for rel, group in sorted(by_build.items()):
        package = os.path.dirname(rel)
        path = os.path.join(root, rel)
        text = open(path, encoding="utf-8").read() if os.path.exists(path) else (
            'package(default_visibility = ["//visibility:private"])  # set the layer: who may depend on it\n')
        lines = text.splitlines()
        targets = {t.label: t for t in (parse_build(root, package).targets if os.path.exists(path) else [])}
        edits: List[Tuple[int, int, int, int, str]] = []
        for label, target in targets.items():
            if any(p.drop_target for p in group if p.target == label):
                end = target.call.end_lineno
                while end < len(lines) and not lines[end].strip():  # and the blank lines after it
                    end += 1
                edits.append((target.call.lineno, 0, end, len(lines[end - 1]), ""))
                continue
            add = {d for p in group if p.target == label for d in p.add}
            remove = {d for p in group if p.target == label for d in p.remove}
            kwargs = {k.arg: k for k in target.call.keywords}
            for attr, value in (a for p in group if p.target == label for a in p.set_attrs):
                if attr in kwargs:
                    node = kwargs[attr].value
                    edits.append((node.lineno, node.col_offset, node.end_lineno, node.end_col_offset, str(value)))
                else:  # a new line after the srcs one
                    srcs = kwargs["srcs"]
                    end, col = srcs.value.end_lineno, srcs.value.end_col_offset
                    edits.append((end, col, end, col, f",\n{' ' * srcs.col_offset}{attr} = {value}"))
            if not add and not remove:
                continue
            deps = [d for d in target.deps if d not in remove] + sorted(add)
            if "deps" in kwargs:
                node = kwargs["deps"].value
                indent = " " * kwargs["deps"].col_offset
                keep_lines = {}
                for elt in getattr(node, "elts", []):
                    if canonical(elt.value, package) in target.keep:
                        keep_lines[canonical(elt.value, package)] = lines[elt.lineno - 1].rstrip()
                new = _deps_text(deps, keep_lines, package, indent) if deps else "[]"
                edits.append((node.lineno, node.col_offset, node.end_lineno, node.end_col_offset, new))
            else:  # a new deps line after the srcs one
                srcs = kwargs["srcs"]
                indent = " " * srcs.col_offset
                new = f",\n{indent}deps = " + _deps_text(deps, {}, package, indent)
                end = srcs.value.end_lineno
                edits.append((end, srcs.value.end_col_offset, end, srcs.value.end_col_offset, new))
        for start, scol, end, ecol, new in sorted(edits, reverse=True):
            head = lines[start - 1][:scol]
            tail = lines[end - 1][ecol:]
            lines[start - 1:end] = (head + new + tail).splitlines()
        text = "\n".join(lines) + "\n"
        stanzas = [p.stanza for p in group if p.stanza]
        if any(s.startswith("pytest_test(") for s in stanzas) and PYTEST_LOAD not in text:
            text = PYTEST_LOAD + "\n\n" + text
        for stanza in stanzas:
            text = text.rstrip("\n") + "\n\n" + stanza
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        written.append(rel)
    return written


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        help="repository root (default: this checkout)")
    parser.add_argument("--fix", action="store_true",
                        help="edit the BUILD files: add and remove deps, append targets for new modules")
    args = parser.parse_args(argv)
    problems = check(args.root)
    for _ in range(3):  # a new target's deps are added on the next round, once its deps have targets
        if not (args.fix and any(not (p.layering or p.manual) for p in problems)):
            break
        for rel in fix(args.root, problems):
            print(f"wrote {rel}")
        problems = check(args.root)
    for problem in problems:
        print(problem)
    if problems:
        fixable = [p for p in problems if not (p.layering or p.manual)]
        print(f"{len(problems)} BUILD mismatch(es)" + (
            f"; `python tools/check_build_deps.py --fix` applies the {len(fixable)} fixable one(s)"
            if fixable and not args.fix else ""), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
