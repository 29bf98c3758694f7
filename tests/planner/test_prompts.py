"""Varied prompts against the built-in planner with the real package indexes.

Each case: messages said before (from the default recipe), the message under test, and a check
of the resulting recipe and reply."""
from __future__ import annotations

import pytest

from app.engine.recipe import DEFAULT_RECIPE

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGm8c5lrLUg1HlnC4GVtUpfxW6k06Ofq9KzOYu0VxY3a carol@host"
WEB = ["Create a Debian server with SSH, nginx and Docker"]


def pkgs(r):
    return set(r.recipe["packages"])


def enabled(r):
    return set(r.recipe["services"]["enable"])


def allow(r):
    return set(r.recipe["firewall"]["allow"])


def user(r, name):
    return next((u for u in r.recipe["users"] if u["name"] == name), None)


CASES = [
    # software by everyday names
    ([], "Add a PostgreSQL database", lambda r: pkgs(r) == {"postgresql"} and enabled(r) == {"postgresql"}),
    ([], "install python and node", lambda r: {"python3", "nodejs", "npm"} <= pkgs(r)),
    ([], "add git, curl and redis", lambda r: {"git", "curl", "redis-server"} <= pkgs(r) and "redis-server" in enabled(r)),
    ([], "add mysql", lambda r: pkgs(r) == {"mariadb-server"} and "MariaDB" in r.reply),
    ([], "I need a web server", lambda r: pkgs(r) == {"nginx"} and "nginx" in enabled(r)),
    ([], "add docker compose", lambda r: {"docker.io", "docker-compose"} <= pkgs(r) and "docker" in enabled(r)),
    ([], "I need Python, pip and a virtualenv", lambda r: {"python3", "python3-pip", "python3-venv"} <= pkgs(r)),
    ([], "install python3-flask", lambda r: pkgs(r) == {"python3-flask"}),
    ([], "Install vim and emacs", lambda r: {"vim", "emacs-nox"} <= pkgs(r)),
    ([], "Create a Debian 13 server named web-1 with apache, php and mariadb",
     lambda r: {"apache2", "php-fpm", "mariadb-server"} <= pkgs(r) and r.recipe["hostname"] == "web-1"
     and r.recipe["release"] == "trixie"),
    # typos
    ([], "install postgress", lambda r: pkgs(r) == {"postgresql"} and "postgress" in r.reply),
    ([], "install ngnix", lambda r: pkgs(r) == {"nginx"}),
    ([], "switch to bookwrom", lambda r: r.recipe["release"] == "bookworm"),
    ([], "make it a qcow disk", lambda r: r.recipe["format"] == "qcow2"),
    ([], "add dokcer and redsi", lambda r: {"docker.io", "redis-server"} <= pkgs(r)),
    ([], "isntall htpo", lambda r: pkgs(r) == {"htop"}),
    # refusals
    ([], "install foobarbaz", lambda r: not r.changed and r.refused and "foobarbaz" in r.refused[0]),
    ([], "install htop and foobarbaz-not-real",
     lambda r: pkgs(r) == {"htop"} and any("foobarbaz-not-real" in x for x in r.refused)),
    ([], "add mongodb", lambda r: not r.changed and "MongoDB" in r.refused[0]),
    ([], "switch to bullseye", lambda r: not r.changed and r.recipe["release"] == "trixie" and r.refused),
    ([], "install nginx-fullx", lambda r: not r.changed and "nginx-full" in r.refused[0]),
    # removal and replacement
    (WEB, "apache instead of nginx",
     lambda r: "nginx" not in pkgs(r) and "apache2" in pkgs(r) and "nginx" not in enabled(r) and "apache2" in enabled(r)),
    (WEB, "replace nginx with caddy", lambda r: "nginx" not in pkgs(r) and "caddy" in pkgs(r)),
    (WEB, "swap nginx for apache", lambda r: "nginx" not in pkgs(r) and "apache2" in pkgs(r)),
    (WEB, "remove docker", lambda r: "docker.io" not in pkgs(r) and "docker" not in enabled(r)
     and {"openssh-server", "nginx"} <= pkgs(r)),
    (WEB, "get rid of nginx and docker", lambda r: pkgs(r) == {"openssh-server"} and enabled(r) == {"ssh"}),
    (WEB, "I don't need docker anymore", lambda r: "docker.io" not in pkgs(r) and "nginx" in pkgs(r)),
    (WEB, "a server with nginx but without docker", lambda r: "docker.io" not in pkgs(r) and "nginx" in pkgs(r)),
    (WEB, "remove the web server", lambda r: "nginx" not in pkgs(r)),
    (["add docker compose"], "remove docker", lambda r: not {"docker.io", "docker-compose"} & pkgs(r)),
    (WEB + ["make sure nginx is running and answers on http://localhost/"], "drop nginx",
     lambda r: "nginx" not in pkgs(r) and r.recipe["tests"] == []),
    (WEB, "replace docker with podman", lambda r: "podman" in pkgs(r) and "docker.io" not in pkgs(r)),
    # release
    ([], "switch to Debian 12", lambda r: r.recipe["release"] == "bookworm"),
    (["switch to bookworm"], "use Debian 13", lambda r: r.recipe["release"] == "trixie"),
    (["switch to bookworm", "add docker compose"], "go back to trixie",
     lambda r: r.recipe["release"] == "trixie" and "docker-compose" in pkgs(r)),
    (["add fastfetch and lazygit"], "switch to bookworm",
     lambda r: r.recipe["release"] == "bookworm" and not pkgs(r) and "fastfetch" in r.reply and "lazygit" in r.reply),
    # formats
    ([], "build a container image", lambda r: r.recipe["format"] == "oci"),
    ([], "I want a docker image", lambda r: r.recipe["format"] == "oci" and not pkgs(r)),
    ([], "give me a root filesystem tarball", lambda r: r.recipe["format"] == "rootfs"),
    (["make it a qcow2 disk"], "make it an ISO", lambda r: r.recipe["format"] == "iso"),
    # hostname, timezone, locale, keyboard
    ([], "set the hostname to web01", lambda r: r.recipe["hostname"] == "web01"),
    ([], "call it db-01", lambda r: r.recipe["hostname"] == "db-01"),
    ([], "set hostname to My_Host", lambda r: not r.changed and r.refused),
    ([], "timezone Berlin", lambda r: r.recipe["timezone"] == "Europe/Berlin"),
    ([], "set the time zone to New York", lambda r: r.recipe["timezone"] == "America/New_York"),
    ([], "use Tokyo time", lambda r: r.recipe["timezone"] == "Asia/Tokyo"),
    ([], "set the timezone to Mars/Olympus", lambda r: not r.changed and r.refused),
    ([], "set locale to de_DE.UTF-8", lambda r: r.recipe["locale"] == "de_DE.UTF-8"),
    ([], "German keyboard", lambda r: r.recipe["keyboard"] == "de"),
    ([], "I want a German locale and a German keyboard",
     lambda r: r.recipe["keyboard"] == "de" and r.recipe["locale"] == "de_DE.UTF-8"),
    ([], "set the timezone to berlin and use a UK keyboard",
     lambda r: r.recipe["timezone"] == "Europe/Berlin" and r.recipe["keyboard"] == "gb"),
    # users
    ([], "create user bob with sudo", lambda r: user(r, "bob")["groups"] == ["sudo"]),
    ([], "add user alice with password 'hunter2'",
     lambda r: user(r, "alice")["passwordHash"].startswith("$6$") and "hunter2" not in str(r.recipe)
     and "hunter2" not in str(r.operations)),
    ([], "add user eve to groups sudo, docker", lambda r: user(r, "eve")["groups"] == ["sudo", "docker"]),
    ([f"create user carol with key {KEY}"], "add carol to the docker group",
     lambda r: user(r, "carol")["groups"] == ["docker"] and user(r, "carol")["sshKeys"] == [KEY]),
    (["create user carol in the sudo group"], "delete user carol", lambda r: r.recipe["users"] == []),
    ([], "create user dave with key ssh-ed25519 AAAAnotakey", lambda r: not r.changed and r.refused),
    ([], "Install Docker and add user deploy to the docker group",
     lambda r: "docker.io" in pkgs(r) and user(r, "deploy")["groups"] == ["docker"]),
    # firewall
    (WEB, "only ssh and http", lambda r: r.recipe["firewall"] == {"enabled": True, "allow": ["22/tcp", "80/tcp"]}),
    (WEB, "open port 8080", lambda r: r.recipe["firewall"]["enabled"] and {"8080/tcp", "22/tcp"} <= allow(r)),
    (WEB, "open 53/udp", lambda r: "53/udp" in allow(r)),
    (WEB + ["open port 80 and 443"], "close port 80", lambda r: "80/tcp" not in allow(r) and "443/tcp" in allow(r)),
    (WEB + ["open port 80"], "disable the firewall", lambda r: r.recipe["firewall"]["enabled"] is False),
    ([], "add a firewall that allows only ssh and https",
     lambda r: r.recipe["firewall"] == {"enabled": True, "allow": ["22/tcp", "443/tcp"]}),
    # files
    ([], "create /etc/motd with content 'hello'",
     lambda r: r.recipe["files"] == [{"path": "/etc/motd", "content": "hello\n", "mode": "0644", "owner": "root"}]),
    ([], 'write "Welcome to Kiln" to /etc/issue', lambda r: r.recipe["files"][0]["content"] == "Welcome to Kiln\n"),
    ([], "create a file /etc/app.conf containing port=8080 with mode 600 owned by www-data",
     lambda r: r.recipe["files"] == [{"path": "/etc/app.conf", "content": "port=8080\n", "mode": "0600", "owner": "www-data"}]),
    (["create /etc/motd with content 'hello'"], "remove /etc/motd", lambda r: r.recipe["files"] == []),
    ([], "set the motd to 'Welcome to Kiln'", lambda r: r.recipe["files"][0]["path"] == "/etc/motd"
     and r.recipe["files"][0]["content"] == "Welcome to Kiln\n"),
    (["set the motd to 'hi'"], "remove the motd", lambda r: r.recipe["files"] == []),
    # tests
    (WEB, "make sure nginx answers on http://localhost/",
     lambda r: r.recipe["tests"] == [{"type": "http_responds", "params": {"url": "http://localhost/", "status": 200, "contains": None}}]),
    (WEB, "check that ssh is running", lambda r: r.recipe["tests"] == [{"type": "service_running", "params": {"service": "ssh"}}]),
    ([], "make sure port 22 is open", lambda r: r.recipe["tests"][0] == {"type": "port_open", "params": {"port": 22, "protocol": "tcp"}}),
    ([], "check that it boots", lambda r: r.recipe["tests"][0]["type"] == "boots"),
    (WEB, "verify that htop is installed",
     lambda r: "htop" in pkgs(r) and r.recipe["tests"][0]["params"]["package"] == "htop"),
    ([], "check that the command `uname -a` succeeds",
     lambda r: r.recipe["tests"][0]["params"]["command"] == "uname -a"),
    (WEB + ["check that ssh is running"], "remove all tests", lambda r: r.recipe["tests"] == []),
    # questions change nothing
    (WEB, "what packages are in it?", lambda r: not r.changed and "nginx" in r.reply and "docker.io" in r.reply),
    (WEB + ["open port 80"], "what ports are open?", lambda r: not r.changed and "80/tcp" in r.reply),
    (["switch to bookworm"], "which release?", lambda r: not r.changed and "bookworm" in r.reply),
    (["set the hostname to api-gw"], "what's the hostname?", lambda r: not r.changed and "api-gw" in r.reply),
    ([], "show me the recipe", lambda r: not r.changed and "release: trixie" in r.reply),
    (WEB, "is docker installed?", lambda r: not r.changed and r.reply.startswith("Yes")),
    (WEB, "is redis installed?", lambda r: not r.changed and r.reply.startswith("No")),
    # nothing understood
    ([], "hello", lambda r: not r.changed and "Hello" in r.reply and "add nginx" in r.reply),
    # multi-clause
    ([], "Create a Debian 12 server with SSH, nginx and a PostgreSQL database, hostname web1, timezone Europe/Berlin",
     lambda r: r.recipe["release"] == "bookworm" and {"openssh-server", "nginx", "postgresql"} <= pkgs(r)
     and r.recipe["hostname"] == "web1" and r.recipe["timezone"] == "Europe/Berlin"),
    (WEB, "uninstall nginx, open port 8443", lambda r: "nginx" not in pkgs(r) and "8443/tcp" in allow(r)),
    ([], "add nginx. what packages are in it?", lambda r: pkgs(r) == {"nginx"} and "1 package" in r.reply),
    (WEB, "what is the release and format?", lambda r: not r.changed and "trixie" in r.reply and "iso" in r.reply),
    # more phrasing seen in practice
    ([], "Can you set up a server with SSH access and a firewall that only allows SSH?",
     lambda r: pkgs(r) == {"openssh-server"} and r.recipe["firewall"] == {"enabled": True, "allow": ["22/tcp"]}),
    ([], "I need a LAMP stack", lambda r: {"apache2", "mariadb-server", "php"} <= pkgs(r)),
    (WEB, "actually, use apache instead", lambda r: "apache2" in pkgs(r) and "nginx" not in pkgs(r)),
    ([], "add a user named john with groups sudo and docker and password \"pa55word\"",
     lambda r: user(r, "john")["groups"] == ["sudo", "docker"] and user(r, "john")["passwordHash"].startswith("$6$")),
    ([], "create user mallory, no sudo", lambda r: user(r, "mallory")["groups"] == []),
    ([], "create users alice and bob", lambda r: [u["name"] for u in r.recipe["users"]] == ["alice", "bob"]),
    ([], "set root password to 'toor'", lambda r: not r.changed and "root" in r.refused[0]),
    ([], "add /usr/local/bin/hello.sh with content 'echo hi' and make it executable",
     lambda r: r.recipe["files"][0]["mode"] == "0755" and r.recipe["files"][0]["content"] == "echo hi\n"),
    ([], "add nginx, redis, and postgres, and open port 80",
     lambda r: {"nginx", "redis-server", "postgresql"} <= pkgs(r) and "80/tcp" in allow(r)
     and not {"6379/tcp", "5432/tcp"} & allow(r)),
    ([], "Create a server for a Django app with PostgreSQL and Redis behind nginx",
     lambda r: {"python3-django", "postgresql", "redis-server", "nginx"} <= pkgs(r) and "bind9" not in pkgs(r)),
    ([], "set up docker and portainer", lambda r: pkgs(r) == {"docker.io"} and any("Portainer" in x for x in r.refused)),
    ([], "I want a Kubernetes node", lambda r: not r.changed and r.refused),
    ([], "install docker and foobarqux", lambda r: pkgs(r) == {"docker.io"} and any("foobarqux" in x for x in r.refused)),
    (WEB, "remove all packages", lambda r: r.recipe["packages"] == [] and r.recipe["services"]["enable"] == []),
    ([], "undo that", lambda r: not r.changed and "version" in r.refused[0]),
    ([], "set name to my-recipe", lambda r: r.recipe["name"] == "my-recipe"),
    ([], "I want to run it in QEMU", lambda r: r.recipe["format"] == "qcow2"),
    ([], "I want the server to be called alpha", lambda r: r.recipe["hostname"] == "alpha"),
    ([], "set TZ to UTC", lambda r: r.recipe["timezone"] == "Etc/UTC" and not r.changed),
    ([], "use Central European time", lambda r: r.recipe["timezone"] == "Europe/Berlin"),
    ([], "check that curl --version works", lambda r: r.recipe["tests"][0]["params"]["command"] == "curl --version"),
    ([], "make sure it boots within 120 seconds", lambda r: r.recipe["tests"][0]["params"]["timeoutSeconds"] == 120),
    ([], "Set up a Debain bookwrom server with ngnix and postgress",
     lambda r: r.recipe["release"] == "bookworm" and pkgs(r) == {"nginx", "postgresql"}),
    ([], "instal dcoker", lambda r: pkgs(r) == {"docker.io"}),
    ([], "add pyhton and gti", lambda r: pkgs(r) == {"python3", "git"}),
    ([], "switch to trixy and add htop", lambda r: r.recipe["release"] == "trixie" and pkgs(r) == {"htop"}),
    ([], "add redis-sever and opnessh", lambda r: pkgs(r) == {"redis-server", "openssh-server"}),
    ([], "add apach and mysq", lambda r: pkgs(r) == {"apache2", "mariadb-server"}),
    (WEB, "remvoe nginx", lambda r: "nginx" not in pkgs(r)),
    ([], "creat user bob with sudo", lambda r: user(r, "bob")["groups"] == ["sudo"]),
    ([], "add a usr bob", lambda r: user(r, "bob") is not None and not pkgs(r)),
    (WEB, "shwo me the recipe", lambda r: not r.changed and "packages:" in r.reply),
    ([], "install nginx=1.22", lambda r: pkgs(r) == {"nginx"} and "cannot pin" in r.reply),
    ([], "add postgresql-15", lambda r: not r.changed and "postgresql-17" in r.refused[0]),
    (WEB, "open port 99999", lambda r: not r.changed and "99999" in r.refused[0]),
    (WEB, "nginx is not needed", lambda r: "nginx" not in pkgs(r)),
    (WEB, "install nginx, open ports 80/443", lambda r: {"80/tcp", "443/tcp"} <= allow(r)),
    (WEB, "what is this image going to be?", lambda r: not r.changed and "golang" not in r.reply),
    (WEB, "is it bookworm?", lambda r: not r.changed and r.reply.startswith("No, it is trixie")),
    (WEB, "add a boot test", lambda r: r.recipe["tests"][0]["type"] == "boots"),
    (WEB, "add an nginx test", lambda r: r.recipe["tests"] == [{"type": "service_running", "params": {"service": "nginx"}}]),
    (WEB + ["check that ssh is running"], "no tests please", lambda r: r.recipe["tests"] == []),
    (WEB, "change nginx port to 8080", lambda r: "nginx" in pkgs(r)),
    (WEB, "check http://localhost:8080 returns 404",
     lambda r: r.recipe["tests"][0]["params"] == {"url": "http://localhost:8080", "status": 404, "contains": None}),
    ([], "I need a small Debian 12 web server with nginx and certbot",
     lambda r: pkgs(r) == {"nginx", "certbot"} and r.recipe["release"] == "bookworm" and "picked" not in r.reply),
    ([], "a web server with apache", lambda r: pkgs(r) == {"apache2"}),
    (WEB, "add a web server", lambda r: not r.changed and "already has nginx" in r.reply),
    ([], "add mysql", lambda r: "MariaDB, Debian's MySQL" in r.reply),
    (["create user bob"], "give him sudo", lambda r: user(r, "bob")["groups"] == ["sudo"]),
    (["create user bob", "create user eve"], "make bob an admin", lambda r: user(r, "bob")["groups"] == ["sudo"]
     and user(r, "eve")["groups"] == []),
    (WEB, "ensure docker is running, nginx is running and port 80 answers",
     lambda r: [t["type"] for t in r.recipe["tests"]] == ["service_running", "service_running", "port_open"]),
]


