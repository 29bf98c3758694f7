""""How big will it be?": the estimate is the index's installed sizes over the dependency closure.

A tiny real mirror on loopback pins the arithmetic (Installed-Size, first alternatives, virtual
packages, the minbase set) and the index cache's format; the real trixie index checks that adding
docker.io grows the answer by about what docker.io pulls in.
"""
from __future__ import annotations

import copy
import http.server
import json
import lzma
import re
import threading
from functools import partial

import pytest

from app.engine.packages import INDEX_FORMAT, PackageIndex, parse_index
from app.engine.recipe import DEFAULT_RECIPE, validate_recipe
from app.planner import plan
from app.planner.sizes import closure, estimate

PACKAGES = """Package: base-a
Version: 1
Essential: yes
Installed-Size: 1024
Pre-Depends: libz (>= 1.2)
Description: an essential package

Package: libz
Version: 1
Priority: required
Installed-Size: 2048
Description: a required library

Package: apt
Version: 1
Priority: important
Installed-Size: 4096
Depends: libz:any
Description: minbase installs apt too

Package: exim4
Version: 1
Provides: mail-transport-agent
Installed-Size: 20480
Description: the first provider of the virtual name

Package: bigpkg
Version: 2
Installed-Size: 102400
Depends: libbig (>= 1) | libother, mail-transport-agent, libz
Description: a big program

Package: libbig
Version: 1
Installed-Size: 51200
Description: its library

Package: libother
Version: 1
Installed-Size: 999999
Description: the second alternative, never taken

Package: postfix
Version: 1
Provides: mail-transport-agent
Installed-Size: 10240
Description: another provider
"""


@pytest.fixture
def tiny_index(tmp_path):
    root = tmp_path / "mirror"
    target = root / "dists/test/main/binary-amd64"
    target.mkdir(parents=True)
    (target / "Packages.xz").write_bytes(lzma.compress(PACKAGES.encode()))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield PackageIndex(tmp_path / "cache", f"http://127.0.0.1:{server.server_address[1]}", "test")
    server.shutdown()


def _recipe(packages, fmt="rootfs", release="trixie"):
    return validate_recipe({**copy.deepcopy(DEFAULT_RECIPE), "packages": packages, "format": fmt, "release": release})


def _installed_mb(reply: str) -> int:
    m = re.search(r"come to (\d+) MB installed", reply)
    assert m, reply
    return int(m.group(1))


def test_the_index_keeps_installed_sizes_depends_and_the_minbase_set():
    parsed = parse_index(PACKAGES)
    assert parsed.installed["bigpkg"] == [102400, "libbig|libother,mail-transport-agent,libz"]
    assert parsed.installed["apt"] == [4096, "libz"]
    assert parsed.installed["base-a"] == [1024, "libz"]
    assert sorted(parsed.required) == ["base-a", "libz"]
    assert parsed.packages["bigpkg"] == ["2", "a big program"]


def test_the_cache_carries_its_format_and_replaces_an_older_one(tiny_index):
    old = tiny_index.cache_dir / tiny_index.path.name.replace(f"-v{INDEX_FORMAT}.json", ".json")
    old.parent.mkdir(parents=True)
    old.write_text(json.dumps({"packages": {}, "provides": {}}))  # the shape before installed sizes
    assert tiny_index.installed_size("bigpkg") == 102400
    assert tiny_index.depends("bigpkg") == [["libbig", "libother"], ["mail-transport-agent"], ["libz"]]
    assert tiny_index.installed_size("mail-transport-agent") is None
    assert json.loads(tiny_index.path.read_text())["format"] == INDEX_FORMAT
    assert not old.exists()


def test_the_closure_takes_first_alternatives_and_a_provider_already_chosen(tiny_index):
    assert set(closure(tiny_index, ["bigpkg"])) == {"bigpkg", "libbig", "exim4", "libz"}
    assert "postfix" in closure(tiny_index, ["postfix", "bigpkg"]) and "exim4" not in closure(tiny_index, ["postfix", "bigpkg"])


def test_the_estimate_is_the_sum_of_installed_sizes(tiny_index):
    plain = estimate(tiny_index, _recipe([]))
    assert plain.base_kib == plain.installed_kib == 1024 + 2048 + 4096
    big = estimate(tiny_index, _recipe(["bigpkg"]))
    assert big.installed_kib - plain.installed_kib == 102400 + 51200 + 20480
    with_postfix = estimate(tiny_index, _recipe(["postfix", "bigpkg"]))
    assert with_postfix.installed_kib - plain.installed_kib == 10240 + 102400 + 51200
    assert big.tree_kib > plain.tree_kib and big.compressed_kib > plain.compressed_kib


def test_the_answer_reads_the_index(tiny_index):
    def lookup(release):
        return tiny_index

    small = plan("how big will it be?", _recipe([]), index_for=lookup)
    assert not small.changed and _installed_mb(small.reply) == 7 and "estimate" in small.reply
    assert "rootfs tarball" in small.reply and "third" in small.reply
    big = plan("how big will it be?", {**_recipe([]), "packages": ["bigpkg"]}, index_for=lookup)
    assert _installed_mb(big.reply) == 7 + 170


@pytest.mark.parametrize("question", ["how big will it be?", "How large is the image", "what size will the ISO be?",
                                      "what's the image size", "how much disk space does it need?"])
def test_adding_docker_grows_the_answer_by_what_docker_pulls_in(index_for, question):
    index = index_for("trixie")
    small = plan(question, _recipe(["openssh-server"], fmt="iso"), index_for=index_for)
    big = plan(question, _recipe(["openssh-server", "docker.io"], fmt="iso"), index_for=index_for)
    assert not small.changed and not big.changed
    grown = _installed_mb(big.reply) - _installed_mb(small.reply)
    # docker.io and its runtime (containerd, runc) at least; its other dependencies are small.
    least = (index.installed_size("docker.io") + index.installed_size("containerd") + index.installed_size("runc")) / 1024
    assert least - 2 <= grown <= least * 1.25, (small.reply, big.reply)
    assert "ISO" in big.reply


def test_a_bootable_format_counts_the_kernel_and_bookworm_has_its_own_sizes(index_for):
    trixie_iso = estimate(index_for("trixie"), _recipe([], fmt="iso"))
    trixie_rootfs = estimate(index_for("trixie"), _recipe([], fmt="rootfs"))
    bookworm_iso = estimate(index_for("bookworm"), _recipe([], fmt="iso", release="bookworm"))
    kernel = index_for("trixie").installed_size(index_for("trixie").depends("linux-image-amd64")[0][0])
    assert kernel <= trixie_iso.kernel_kib < kernel + 1024 and trixie_rootfs.kernel_kib == 0  # + the meta package
    assert trixie_iso.installed_kib - trixie_rootfs.installed_kib >= kernel
    assert bookworm_iso.installed_kib != trixie_iso.installed_kib


def test_make_it_smaller_names_the_heaviest_package_first(index_for):
    result = plan("make it smaller", _recipe(["nginx", "docker.io", "htop"], fmt="iso"), index_for=index_for)
    assert not result.changed
    m = re.search(r"heaviest, with what each pulls in: docker\.io \((\d+) MB\), ", result.reply)
    assert m, result.reply
    assert int(m.group(1)) >= index_for("trixie").installed_size("docker.io") // 1024
    assert 'remove docker.io' in result.reply
