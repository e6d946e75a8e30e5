"""Command templates: every placeholder form, the original's sample commands, quoting."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sflow import jsonio
from sflow.errors import InputError
from sflow.model.workflow import Job, TaskId
from sflow.node.command import Expanded, expand


F = {TaskId(1): "./ncloutput/1st.flv", TaskId(2): "out/b c.txt"}
V = {TaskId(3): "hello world", TaskId(4): "x; rm -rf /"}


def sh(shell: str, cwd: Path) -> str:
    return subprocess.run(["/bin/sh", "-c", shell], cwd=cwd, capture_output=True, text=True, check=True).stdout


def inputs_of(job: Job, tid: TaskId) -> tuple[dict[TaskId, str], dict[TaskId, str]]:
    """What the node would pass: the first file each predecessor sends to ``tid``, and its value."""
    files: dict[TaskId, str] = {}
    values: dict[TaskId, str] = {}
    for pred in job.preds[tid]:
        task = job.task(pred)
        for f in task.out_files:
            if tid in f.dest:
                files.setdefault(pred, f.path)
        if task.out_value is not None and tid in task.out_value.dest:
            values[pred] = task.out_value.val
    return files, values


# The original's samples --------------------------------------------------------------------------


@pytest.fixture
def load(samples: Path) -> Callable[[str], Job]:
    return lambda name: jsonio.load_job(samples / name)


def test_ffmpeg_sample_commands(load: Callable[[str], Job]) -> None:
    job = load("job_ffmpeg.json")
    out: dict[int, Expanded] = {}
    for task in job.tasks:
        files, values = inputs_of(job, task.id)
        out[task.id] = expand(task.cmd, files=files, values=values)
    assert out[1].program == "ffmpeg" and not out[1].dummy
    assert out[1].remote_inputs == ("ncloutput/input.mp4",)
    assert out[1].shell == "ffmpeg -i  ncloutput/input.mp4 ./ncloutput/1st.flv"
    assert out[2].dummy and out[2].program == "DUMMY"
    assert out[2].args == (
        "-i",
        "ncloutput/1st.flv",
        "-r",
        "60",
        "./ncloutput/image_of_2nd_%03d.png",
        "./ncloutput/ffmpeg_2nd.zip",
        "./ncloutput/*.png",
    )
    assert out[3].shell == "ffmpeg -i ncloutput/1st.flv ./ncloutput/3rd.gif"
    assert out[4].dummy and out[4].args[0] == "./ncloutput/4th.mp4" and out[4].remote_inputs == ()


def test_ncl_sample_commands(load: Callable[[str], Job]) -> None:
    job = load("job_ncl.json")
    for task in job.tasks:
        files, values = inputs_of(job, task.id)
        e = expand(task.cmd, files=files, values=values)
        assert "$" not in e.shell and "^" not in e.shell
        assert e.program in ("convert", "montage")
    first = expand(job.task(TaskId(1)).cmd, files={}, values={})
    assert first.remote_inputs == ("ncltest/ncltest.png",)
    assert first.args == ("-crop", "5%x100%", "ncltest/ncltest.png", "./ncltest/out.png")
    files, values = inputs_of(job, TaskId(42))
    montage = expand(job.task(TaskId(42)).cmd, files=files, values=values)
    assert montage.args[:2] == ("ncltest/outblack0_c.jpg", "ncltest/outblack1_c.jpg")
    assert len(montage.args) == 21


# Placeholder forms -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ("cat $F^1", ("cat", "ncloutput/1st.flv")),
        ("cat --in=$F^1", ("cat", "--in=ncloutput/1st.flv")),
        ("cat $F^2", ("cat", "out/b c.txt")),
        ('echo "[$V^3]"', ("echo", "[hello world]")),
        ("echo '[$V^3]'", ("echo", "[hello world]")),
        ("echo $V^3$V^4", ("echo", "hello worldx; rm -rf /")),
        ("echo $R^./in/a.txt,$R^b", ("echo", "in/a.txt,b")),
        ("echo \\$F^1", ("echo", "$F^1")),
        ("echo $HOME", ("echo", "$HOME")),
        ("echo a\tb  c\n", ("echo", "a", "b", "c")),
    ],
)
def test_placeholder_forms(template: str, words: tuple[str, ...], tmp_path: Path) -> None:
    e = expand(template, files=F, values=V)
    assert (e.program, *e.args) == words
    if e.program == "echo" and "$HOME" not in template:
        assert sh(e.shell, tmp_path) == " ".join(words[1:]) + "\n"


def test_remote_inputs_are_normalised_and_unique() -> None:
    e = expand("cat $R^./a/b.txt $R^a/b.txt $R^c 'x$R^d'", files={}, values={})
    assert e.remote_inputs == ("a/b.txt", "c", "d")


def test_file_path_that_looks_like_an_option_is_prefixed() -> None:
    e = expand("rm $F^1", files={TaskId(1): "-rf"}, values={})
    assert e.args == ("./-rf",)


def test_operators_end_the_first_word() -> None:
    e = expand("cat a|wc -l;echo done", files={}, values={})
    assert e.program == "cat" and not e.dummy


@pytest.mark.parametrize(
    ("template", "where"),
    [
        ("cat $F^9", "$F^9"),
        ("echo $V^1", "$V^1"),
        ("cat $F^", "$F^"),
        ("cat $F^x", "$F^"),
        ("cat $R^", "$R^"),
        ("cat $R^../secret", "$R^../secret"),
        ("cat $R^/etc/passwd", "$R^/etc/passwd"),
        ("cat $R^~/x", "$R^~/x"),
        ("cat $R^a/../../b", "$R^a/../../b"),
        ("cat $R^.", "$R^."),
    ],
)
def test_bad_placeholders_name_the_token(template: str, where: str) -> None:
    with pytest.raises(InputError) as info:
        expand(template, files=F, values={TaskId(3): "v"}, source="job 1 task 2 cmd")
    assert info.value.where == where
    assert str(info.value).startswith("job 1 task 2 cmd: " + where)


def test_unsafe_file_from_a_predecessor() -> None:
    with pytest.raises(InputError, match="escapes the job directory"):
        expand("cat $F^1", files={TaskId(1): "../../etc/passwd"}, values={})
    with pytest.raises(InputError, match="absolute"):
        expand("cat $F^1", files={TaskId(1): "/etc/passwd"}, values={})


def test_unknown_ids_list_what_arrived() -> None:
    with pytest.raises(InputError, match=r"arrived from: 1, 2"):
        expand("cat $F^7", files=F, values={})
    with pytest.raises(InputError, match=r"none arrived"):
        expand("echo $V^7", files={}, values={})


@pytest.mark.parametrize("template", ["", "   ", "''x"[:0]])
def test_empty_command(template: str) -> None:
    with pytest.raises(InputError, match="empty command"):
        expand(template, files={}, values={})


def test_unterminated_quote() -> None:
    with pytest.raises(InputError, match="unterminated"):
        expand("echo 'abc", files={}, values={})


def test_nul_in_value_is_refused() -> None:
    with pytest.raises(InputError, match="NUL"):
        expand("echo $V^1", files={}, values={TaskId(1): "a\x00b"})


@pytest.mark.parametrize("template", ["DUMMY a\nrm b", "DUMMY -i x | tee y", "DUMMY a; b", "DUMMY $HOME", "DUMMY `id`", "DUMMY a > b"])
def test_dummy_refuses_shell_syntax(template: str) -> None:
    with pytest.raises(InputError, match="without a shell"):
        expand(template, files={}, values={})


def test_dummy_args_keep_quoted_words_whole() -> None:
    e = expand("DUMMY -vf 'scale=320:-1' \"a b\" $V^3", files={}, values=V)
    assert e.dummy and e.args == ("-vf", "scale=320:-1", "a b", "hello world")


# Injection ---------------------------------------------------------------------------------------

HOSTILE = ["x; touch pwned", "$(touch pwned)", "`touch pwned`", "a' ; touch pwned; '", 'a" ; touch pwned; "', "\n touch pwned"]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("template", ["echo $V^1", "echo '$V^1'", 'echo "$V^1"', "echo x$V^1y", "echo $R^a > /dev/null; echo $V^1"])
def test_values_never_run_as_code(value: str, template: str, tmp_path: Path) -> None:
    e = expand(template, files={}, values={TaskId(1): value})
    out = sh(e.shell, tmp_path)
    assert value in out
    assert not (tmp_path / "pwned").exists()


def test_hostile_file_names_are_quoted(tmp_path: Path) -> None:
    e = expand("echo $F^1", files={TaskId(1): "a;touch pwned"}, values={})
    assert sh(e.shell, tmp_path) == "a;touch pwned\n"
    assert not (tmp_path / "pwned").exists()


def test_the_template_itself_is_shell(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("1\n")
    (tmp_path / "b.txt").write_text("2\n")
    e = expand("cat ./*.txt | wc -l", files={}, values={})
    assert sh(e.shell, tmp_path).strip() == "2"


values_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=values_text, context=st.sampled_from(["{}", "'{}'", '"{}"', "x{}y", "'a'{}\"b\""]))
def test_any_value_round_trips_through_sh(value: str, context: str, tmp_path: Path) -> None:
    template = "printf %s " + context.format("$V^1")
    e = expand(template, files={}, values={TaskId(1): value})
    expected = {"{}": value, "'{}'": value, '"{}"': value, "x{}y": f"x{value}y", "'a'{}\"b\"": f"a{value}b"}[context]
    out = subprocess.run(["/bin/sh", "-c", e.shell], cwd=tmp_path, capture_output=True, check=True).stdout
    assert out.decode("utf-8", "surrogateescape") == expected
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=60, deadline=None)
@given(value=values_text)
def test_dummy_args_carry_values_verbatim(value: str) -> None:
    e = expand("DUMMY -i $V^1 out", files={}, values={TaskId(1): value})
    assert e.args == ("-i", value, "out")


@settings(max_examples=300, deadline=None)
@given(
    template=st.text(st.sampled_from(list("ab $FVR^12./\\'\"|;&<>()`#-*\t\n")), max_size=30),
    value=values_text,
)
def test_any_template_expands_or_raises_input_error(template: str, value: str) -> None:
    try:
        e = expand(template, files={TaskId(1): "f.txt", TaskId(2): "g h"}, values={TaskId(1): value})
    except InputError:
        return
    assert "\x00" not in e.shell and (e.program == "DUMMY") == e.dummy
    assert all(not p.startswith(("/", "../")) for p in e.remote_inputs)
