"""Expansion of a task's ``cmd`` template into a shell command line (pure: no I/O).

Placeholders (sflow-original.md §1.2):

* ``$F^<id>`` — the job-relative path of the file that arrived from predecessor ``<id>``;
* ``$V^<id>`` — the value (``out_value.val``) that arrived from predecessor ``<id>``;
* ``$R^<path>`` — ``<path>``, a job-relative input file fetched from the file server when missing;
* a leading ``DUMMY`` — run the Docker image's ENTRYPOINT with the remaining words as arguments.

The template itself is the job author's shell text, so globs, pipes and redirections work. Every
substituted value is shell-quoted for the quoting context it lands in (unquoted, inside ``'…'`` or
inside ``"…"``), so nothing in a value is ever parsed as shell code. ``\\$F^1`` (an escaped dollar)
is left alone.

Differences from the original, on purpose:

* ``./`` is not rewritten to an absolute install directory: commands run with the job's working
  directory as their cwd, so every node may use its own directory layout.
* The original split the template on single spaces and substituted whole tokens only; here the
  template is tokenised the way ``/bin/sh`` does it, so placeholders also work inside a word
  (``--input=$F^1``) or inside quotes.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from sflow.errors import InputError
from sflow.model.paths import UnsafePath, job_relative
from sflow.model.workflow import TaskId

DUMMY = "DUMMY"

# Words /bin/sh runs itself (POSIX reserved words and builtins): a template starting with one of
# them needs no program on PATH, only the shell.
SHELL_WORDS = frozenset(
    "! { } case do done elif else esac fi for if in then until while "
    ". : break continue eval exec exit export readonly return set shift times trap unset "
    "alias bg cd command false fc fg getopts hash jobs kill newgrp pwd read true type ulimit umask "
    "unalias wait echo printf test [".split()
)

_BLANKS = frozenset(" \t")
# Unquoted characters that make a shell do more than split words (operators; a newline ends a
# command like ";").
_OPERATORS = frozenset(";&|<>()\n")
# Characters that end a $R^ path (the path is the rest of the shell word).
_PATH_STOP = _BLANKS | _OPERATORS | frozenset("'\"`\\$")


@dataclass(frozen=True, slots=True)
class Expanded:
    """A command ready to run.

    ``shell`` is the ``/bin/sh -c`` command line (for ``DUMMY`` it still starts with ``DUMMY`` and
    serves only for logs). ``args`` are the words after the program with quotes removed and values
    substituted, for running an image's ENTRYPOINT in exec form (no shell, no globbing).
    """

    shell: str
    program: str
    dummy: bool
    args: tuple[str, ...]
    remote_inputs: tuple[str, ...]


class _Scanner:
    """One pass over the template, tracking sh quoting, building the shell text and the words."""

    def __init__(
        self, template: str, files: Mapping[TaskId, str], values: Mapping[TaskId, str], source: str
    ) -> None:
        self.text = template
        self.files = files
        self.values = values
        self.source = source
        self.out: list[str] = []
        self.words: list[str] = []
        self.word: list[str] = []
        self.in_word = False
        self.syntax: list[str] = []  # shell syntax outside quotes; DUMMY (exec form) rejects it
        self.remote: dict[str, None] = {}

    def error(self, where: str, message: str) -> InputError:
        return InputError(self.source, where, message)

    def end_word(self) -> None:
        if self.in_word:
            self.words.append("".join(self.word))
        self.word = []
        self.in_word = False

    def literal(self, shell_text: str, value: str) -> None:
        self.out.append(shell_text)
        self.word.append(value)
        self.in_word = True

    def placeholder(self, i: int, stop: frozenset[str]) -> tuple[str, int] | None:
        """If a placeholder starts at ``i`` (a ``$``), its value and the index after it."""
        kind = self.text[i + 1 : i + 3]
        if kind not in ("F^", "V^", "R^"):
            return None
        start = i + 3
        if kind == "R^":
            end = start
            while end < len(self.text) and self.text[end] not in stop:
                end += 1
            token = self.text[i:end]
            if end == start:
                raise self.error(token, "$R^ must be followed by a path relative to the job directory")
            try:
                path = job_relative(self.text[start:end])
            except UnsafePath as exc:
                raise self.error(token, str(exc)) from None
            self.remote.setdefault(path, None)
            return _safe_word(path), end
        end = start
        while end < len(self.text) and self.text[end].isdigit():
            end += 1
        token = self.text[i:end]
        if end == start:
            raise self.error(token, f"{token} must be followed by a task id, as in {token}1")
        tid = TaskId(int(self.text[start:end]))
        if kind == "V^":
            if tid not in self.values:
                raise self.error(token, f"no value arrived from predecessor {tid}{_known(self.values)}")
            value = self.values[tid]
        else:
            if tid not in self.files:
                raise self.error(token, f"no file arrived from predecessor {tid}{_known(self.files)}")
            try:
                value = _safe_word(job_relative(self.files[tid]))
            except UnsafePath as exc:
                raise self.error(token, f"file from predecessor {tid}: {exc}") from None
        if "\x00" in value:
            raise self.error(token, "the substituted value contains a NUL byte")
        return value, end

    def scan(self) -> None:
        text = self.text
        n = len(text)
        i = 0
        context = ""  # "", "'" or '"'
        while i < n:
            c = text[i]
            if context == "'":
                if c == "'":
                    context = ""
                    self.out.append(c)
                    i += 1
                    continue
                found = self.placeholder(i, _PATH_STOP) if c == "$" else None
                if found is not None:
                    value, i = found
                    self.literal("'" + shlex.quote(value) + "'", value)
                    continue
                self.literal(c, c)
                i += 1
            elif context == '"':
                if c == '"':
                    context = ""
                    self.out.append(c)
                    i += 1
                    continue
                if c == "\\" and i + 1 < n and text[i + 1] in '$`"\\\n':
                    self.literal(text[i : i + 2], "" if text[i + 1] == "\n" else text[i + 1])
                    i += 2
                    continue
                found = self.placeholder(i, _PATH_STOP) if c == "$" else None
                if found is not None:
                    value, i = found
                    self.literal('"' + shlex.quote(value) + '"', value)
                    continue
                if c in "$`":
                    self.syntax.append(c)
                self.literal(c, c)
                i += 1
            else:
                if c in _BLANKS:
                    self.end_word()
                    self.out.append(c)
                    i += 1
                elif c in "'\"":
                    context = c
                    self.out.append(c)
                    self.in_word = True
                    i += 1
                elif c == "\\":
                    if i + 1 < n:
                        self.literal(text[i : i + 2], "" if text[i + 1] == "\n" else text[i + 1])
                        i += 2
                    else:
                        self.literal(c, c)
                        i += 1
                elif c == "$":
                    found = self.placeholder(i, _PATH_STOP)
                    if found is not None:
                        value, i = found
                        self.literal(shlex.quote(value), value)
                    else:
                        self.syntax.append(c)
                        self.literal(c, c)
                        i += 1
                elif c in _OPERATORS or c == "`":
                    self.syntax.append(c)
                    self.end_word()
                    self.out.append(c)
                    i += 1
                elif c == "#" and not self.in_word:
                    self.syntax.append(c)
                    self.literal(c, c)
                    i += 1
                else:
                    self.literal(c, c)
                    i += 1
        if context:
            raise self.error("", f"unterminated {context} quote in {text!r}")
        self.end_word()


def expand(
    template: str,
    *,
    files: Mapping[TaskId, str],
    values: Mapping[TaskId, str],
    source: str = "cmd",
) -> Expanded:
    """Expand ``template`` (a task's ``cmd``) with the files and values its predecessors sent.

    ``files`` maps a predecessor id to the job-relative path of the (first) file it sent to this
    task, ``values`` to the value it sent. ``source`` names the template in errors (for example
    ``"job 3 task 7 cmd"``). Raises :class:`InputError` naming the offending placeholder for an
    unknown id, an unsafe path, a malformed placeholder, an unterminated quote, an empty command, or
    shell syntax in a ``DUMMY`` command (which runs without a shell).
    """
    scanner = _Scanner(template.strip(), files, values, source)
    scanner.scan()
    if not scanner.words:
        raise InputError(source, "", "empty command")
    program = scanner.words[0]
    dummy = program == DUMMY
    if dummy and scanner.syntax:
        raise InputError(
            source,
            "",
            f"{DUMMY} runs the image's entrypoint without a shell, so shell syntax "
            f"{' '.join(sorted(set(scanner.syntax)))!s} cannot be used; name the program instead of {DUMMY}",
        )
    return Expanded(
        shell="".join(scanner.out).strip(),
        program=program,
        dummy=dummy,
        args=tuple(scanner.words[1:]),
        remote_inputs=tuple(scanner.remote),
    )


def _safe_word(path: str) -> str:
    """A normalised job path that cannot be taken for an option (``-rf`` → ``./-rf``)."""
    return "./" + path if path.startswith("-") else path


def _known(mapping: Mapping[TaskId, str]) -> str:
    if not mapping:
        return " (none arrived)"
    return f" (arrived from: {', '.join(str(k) for k in sorted(mapping))})"
