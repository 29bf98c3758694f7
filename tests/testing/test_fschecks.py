"""Filesystem assertions over a directory tree laid out like a Debian system."""
import pytest

from app.engine.testing import ImageTree, run_filesystem_checks


def check(tree, kind, **params):
    [result] = run_filesystem_checks(tree, [{"type": kind, "params": params}])
    return result


def test_symlinks_resolve_inside_the_image_root(debian_tree):
    fs = ImageTree(debian_tree)
    assert fs.read_text("/etc/os-release").startswith("PRETTY_NAME")
    assert fs.read_text("/etc/passwd-link").startswith("root:x:0:0")  # absolute link: the image's /etc/passwd
    assert fs.resolve("/lib/systemd/system/ssh.service") == debian_tree / "usr/lib/systemd/system/ssh.service"
    assert fs.resolve("/etc/dangling") is None and fs.readlink("/etc/dangling") == "/usr/lib/does-not-exist"
    assert fs.resolve("/../../etc/motd") == debian_tree / "etc/motd"  # cannot climb out of the root


@pytest.mark.parametrize("params, result, words", [
    ({"package": "openssh-server"}, "passed", ["openssh-server 1:10.0p1-7 is installed"]),
    ({"package": "openssh-server", "version": "10.0p1"}, "passed", []),
    ({"package": "openssh-server", "version": "1:10.0p1-7"}, "passed", []),
    ({"package": "openssh-server", "version": "10.0"}, "passed", []),
    ({"package": "openssh-server", "version": "10.1"}, "failed", ["version 1:10.0p1-7, expected 10.1"]),
    ({"package": "bash", "version": "5.2.3"}, "failed", ["expected 5.2.3"]),  # 5.2.3 is not 5.2.37
    ({"package": "nginx"}, "failed", ["package nginx is not installed"]),  # only config files left
    ({"package": "docker.io"}, "failed", ["package docker.io is not installed"]),
])
def test_package_installed(debian_tree, params, result, words):
    r = check(debian_tree, "package_installed", **params)
    assert r.result == result, r.message
    for word in words:
        assert word in r.message


def test_package_installed_without_dpkg_database_fails_clearly(debian_tree):
    (debian_tree / "var/lib/dpkg/status").unlink()
    r = check(debian_tree, "package_installed", package="bash")
    assert r.result == "failed" and "no dpkg database" in r.message


def test_file_checks(debian_tree):
    assert check(debian_tree, "file_exists", path="/etc/motd").result == "passed"
    assert check(debian_tree, "file_exists", path="/lib/systemd/system/ssh.service").result == "passed"
    missing = check(debian_tree, "file_exists", path="/etc/nginx/nginx.conf")
    assert missing.result == "failed" and missing.message == "/etc/nginx/nginx.conf does not exist"
    dangling = check(debian_tree, "file_exists", path="/etc/dangling")
    assert dangling.result == "failed" and "dangling symlink to /usr/lib/does-not-exist" in dangling.message
    assert check(debian_tree, "file_contains", path="/etc/motd", text="built by").result == "passed"
    assert check(debian_tree, "file_contains", path="/etc/os-release", text="trixie").result == "passed"
    wrong = check(debian_tree, "file_contains", path="/etc/motd", text="hello")
    assert wrong.result == "failed" and "does not contain 'hello'" in wrong.message and "built by kiln" in wrong.message
    assert "is a directory" in check(debian_tree, "file_contains", path="/etc", text="x").message


def test_user_exists(debian_tree):
    assert check(debian_tree, "user_exists", user="admin").result == "passed"
    # primary group by gid, supplementary groups from /etc/group's member list
    assert check(debian_tree, "user_exists", user="admin", groups=["sudo", "admin"]).result == "passed"
    r = check(debian_tree, "user_exists", user="admin", groups=["sudo", "docker", "wheel"])
    assert r.result == "failed"
    assert "not in group(s): docker, wheel (no such group)" in r.message and "member of: admin, sudo" in r.message
    assert check(debian_tree, "user_exists", user="bob").message == "user bob does not exist in /etc/passwd"


@pytest.mark.parametrize("service, result, words", [
    ("ssh", "passed", ["enabled (wanted by multi-user.target)"]),
    ("ssh.service", "passed", []),
    ("sshd", "passed", []),  # an alias of ssh.service
    ("cups", "passed", ["through cups.socket"]),
    ("oldd", "passed", ["SysV"]),
    ("nginx", "failed", ["installed (/usr/lib/systemd/system/nginx.service) but not enabled"]),
    ("apache2", "failed", ["masked"]),
    ("docker", "failed", ["not installed (no unit file docker.service)"]),
])
def test_service_enabled(debian_tree, service, result, words):
    r = check(debian_tree, "service_enabled", service=service)
    assert r.result == result, r.message
    for word in words:
        assert word in r.message


def test_invalid_and_non_filesystem_assertions_do_not_crash(debian_tree):
    results = run_filesystem_checks(debian_tree, [
        {"type": "file_exists", "params": {}},
        {"type": "service_running", "params": {"service": "ssh"}},
    ])
    assert [r.result for r in results] == ["error", "skipped"]
    assert "path" in results[0].message and results[0].duration == 0
