"""How the assistant answers what people actually say: a specification, one conversation per row.

Each row is a conversation from the plain Debian recipe, turn by turn, kept the way the chat service
keeps it (every change is a new version; the planner sees the earlier versions and messages). The
expectations are about the recipe after the last turn and the last reply:

    has / lacks        packages present / absent          enabled     services enabled at boot
    allow / closed     firewall rules present / absent    tests       "type:subject" of recipe tests
    files              {path: text the file contains}     users       {name: groups}
    fields             other recipe fields                reply       words the last reply contains
    changed            whether the last turn made a new version
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import pytest

from app.engine.recipe import DEFAULT_RECIPE, validate_recipe
from app.planner import plan


@dataclass
class C:
    turns: list[str]
    has: set = field(default_factory=set)
    lacks: set = field(default_factory=set)
    enabled: set = field(default_factory=set)
    allow: set = field(default_factory=set)
    closed: set = field(default_factory=set)
    tests: set = field(default_factory=set)
    files: dict = field(default_factory=dict)
    users: dict = field(default_factory=dict)
    fields: dict = field(default_factory=dict)
    reply: list = field(default_factory=list)
    changed: bool | None = None
    packages: set | None = None  # exactly these packages


SSH_NGINX_DOCKER = "add ssh, nginx and docker"
FW = "turn on the firewall"
SSHD = "/etc/ssh/sshd_config.d/50-kiln.conf"
SYSCTL = "/etc/sysctl.d/90-kiln.conf"
JOURNALD = "/etc/systemd/journald.conf.d/90-kiln.conf"

SPEC: dict[str, C] = {
    # ---- roles: people describe the server, not the packages --------------------------------------------
    "mail relay": C(["I need a mail relay"], has={"postfix"}, enabled={"postfix"},
                    tests={"service_running:postfix", "port_open:25/tcp"}, reply=["postfix"]),
    "smtp relay for apps": C(["set up an SMTP relay for our apps"], has={"postfix"}),
    "mail server, firewall on, reachable": C([FW, "a mail server reachable from the internet"], has={"postfix"},
                                              allow={"25/tcp"}),
    "file share for the office": C(["build me a file share for the office"], has={"samba"}, enabled={"smbd"},
                                   tests={"service_running:smbd", "port_open:445/tcp"}),
    "file server for windows clients": C(["We want a file server for the Windows clients"], has={"samba"}),
    "samba share, opened": C([FW, "a network share, and allow access to it"], has={"samba"}, allow={"445/tcp"}),
    "nfs share": C(["we need an NFS share"], has={"nfs-kernel-server"}, tests={"port_open:2049/tcp"}),
    "ci build agent": C(["a build agent for our CI"], has={"git", "build-essential", "docker.io"},
                        users={"ci": ["docker"]}, tests={"service_running:docker"}, reply=["GitLab Runner"]),
    "ci runner": C(["CI runner please"], has={"git", "build-essential"}),
    "kiosk fullscreen page": C(["I need a kiosk that shows a web page fullscreen"], has={"cage", "chromium"},
                               users={"kiosk": ["video", "input", "render"]},
                               files={"/etc/systemd/system/kiosk.service": "--kiosk"}, enabled={"kiosk", "seatd"}),
    "kiosk with a url": C(["kiosk showing https://intranet.example.com/board"],
                          files={"/etc/systemd/system/kiosk.service": "https://intranet.example.com/board"}),
    "digital signage": C(["it's for digital signage in the lobby"], has={"cage"}),
    "router": C(["turn it into a router"], has={"nftables", "dnsmasq"},
                files={"/etc/sysctl.d/90-kiln-router.conf": "net.ipv4.ip_forward = 1"}, tests={"port_open:53/udp"}),
    "firewall box": C(["a firewall box for the branch office"], has={"nftables"}),
    "dev box": C(["a dev box with python and node"], has={"build-essential", "python3-pip", "python3-venv", "nodejs"}),
    "development machine": C(["I want a development machine"], has={"git", "python3-venv", "npm"}),
    "build machine with go": C(["build machine, plus golang"], has={"build-essential", "golang-go"}),
    "lamp stack": C(["LAMP stack please"], has={"apache2", "mariadb-server", "php", "libapache2-mod-php"},
                    tests={"service_running:apache2", "service_running:mariadb", "port_open:80/tcp"}),
    "lemp server": C(["a lemp server"], has={"nginx", "mariadb-server", "php-fpm"}, lacks={"apache2"}),
    "web server": C(["a web server"], has={"nginx"}, tests={"port_open:80/tcp", "port_open:443/tcp"},
                    reply=["nginx"]),
    "web server with apache": C(["a web server with apache"], has={"apache2"}, lacks={"nginx"}),
    "caddy": C(["install caddy"], has={"caddy"}),
    "website, firewall on": C([FW, "host a website"], has={"nginx"}, allow={"80/tcp", "443/tcp"}),
    "caching dns resolver": C(["a caching dns resolver"], has={"unbound"}, tests={"port_open:53/udp"}),
    "dns server": C(["dns server for our zone"], has={"bind9"}, enabled={"named"}),
    "dns and dhcp": C(["local dns and dhcp with dnsmasq"], has={"dnsmasq"}),
    "vpn server": C(["a vpn server"], has={"wireguard-tools"}, tests={"port_open:51820/udp"}, reply=["WireGuard"]),
    "vpn opened": C([FW, "a vpn gateway reachable from outside"], allow={"51820/udp"}),
    "openvpn server": C(["openvpn server"], has={"openvpn"}, tests={"port_open:1194/udp"}),
    "monitoring agent asks": C(["add a monitoring agent"], changed=False, reply=["node exporter", "Zabbix"]),
    "monitoring agent -> zabbix": C(["add a monitoring agent", "zabbix"], has={"zabbix-agent"},
                                    tests={"port_open:10050/tcp"}),
    "monitoring agent -> node exporter": C(["monitoring agent", "the node exporter"], has={"prometheus-node-exporter"}),
    "node exporter for prometheus, reachable": C([FW, "add node exporter and make it reachable"],
                                                 has={"prometheus-node-exporter"}, allow={"9100/tcp"}),
    "container host": C(["a container host"], has={"docker.io", "docker-compose"}, reply=["Docker"]),
    "podman host": C(["podman host for rootless containers"], has={"podman"}, lacks={"docker.io"}),
    "postgres server reachable from the lan": C([FW, "a postgres database server reachable from the LAN"],
                                                has={"postgresql"}, allow={"5432/tcp"}, tests={"port_open:5432/tcp"}),
    "redis server stays private": C([FW, "add a redis server"], has={"redis-server"}, closed={"6379/tcp"},
                                    tests={"port_open:6379/tcp"}),
    "mysql means mariadb": C(["a mysql database"], has={"mariadb-server"}, lacks={"postgresql"}),
    "mysql server typo": C(["add a mysq server"], has={"mariadb-server"}),
    "mail and web": C(["a mail server and a web server"], has={"postfix", "nginx"}),
    "role plus package": C(["a file share and htop"], has={"samba", "htop"}),
    # ---- when unsure, ask -------------------------------------------------------------------------------
    "database asks": C(["add a database"], changed=False, reply=["PostgreSQL", "MariaDB", "Redis", "?"]),
    "database -> postgres": C(["add a database", "postgres"], has={"postgresql"}, enabled={"postgresql"}),
    "database -> mariadb please": C(["I need a db", "mariadb please"], has={"mariadb-server"}),
    "database -> the mysql one": C(["add a database", "mysql"], has={"mariadb-server"}),
    "database -> redis": C(["we need a database server", "Redis"], has={"redis-server"}),
    "database named at once": C(["add a database, postgres"], has={"postgresql"}),
    "database already there": C(["add postgres", "add a database"], changed=False, reply=["already has postgresql"]),
    "database then something else": C(["add a database", "add htop"], has={"htop"}, lacks={"postgresql"}),
    # ---- ports: "open" means open --------------------------------------------------------------------
    "make sure port 6379 is open": C(["add redis", FW, "make sure port 6379 is open"], allow={"6379/tcp"},
                                     tests={"port_open:6379/tcp"}),
    "check that port is reachable": C(["add redis and turn on the firewall", "check that port 6379 is reachable"],
                                      allow={"6379/tcp"}),
    "port test with firewall off": C(["add redis", "make sure port 6379 is open"], tests={"port_open:6379/tcp"},
                                     fields={"firewall": {"enabled": False, "allow": []}}),
    "closed port is only tested": C([FW, "make sure port 8080 is closed"], closed={"8080/tcp"},
                                    tests={"port_open:8080/tcp"}),
    # ---- undo and history ---------------------------------------------------------------------------
    "undo": C(["add nginx", "undo"], lacks={"nginx"}, reply=["Restored version 1", "nginx"]),
    "undo that": C(["add nginx", "undo that"], lacks={"nginx"}),
    "undo the last change": C(["add nginx", "add docker", "undo the last change"], has={"nginx"}, lacks={"docker.io"}),
    "undo the last two changes": C(["add nginx", "add docker", "undo the last two changes"], packages=set()),
    "revert": C(["add nginx", "revert it"], lacks={"nginx"}),
    "go back to version 2": C(["add nginx", "add docker", "add htop", "go back to version 2"], packages={"nginx"},
                              reply=["Restored version 2"]),
    "revert to v2": C(["add nginx", "add docker", "revert to v2"], packages={"nginx"}),
    "restore version 2": C(["add nginx", "set the hostname to web1", "restore version 2"], packages={"nginx"},
                           fields={"hostname": "debian"}, reply=["hostname web1 -> debian"]),
    "start over": C(["add nginx", "add docker", "start over"], packages=set(), reply=["Started over"]),
    "reset everything": C(["add nginx", "set hostname box", "reset everything"], packages=set(),
                          fields={"hostname": "debian"}),
    "start from scratch": C([SSH_NGINX_DOCKER, "let's start from scratch"], packages=set()),
    "undo at the start": C(["undo"], changed=False, reply=["nothing earlier"]),
    "no such version": C(["add nginx", "go back to version 9"], changed=False, reply=["no version 9"]),
    "undo the undo": C(["add nginx", "undo", "undo"], has={"nginx"}),
    "undo keeps later history": C(["add nginx", "add htop", "undo", "add jq"], has={"nginx", "jq"}, lacks={"htop"}),
    # ---- corrections ----------------------------------------------------------------------------------
    "postgres not mysql": C(["add mysql", "no wait, PostgreSQL not MySQL"], has={"postgresql"}, lacks={"mariadb-server"}),
    "no wait, postgres": C(["add mysql", "no wait, postgres"], has={"postgresql"}, lacks={"mariadb-server"}),
    "no wait, btop": C(["add htop", "no wait, btop"], has={"btop"}, lacks={"htop"}),
    "actually nginx instead": C(["add apache", "actually nginx instead"], has={"nginx"}, lacks={"apache2"}),
    "sorry, I meant nginx": C(["install apache", "sorry, I meant nginx"], has={"nginx"}, lacks={"apache2"}),
    "nope, nano": C(["add vim", "nope, nano"], has={"nano"}, lacks={"vim"}),
    "podman instead": C(["add docker", "podman instead"], has={"podman"}, lacks={"docker.io"}),
    "X instead of Y": C(["add postgres", "use mariadb instead of postgres"], has={"mariadb-server"},
                        lacks={"postgresql"}),
    "postgres, not mysql, at once": C(["add postgres, not mysql"], packages={"postgresql"}),
    "not apache": C(["add nginx, apache and htop", "not apache"], has={"nginx", "htop"}, lacks={"apache2"}),
    "drop everything but ssh": C([SSH_NGINX_DOCKER, "drop everything but ssh"], packages={"openssh-server"}),
    "remove everything except ssh": C([SSH_NGINX_DOCKER, "remove everything except ssh"], packages={"openssh-server"}),
    "keep only ssh and nginx": C([SSH_NGINX_DOCKER, "keep only ssh and nginx"], packages={"openssh-server", "nginx"}),
    "everything except an unknown": C([SSH_NGINX_DOCKER, "remove everything except frobnicator"], changed=False,
                                      reply=["frobnicator"]),
    "a correction does not guess": C(["add ssh and docker", "no wait, htop"], has={"openssh-server", "docker.io", "htop"}),
    "no wait, a whole program": C(["add node", "no wait, python"], has={"python3"}, lacks={"nodejs", "npm"}),
    "no wait, also": C(["add nginx", "no wait, also add htop"], has={"nginx", "htop"}),
    "correction after two packages": C(["add nginx and htop", "no wait, apache"], has={"apache2", "htop"},
                                       lacks={"nginx"}),
    # ---- configuration --------------------------------------------------------------------------------
    "no root login over ssh": C(["no root login over ssh"], has={"openssh-server"},
                                files={SSHD: "PermitRootLogin no"}, tests={f"file_contains:{SSHD}"}),
    "disable root login": C(["disable root login"], files={SSHD: "PermitRootLogin no"}),
    "root should not log in": C(["root should not be able to log in over ssh"], files={SSHD: "PermitRootLogin no"}),
    "the comment names the request": C(["Disable root login please"], files={SSHD: '# Kiln: "Disable root login'}),
    "no password login": C(["no password login for ssh"], files={SSHD: "PasswordAuthentication no"}),
    "ssh keys only": C(["ssh keys only"], files={SSHD: "PasswordAuthentication no"}),
    "both sshd settings": C(["disable password authentication and no root login"],
                            files={SSHD: "PermitRootLogin no"}, reply=["50-kiln.conf"]),
    "sshd settings collect": C(["no root login over ssh", "no password login"],
                               files={SSHD: "PermitRootLogin no\n# Kiln: \"no password login\"\nPasswordAuthentication no"}),
    "ssh on port 2222": C(["run ssh on port 2222"], files={SSHD: "Port 2222"}, tests={"port_open:2222/tcp"}),
    "move ssh port, firewall on": C(["add ssh", FW, "move ssh to port 2222"], allow={"2222/tcp"}, closed={"22/tcp"}),
    "change the ssh port": C(["change the ssh port to 2200"], files={SSHD: "Port 2200"}),
    "nightly backup script": C(["run my backup script every night"], has={"cron"},
                               files={"/etc/cron.d/kiln-backup": "0 2 * * * root /usr/local/bin/backup"},
                               reply=["/usr/local/bin/backup"]),
    "backup at 3am": C(["run /usr/local/bin/backup.sh every night at 3am"],
                       files={"/etc/cron.d/kiln-backup": "0 3 * * * root /usr/local/bin/backup.sh"}),
    "every 15 minutes": C(["run /opt/app/cleanup.sh every 15 minutes"],
                          files={"/etc/cron.d/kiln-cleanup": "*/15 * * * * root /opt/app/cleanup.sh"}),
    "weekly systemd timer": C(["run /usr/local/bin/report.sh weekly with a systemd timer"],
                              files={"/etc/systemd/system/kiln-report.timer": "OnCalendar=Sun *-*-* 02:00:00",
                                     "/etc/systemd/system/kiln-report.service": "ExecStart=/usr/local/bin/report.sh"},
                              enabled={"kiln-report.timer"}),
    "hourly command": C(["run `apt-get update` every hour"], files={"/etc/cron.d/kiln-apt-get": "0 * * * * root apt-get update"}),
    "every monday": C(["run my report script every monday at 7:30"],
                      files={"/etc/cron.d/kiln-report": "30 7 * * 1 root /usr/local/bin/report"}),
    "sudo restart nginx": C(["let the deploy user restart nginx without a password"], has={"sudo"},
                            users={"deploy": []},
                            files={"/etc/sudoers.d/kiln-deploy": "deploy ALL=(root) NOPASSWD: /usr/bin/systemctl restart nginx"}),
    "sudo reload": C(["allow deploy to reload nginx without a password"],
                     files={"/etc/sudoers.d/kiln-deploy": "NOPASSWD: /usr/bin/systemctl reload nginx"}),
    "passwordless sudo": C(["give alice passwordless sudo"],
                           files={"/etc/sudoers.d/kiln-alice": "alice ALL=(ALL:ALL) NOPASSWD: ALL"}),
    "rotate logs daily": C(["rotate logs daily"], files={JOURNALD: "MaxFileSec=1day"}, reply=["journal"]),
    "rotate weekly, keep 4 weeks": C(["rotate logs weekly and keep them for 4 weeks"],
                                     files={JOURNALD: "MaxRetentionSec=28day"}),
    "rotate app logs": C(["rotate /var/log/myapp/*.log daily"], has={"logrotate"},
                         files={"/etc/logrotate.d/kiln-myapp": "/var/log/myapp/*.log {\n    daily"}),
    "swappiness": C(["set vm.swappiness to 10"], files={SYSCTL: "vm.swappiness = 10"},
                    tests={"command_succeeds:sysctl -n vm.swappiness"}),
    "ip forwarding": C(["enable ip forwarding"], files={SYSCTL: "net.ipv4.ip_forward = 1"}),
    "sysctl by name": C(["net.core.somaxconn=1024"], files={SYSCTL: "net.core.somaxconn = 1024"}),
    "static ip": C(["static ip 192.168.1.50/24 gateway 192.168.1.1"],
                   files={"/etc/systemd/network/10-kiln-static.network": "Address=192.168.1.50/24\nGateway=192.168.1.1"},
                   enabled={"systemd-networkd"}),
    "static address with dns": C(["give it the static address 10.0.0.5 with dns 1.1.1.1"],
                                 files={"/etc/systemd/network/10-kiln-static.network": "DNS=1.1.1.1"}, reply=["/24"]),
    "ntp server": C(["use ntp server ntp.example.com"], has={"systemd-timesyncd"},
                    files={"/etc/systemd/timesyncd.conf.d/90-kiln.conf": "NTP=ntp.example.com"}),
    "ntp with chrony": C(["add chrony", "sync time with time.cloudflare.com"],
                         files={"/etc/chrony/sources.d/kiln.sources": "server time.cloudflare.com iburst"}),
    "swap file": C(["add a 2G swap file"], files={"/etc/systemd/system/kiln-swapfile.service": "fallocate -l 2048M"},
                   enabled={"kiln-swapfile"}),
    "swap in mb": C(["add 512 MB of swap"], files={"/etc/systemd/system/kiln-swapfile.service": "fallocate -l 512M"}),
    "no more swap": C(["add a 1G swap file", "remove the swap"], fields={"files": []}),
    "package and config together": C(["add nginx and no root login over ssh"], has={"nginx", "openssh-server"},
                                     files={SSHD: "PermitRootLogin no"}),
    # ---- questions: answered, nothing changed -----------------------------------------------------------
    "what is ncdu": C(["add nginx", "what is ncdu?"], changed=False, reply=["disk usage"], packages={"nginx"}),
    "what does htop do": C(["what does htop do?"], changed=False, reply=["htop"]),
    "which kernel": C(["which kernel does it have?"], changed=False, reply=["linux-image-amd64"]),
    "kernel on bookworm": C(["switch to bookworm", "which kernel will it run?"], changed=False, reply=["bookworm", "6.1"]),
    "how big": C(["how big will it be?"], changed=False, reply=["estimate", "installed sizes", " MB", "ISO"]),
    "how large is the image": C(["add nginx", "how large is the image"], changed=False,
                                reply=["recipe's packages", " MB"], packages={"nginx"}),
    "what size as a tarball": C(["make it a rootfs tarball", "what size will it be?"], changed=False,
                                reply=["rootfs tarball", " MB"]),
    "how much space as a disk": C(["qcow2 please", "how much disk space will it take"], changed=False, reply=["qcow2"]),
    "which release": C(["what release is it?"], changed=False, reply=["trixie"]),
    "what is an unknown thing": C(["what is foobarqux?"], changed=False, reply=["no package"]),
    "what did you change": C(["add nginx", "what did you change?"], changed=False, reply=["nginx"]),
    "what changed at the start": C(["what did you change?"], changed=False, reply=["Nothing yet"]),
    "what changed between versions": C(["add nginx", "set hostname web01", "what changed between version 1 and 3"],
                                       changed=False, reply=["nginx", "hostname debian -> web01"]),
    "question keeps the recipe": C([SSH_NGINX_DOCKER, "what packages are in it?"], changed=False, reply=["nginx"]),
    # ---- what it cannot do: why, and what is near ----------------------------------------------------
    "mongodb": C(["install mongodb"], changed=False, reply=["not in Debian"]),
    "kubernetes node": C(["I want a Kubernetes node"], changed=False, reply=["kubectl"]),
    "make it smaller": C([SSH_NGINX_DOCKER, "make it smaller"], changed=False, reply=["remove", "docker.io"]),
    "gitlab runner": C(["install gitlab"], changed=False, reply=["GitLab"]),
    "install windows": C(["install Windows"], changed=False, reply=["Debian Linux images only", "Samba", "add wine"]),
    "windows server 2022": C(["I need Windows Server 2022"], changed=False, reply=["cannot install Windows Server"]),
    "windows clients still get samba": C(["a file share for windows clients"], has={"samba"}),
    "windows file sharing": C(["add windows file sharing"], has={"samba"}),
    "run on arm": C(["make it run on ARM"], changed=False, reply=["amd64 (x86-64) images only", "ARM", "qcow2"]),
    "arm64 build": C(["add nginx and build it for arm64"], has={"nginx"}, reply=["Added nginx", "arm64"]),
    "raspberry pi": C(["can it run on a raspberry pi?"], changed=False, reply=["Raspberry Pi", "amd64"]),
    "deploy to aws": C(["add ssh", "deploy it to AWS"], changed=False, reply=["does not upload or deploy", "qcow2"]),
    "vmdk": C(["make it a vmdk"], changed=False, reply=["VMDK", "qemu-img convert"], fields={"format": "iso"}),
    "secure boot": C(["it has to boot with secure boot"], changed=False, reply=["Secure Boot", "UEFI"]),
    "email me": C(["email me when the build is done"], changed=False, reply=["notifications", "build page"]),
    "build it now": C(["add htop", "build it now"], changed=False, reply=["Build button"]),
    "media server is near the file share": C(["set up a media server"], changed=False,
                                             reply=['"media"', "file share (Samba)", '"a file share"']),
    "a blog is near the web server": C(["add a blog"], changed=False, reply=["web server", '"a web server"']),
    "a desktop is near the kiosk": C(["give me a desktop"], changed=False, reply=["kiosk"]),
    "backups are near a scheduled job": C(["backup server please"], changed=False,
                                          reply=["run my backup script every night"]),
    "secure it": C(["secure it"], changed=False, reply=["no root login over ssh", "firewall"]),
    "make it faster": C(["make it faster"], changed=False, reply=['"faster"', "set vm.swappiness"]),
    "email is near the mail relay": C(["configure email"], changed=False, reply=["mail relay"]),
    "metrics are near monitoring": C(["collect metrics"], changed=False, reply=["node exporter"]),
    "typo near a role": C(["a monitring thing"], changed=False, reply=["monitoring"]),
    "nothing near says why": C(["frobnicate the widgets"], changed=False,
                               reply=['"frobnicate"', "not packages in Debian trixie", "server roles"]),
    # ---- everyday edits, with typos and in any order -----------------------------------------------------
    "typo packages": C(["instal dcoker and ngnix"], has={"docker.io", "nginx"}),
    "hostname and role": C(["hostname mail1, and make it a mail relay"], has={"postfix"}, fields={"hostname": "mail1"}),
    "role then hostname": C(["a file share", "call it nas01"], has={"samba"}, fields={"hostname": "nas01"}),
    "release then role": C(["switch to bookworm", "a caching dns resolver"], has={"unbound"}, fields={"release": "bookworm"}),
    "role on bookworm first": C(["Debian 12 web server"], has={"nginx"}, fields={"release": "bookworm"}),
    "remove a role's package": C(["a mail relay", "remove postfix"], lacks={"postfix"}),
    "remove the web server": C(["a web server", "remove the web server"], lacks={"nginx"}),
    "remove the database": C(["add postgres", "remove the database"], lacks={"postgresql"}),
    "open port by name": C(["add nginx", "only allow ssh and http"], allow={"22/tcp", "80/tcp"}),
    "user and key words": C(["create user bob in the sudo group"], users={"bob": ["sudo"]}),
    "two turns of roles": C(["a web server", "and a database", "postgres"], has={"nginx", "postgresql"}),
    "polite role": C(["Could you please set this up as a VPN server?"], has={"wireguard-tools"}),
    "capitalised role": C(["MAIL RELAY"], has={"postfix"}),
    "typo in a role": C(["a mail rellay"], has={"postfix"}, reply=['"rellay" as relay']),
    "typos in a role": C(["fiel share for the ofice"], has={"samba"}),
    "harden ssh": C(["harden ssh"], files={SSHD: "PermitRootLogin no"}, reply=["PasswordAuthentication no"]),
    "db the app servers can reach": C([FW, "a postgres server our app servers can reach"], allow={"5432/tcp"}),
}


def _tests(recipe: dict) -> set[str]:
    out = set()
    for t in recipe["tests"]:
        p = t["params"]
        subject = p.get("service") or p.get("path") or p.get("command") or p.get("package") or p.get("user") or p.get("url")
        if t["type"] == "port_open":
            subject = f"{p['port']}/{p.get('protocol') or 'tcp'}"
        out.add(f"{t['type']}:{subject}")
    return out


def converse(index_for, turns: list[str]):
    """The chat service's way: versions by number, the messages so far, a new version per change."""
    recipe = validate_recipe(copy.deepcopy(DEFAULT_RECIPE))
    versions, history, result = {1: recipe}, [], None
    for message in turns:
        result = plan(message, recipe, index_for=index_for, history=list(history), versions=dict(versions))
        assert validate_recipe(result.recipe) == result.recipe
        history += [{"role": "user", "content": message}, {"role": "assistant", "content": result.reply}]
        if result.changed:
            versions[max(versions) + 1] = result.recipe
        recipe = result.recipe
    return result


