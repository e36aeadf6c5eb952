"""The copy-paste examples and links of README.md and docs/*.md stay true.

- Every ``storywatch ...`` line of a fenced shell example names a real command, and every
  ``--flag`` it uses (and each value of a choice) exists on that command, as the real click
  parser of the ``storywatch`` entry point (pyproject's ``[project.scripts]``) defines it.
- The offline examples run for real: ``storywatch --help`` and ``<command> --help`` for every
  command the pages name, and each ``storywatch eval`` / ``cluster`` / ``bench/derive_pairs.py``
  line whose inputs are in the repository, on the first rows of the same files.
- Every relative link resolves to a file (and a heading, for ``#anchor``); every repository
  path the pages name (``streams/pipeline.py``, ``tests/integration/``) exists.
- README.md stays short and names exactly the two commands of a fresh machine.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
# Records of measurement sessions (their commands are checked; the paths they name are the
# layout of the day they were written).
HISTORY_PAGES = {"BENCHMARKS.md", "QUALITY.md"}
SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console"}
README_MAX_LINES = 200
FRESH_MACHINE_COMMANDS = ["make demo", "make test"]
# Why 30: enough rows for eval to form stories and score pairs, few enough that the model's
# encoding of ECB+ full articles stays a second or two.
_EXAMPLE_ROWS = 30
_SEPARATORS = {"|", "||", "&&", ";", "&", "(", ")", ">", ">>", "<", "<<", "2>", "&>"}
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


# --- reading the pages ---------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    found: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    opened: tuple[int, str] | None = None
    body: list[str] = []
    for number, line in enumerate(lines, 1):
        if line.startswith("```"):
            if opened is None:
                opened, body = (number, line[3:].strip().lower()), []
            else:
                found.append(Block(page, opened[0], opened[1], "\n".join(body)))
                opened = None
        elif opened is not None:
            body.append(line)
    assert opened is None, f"{page.relative_to(ROOT)}:{opened[0]}: a code fence never closes"
    return found


def shell_blocks() -> list[Block]:
    return [b for page in PAGES for b in blocks(page) if b.language in SHELL_LANGUAGES]


def _strip_comment(line: str) -> str:
    """The line without its shell comment: a ``#`` at the start or after a blank, unquoted."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def logical_lines(text: str) -> Iterator[str]:
    """Lines with continuations joined, comments and here-document bodies left out."""
    pending = ""
    heredoc_end: str | None = None
    for raw in text.splitlines():
        if heredoc_end is not None:
            if raw.strip() == heredoc_end:
                heredoc_end = None
            continue
        line = pending + raw
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        marker = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line)
        if marker:
            heredoc_end = marker.group(1)
        yield _strip_comment(line).strip()
    if pending:
        yield _strip_comment(pending).strip()


@dataclass
class Command:
    """One simple command of an example: its environment prefix and its words."""

    block: Block
    line: str
    env: dict[str, str] = field(default_factory=dict)
    words: list[str] = field(default_factory=list)


def commands(block: Block) -> Iterator[Command]:
    for line in logical_lines(block.text):
        if not line:
            continue
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = ""
        try:
            tokens = list(lexer)
        except ValueError:  # an unbalanced quote in a sketch: words are enough here
            tokens = line.split()
        current = Command(block, line)
        for token in [*tokens, ";"]:
            if token in _SEPARATORS or set(token) <= set("|&;<>()"):
                if current.words:
                    yield current
                current = Command(block, line)
            elif not current.words and _ENV.match(token):
                name, _, value = token.partition("=")
                current.env[name] = value
            else:
                current.words.append(token)


def storywatch_commands() -> list[Command]:
    return [
        c
        for b in shell_blocks()
        for c in commands(b)
        if c.words and Path(c.words[0]).name == "storywatch"
    ]


# --- the real command line -------------------------------------------------------------------


