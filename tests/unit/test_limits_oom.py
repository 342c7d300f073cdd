"""greed_kernel.memory.limits: our memory cgroup's directory and its OOM-kill count, on
fake cgroup trees (v1 and v2)."""

from __future__ import annotations

from pathlib import Path

from greed_kernel.memory.limits import memory_cgroup_dir, oom_kills

NO_PROC = "/nonexistent/proc/self/cgroup"


def _proc(tmp_path: Path, text: str) -> str:
    proc = tmp_path / "proc-cgroup"
    proc.write_text(text)
    return str(proc)


def test_v2_our_own_cgroup(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("memory\n")
    own = tmp_path / "user.slice" / "kernel.scope"
    own.mkdir(parents=True)
    proc = _proc(tmp_path, "0::/user.slice/kernel.scope\n")
    assert memory_cgroup_dir(str(tmp_path), proc_cgroup=proc) == str(own)


def test_v2_in_a_namespace_is_the_mount_root(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("memory\n")
    assert memory_cgroup_dir(str(tmp_path), proc_cgroup=_proc(tmp_path, "0::/\n")) == str(tmp_path)
    # named but not mounted here: its deepest ancestor that is, else the root
    (tmp_path / "a").mkdir()
    proc = _proc(tmp_path, "0::/a/b/c\n")
    assert memory_cgroup_dir(str(tmp_path), proc_cgroup=proc) == str(tmp_path / "a")


def test_v1_the_memory_controller(tmp_path: Path) -> None:
    own = tmp_path / "memory" / "docker" / "abc"
    own.mkdir(parents=True)
    (tmp_path / "cpu").mkdir()
    proc = _proc(tmp_path, "5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/\n")
    assert memory_cgroup_dir(str(tmp_path), proc_cgroup=proc) == str(own)
    assert memory_cgroup_dir(str(tmp_path), proc_cgroup=NO_PROC) == str(tmp_path / "memory")


def test_no_cgroup_at_all(tmp_path: Path) -> None:
    assert memory_cgroup_dir(str(tmp_path / "absent"), proc_cgroup=NO_PROC) is None
    assert memory_cgroup_dir(str(tmp_path), proc_cgroup=NO_PROC) is None  # v1, no memory/


def test_oom_kills_v2(tmp_path: Path) -> None:
    (tmp_path / "memory.events").write_text("low 0\nhigh 3\nmax 9\noom 2\noom_kill 2\n")
    assert oom_kills(str(tmp_path)) == 2


def test_oom_kills_v1(tmp_path: Path) -> None:
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 7\n")
    assert oom_kills(str(tmp_path)) == 7


def test_oom_kills_unreadable(tmp_path: Path) -> None:
    assert oom_kills(str(tmp_path / "absent")) is None
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\n")
    assert oom_kills(str(tmp_path)) is None  # before Linux 4.13: no such line
    (tmp_path / "memory.events").write_text("oom_kill many\n")
    assert oom_kills(str(tmp_path)) is None