@pytest.mark.parametrize("name", list(SPEC))
def test_conversation(index_for, name):
    case = SPEC[name]
    result = converse(index_for, case.turns)
    r, why = result.recipe, f"{case.turns} -> {result.reply!r}"
    packages = set(r["packages"])
    assert case.has <= packages, why
    assert not case.lacks & packages, why
    if case.packages is not None:
        assert packages == case.packages, why
    assert case.enabled <= set(r["services"]["enable"]), why
    assert case.allow <= set(r["firewall"]["allow"]) and (not case.allow or r["firewall"]["enabled"]), why
    assert not case.closed & set(r["firewall"]["allow"]), why
    assert case.tests <= _tests(r), f"{why}\n{_tests(r)}"
    files = {f["path"]: f["content"] for f in r["files"]}
    for path, text in case.files.items():
        assert text in files.get(path, ""), f"{why}\n{path}: {files.get(path)!r}"
    users = {u["name"]: u["groups"] for u in r["users"]}
    for name_, groups in case.users.items():
        assert name_ in users and set(groups) <= set(users[name_]), why
    for key, value in case.fields.items():
        assert r[key] == value, why
    for words in case.reply:
        assert words.lower() in result.reply.lower(), why
    if case.changed is not None:
        assert result.changed is case.changed, why


def test_the_specification_is_large_enough():
    assert len(SPEC) >= 120
