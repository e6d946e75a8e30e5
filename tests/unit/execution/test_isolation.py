"""Who functions run as and how containers are confined: the pure parts (no process, no engine)."""

from __future__ import annotations

import dataclasses
import os
import pwd
import stat
from pathlib import Path

import pytest

from sflow.config import Config, NodeSettings, load_config
from sflow.errors import ConfigError
from sflow.node.function_user import FunctionUser, resolve_function_user
from sflow.node.runners.docker import DEFAULT_MEMORY_SHARE, ContainerPolicy, host_memory_bytes
from sflow.node.transfer import TransferError, open_beneath

NOBODY = pwd.getpwnam("nobody")


def test_a_node_that_is_not_root_runs_functions_as_itself() -> None:
    assert resolve_function_user("sflow-fn", euid=1000) is None
    assert resolve_function_user("", euid=1000) is None


def test_a_root_node_needs_an_unprivileged_user() -> None:
    user = resolve_function_user("nobody", euid=0)
    assert user == FunctionUser("nobody", NOBODY.pw_uid, NOBODY.pw_gid, NOBODY.pw_dir)
    assert resolve_function_user(str(NOBODY.pw_uid), euid=0) == user
    assert user.docker_user == f"{NOBODY.pw_uid}:{NOBODY.pw_gid}"
    for bad, says in (("", "is empty"), ("no-such-user-sflow", "no user 'no-such-user-sflow'"), ("root", "is root"),
                      ("0", "is root")):
        with pytest.raises(ConfigError) as caught:
            resolve_function_user(bad, euid=0)
        assert "node.run_as" in str(caught.value) and says in str(caught.value)
        assert caught.value.exit_status == 2


def test_the_function_environment_is_the_users(shared_dir: Path) -> None:
    user = FunctionUser("fn", 54321, 54322, "/var/lib/fn")
    tmp_path = shared_dir
    closed, shared, mine, groups = (tmp_path / n for n in ("closed", "shared", "mine", "groups"))
    for directory, mode in ((closed, 0o700), (shared, 0o755), (mine, 0o700), (groups, 0o750)):
        directory.mkdir(mode=mode)
        directory.chmod(mode)
    os.chown(mine, 54321, 0)
    os.chown(groups, 0, 54322)
    (closed / "bin").mkdir()
    path = os.pathsep.join(str(d) for d in (closed / "bin", shared, mine, groups, tmp_path / "missing"))
    env = user.environment({"HOME": "/root", "USER": "root", "LOGNAME": "root", "PATH": path, "LANG": "C"})
    assert env == {"HOME": "/var/lib/fn", "USER": "fn", "LOGNAME": "fn", "LANG": "C",
                   "PATH": os.pathsep.join(map(str, (shared, mine, groups)))}
    # Reached from a working directory, the directories above it do not matter.
    (closed / "job").mkdir()
    tool = closed / "job" / "tool.sh"
    tool.write_text("true\n")
    tool.chmod(0o755)
    assert not user.can(tool, stat.S_IXOTH) and user.can(tool, stat.S_IXOTH, start=closed / "job")
    assert user.can(shared, stat.S_IROTH) and not user.can(closed, stat.S_IROTH)


def test_container_policy_from_settings() -> None:
    policy = ContainerPolicy.from_settings(NodeSettings())
    assert policy.network == "bridge" and policy.pids == 1024 and policy.capabilities == ()
    assert policy.memory_bytes == int(host_memory_bytes() * DEFAULT_MEMORY_SHARE)
    assert policy.options() == {
        "security_opt": ["no-new-privileges"], "cap_drop": ["ALL"], "pids_limit": 1024, "network_mode": "bridge",
        "mem_limit": policy.memory_bytes, "memswap_limit": policy.memory_bytes,
    }
    config = load_config(environ={"SFLOW_NODE_CONTAINER_NETWORK": "none", "SFLOW_NODE_CONTAINER_MEMORY_MB": "64",
                                  "SFLOW_NODE_CONTAINER_PIDS": "32",
                                  "SFLOW_NODE_CONTAINER_CAPABILITIES": "net_bind_service, CAP_CHOWN"})
    policy = ContainerPolicy.from_settings(config.node)
    assert policy == ContainerPolicy("none", 64 * 1024 * 1024, 32, ("NET_BIND_SERVICE", "CAP_CHOWN"))
    assert policy.options()["cap_add"] == ["NET_BIND_SERVICE", "CAP_CHOWN"]


@pytest.mark.parametrize(("key", "value", "says"), [
    ("container_network", " ", "is empty"),
    ("container_memory_mb", -1, "0 or more"),
    ("container_pids", 0, "at least 1"),
    ("container_capabilities", ("ALL",), "not the name of one Linux capability"),
    ("container_capabilities", ("sys admin",), "not the name of one Linux capability"),
])
def test_container_policy_errors_name_the_setting(key: str, value: object, says: str) -> None:
    node = dataclasses.replace(Config().node, **{key: value})
    with pytest.raises(ConfigError) as caught:
        ContainerPolicy.from_settings(node)
    assert f"node.{key}" in str(caught.value) and says in str(caught.value)


def test_outputs_are_read_only_from_regular_files_inside_the_job_directory(tmp_path: Path) -> None:
    # What a function (another user) may swap in after the node checked the name: the node opens
    # the output and looks at what it opened.
    root = tmp_path / "job"
    root.mkdir()
    secret = tmp_path / "cluster.secret"
    secret.write_text("s3cret")
    (root / "ok.txt").write_text("fine")
    with open_beneath(root, root / "ok.txt") as f:
        assert f.read() == b"fine"
    (root / "link.txt").symlink_to(secret)
    with pytest.raises(OSError):  # the last component is never followed
        open_beneath(root, root / "link.txt")
    (root / "dir").symlink_to(tmp_path)
    with pytest.raises(TransferError, match="outside the job directory"):  # nor a directory link on the way
        open_beneath(root, root / "dir" / "cluster.secret")
    os.mkfifo(root / "fifo")
    with pytest.raises(TransferError, match="not a regular file"):  # and a FIFO does not block the node
        open_beneath(root, root / "fifo")


def test_an_output_already_there_is_handed_to_the_function_user(tmp_path: Path) -> None:
    """A function re-planned onto a node that had received its output from the lost node (as
    root) can write that output again."""
    from sflow.node.execution import _make_output_dirs

    if os.getuid() != 0:
        pytest.skip("needs root: a root node hands files over to its function user")
    workdir = tmp_path / "job"
    workdir.mkdir()
    (workdir / "c.txt").write_text("from the lost node")
    os.chown(workdir, 12345, 12345)
    _make_output_dirs(workdir, ("c.txt", "./out/d.txt"))
    for made in (workdir / "c.txt", workdir / "out"):
        st = made.lstat()
        assert (st.st_uid, st.st_gid) == (12345, 12345), made