def entry_point() -> click.Command:
    """The object ``storywatch`` runs, found the way the installer finds it: pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    module, _, attribute = project["project"]["scripts"]["storywatch"].partition(":")
    command = getattr(importlib.import_module(module), attribute)
    assert isinstance(command, click.Command), f"{module}:{attribute} is not a click command"
    return command


def _options(command: click.Command) -> dict[str, click.Option]:
    found: dict[str, click.Option] = {}
    for param in command.get_params(click.Context(command)):
        if isinstance(param, click.Option):
            for name in [*param.opts, *param.secondary_opts]:
                found[name] = param
    return found


def _placeholder(value: str) -> bool:
    """A word that stands for a value (FILE, sub_..., <id>, $TOKEN), not a value itself."""
    return bool(
        re.fullmatch(r"[A-Z][A-Z0-9_.]*", value)
        or "..." in value
        or value[:1] in "<$"
        or value.isupper()
    )


def _choices(param: click.Parameter) -> list[str]:
    """The values a choice parameter takes (none for any other type)."""
    if isinstance(param.type, click.Choice):
        return [str(c) for c in param.type.choices]
    return []


@dataclass
class Parsed:
    path: list[str]  # command names after `storywatch`
    leaf: click.Command
    flags: list[str]
    positionals: list[str]
    values: dict[str, str]  # option -> value as written (the last one)


def parse(
    main: click.Command, words: list[str], *, complete: bool = True
) -> tuple[Parsed | None, list[str]]:
    """Walk ``words`` (after ``storywatch``) through the real parser's commands; answer the
    parse and every problem found (an unknown command, flag, choice value or, for a
    ``complete`` command line, a missing command, argument or required option)."""
    problems: list[str] = []
    command = main
    path: list[str] = []
    flags: list[str] = []
    positionals: list[str] = []
    values: dict[str, str] = {}
    tokens = [w.strip("[]") for w in words]
    tokens = [t for t in tokens if t and t != "..."]
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if token.startswith("-") and token != "-":
            name, equals, inline = token.partition("=")
            options = _options(command)
            option = options.get(name)
            if option is None:
                problems.append(
                    f"`storywatch {' '.join(path)}` has no option {name}"
                    f" (it has {', '.join(sorted(o for o in options if o.startswith('--')))})"
                )
                continue
            flags.append(name)
            if option.is_flag or option.count:
                continue
            if not equals:
                if i >= len(tokens):
                    if complete:
                        problems.append(f"{name} needs a value")
                    continue
                inline, i = tokens[i], i + 1
            values[name] = inline
            choices = _choices(option)
            for value in inline.split("|"):  # `--security ssl|mtls`: each alternative
                if choices and value and not _placeholder(value) and value not in choices:
                    problems.append(f"{name} {value!r} is not one of {choices}")
        elif isinstance(command, click.Group) and not positionals:
            if not complete and _placeholder(token):
                break  # `storywatch COMMAND --help`
            if "|" in token:  # `subscriptions add|list|rm`: each must be a command
                unknown = [t for t in token.split("|") if t and t not in command.commands]
                problems += [f"`storywatch {' '.join(path)}` has no command {t!r}" for t in unknown]
                return None, problems
            sub = command.commands.get(token)
            if sub is None:
                problems.append(
                    f"`storywatch {' '.join(path)}` has no command {token!r}"
                    f" (it has {', '.join(sorted(command.commands))})"
                )
                return None, problems
            command = sub
            path.append(token)
        else:
            positionals.append(token)
    if "--help" in flags or "-h" in flags or not complete:
        return Parsed(path, command, flags, positionals, values), problems
    if isinstance(command, click.Group):
        problems.append(f"`storywatch {' '.join(path)}` is a group: name one of its commands")
        return None, problems
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    for argument, value in zip(arguments, positionals, strict=False):
        choices = _choices(argument)
        if choices and not _placeholder(value) and value not in choices:
            problems.append(f"{value!r} is not one of {choices}")
    required = [a for a in arguments if a.required]
    if len(positionals) < len(required):
        problems.append(f"missing {', '.join(a.human_readable_name for a in required)}")
    for param in command.params:
        option_missing = not any(name in flags for name in param.opts)
        if isinstance(param, click.Option) and param.required and option_missing:
            problems.append(f"missing the required {param.opts[-1]}")
    return Parsed(path, command, flags, positionals, values), problems


def test_the_pages_have_storywatch_examples() -> None:
    """The check below is not vacuous: the pages do show commands, of many groups."""
    found = storywatch_commands()
    groups = {c.words[1] for c in found if len(c.words) > 1}
    assert len(found) >= 40, len(found)
    assert {"kafka", "worker", "eval", "replay", "history", "subscriptions", "feeds"} <= groups


def inline_commands() -> list[tuple[Path, str]]:
    """`storywatch ...` code spans of the prose: fragments, so only their words are checked."""
    return [
        (page, span)
        for page in PAGES
        for span in re.findall(r"`((?:\.venv/bin/)?storywatch [^`]+)`", _prose(page))
    ]


def test_every_storywatch_mention_in_the_prose_names_real_commands_and_flags() -> None:
    main = entry_point()
    problems = []
    for page, span in inline_commands():
        words = [w for w in span.split()[1:] if w not in {"|", "/"}]
        _, found = parse(main, words, complete=False)
        problems += [f"{page.relative_to(ROOT)}: `{span}`: {p}" for p in found]
    assert len(inline_commands()) >= 20
    assert problems == [], "\n".join(problems)


def test_every_storywatch_example_names_real_commands_and_flags() -> None:
    main = entry_point()
    problems = []
    for command in storywatch_commands():
        _, found = parse(main, command.words[1:])
        problems += [f"{command.block.where}: `{command.line}`: {p}" for p in found]
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize(
    ("words", "problem"),
    [
        (["replay", "--from", "7d", "--since", "1h"], "has no option --since"),
        (["subscriptions", "remove", "sub_1"], "has no command 'remove'"),
        (["kafka", "start", "--security", "tls"], "'tls' is not one of"),
        (["history", "story", "--since", "24h"], "'story' is not one of"),
        (["cluster", "FILE.jsonl"], "missing the required --out"),
        (["subscriptions"], "is a group"),
        (["kafka", "start", "--security", "ssl|tls"], "'tls' is not one of"),
        (["subscriptions", "add|remove"], "has no command 'remove'"),
    ],
)
def test_the_check_refuses_a_wrong_example(words: list[str], problem: str) -> None:
    _, problems = parse(entry_point(), words)
    assert any(problem in p for p in problems), problems


# --- running the offline examples ------------------------------------------------------------


def _invoke(main: click.Command, args: list[str], env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(main, args, env=env, catch_exceptions=False)
    assert result.exit_code == 0, f"storywatch {' '.join(args)}: exit {result.exit_code}\n" + (
        result.output
    )
    return result.output


def test_help_of_every_command_the_pages_name() -> None:
    main = entry_point()
    top = _invoke(main, ["--help"])
    assert all(name in top for name in ("kafka", "worker", "replay", "subscriptions")), top
    paths = {tuple(p.path) for c in storywatch_commands() if (p := parse(main, c.words[1:])[0])}
    assert len(paths) >= 15, sorted(paths)
    for path in sorted(paths):
        assert "--help" in _invoke(main, [*path, "--help"]), path


@dataclass
class Runnable:
    command: Command
    argv: list[str]  # after the program
    program: str  # "storywatch" or a bench script


def _in_repo(word: str) -> bool:
    return not word.startswith("-") and "/" in word and (ROOT / word).is_file()


def runnable_examples() -> list[Runnable]:
    """The offline examples whose inputs are all in the repository (no placeholder), one of
    each kind (command, flags, environment): the same line with other files adds nothing."""
    chosen: dict[tuple[object, ...], Runnable] = {}
    for block in shell_blocks():
        for command in commands(block):
            words = command.words
            program = Path(words[0]).name
            if program == "python" or program.startswith("python3"):
                if len(words) < 2 or words[1] != "bench/derive_pairs.py":
                    continue
                program, argv = "bench/derive_pairs.py", words[1:]
            elif program == "storywatch" and len(words) > 1 and words[1] in {"eval", "cluster"}:
                argv = words[1:]
            else:
                continue
            outputs = {argv[i + 1] for i, w in enumerate(argv[:-1]) if w == "--out"}
            inputs = [w for w in argv[1:] if not w.startswith(("-", "/tmp/")) and w not in outputs]
            if not inputs or not all(_in_repo(w) for w in inputs):
                continue  # a placeholder (FILE) or a file of the reader's
            key = (
                program,
                argv[0],
                tuple(sorted(command.env.items())),
                tuple(sorted(w for w in argv if w.startswith("-"))),
            )
            chosen.setdefault(key, Runnable(command, argv, program))
    return list(chosen.values())


def _head(source: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / source.name
    if not target.exists():
        with source.open(encoding="utf-8") as handle:
            rows = [next(handle) for _ in range(_EXAMPLE_ROWS)]
        target.write_text("".join(rows), encoding="utf-8")
    return target


@pytest.mark.model
def test_the_offline_examples_run(tmp_path: Path) -> None:
    """Each runnable example's own command line, on the first rows of its data files
    (``data/x.jsonl`` -> a copy of its first 30 lines; ``/tmp/`` -> this test's folder)."""
    examples = runnable_examples()
    kinds = {(r.program, r.argv[0]) for r in examples}
    assert {("storywatch", "eval"), ("bench/derive_pairs.py", "bench/derive_pairs.py")} <= kinds
    main = entry_point()

    def local(word: str, output: bool) -> str:
        if word.startswith("/tmp/"):
            return str(tmp_path / "tmp" / word.removeprefix("/tmp/"))
        if output:  # never over a file of the repository (bench/pairs/ is committed)
            return str(tmp_path / "out" / Path(word).name)
        if word.startswith("data/") and _in_repo(word):
            return str(_head(ROOT / word, tmp_path / "data"))
        if _in_repo(word):
            return str(ROOT / word)
        return word

    (tmp_path / "tmp").mkdir()
    (tmp_path / "out").mkdir()
    # derive_pairs first: an eval example may read the pairs file it writes
    for example in sorted(examples, key=lambda r: r.program == "storywatch"):
        argv = [
            local(w, output=i > 0 and example.argv[i - 1] == "--out")
            for i, w in enumerate(example.argv)
        ]
        where = f"{example.command.block.where}: `{example.command.line}`"
        if example.program == "bench/derive_pairs.py":
            done = subprocess.run(
                [sys.executable, *argv],
                cwd=ROOT,
                env={**os.environ, **example.command.env},
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert done.returncode == 0, f"{where}\n{done.stdout}{done.stderr}"
            continue
        output = _invoke(main, argv, env=example.command.env)
        if argv[0] == "eval":
            assert "B-cubed F1" in output, f"{where}\n{output}"
        if "--pairs" in argv:
            assert "accuracy" in output, f"{where}\n{output}"
        if argv[0] == "cluster":
            rows = Path(argv[argv.index("--out") + 1]).read_text().splitlines()
            assert len(rows) == _EXAMPLE_ROWS and "story_id" in json.loads(rows[0]), where


# --- links and paths ---------------------------------------------------------------------------


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    in_code = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (match := re.match(r"#{1,6}\s+(.*)", line)):
            slug = _slug(match.group(1))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def _prose(page: Path) -> str:
    """The page without its fenced blocks (commands there name outputs, not the repository)."""
    return re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.S | re.M)


def test_every_relative_link_resolves() -> None:
    problems = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", _prose(page)):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(ROOT)}: ({target})"
            if not file.exists():
                problems.append(f"{where}: no such file")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file):
                problems.append(f"{where}: no heading with that anchor in {file.name}")
    assert problems == [], "\n".join(problems)


