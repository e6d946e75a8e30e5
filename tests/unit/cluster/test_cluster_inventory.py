"""The host inventory: the original's nclw_hosts, unchanged, and the TOML form."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sflow.cluster.inventory import HostSpec, load_inventory, parse_nclw_hosts, parse_toml_inventory
from sflow.errors import InputError


def test_the_originals_sample_hosts_file(samples: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        inventory = load_inventory(samples / "nclw_hosts")
    assert [h.address for h in inventory.hosts] == ["192.168.1.174", "192.168.1.175"]
    first = inventory.hosts[0]
    assert (first.user, first.password, first.dir, first.port, first.python) == ("user", "Password", "/home/user/sflow", 22, "python3")
    assert first.source.endswith("nclw_hosts:1")
    # accepted with a warning that names the file, never the password
    assert "plaintext_passwords" in caplog.text and "nclw_hosts" in caplog.text
    assert "Password" not in caplog.text
    assert "Password" not in repr(first)


def test_blank_lines_comments_and_an_empty_password() -> None:
    inventory = parse_nclw_hosts("# workers\n\n10.0.0.2,sflow,,/srv/sflow/\n  10.0.0.3 , sflow , , ~/sflow/ \n", "hosts")
    assert [(h.address, h.password, h.dir) for h in inventory.hosts] == [("10.0.0.2", None, "/srv/sflow"), ("10.0.0.3", None, "sflow")]
    assert inventory.secrets == ()


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("10.0.0.2,u,p,/d/\n10.0.0.3,u,/d/\n", 2, "expected 4 comma-separated fields"),
        ("\n\n,u,p,/d/\n", 3, "ip is empty"),
        ("10.0.0.2,u,p,/d/,extra\n", 1, "found 5"),
        ("10.0.0.2,the user,p,/d/\n", 1, "white space"),
        ("10.0.0.2,u,p,\n", 1, "dir is empty"),
    ],
)
def test_a_bad_line_names_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_nclw_hosts(text, "nclw_hosts")
    assert str(caught.value).startswith(f"nclw_hosts:{line}: ")
    assert message in str(caught.value)


def test_a_malformed_line_does_not_echo_its_password() -> None:
    with pytest.raises(InputError) as caught:
        parse_nclw_hosts("10.0.0.2,u,Secret99,/d/,x\n", "nclw_hosts")
    assert "Secret99" not in str(caught.value)


def test_duplicates_and_empty_files_are_refused(tmp_path: Path) -> None:
    hosts = tmp_path / "nclw_hosts"
    hosts.write_text("10.0.0.2,u,,/d/\n10.0.0.2,v,,/d\n")
    with pytest.raises(InputError, match=r"nclw_hosts:2: 10.0.0.2 /d is listed twice \(first at .*nclw_hosts:1\)"):
        load_inventory(hosts)
    hosts.write_text("# nobody\n")
    with pytest.raises(InputError, match="no hosts listed"):
        load_inventory(hosts)
    with pytest.raises(InputError, match="no such hosts file"):
        load_inventory(tmp_path / "missing")


TOML = """
[[host]]
address = "10.213.0.2"
user = "sflow"
key_file = "~/.ssh/id_ed25519"
dir = "/srv/sflow/"
python = "/usr/bin/python3.11"

[[host]]
address = "10.213.0.3"
port = 2222
password = "pw"
dir = "~/sflow"
"""


def test_a_toml_inventory(tmp_path: Path) -> None:
    path = tmp_path / "hosts.toml"
    path.write_text(TOML)
    inventory = load_inventory(path)
    first, second = inventory.hosts
    assert first == HostSpec("10.213.0.2", "sflow", "/srv/sflow", key_file=str(Path("~/.ssh/id_ed25519").expanduser()), python="/usr/bin/python3.11")
    assert (second.port, second.password, second.dir, second.python, second.key_file) == (2222, "pw", "sflow", "python3", None)
    assert second.user  # the local user name by default
    assert (first.name, second.name) == ("10.213.0.2", "10.213.0.3:2222")
    assert inventory.secrets == ("pw",)


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ('[[host]]\naddress = "a"\ndir = "/d"\nshell = "zsh"\n', "host[0].shell", "unknown key"),
        ('[[host]]\naddress = "a"\ndir = "/d"\n[[host]]\ndir = "/d"\n', "host[1].address", "required"),
        ('[[host]]\naddress = "a"\n', "host[0].dir", "required"),
        ('[[host]]\naddress = "a"\ndir = "/d"\nport = 70000\n', "host[0].port", "1-65535"),
        ('[[host]]\naddress = "a"\ndir = "/d"\nport = "22"\n', "host[0].port", "port number"),
        ('[[host]]\naddress = "a"\ndir = "/d"\npassword = 1234\n', "host[0].password", "expected a string"),
        ('hosts = []\n', "hosts", "unknown key"),
        ('[[host]\n', "", "not valid TOML"),
    ],
)
def test_toml_errors_name_the_key(text: str, where: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_toml_inventory(text, "hosts.toml")
    assert caught.value.where == where
    assert message in caught.value.message
    assert "1234" not in str(caught.value)


def _hosts(hosts: list[tuple[str, str]]) -> str:
    """An inventory of (address, extra TOML lines) hosts."""
    return "".join(f'[[host]]\naddress = "{a}"\ndir = "d"\n{extra}\n' for a, extra in hosts)


def test_auto_mode_neighbours_are_every_other_host_or_the_links_named(tmp_path: Path) -> None:
    from sflow.cluster.inventory import neighbours

    def names(text: str) -> dict[str, list[str]]:
        path = tmp_path / "hosts.toml"
        path.write_text(text)
        return {h.name: [o.name for o in others] for h, others in neighbours(load_inventory(path)).items()}

    every = [("10.0.0.2", ""), ("10.0.0.3", ""), ("10.0.0.4", "")]
    assert names(_hosts(every)) == {"10.0.0.2": ["10.0.0.3", "10.0.0.4"], "10.0.0.3": ["10.0.0.2", "10.0.0.4"],
                                    "10.0.0.4": ["10.0.0.2", "10.0.0.3"]}
    # a chain named on one side only: links go both ways; a host by address:port when addresses repeat
    chain = [("10.0.0.2", 'neighbours = ["10.0.0.3"]'), ("10.0.0.3", 'neighbours = ["10.0.0.4:2222"]'),
             ("10.0.0.4", "port = 2222"), ("10.0.0.5", "neighbours = []")]
    assert names(_hosts(chain)) == {"10.0.0.2": ["10.0.0.3"], "10.0.0.3": ["10.0.0.2", "10.0.0.4:2222"],
                                    "10.0.0.4:2222": ["10.0.0.3"], "10.0.0.5": []}


@pytest.mark.parametrize(
    ("links", "message"),
    [('neighbours = ["10.0.0.9"]', "names no other host of the inventory (hosts: 10.0.0.3)"),
     ('neighbours = ["10.0.0.2"]', "is the host itself"),
     ('neighbours = "10.0.0.3"', "expected a list of host addresses")],
)
def test_a_bad_link_names_the_host_and_entry(tmp_path: Path, links: str, message: str) -> None:
    path = tmp_path / "hosts.toml"
    path.write_text(_hosts([("10.0.0.2", links), ("10.0.0.3", "")]))
    with pytest.raises(InputError) as caught:
        load_inventory(path)
    assert message in caught.value.message and "host[0]" in str(caught.value), str(caught.value)
