"""Which module may import what, checked two ways.

At run time: what ``bgr --json`` and a plain start load (scripts poll the first; both have a
budget of milliseconds), and what the guard loads for its passes.

Statically, with ``ast`` over the source files of ``bgr/`` and ``guard/``: the layers (cli on top
of core on top of proc, logfiles and the bottom modules; watch beside core), the one platform
switch (``bgr.proc.host``), the guard's one door into bgr (``bgr.guard_api``), and where the heavy
third-party packages may be imported. Each rule is also run against a copy of the source with
one bad import added, to show that it can fail.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import run_bgr

REPO = Path(__file__).resolve().parents[1]

# Cheap to use, costly to import (-X importtime here): typing ~3 ms, pathlib ~3.5 ms (urllib.parse,
# ipaddress), the sqlite3 package's datetime adapters ~2 ms, string 0.5 ms.
SLOW_STDLIB = ("typing", "pathlib", "datetime", "sqlite3", "string", "urllib", "ipaddress")


def imported_by_bgr(code: str) -> tuple[str, list[str]]:
    """Run ``code`` in a fresh interpreter: its stdout, and the modules it loaded beyond a bare
    interpreter's. Without site (-S), importing bgr from this checkout: an editable install's path
    hook would otherwise load pathlib before bgr does. The list and start paths need no
    third-party package, and this proves that too."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    report = "\nprint(' '.join(sorted(sys.modules)), file=sys.stderr)\n"

    def run(source: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-S", "-c", "import sys\n" + source + report]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, check=False)

    bare, done = run(""), run(code)
    assert done.returncode == 0, done.stderr
    return done.stdout, sorted(set(done.stderr.split()) - set(bare.stderr.split()))


# Modules only starting, stopping, ports, rotation, config, git or watching need; and dataclasses,
# whose import of inspect cost ~10 ms of a listing before bgr.models became NamedTuples.
LIST_FORBIDDEN = (
    "dataclasses",
    "bgr.core.launch", "bgr.core.teardown", "bgr.core.definition",
    "bgr.proc.spawn", "bgr.proc.locks", "bgr.proc.stopper", "bgr.proc.ports",
    "bgr.logfiles.reading", "bgr.logfiles.backups", "bgr.logfiles.rotation", "bgr.config", "bgr.git",
    "bgr.watch.loop", "bgr.watch.watcher", "bgr.watch.inotify", "bgr.watch.tree",
    "bgr.watch.ignore", "bgr.watch.debounce", "bgr.watch.inbox", "bgr.watch.logstream",
    "docopt", "tomli", "git", "apscheduler", "watchdog",
    "bgr.stack", "bgr.export", "bgr.core.stacks", "bgr.core.exports", "bgr.health", "math",
    # re (with enum) was ~5 ms of a 28 ms list, json and contextlib pulled it in (bgr.jsontext,
    # bgr.choice and the plain bgr script keep it out)
    "re", "json", "enum", "contextlib",
) + SLOW_STDLIB + (("psutil",) if sys.platform.startswith("linux") else ())  # fmt: skip
# What a plain start must not import either: each one was milliseconds of a 50 ms budget.
START_FORBIDDEN = (
    "dataclasses", "docopt", "tomli", "git", "apscheduler", "watchdog", "bgr.logfiles.reading",
    "bgr.logfiles.backups", "bgr.git", "bgr.watch.loop", "bgr.stack", "bgr.export",
    "bgr.health", "bgr.core.teardown", "math",
    "re", "json", "signal", "enum",  # see LIST_FORBIDDEN; signal's IntEnums: bgr.signals
) + SLOW_STDLIB + (("psutil",) if sys.platform.startswith("linux") else ())  # fmt: skip


def test_the_list_path_imports_nothing_that_only_changes_need(tmp_path: Path) -> None:
    """Scripts poll `bgr --json`: a top-level import of the start/stop machinery must not creep back."""
    done = run_bgr("--name", "web", "--command", "sleep 60", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out, loaded = imported_by_bgr("import bgr.cli\nassert bgr.cli.main(['--json']) == 0")
    assert json.loads(out)[0]["status"] == "running"
    assert "bgr.core.queries" in loaded
    assert [m for m in loaded if any(m == f or m.startswith(f + ".") for f in LIST_FORBIDDEN)] == []


def test_the_bgr_script_imports_no_re_before_bgr_does(tmp_path: Path) -> None:
    """The installed ``bgr`` is scripts/bgr, not a console-script wrapper (whose ``import re`` would
    undo the list path's savings): run it as installed, and check the copy is that script."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "BGR_HOME": str(tmp_path / "home")}
    script = REPO / "scripts" / "bgr"
    argv = [sys.executable, "-S", "-X", "importtime", str(script), "--json"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
    loaded = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "bgr.core.queries" in loaded
    assert [m for m in ("re", "json", "enum", "contextlib", "typing") if m in loaded] == []
    installed = Path(sys.executable).parent / "bgr"
    if installed.exists():  # the suite runs from the project's venv (README: pip install -e)
        assert installed.read_text().split("\n", 1)[1] == script.read_text().split("\n", 1)[1]


def test_a_plain_start_imports_only_what_it_needs(tmp_path: Path) -> None:
    argv = ["--name", "web", "--command", "sleep 60", "-d", str(tmp_path)]
    out, loaded = imported_by_bgr(f"import bgr.cli\nassert bgr.cli.main({argv!r}) == 0")
    assert out.startswith("started web")
    assert "bgr.proc.spawn" in loaded
    assert [m for m in loaded if any(m == f or m.startswith(f + ".") for f in START_FORBIDDEN)] == []


def test_an_export_loads_no_scheduler_git_or_watcher(tmp_path: Path) -> None:
    """Exporting reads the stack file and renders text: APScheduler, GitPython, watchdog and the
    start machinery stay out (a file without cron schedules)."""
    (tmp_path / "bgr.toml").write_text(
        '[db]\ncommand = "sleep 1"\nhealth = "tcp:127.0.0.1:1"\n'
        '[api]\ncommand = "x"\ndepends_on = { db = "healthy" }\n'
    )
    argv = ["--export", "kubernetes", "--file", str(tmp_path / "bgr.toml")]
    # With site (tomli is a third-party package), unlike imported_by_bgr.
    code = (
        f"import sys, bgr.cli\nassert bgr.cli.main({argv!r}) == 0\n"
        "print(' '.join(sys.modules), file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    out, loaded = done.stdout, done.stderr.split()
    assert 'kind: "Deployment"' in out and "bgr.export.kubernetes" in loaded
    heavy = ("apscheduler", "git", "watchdog", "psutil", "bgr.core.launch", "bgr.proc.spawn", "bgr.watch")
    assert [m for m in loaded if any(m == h or m.startswith(h + ".") for h in heavy)] == []


def test_heavy_modules_are_imported_only_when_needed(tmp_path: Path) -> None:
    """A check and a rotation pass need neither GitPython, psutil (Linux) nor bgr.logfiles.backups; the
    long-running guard keeps OpenSSL out; a pull imports GitPython."""
    code = f"""
import sys, threading
from guard import cli
cli._skip_tls()
from bgr.core import launch, teardown
from bgr.models import StartRequest
from guard.jobs import Jobs
from guard.keeper import Keeper
from guard.options import GuardOptions, Target, TargetKind
from guard.scheduler import GuardService
launch.start(StartRequest(name="web", command="sleep 30", directory={str(tmp_path)!r}))
options = GuardOptions(target=Target(TargetKind.ALL))
jobs = Jobs(Keeper(options), threading.Event())
jobs.check(); jobs.rotate(); jobs.pull()
GuardService(options)
heavy = ("git", "psutil", "bgr.logfiles.reading", "bgr.logfiles.backups", "bgr.logfiles.rotation")
heavy += ("ssl", "_ssl")
heavy = [m for m in heavy if sys.modules.get(m)]
assert heavy == (["psutil"] if sys.platform != "linux" else []), heavy
from bgr.store import open_registry
with open_registry() as reg:
    reg.update("web", fetch=True)
jobs.pull()  # not a git checkout: the pull fails (logged), but it did need GitPython
assert "git" in sys.modules
teardown.delete("web")
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --------------------------------------------------------------------------------------------
# static rules: the source files themselves


@dataclass(frozen=True, slots=True)
class Imported:
    """One import statement of one source file."""

    file: str  # relative to the source root, with "/"
    line: int
    modules: tuple[str, ...]  # what it may load: ``from a.b import c`` gives a.b and a.b.c
    at_import_time: bool  # runs when its module is imported (not in a function, not TYPE_CHECKING)
    node: ast.Import | ast.ImportFrom


def source_files(root: Path, *folders: str) -> Iterator[tuple[str, ast.Module]]:
    """(relative path, parsed module) of every .py file under ``root/folder``."""
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            yield path.relative_to(root).as_posix(), ast.parse(path.read_text(), str(path))


def module_of(file: str) -> str:
    """bgr/core/launch.py -> bgr.core.launch; bgr/cli/__init__.py -> bgr.cli."""
    parts = file.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_names(node: ast.Import | ast.ImportFrom, package: str) -> tuple[str, ...]:
    """The modules an import statement names (``from a import b``: ``a`` and ``a.b``)."""
    if isinstance(node, ast.Import):
        return tuple(alias.name for alias in node.names)
    base = node.module or ""
    if node.level:  # relative: from .x import y
        anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join([*anchor, *([base] if base else [])])
    return (base, *(f"{base}.{alias.name}" for alias in node.names if alias.name != "*"))


def imports_of(file: str, tree: ast.Module) -> list[Imported]:
    """Every import in ``tree``, wherever it is (functions and TYPE_CHECKING blocks included)."""
    package = module_of(file) if file.endswith("__init__.py") else module_of(file).rpartition(".")[0]
    found: list[Imported] = []

    def visit(node: ast.AST, at_import_time: bool) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(Imported(file, node.lineno, imported_names(node, package), at_import_time, node))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            for child in ast.iter_child_nodes(node):
                visit(child, False)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, False)
            for child in node.orelse:
                visit(child, at_import_time)
        else:
            for child in ast.iter_child_nodes(node):
                visit(child, at_import_time)

    visit(tree, True)
    return found


def all_imports(root: Path, *folders: str) -> list[Imported]:
    return [imp for file, tree in source_files(root, *folders) for imp in imports_of(file, tree)]


def loads(imported: Imported, *prefixes: str) -> list[str]:
    """The modules of ``imported`` that are one of ``prefixes`` or inside one."""
    return [m for m in imported.modules if any(m == p or m.startswith(p + ".") for p in prefixes)]


def forbid(root: Path, files: Callable[[str], bool], *prefixes: str) -> list[str]:
    """Violations: a bgr file selected by ``files`` that imports one of ``prefixes``."""
    return [
        f"{imp.file}:{imp.line}: imports {', '.join(bad)}"
        for imp in all_imports(root, "bgr")
        if files(imp.file) and (bad := loads(imp, *prefixes))
    ]


# The layers below the use cases: the process layer, the log files and the bottom modules.
BOTTOM = (
    "bgr/proc/", "bgr/logfiles/", "bgr/store.py", "bgr/paths.py", "bgr/models.py", "bgr/errors.py",
    "bgr/record.py", "bgr/units.py", "bgr/config.py", "bgr/git.py", "bgr/health/",
    "bgr/choice.py", "bgr/jsontext.py", "bgr/signals.py", "bgr/crashpoints.py",
)  # fmt: skip


def bgr_never_imports_guard(root: Path) -> list[str]:
    return forbid(root, lambda file: True, "guard")


def only_the_cli_imports_the_cli(root: Path) -> list[str]:
    # guard_api re-exports a few CLI pieces for bgr-guard; __main__ is `python -m bgr` itself.
    allowed = ("bgr/cli/", "bgr/guard_api.py", "bgr/__main__.py")
    return forbid(root, lambda file: not file.startswith(allowed), "bgr.cli")


def the_bottom_imports_no_use_case(root: Path) -> list[str]:
    return forbid(
        root,
        lambda file: file.startswith(BOTTOM),
        "bgr.core",
        "bgr.watch",
        "bgr.cli",
        "bgr.stack",
        "bgr.export",
    )


def stacks_and_exports_are_below_the_use_cases(root: Path) -> list[str]:
    """Reading stack files and rendering exports is data in, data out: no use case, no CLI."""
    return forbid(
        root, lambda file: file.startswith(("bgr/stack/", "bgr/export/")), "bgr.core", "bgr.cli", "bgr.watch"
    )


def exports_need_no_scheduler_git_or_process_layer(root: Path) -> list[str]:
    """An export renders text: it never schedules, pulls, watches or touches a process."""
    return forbid(
        root,
        lambda file: file.startswith("bgr/export/"),
        "apscheduler", "git", "watchdog", "bgr.git", "bgr.health.schedule", "bgr.proc", "bgr.store",
    )  # fmt: skip


def the_core_imports_neither_watch_nor_cli(root: Path) -> list[str]:
    return forbid(root, lambda file: file.startswith("bgr/core/"), "bgr.watch", "bgr.cli")


def only_the_host_imports_a_platform_backend(root: Path) -> list[str]:
    return [
        f"{imp.file}:{imp.line}: imports {', '.join(bad)}"
        for imp in all_imports(root, "bgr", "guard")
        if imp.file != "bgr/proc/host.py" and (bad := loads(imp, "bgr.proc.procfs", "bgr.proc.portable"))
    ]


def platform_branches(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, what) for each sign of branching on the platform: sys.platform, os.name, a LINUX
    flag, the platform module."""
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and (node.value.id, node.attr) in (("sys", "platform"), ("os", "name"), ("os", "uname"))
        ):
            found.append((node.lineno, f"{node.value.id}.{node.attr}"))
        if (isinstance(node, ast.Name) and node.id == "LINUX") or (
            isinstance(node, ast.Attribute) and node.attr == "LINUX"
        ):
            found.append((node.lineno, "LINUX"))
        if isinstance(node, ast.Import) and any(a.name == "platform" for a in node.names):
            found.append((node.lineno, "import platform"))
    return found


def nothing_outside_proc_branches_on_the_platform(root: Path) -> list[str]:
    return [
        f"{file}:{line}: {what}"
        for file, tree in source_files(root, "bgr", "guard")
        if not file.startswith("bgr/proc/")
        for line, what in platform_branches(tree)
    ]


def guard_api_names(root: Path) -> set[str]:
    """``bgr/guard_api.py``'s ``__all__``, read from the source (a literal list)."""
    tree = ast.parse((root / "bgr" / "guard_api.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            assert isinstance(value, list)
            return {str(name) for name in value}
    raise AssertionError("bgr/guard_api.py has no literal __all__")


def the_guard_enters_bgr_only_through_guard_api(root: Path) -> list[str]:
    bad = []
    for imp in all_imports(root, "guard"):
        node = imp.node
        if not loads(imp, "bgr"):
            continue
        if isinstance(node, ast.ImportFrom):
            ok = node.module == "bgr.guard_api" or (
                node.module == "bgr" and all(a.name == "guard_api" for a in node.names)
            )
        else:
            ok = all(a.name == "bgr.guard_api" or not a.name.startswith("bgr") for a in node.names)
        if not ok:
            bad.append(f"{imp.file}:{imp.line}: imports {', '.join(loads(imp, 'bgr'))}")
    return bad


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return None if inner is None else f"{inner}.{node.attr}"
    return None


def the_guard_takes_only_names_in_guard_api_all(root: Path) -> list[str]:
    public = guard_api_names(root)
    bad = []
    for file, tree in source_files(root, "guard"):
        aliases = set()  # names bound to the module itself
        for imp in imports_of(file, tree):
            node = imp.node
            if isinstance(node, ast.ImportFrom) and node.module == "bgr.guard_api":
                bad += [f"{file}:{imp.line}: {a.name}" for a in node.names if a.name not in public]
            elif isinstance(node, ast.ImportFrom) and node.module == "bgr":
                aliases |= {a.asname or a.name for a in node.names if a.name == "guard_api"}
            elif isinstance(node, ast.Import):
                aliases |= {a.asname or a.name for a in node.names if a.name == "bgr.guard_api"}
        for used in ast.walk(tree):
            if isinstance(used, ast.Attribute) and _dotted(used.value) in aliases and used.attr not in public:
                bad.append(f"{file}:{used.lineno}: {_dotted(used.value)}.{used.attr}")
    return bad


# Costly third-party packages (import time, resident memory, or a binary they need) and the
# modules that may import them. None of them is imported when its module is: only inside the
# function that needs it (or for the type checker).
HEAVY = {
    "git": {"bgr/git.py"},
    "apscheduler": {
        "guard/scheduler.py",
        "guard/elapsed.py",
        "bgr/health/schedule.py",
    },  # the last: cron expressions
    "watchdog": {"bgr/watch/inotify.py", "bgr/watch/watcher.py"},
    "psutil": {"bgr/proc/portable.py", "bgr/proc/ports.py"},
    "docopt": {"bgr/cli/parse.py"},
    "tomli": {"bgr/config.py", "bgr/stack/files.py"},
}


# Modules that extend a heavy package (subclass its classes) and so import it at import time;
# instead, nothing may import them at import time.
EXTENSIONS = {"guard/elapsed.py": "guard.elapsed"}


def heavy_packages_load_late_and_only_where_needed(root: Path) -> list[str]:
    bad = []
    for imp in all_imports(root, "bgr", "guard"):
        for package, users in HEAVY.items():
            if not loads(imp, package):
                continue
            if imp.file not in users:
                bad.append(f"{imp.file}:{imp.line}: imports {package} (only {', '.join(sorted(users))} may)")
            elif imp.at_import_time and imp.file not in EXTENSIONS:
                bad.append(f"{imp.file}:{imp.line}: imports {package} at import time")
        for extension in EXTENSIONS.values():
            if imp.at_import_time and loads(imp, extension):
                bad.append(f"{imp.file}:{imp.line}: imports {extension} (a heavy package) at import time")
    return bad


@dataclass(frozen=True)
class Rule:
    check: Callable[[Path], list[str]]
    # One way to break the rule each: (file, source appended to it).
    breakages: tuple[tuple[str, str], ...]
    # Files that break the rule today (each named and explained in RULES); nothing else may.
    known: frozenset[str] = field(default_factory=frozenset)

    @property
    def name(self) -> str:
        return self.check.__name__


# None today: bgr/watch/inotify.py and bgr/logfiles/rotation.py probe for what they need (the
# kernel's inotify settings, libc's fallocate) instead of naming the platform.
PLATFORM_BRANCHES_TODAY: frozenset[str] = frozenset()

LAZY = "\n\ndef _late() -> None:\n    {}\n"

RULES = [
    Rule(bgr_never_imports_guard, (("bgr/units.py", "import guard.policy\n"),)),
    Rule(
        only_the_cli_imports_the_cli,
        (
            ("bgr/core/queries.py", "from bgr.cli import output\n"),
            ("bgr/watch/loop.py", "from bgr import cli\n"),
        ),
    ),
    Rule(
        the_bottom_imports_no_use_case,
        (
            ("bgr/store.py", LAZY.format("from bgr.core import launch")),
            ("bgr/proc/spawn.py", "import bgr.watch.loop\n"),
            ("bgr/logfiles/reading.py", "from bgr.cli.output import emit\n"),
            ("bgr/models.py", LAZY.format("from bgr.stack import files")),
        ),
    ),
    Rule(
        stacks_and_exports_are_below_the_use_cases,
        (
            ("bgr/stack/plan.py", LAZY.format("from bgr.core import launch")),
            ("bgr/export/compose.py", "from bgr.cli import output\n"),
        ),
    ),
    Rule(
        exports_need_no_scheduler_git_or_process_layer,
        (
            ("bgr/export/systemd.py", LAZY.format("from bgr.health import schedule")),
            ("bgr/export/kubernetes.py", "import bgr.proc.spawn\n"),
        ),
    ),
    Rule(
        the_core_imports_neither_watch_nor_cli,
        (("bgr/core/launch.py", LAZY.format("from bgr.watch import loop")),),
    ),
    Rule(
        only_the_host_imports_a_platform_backend,
        (
            ("bgr/proc/identity.py", "from bgr.proc import procfs\n"),
            ("guard/keeper.py", "import bgr.proc.portable\n"),
        ),
    ),
    Rule(
        nothing_outside_proc_branches_on_the_platform,
        (("bgr/core/queries.py", "import sys\nON_MAC = sys.platform == 'darwin'\n"),),
        known=PLATFORM_BRANCHES_TODAY,
    ),
    Rule(
        the_guard_enters_bgr_only_through_guard_api,
        (("guard/jobs.py", "from bgr.store import open_registry\n"), ("guard/gate.py", "import bgr.paths\n")),
    ),
    Rule(
        the_guard_takes_only_names_in_guard_api_all,
        (
            ("guard/jobs.py", "from bgr.guard_api import spawn\n"),
            ("guard/keeper.py", LAZY.format("bgr.not_in_the_api()")),
        ),
    ),
    Rule(
        heavy_packages_load_late_and_only_where_needed,
        (
            ("bgr/proc/ports.py", "import psutil\n"),
            ("bgr/core/launch.py", LAZY.format("import git")),
            ("guard/jobs.py", LAZY.format("from apscheduler.schedulers.blocking import BlockingScheduler")),
            ("guard/keeper.py", "from guard import elapsed\n"),
        ),
    ),
]


def files_of(violations: list[str]) -> set[str]:
    return {v.split(":", 1)[0] for v in violations}


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.name)
def test_the_source_keeps_the_rule(rule: Rule) -> None:
    violations = rule.check(REPO)
    assert files_of(violations) == rule.known, violations


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of bgr/ and guard/ to break."""
    root = tmp_path_factory.mktemp("source")
    for package in ("bgr", "guard"):
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.mark.parametrize(
    ("rule", "file", "added"),
    [(rule, file, added) for rule in RULES for file, added in rule.breakages],
    ids=[f"{rule.name}-{file}" for rule in RULES for file, _ in rule.breakages],
)
def test_the_rule_fails_on_a_source_that_breaks_it(
    rule: Rule, file: str, added: str, pristine: Path, tmp_path: Path
) -> None:
    root = tmp_path / "source"
    shutil.copytree(pristine, root)
    assert files_of(rule.check(root)) == rule.known  # the copy keeps the rule...
    with (root / file).open("a") as fh:
        fh.write(added)
    assert files_of(rule.check(root)) == rule.known | {file}  # ...and one added line breaks it


def test_relative_imports_are_resolved() -> None:
    tree = ast.parse("from . import output\nfrom ..core import launch\nfrom .rules import Start\n")
    found = [imp.modules for imp in imports_of("bgr/cli/execute.py", tree)]
    assert found == [
        ("bgr.cli", "bgr.cli.output"),
        ("bgr.core", "bgr.core.launch"),
        ("bgr.cli.rules", "bgr.cli.rules.Start"),
    ]


def test_every_name_in_guard_api_all_exists() -> None:
    """The guard's list of bgr names, read statically above, is the module's own and all resolve
    (the lazy ones included)."""
    from bgr import guard_api

    assert set(guard_api.__all__) == guard_api_names(REPO)
    missing = [name for name in guard_api.__all__ if not hasattr(guard_api, name)]
    assert missing == []
