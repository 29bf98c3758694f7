import http.server
import lzma
import os
import threading
import time
from functools import partial

import pytest

from app.engine.packages import PackageIndex, parse_packages

PACKAGES = """Package: openssh-server
Version: 1:10.0p1-7
Architecture: amd64
Provides: ssh-server
Description: secure shell (SSH) server, for secure access from remote machines

Package: openssh-client
Version: 1:10.0p1-7
Architecture: amd64
Description: secure shell (SSH) client, for secure access to remote machines

Package: nginx
Version: 1.26.3-3
Architecture: amd64
Provides: httpd, httpd-cgi
Description: small, powerful, scalable web/proxy server

Package: docker.io
Version: 26.1.5+dfsg1-9
Architecture: amd64
Description: Linux container runtime
 A long description line that must not be mistaken for a field.

Package: python3
Version: 3.13.5-1
Architecture: amd64
Description: interactive high-level object-oriented language (default python3 version)
"""


@pytest.fixture
def mirror(tmp_path):
    """A tiny real HTTP mirror on loopback serving dists/test/main/binary-amd64/Packages.xz."""
    root = tmp_path / "mirror"
    target = root / "dists/test/main/binary-amd64"
    target.mkdir(parents=True)
    (target / "Packages.xz").write_bytes(lzma.compress(PACKAGES.encode()))
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            hits.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits, target / "Packages.xz"
    server.shutdown()


def test_parse_packages_reads_versions_and_provides():
    packages, provides = parse_packages(PACKAGES)
    assert packages["docker.io"] == ["26.1.5+dfsg1-9", "Linux container runtime"]
    assert provides["httpd"] == ["nginx"]
    assert len(packages) == 5


def test_index_downloads_once_and_answers(mirror, tmp_path):
    url, hits, _ = mirror
    index = PackageIndex(tmp_path / "cache", url, "test")
    assert index.exists("openssh-server")
    assert index.exists("ssh-server")  # virtual packages count
    assert not index.exists("opensh-server")
    assert index.version("nginx") == "1.26.3-3"
    assert index.version("ssh-server") is None
    assert index.suggest("opensh-server")[0] == "openssh-server"
    assert "python3" in index.suggest("pyhton3")
    assert index.search("ssh")[0][0].startswith("openssh")
    assert ("docker.io", "Linux container runtime") in index.search("container")
    missing = index.missing(["nginx", "ngnix", "docker.io", "dockr.io"])
    assert set(missing) == {"ngnix", "dockr.io"}
    assert missing["ngnix"][0] == "nginx" and missing["dockr.io"][0] == "docker.io"
    # A second index object on the same cache reads the file, it does not download again.
    PackageIndex(tmp_path / "cache", url, "test").exists("nginx")
    assert len([h for h in hits if h.endswith("Packages.xz")]) == 1


def test_index_refreshes_when_older_than_max_age(mirror, tmp_path):
    url, hits, packages_xz = mirror
    index = PackageIndex(tmp_path / "cache", url, "test", max_age=3600)
    assert not index.exists("newpkg")
    packages_xz.write_bytes(lzma.compress((PACKAGES + "\nPackage: newpkg\nVersion: 1\nDescription: new\n").encode()))
    old = time.time() - 7200
    os.utime(index.path, (old, old))
    fresh = PackageIndex(tmp_path / "cache", url, "test", max_age=3600)
    assert fresh.exists("newpkg")
    assert len([h for h in hits if h.endswith("Packages.xz")]) == 2


def test_concurrent_first_use_downloads_once(mirror, tmp_path):
    url, hits, _ = mirror
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        PackageIndex(tmp_path / "cache", url, "test").exists("nginx"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 4
    assert len([h for h in hits if h.endswith("Packages.xz")]) == 1
