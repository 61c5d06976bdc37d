"""The fake `lxc query` against what the real LXD 5.0.2 answered (the `query-*` and `fresh-*`
situations of tests/fixtures/lxd/calls.json): the documents labctl's engine reads, the texts of a
miss, the refused --project, and a daemon nobody initialised."""

from __future__ import annotations

import json

import pytest

from tests.fake_lxc.fixture import FakeLxc
from tests.fake_lxc.recordings import calls, shape

CALLS = calls()
MISSES = {
    "query-project-missing": "local:/1.0/projects/nosuch",
    "query-profile-missing": "local:/1.0/profiles/nosuch?project=default",
    "query-alias-missing": "local:/1.0/images/aliases/nosuch?project=default",
}
DOCUMENTS = {
    "query-server": "local:/1.0",
    "query-project": "local:/1.0/projects/default",
    "query-pools": "local:/1.0/storage-pools?recursion=1&project=default",
    "query-profile": "local:/1.0/profiles/default?project=default",
    "query-alias": "local:/1.0/images/aliases/labctl-test?project=default",
}


@pytest.mark.parametrize("situation", sorted(MISSES))
def test_a_miss_reads_as_the_real_one(fake_lxc: FakeLxc, situation: str) -> None:
    fake = fake_lxc.run("query", MISSES[situation])
    real = CALLS[situation]
    assert (fake.returncode, fake.stderr, fake.stdout) == (real["rc"], real["stderr"], "")


def test_project_flag_is_refused_as_the_real_client_refuses_it(fake_lxc: FakeLxc) -> None:
    fake = fake_lxc.run("query", "local:/1.0", "--project", "default")
    real = CALLS["query-project-flag"]
    assert (fake.returncode, fake.stderr) == (real["rc"], real["stderr"])


@pytest.mark.parametrize("situation", sorted(DOCUMENTS))
def test_documents_have_the_real_shape_and_layout(fake_lxc: FakeLxc, situation: str) -> None:
    fake = fake_lxc.run("query", DOCUMENTS[situation])
    real = CALLS[situation]["stdout"]
    assert fake.returncode == 0, fake.stderr
    assert shape(json.loads(fake.stdout)) == shape(json.loads(real))
    assert fake.stdout.endswith("}\n\n" if real.startswith("{") else "]\n\n")
    assert fake.stdout.splitlines()[1].startswith("\t") == real.splitlines()[1].startswith("\t")


def test_a_fresh_daemon_has_no_pool_and_a_bare_default_profile(fake_lxc: FakeLxc) -> None:
    fake_lxc.make_uninitialised()
    pools = fake_lxc.run("query", "local:/1.0/storage-pools?recursion=1")
    assert json.loads(pools.stdout) == json.loads(CALLS["fresh-pools"]["stdout"]) == []
    profile = json.loads(
        fake_lxc.run("query", "local:/1.0/profiles/default?project=default").stdout
    )
    assert profile == json.loads(CALLS["fresh-profile"]["stdout"])


def test_an_unreachable_daemon_fails_the_query_as_every_call(fake_lxc: FakeLxc) -> None:
    fake_lxc.configure(daemon_unreachable=True)
    fake = fake_lxc.run("query", "local:/1.0")
    assert fake.returncode == 1 and "unix.socket: connect: no such file" in fake.stderr