@pytest.mark.parametrize("before,message,check", CASES, ids=[f"{i:02d}-{c[1][:40]}" for i, c in enumerate(CASES)])
def test_prompt(converse, before, message, check):
    *_, result = converse(*before, message)
    assert check(result), f"{message!r} -> {result.reply!r}\n{result.recipe}"


def test_it_refers_to_the_last_message_that_named_software(index_for):
    from app.planner import plan

    recipe = plan("add nginx and redis", DEFAULT_RECIPE, index_for=index_for).recipe
    history = [{"role": "user", "content": "add nginx and redis"}, {"role": "assistant", "content": "Added nginx."}]
    result = plan("actually, remove it", recipe, index_for=index_for, history=history)
    assert result.recipe["packages"] == []
    # Without history there is nothing to refer to: ask instead of guessing.
    result = plan("remove it", recipe, index_for=index_for)
    assert not result.changed and "Remove what?" in result.refused[0]


def test_without_a_package_index_settings_still_work_and_packages_are_refused():
    from app.planner import plan

    def unreachable(release):
        raise OSError("mirror unreachable")

    result = plan("add nginx and set the hostname to box", DEFAULT_RECIPE, index_for=unreachable)
    assert result.recipe["hostname"] == "box" and result.recipe["packages"] == []
    assert "index is unavailable" in result.refused[0]
