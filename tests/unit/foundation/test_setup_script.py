"""`scripts/setup.sh` on a fresh machine says what each step is doing (apt, pip, the Docker engine,
the images, sshd) in short lines on stderr; run again, it does nothing and says little. The real
script runs in a copy of the tree, with stand-ins for apt-get, dpkg-query, docker, dockerd and
Python that record what they were asked to do."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

FAKES = {
    # nothing is installed until apt-get installs it
    "dpkg-query": 'grep -qx "$3" "$STATE/installed" 2>/dev/null && echo "install ok installed"; exit 0',
    "apt-get": 'echo "apt-get $*" >> "$STATE/calls"; [ "$1" = install ] && for p in "$@"; do echo "$p" >> "$STATE/installed"; done; exit 0',
    "id": 'if [ "$1" = -u ]; then echo 0; else echo root; fi',
    # the engine answers once dockerd has been started
    "docker": '[ "$1" = info ] && [ -f "$STATE/dockerd" ]',
    "dockerd": 'touch "$STATE/dockerd"',
    "pgrep": 'exit 1',
    # `python3 -m venv .venv` makes a .venv whose python records `-m pip install ...`
    "python3": 'mkdir -p .venv/bin && printf "#!/bin/sh\\necho \\"pip \\$*\\" >> \\"$STATE/calls\\"\\n" > .venv/bin/python'
               ' && chmod +x .venv/bin/python',
}


def _tree(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    tree = tmp_path / "tree"
    shutil.copytree(REPO / "scripts", tree / "scripts")
    for name in ("setup.cfg", "pyproject.toml"):
        shutil.copy(REPO / name, tree / name)
    (tree / "dockerfiles").mkdir()
    (tree / "dockerfiles" / "build.sh").write_text('echo "build.sh $*" >> "$STATE/calls"\n')
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in FAKES.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    state = tmp_path / "state"
    state.mkdir()
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "STATE": str(state), "HOME": str(tmp_path),
           "SFLOW_APT_STAMP": str(state / "apt-updated"), "SFLOW_DOCKERD_LOG": str(state / "dockerd.log")}
    return tree, env


def _setup(tree: Path, env: dict[str, str]) -> list[str]:
    done = subprocess.run(["bash", "scripts/setup.sh"], cwd=tree, env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    return done.stderr.splitlines()


def test_a_first_setup_says_what_each_step_does_and_a_second_one_little(tmp_path: Path) -> None:
    tree, env = _tree(tmp_path)
    first = _setup(tree, env)
    assert first == [
        "setup: apt-get update (the package lists, once per boot)",
        "setup: apt-get install python3-venv ffmpeg",
        "setup: creating .venv (python3 -m venv)",
        "setup: pip: installing sflow and its plot and test extras into .venv (minutes at first; .venv/log/pip.log)",
        "setup.d/docker: apt-get install docker.io busybox-static",
        f"setup.d/docker: starting dockerd (log: {env['SFLOW_DOCKERD_LOG']})",
        "setup.d/docker: dockerd is up",
        "setup.d/docker: building the sample images if they changed (dockerfiles/build.sh)",
        "setup.d/sshd: openssh-server and python3 packages for the multi-host tests' hosts (they start their own sshd)",
        "setup.d/sshd: apt-get install iproute2 openssh-client util-linux openssl python3 python3-openssl"
        " python3-pip openssh-server",
        "setup: done (.venv/bin/sflow)",
    ]
    calls = (Path(env["STATE"]) / "calls").read_text().splitlines()
    assert "pip -m pip install -e .[plot,test]" in calls and "build.sh " in calls
    short = [line.replace(env["SFLOW_DOCKERD_LOG"], "/var/log/dockerd.log") for line in first]
    assert all(line.startswith(("setup: ", "setup.d/")) and len(line) <= 130 for line in short), short

    again = _setup(tree, env)
    assert again == [
        "setup.d/docker: building the sample images if they changed (dockerfiles/build.sh)",
        "setup: done (.venv/bin/sflow)",
    ]
    assert os.access(tree / ".venv" / "bin" / "python", os.X_OK)
