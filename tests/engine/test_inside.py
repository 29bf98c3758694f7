"""fsutil.inside: the engine's host-side paths into an image tree never leave the tree."""
import os

from app.engine.fsutil import inside


def test_absolute_and_relative_links_resolve_within_the_tree(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "usr/lib").mkdir(parents=True)
    (root / "usr/lib/os-release").write_text("inside\n")
    os.symlink("../usr/lib/os-release", root / "etc/os-release")
    os.symlink("/etc/passwd", root / "etc/host-passwd")        # absolute: the image's /etc/passwd
    os.symlink("../../../../../../etc", root / "etc/up")        # climbing out stops at the image's /
    os.symlink("/proc/1/root/etc", root / "etc/proc-root")
    assert inside(root, "/etc/os-release").read_text() == "inside\n"
    assert inside(root, "/etc/host-passwd") == root / "etc/passwd"
    assert inside(root, "/etc/up/shadow") == root / "etc/shadow"
    assert inside(root, "/etc/proc-root/shadow") == root / "proc/1/root/etc/shadow"
    assert inside(root, "/../../etc/x") == root / "etc/x"


def test_follow_last_false_keeps_the_link_itself(tmp_path):
    root = tmp_path / "root"
    (root / "usr/sbin").mkdir(parents=True)
    os.symlink("/tmp/elsewhere", root / "usr/sbin/policy-rc.d")
    assert inside(root, "/usr/sbin/policy-rc.d", follow_last=False) == root / "usr/sbin/policy-rc.d"
    assert inside(root, "/usr/sbin/policy-rc.d") == root / "tmp/elsewhere"


def test_a_symlink_loop_is_an_error_not_a_hang(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    os.symlink("b", root / "a")
    os.symlink("a", root / "b")
    try:
        inside(root, "/a/x")
    except OSError as err:
        assert "too many levels of symbolic links" in str(err)
    else:
        raise AssertionError("a loop must raise")
