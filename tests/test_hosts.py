from __future__ import annotations

import os
from pathlib import Path

import pytest

from labctl.errors import HostsFileError
from labctl.host import hostsfile as hosts
from labctl.host import privileged
from labctl.host.hostsfile import apply_block, managed_entries, render_block, update_hosts

ORIGINAL = "127.0.0.1\tlocalhost\n# my own comment\n10.9.9.9   printer.home   # keep me\n"


def test_insert_appends_a_marked_block_and_keeps_everything_else() -> None:
    block = render_block("alvin", "10.1.2.3", ["alvin.xyz", "www.alvin.xyz"])
    new = apply_block(ORIGINAL, "alvin", block)
    assert new.startswith(ORIGINAL)
    assert (
        new[len(ORIGINAL) :]
        == "# BEGIN labctl alvin\n10.1.2.3\talvin.xyz www.alvin.xyz\n# END labctl alvin\n"
    )


def test_apply_is_idempotent_and_replaces_in_place() -> None:
    first = apply_block(ORIGINAL, "alvin", render_block("alvin", "10.1.2.3", ["alvin.xyz"]))
    assert apply_block(first, "alvin", render_block("alvin", "10.1.2.3", ["alvin.xyz"])) == first
    tail = "192.168.0.5 nas\n"
    moved = apply_block(first + tail, "alvin", render_block("alvin", "10.4.4.4", ["alvin.xyz"]))
    assert (
        moved == ORIGINAL + "# BEGIN labctl alvin\n10.4.4.4\talvin.xyz\n# END labctl alvin\n" + tail
    )
    assert moved.count("BEGIN labctl alvin") == 1


def test_remove_restores_the_original_bytes() -> None:
    with_two = apply_block(ORIGINAL, "a", render_block("a", "10.0.0.1", ["a.lab"]))
    with_two = apply_block(with_two, "b", render_block("b", "10.0.0.2", ["b.lab"]))
    only_b = apply_block(with_two, "a", None)
    assert "a.lab" not in only_b and "b.lab" in only_b
    assert apply_block(only_b, "b", None) == ORIGINAL
    assert apply_block(ORIGINAL, "nothere", None) == ORIGINAL


def test_crlf_and_missing_final_newline_are_respected() -> None:
    crlf = "127.0.0.1 localhost\r\n"
    new = apply_block(crlf, "x", render_block("x", "10.0.0.1", ["x.lab"]))
    assert new == crlf + "# BEGIN labctl x\r\n10.0.0.1\tx.lab\r\n# END labctl x\r\n"
    assert apply_block(new, "x", None) == crlf
    no_newline = "127.0.0.1 localhost"
    assert apply_block(no_newline, "x", render_block("x", "10.0.0.1", ["x.lab"])).startswith(
        no_newline + "\n# BEGIN"
    )


def test_lab_names_that_prefix_each_other_do_not_collide() -> None:
    both = apply_block("", "lab", render_block("lab", "10.0.0.1", ["one.lab"]))
    both = apply_block(both, "lab2", render_block("lab2", "10.0.0.2", ["two.lab"]))
    assert apply_block(both, "lab", None) == render_block("lab2", "10.0.0.2", ["two.lab"])


def test_managed_entries_lists_every_lab() -> None:
    text = apply_block(ORIGINAL, "a", render_block("a", "10.0.0.1", ["a.lab", "www.a.lab"]))
    assert managed_entries(text) == [hosts.ManagedEntry("a", "10.0.0.1", ("a.lab", "www.a.lab"))]


def test_update_hosts_writes_atomically_and_keeps_mode(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text(ORIGINAL)
    path.chmod(0o644)
    inode = path.stat().st_ino
    assert update_hosts(path, "alvin", render_block("alvin", "10.1.2.3", ["alvin.xyz"])) is True
    assert path.stat().st_ino != inode  # replaced by rename, not rewritten in place
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert update_hosts(path, "alvin", render_block("alvin", "10.1.2.3", ["alvin.xyz"])) is False
    assert update_hosts(path, "alvin", None) is True
    assert path.read_text() == ORIGINAL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hosts"]  # no temp files left


def test_missing_hosts_file_is_created(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    update_hosts(path, "x", render_block("x", "10.0.0.1", ["x.lab"]))
    assert path.read_text() == render_block("x", "10.0.0.1", ["x.lab"])


def test_bind_mounted_hosts_file_is_written_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "hosts"
    path.write_text(ORIGINAL)

    def busy(self: Path, target: Path) -> None:
        raise OSError(16, "Device or resource busy")  # EBUSY: what rename over a bind mount gives

    monkeypatch.setattr(Path, "replace", busy)
    inode = path.stat().st_ino
    update_hosts(path, "x", render_block("x", "10.0.0.1", ["x.lab"]))
    assert path.stat().st_ino == inode
    assert path.read_text() == ORIGINAL + render_block("x", "10.0.0.1", ["x.lab"])


def test_unwritable_file_falls_back_to_sudo_and_reports_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "hosts"
    path.write_text(ORIGINAL)
    calls: list[tuple[Path, str]] = []

    def denied(p: Path, text: str) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(hosts, "_atomic_write", denied)
    monkeypatch.setattr(privileged, "replace_file", lambda p, text: calls.append((p, text)))
    update_hosts(path, "x", render_block("x", "10.0.0.1", ["x.lab"]))
    assert calls == [(path, ORIGINAL + render_block("x", "10.0.0.1", ["x.lab"]))]

    def refuse(p: Path, text: str) -> None:
        raise privileged.PrivilegeError("sudo: a password is required")

    monkeypatch.setattr(privileged, "replace_file", refuse)
    with pytest.raises(HostsFileError) as caught:
        update_hosts(path, "y", render_block("y", "10.0.0.2", ["y.lab"]))
    assert "permission denied (sudo: a password is required)" in caught.value.message
    assert "--no-hosts" in (caught.value.hint or "")


def test_disk_full_leaves_the_file_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "hosts"
    path.write_text(ORIGINAL)
    real_fsync = os.fsync

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(
        HostsFileError, match="No space left on device; the file was left as it was"
    ):
        update_hosts(path, "x", render_block("x", "10.0.0.1", ["x.lab"]))
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert path.read_text() == ORIGINAL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hosts"]


def test_hosts_path_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LABCTL_HOSTS_FILE", str(tmp_path / "h"))
    assert hosts.hosts_path() == tmp_path / "h"
    monkeypatch.delenv("LABCTL_HOSTS_FILE")
    assert hosts.hosts_path() == Path("/etc/hosts")