def _repository_files() -> tuple[set[str], set[str]]:
    """Every file and folder of the repository (relative, '/'-separated), and file names."""
    paths: set[str] = set()
    names: set[str] = set()
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in {"__pycache__"}]
        relative = Path(folder).relative_to(ROOT).as_posix()
        prefix = "" if relative == "." else relative + "/"
        if prefix:
            paths.add(prefix.rstrip("/"))
        for name in files:
            paths.add(prefix + name)
            names.add(name)
    return paths, names


_TOP = sorted(p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))
_PATH = re.compile(r"(?<![\w/.$-])((?:" + "|".join(map(re.escape, _TOP)) + r")/[\w./*-]*[\w*/])")


def named_paths(page: Path) -> set[str]:
    """Repository paths a page names: ``top/...`` anywhere in its prose, and ``name.py``: in a
    line (a table row) that named a folder before it, inside that folder; else anywhere."""
    found: set[str] = set()
    for line in _prose(page).splitlines():
        folder = ""
        for match in re.finditer(_PATH.pattern + r"|`(\w+\.py)(?:::\w+)?`", line):
            path, name = match.group(1), match.group(2)
            if path:
                found.add(path.rstrip("/."))
                folder = path if path.endswith("/") else folder
            elif name:
                found.add(folder + name)
    return found


