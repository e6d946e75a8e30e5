"""Fetching from the outside world: ``$R^`` input files from the file server, image tars from the
image repository (sflow-original.md §4.2 step 4, §4.4).

Everything here blocks; the executor calls it in a thread. Failures raise :class:`FetchError` (an
:class:`ExecutionError`) with a message that names the server and the file but never a secret; the
original called ``System.exit(1)`` on an FTP failure, sflow fails only the function.

Files are written to a temporary name beside the destination and renamed into place, so a reader
never sees a half-written file and an interrupted fetch is retried next time.
"""

from __future__ import annotations

import ftplib
import logging
import os
import posixpath
import shutil
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import paramiko

from sflow.config import FileServerSettings, ImageRepositorySettings
from sflow.durable import DurableFile
from sflow.errors import ExecutionError
from sflow.ssh import SshError, SshOptions, SshTarget
from sflow.ssh import connect as ssh_connect
from sflow.ssh import describe as _describe

log = logging.getLogger(__name__)

FILE_SERVER_PROTOCOLS = ("local", "sftp", "ftp")


class FetchError(ExecutionError):
    """A file or image tar could not be fetched."""


def fetch_input(
    settings: FileServerSettings, job_id: int, path: str, dest: Path, ssh: SshOptions = SshOptions()
) -> None:
    """Fetch the ``$R^`` input ``path`` of job ``job_id`` from ``<root>/<job_id>/<basename>`` into
    ``dest`` (whose parent directories are created)."""
    name = posixpath.basename(path)
    protocol = settings.protocol
    log.debug("fetching input job=%s file=%s protocol=%s host=%s", job_id, name, protocol, settings.host or "-")
    if protocol == "local":
        if not settings.root:
            raise FetchError("file server directory is not configured (file_server.root)")
        source = Path(settings.root).expanduser() / str(job_id) / name
        try:
            with source.open("rb") as f, _atomic_write(dest) as out:
                shutil.copyfileobj(f, out)
        except OSError as exc:
            raise FetchError(f"file server directory: cannot copy {source}: {exc.strerror or exc}") from None
        return
    remote = posixpath.join(settings.root or "/", str(job_id), name)
    if protocol == "sftp":
        target = SshTarget(settings.host, settings.port or 22, settings.user, settings.password, settings.key_file)
        with _sftp(target, ssh) as sftp, _atomic_write(dest) as out:
            _sftp_get(sftp, target, remote, out)
        return
    if protocol == "ftp":
        _ftp_get(settings, remote, dest, ssh.connect_timeout)
        return
    raise FetchError(f"file server protocol {protocol!r} is not one of {', '.join(FILE_SERVER_PROTOCOLS)}")


def fetch_image_tar(settings: ImageRepositorySettings, tar_name: str, ssh: SshOptions = SshOptions()) -> Path:
    """The local path of the image tar ``tar_name``: in the repository directory itself (kind
    ``dir``), or downloaded over SFTP into ``local_dir`` (kind ``sftp``; a tar already there with
    the remote size is reused)."""
    if not tar_name or "/" in tar_name or tar_name in (".", ".."):
        raise FetchError(f"image tar name {tar_name!r} must be a plain file name")
    if settings.kind == "dir":
        if not settings.path:
            raise FetchError("image repository directory is not configured (image_repository.path)")
        tar = Path(settings.path).expanduser() / tar_name
        if not tar.is_file():
            raise FetchError(f"image tar {tar_name} not found in repository directory {tar.parent}")
        return tar
    if settings.kind == "sftp":
        local = Path(settings.local_dir).expanduser() / tar_name
        remote = posixpath.join(settings.path or ".", tar_name)
        target = SshTarget(settings.host, settings.port or 22, settings.user, settings.password, settings.key_file)
        with _sftp(target, ssh) as sftp:
            try:
                size = sftp.stat(remote).st_size
            except OSError as exc:
                raise FetchError(f"image repository {_where(target)}: cannot stat {remote}: {exc}") from None
            if local.is_file() and size is not None and local.stat().st_size == size:
                log.debug("image tar cached tar=%s path=%s", tar_name, local)
                return local
            log.info("fetching image tar=%s host=%s", tar_name, target.host)
            with _atomic_write(local) as out:
                _sftp_get(sftp, target, remote, out)
        return local
    raise FetchError(f"image repository kind {settings.kind!r} has no tars (expected dir or sftp)")


@contextmanager
def _atomic_write(dest: Path) -> Iterator[BinaryIO]:
    """A file object whose content becomes ``dest`` durably when the block ends without an error
    (:class:`~sflow.durable.DurableFile`), and nothing otherwise."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetchError(f"cannot create directory {dest.parent}: {exc.strerror or exc}") from None
    with DurableFile(dest) as out:
        yield out.file


def _where(target: SshTarget) -> str:
    return f"sftp://{target}"


@contextmanager
def _sftp(target: SshTarget, ssh: SshOptions) -> Iterator[paramiko.SFTPClient]:
    if not target.host:
        raise FetchError("SFTP server host is not configured")
    try:
        client = ssh_connect(target, ssh)
    except SshError as exc:
        raise FetchError(f"{_where(target)}: {exc}") from None
    try:
        sftp = client.open_sftp()
        sftp.get_channel().settimeout(ssh.connect_timeout)
    except (paramiko.SSHException, OSError, socket.timeout) as exc:
        client.close()
        raise FetchError(f"{_where(target)}: {_describe(exc)}") from None
    try:
        yield sftp
    finally:
        sftp.close()
        client.close()


def _sftp_get(sftp: paramiko.SFTPClient, target: SshTarget, remote: str, out: BinaryIO) -> None:
    try:
        sftp.getfo(remote, out)
    except (paramiko.SSHException, OSError, socket.timeout) as exc:
        raise FetchError(f"{_where(target)}: cannot fetch {remote}: {_describe(exc)}") from None


def _ftp_get(settings: FileServerSettings, remote: str, dest: Path, timeout: float) -> None:
    where = f"ftp://{settings.user + '@' if settings.user else ''}{settings.host}:{settings.port or 21}"
    if not settings.host:
        raise FetchError("FTP server host is not configured")
    ftp = ftplib.FTP(timeout=timeout)
    try:
        ftp.connect(settings.host, settings.port or 21)
        ftp.login(settings.user or "anonymous", settings.password)
        with _atomic_write(dest) as out:
            write: Callable[[bytes], object] = out.write
            ftp.retrbinary(f"RETR {remote}", write)
    except ftplib.all_errors as exc:
        raise FetchError(f"{where}: cannot fetch {remote}: {_describe(exc)}") from None
    finally:
        ftp.close()