def missing_paths(page: Path) -> list[str]:
    paths, names = _repository_files()
    missing = []
    for name in sorted(named_paths(page)):
        if "/" not in name:
            ok = name in names
        elif "*" in name:
            ok = any(True for _ in ROOT.glob(name))
        else:
            ok = name in paths
        if not ok:
            missing.append(name)
    return missing


def test_every_path_the_pages_name_exists() -> None:
    problems = [
        f"{page.relative_to(ROOT)}: {name} does not exist"
        for page in PAGES
        if page.name not in HISTORY_PAGES
        for name in missing_paths(page)
    ]
    assert problems == [], "\n".join(problems)


def test_the_path_check_sees_a_wrong_path(tmp_path: Path) -> None:
    page = ROOT / "docs" / "ARCHITECTURE.md"
    assert len(named_paths(page)) >= 15  # it names the rooms
    fake = tmp_path / "x.md"
    fake.write_text("Agents are in `tests/agents/` and `streams/nowhere.py`, see agents/embed.py.")
    assert {"tests/agents", "streams/nowhere.py"} <= set(named_paths(fake))


# --- the README ---------------------------------------------------------------------------------


def test_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines: move some to docs/"


def test_readme_names_exactly_the_two_commands_of_a_fresh_machine() -> None:
    text = README.read_text(encoding="utf-8")
    section = re.search(r"^## On a fresh machine\n(.*?)(?=^## )", text, flags=re.S | re.M)
    assert section, "README.md needs its '## On a fresh machine' section"
    fence = re.search(r"```\w*\n(.*?)```", section.group(1), flags=re.S)
    assert fence, "the fresh-machine section shows its commands in a code block"
    shown = [" ".join(c.words) for c in commands(Block(README, 0, "bash", fence.group(1)))]
    assert shown == FRESH_MACHINE_COMMANDS
    every_make = {
        " ".join(c.words[:2])
        for b in blocks(README)
        for c in commands(b)
        if c.words and c.words[0] == "make"
    }
    assert every_make == set(FRESH_MACHINE_COMMANDS), every_make
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in ("demo", "test"):
        assert re.search(rf"^{target}:", makefile, flags=re.M), f"the Makefile lost `{target}`"
