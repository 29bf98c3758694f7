"""Everyday software names -> Debian packages, the services they run and the ports they serve.

The planner matches what people say ("SSH", "a PostgreSQL database", "docker compose") against
these aliases; anything else is checked against the release's real package index. Each package
slot lists alternatives in order of preference, so one entry works on trixie and bookworm alike:
the first alternative that exists in the release's index is used.
"""
from __future__ import annotations

from dataclasses import dataclass

from .roles import ASKS, ROLES


@dataclass(frozen=True)
class Software:
    key: str
    label: str
    aliases: tuple[str, ...]
    packages: tuple[tuple[str, ...], ...]
    services: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()      # other Software keys it is useless without
    note: str = ""                      # said once when chosen by a generic name
    role: str = ""                      # a server role of roles.toml ("role:<key>" entries)
    ask: str = ""                       # a request too vague to act on: the key of its question in roles.toml


def _sw(key, label, aliases, packages, services=(), ports=(), requires=(), note=""):
    slots = tuple((p,) if isinstance(p, str) else tuple(p) for p in packages)
    return Software(key, label, tuple(aliases), slots, tuple(services), tuple(ports), tuple(requires), note)


SOFTWARE: tuple[Software, ...] = (
    _sw("ssh", "SSH server", ["ssh", "sshd", "openssh", "openssh server", "openssh-server", "ssh server",
                              "ssh access", "remote access", "secure shell"],
        ["openssh-server"], ["ssh"], ["22/tcp"]),
    _sw("docker", "Docker", ["docker", "docker engine", "docker.io", "docker ce", "docker-ce"],
        ["docker.io"], ["docker"]),
    _sw("compose", "Docker Compose", ["docker compose", "docker-compose", "compose"],
        ["docker-compose"], requires=["docker"]),
    _sw("podman", "Podman", ["podman"], ["podman"]),
    _sw("podman-compose", "podman-compose", ["podman compose", "podman-compose"], ["podman-compose"], requires=["podman"]),
    _sw("nginx", "nginx", ["nginx", "nginx web server"], ["nginx"], ["nginx"], ["80/tcp", "443/tcp"]),
    _sw("apache", "Apache", ["apache", "apache2", "httpd", "apache web server", "apache httpd"],
        ["apache2"], ["apache2"], ["80/tcp", "443/tcp"]),
    _sw("caddy", "Caddy", ["caddy"], ["caddy"], ["caddy"], ["80/tcp", "443/tcp"]),
    _sw("lighttpd", "lighttpd", ["lighttpd"], ["lighttpd"], ["lighttpd"], ["80/tcp"]),
    _sw("haproxy", "HAProxy", ["haproxy", "load balancer"], ["haproxy"], ["haproxy"]),
    _sw("postgresql", "PostgreSQL", ["postgresql", "postgres", "postgresql database", "postgres database",
                                     "postgresql server", "postgres server", "pgsql", "psql"],
        ["postgresql"], ["postgresql"], ["5432/tcp"]),
    _sw("mariadb", "MariaDB", ["mariadb", "mariadb server", "mariadb-server", "mysql", "mysql server", "mysql database",
                               "mysql-server", "mariadb database"],
        ["mariadb-server"], ["mariadb"], ["3306/tcp"], note="MariaDB, Debian's MySQL"),
    _sw("redis", "Redis", ["redis", "redis server", "redis-server"], [("redis-server", "valkey-server")],
        ["redis-server"], ["6379/tcp"]),
    _sw("memcached", "memcached", ["memcached", "memcache"], ["memcached"], ["memcached"], ["11211/tcp"]),
    _sw("rabbitmq", "RabbitMQ", ["rabbitmq", "rabbit mq", "rabbitmq server"], ["rabbitmq-server"], ["rabbitmq-server"], ["5672/tcp"]),
    _sw("mosquitto", "Mosquitto MQTT broker", ["mosquitto", "mqtt", "mqtt broker"], ["mosquitto"], ["mosquitto"], ["1883/tcp"]),
    _sw("sqlite", "SQLite", ["sqlite", "sqlite3"], ["sqlite3"]),
    _sw("python", "Python 3", ["python", "python3", "python 3", "python interpreter"], ["python3"]),
    _sw("pip", "pip", ["pip", "pip3", "python pip"], ["python3-pip"], requires=["python"]),
    _sw("venv", "Python venv", ["venv", "virtualenv", "python venv"], ["python3-venv"], requires=["python"]),
    _sw("node", "Node.js with npm", ["node", "nodejs", "node.js", "node js"], ["nodejs", "npm"]),
    _sw("npm", "npm", ["npm"], ["npm"]),
    _sw("go", "Go", ["golang", "go compiler", "go language", "golang-go"], ["golang-go"]),
    _sw("rust", "Rust with cargo", ["rust", "rustc", "cargo", "rust compiler"], ["rustc", "cargo"]),
    _sw("java", "Java runtime", ["java", "jre", "java runtime", "openjdk"], ["default-jre-headless"]),
    _sw("jdk", "Java development kit", ["jdk", "java jdk", "java development kit"], ["default-jdk-headless"]),
    _sw("php", "PHP", ["php"], ["php-fpm"], ["php-fpm"]),
    _sw("ruby", "Ruby", ["ruby"], ["ruby"]),
    _sw("perl", "Perl", ["perl"], ["perl"]),
    _sw("build", "build tools", ["build tools", "build-essential", "build essentials", "build essential", "compiler",
                                 "compilers", "gcc", "c compiler", "toolchain"], ["build-essential"]),
    _sw("git", "git", ["git"], ["git"]),
    _sw("curl", "curl", ["curl"], ["curl"]),
    _sw("wget", "wget", ["wget"], ["wget"]),
    _sw("vim", "vim", ["vim"], ["vim"]),
    _sw("neovim", "Neovim", ["neovim", "nvim"], ["neovim"]),
    _sw("nano", "nano", ["nano"], ["nano"]),
    _sw("emacs", "Emacs", ["emacs"], ["emacs-nox"]),
    _sw("htop", "htop", ["htop"], ["htop"]),
    _sw("btop", "btop", ["btop"], ["btop"]),
    _sw("tmux", "tmux", ["tmux"], ["tmux"]),
    _sw("jq", "jq", ["jq"], ["jq"]),
    _sw("rsync", "rsync", ["rsync"], ["rsync"]),
    _sw("unzip", "unzip", ["unzip"], ["unzip"]),
    _sw("zip", "zip", ["zip"], ["zip"]),
    _sw("tree", "tree", ["tree"], ["tree"]),
    _sw("ncdu", "ncdu", ["ncdu"], ["ncdu"]),
    _sw("dnsutils", "DNS tools (dig)", ["dig", "dnsutils", "dns tools", "nslookup"], [("bind9-dnsutils", "dnsutils")]),
    _sw("nettools", "net-tools", ["net-tools", "ifconfig", "netstat"], ["net-tools"]),
    _sw("tcpdump", "tcpdump", ["tcpdump"], ["tcpdump"]),
    _sw("nmap", "nmap", ["nmap"], ["nmap"]),
    _sw("zsh", "zsh", ["zsh", "z shell"], ["zsh"]),
    _sw("fish", "fish", ["fish", "fish shell"], ["fish"]),
    _sw("fail2ban", "fail2ban", ["fail2ban", "fail 2 ban"], ["fail2ban"], ["fail2ban"]),
    _sw("certbot", "certbot", ["certbot", "letsencrypt", "let's encrypt", "lets encrypt"], ["certbot"]),
    _sw("node-exporter", "Prometheus node exporter", ["node exporter", "node-exporter", "prometheus node exporter"],
        ["prometheus-node-exporter"], ["prometheus-node-exporter"], ["9100/tcp"]),
    _sw("prometheus", "Prometheus", ["prometheus"], ["prometheus"], ["prometheus"], ["9090/tcp"]),
    _sw("wireguard", "WireGuard", ["wireguard", "wire guard"], ["wireguard-tools"], ports=["51820/udp"]),
    _sw("openvpn", "OpenVPN", ["openvpn", "open vpn", "vpn"], ["openvpn"], ports=["1194/udp"]),
    _sw("samba", "Samba", ["samba", "smb", "windows file sharing", "file sharing"], ["samba"], ["smbd"], ["445/tcp"]),
    _sw("nfs", "NFS server", ["nfs", "nfs server", "nfs-kernel-server"], ["nfs-kernel-server"], ["nfs-server"], ["2049/tcp"]),
    _sw("bind", "BIND DNS server", ["bind", "bind9", "dns server"], ["bind9"], ["named"], ["53/udp", "53/tcp"]),
    _sw("dnsmasq", "dnsmasq", ["dnsmasq"], ["dnsmasq"], ["dnsmasq"], ["53/udp", "53/tcp"]),
    _sw("postfix", "Postfix mail server", ["postfix", "mail server", "smtp server", "mta"], ["postfix"], ["postfix"], ["25/tcp"]),
    _sw("dovecot", "Dovecot IMAP server", ["dovecot", "imap server"], ["dovecot-imapd"], ["dovecot"], ["143/tcp", "993/tcp"]),
    _sw("chrony", "chrony (NTP)", ["chrony", "ntp", "time sync", "ntpd"], ["chrony"], ["chrony"]),
    _sw("cron", "cron", ["cron", "crontab"], ["cron"], ["cron"]),
    _sw("unattended-upgrades", "automatic security updates",
        ["unattended-upgrades", "unattended upgrades", "automatic updates", "auto updates", "automatic security updates",
         "security updates"], ["unattended-upgrades"]),
    _sw("cockpit", "Cockpit", ["cockpit"], ["cockpit"], ["cockpit.socket"], ["9090/tcp"]),
    _sw("tomcat", "Tomcat", ["tomcat"], [("tomcat10", "tomcat11")], [], ["8080/tcp"]),
    _sw("squid", "Squid proxy", ["squid", "proxy server", "http proxy"], ["squid"], ["squid"], ["3128/tcp"]),
    _sw("vsftpd", "FTP server (vsftpd)", ["vsftpd", "ftp server", "ftp"], ["vsftpd"], ["vsftpd"], ["21/tcp"]),
    _sw("ansible", "Ansible", ["ansible"], ["ansible"]),
    _sw("kubectl", "kubectl", ["kubectl", "kubernetes client"], ["kubernetes-client"]),
    _sw("containerd", "containerd", ["containerd"], ["containerd"], ["containerd"]),
    _sw("buildah", "Buildah", ["buildah"], ["buildah"]),
    _sw("qemu-guest-agent", "QEMU guest agent", ["qemu guest agent", "qemu-guest-agent", "guest agent"],
        ["qemu-guest-agent"], ["qemu-guest-agent"]),
    _sw("network-manager", "NetworkManager", ["network manager", "networkmanager", "network-manager"],
        ["network-manager"], ["NetworkManager"]),
    _sw("syncthing", "Syncthing", ["syncthing"], ["syncthing"]),
    _sw("screen", "GNU screen", ["screen", "gnu screen"], ["screen"]),
    _sw("sudo", "sudo", ["sudo"], ["sudo"]),
    _sw("django", "Django", ["django"], ["python3-django"], requires=["python"]),
    _sw("flask", "Flask", ["flask"], ["python3-flask"], requires=["python"]),
    _sw("wordpress", "WordPress", ["wordpress"], ["wordpress"]),
)

# Ports that stay internal unless someone opens them by name: databases, caches, brokers, metrics.
PRIVATE = {"postgresql", "database", "mariadb", "redis", "memcached", "rabbitmq", "mosquitto", "node-exporter",
           "prometheus", "cockpit", "squid", "nfs", "samba", "tomcat"}
# Software of one kind: "use apache instead" replaces whichever of its kind is installed.
KINDS = {
    "web": {"nginx", "apache2", "caddy", "lighttpd"},
    "database": {"postgresql", "mariadb-server", "default-mysql-server"},
    "containers": {"docker.io", "podman"},
    "editor": {"vim", "nano", "emacs-nox", "neovim"},
}

# Well-known software that Debian's archive does not carry: refused with the reason, not guessed at.
UNAVAILABLE: dict[str, str] = {
    "mongodb": "MongoDB is not in Debian's archive (license); PostgreSQL or Redis are",
    "mongo": "MongoDB is not in Debian's archive (license); PostgreSQL or Redis are",
    "grafana": "Grafana is not in Debian's archive; Prometheus is",
    "elasticsearch": "Elasticsearch is not in Debian's archive",
    "kubernetes": "Kubernetes itself is not in Debian's archive; kubectl (kubernetes-client) is",
    "k8s": "Kubernetes itself is not in Debian's archive; kubectl (kubernetes-client) is",
    "k3s": "k3s is not in Debian's archive",
    "jenkins": "Jenkins is not in Debian's archive",
    "gitlab": "GitLab is not in Debian's archive",
    "terraform": "Terraform is not in Debian's archive",
    "vscode": "VS Code is not in Debian's archive",
    "chrome": "Google Chrome is not in Debian's archive; chromium is",
    "tailscale": "Tailscale is not in Debian's archive; WireGuard is",
    "traefik": "Traefik is not in Debian's archive; nginx, Caddy and HAProxy are",
    "minio": "MinIO is not in Debian's archive",
    "portainer": "Portainer is not in Debian's archive; Docker and Podman are",
    "laravel": "Laravel is not in Debian's archive; PHP and Composer (composer) are",
    "react": "React is an npm library, not a Debian package; Node.js (nodejs, npm) is",
    "angular": "Angular is an npm library, not a Debian package; Node.js (nodejs, npm) is",
    "nextcloud": "Nextcloud is not in Debian's archive",
    "plex": "Plex is not in Debian's archive",
    "vault": "HashiCorp Vault is not in Debian's archive",
    "consul": "HashiCorp Consul is not in Debian's archive",
    "nomad": "HashiCorp Nomad is not in Debian's archive",
}

# Roles and vague requests come from roles.toml; their phrases win over single programs ("mail server").
ROLE_SOFTWARE: tuple[Software, ...] = tuple(
    Software("role:" + r.key, r.label, r.phrases, r.packages, r.services, r.ports, note=r.note, role=r.key)
    for r in ROLES.values()) + tuple(Software("ask:" + a.key, a.question, a.phrases, (), ask=a.key) for a in ASKS.values())
BY_KEY: dict[str, Software] = {s.key: s for s in (*ROLE_SOFTWARE, *SOFTWARE)}
ALIASES: dict[str, Software] = {}
for _s in (*ROLE_SOFTWARE, *SOFTWARE):
    for _a in _s.aliases:
        ALIASES.setdefault(_a, _s)
# Longest first, so "docker compose" wins over "docker" and "web server" over "server".
ALIAS_PHRASES: list[str] = sorted(ALIASES, key=lambda a: (-len(a.split()), -len(a), a))

# package -> what it runs / serves, for any slot alternative (used when packages are removed or added by name)
PACKAGE_SERVICES: dict[str, tuple[str, ...]] = {}
PACKAGE_PORTS: dict[str, tuple[str, ...]] = {}
PUBLIC_PORTS: dict[str, tuple[str, ...]] = {}
PACKAGE_SOFTWARE: dict[str, Software] = {}
for _s in SOFTWARE:
    for _slot in _s.packages:
        for _p in _slot:
            PACKAGE_SOFTWARE.setdefault(_p, _s)
            if _s.services and len(_s.packages) == 1:
                PACKAGE_SERVICES.setdefault(_p, _s.services)
            if _s.ports and len(_s.packages) == 1:
                PACKAGE_PORTS.setdefault(_p, _s.ports)
                if _s.key not in PRIVATE:
                    PUBLIC_PORTS.setdefault(_p, _s.ports)
# Services of packages added by their real names that have no catalog entry of their own.
PACKAGE_SERVICES.update({
    "openssh-server": ("ssh",), "docker.io": ("docker",), "apache2": ("apache2",), "postgresql": ("postgresql",),
    "default-mysql-server": ("mariadb",), "valkey-server": ("valkey-server",), "tomcat10": ("tomcat10",),
    "tomcat11": ("tomcat11",), "nodejs": (),
})
PACKAGE_PORTS.update({"default-mysql-server": ("3306/tcp",), "tomcat10": ("8080/tcp",), "tomcat11": ("8080/tcp",),
                      "apache2": ("80/tcp", "443/tcp"), "nginx": ("80/tcp", "443/tcp")})
PUBLIC_PORTS.update({"apache2": ("80/tcp", "443/tcp"), "nginx": ("80/tcp", "443/tcp")})

# service names people use -> systemd unit as Debian ships it
SERVICE_ALIASES: dict[str, str] = {
    "sshd": "ssh", "openssh": "ssh", "openssh-server": "ssh", "apache": "apache2", "httpd": "apache2",
    "postgres": "postgresql", "mysql": "mariadb", "mysqld": "mariadb", "redis": "redis-server",
    "php": "php-fpm", "docker.io": "docker", "bind9": "named", "samba": "smbd", "ntp": "chrony",
}


def resolve_packages(software: Software, index) -> list[str]:
    """The release's package names for a catalog entry (first alternative the index knows)."""
    names = []
    for slot in software.packages:
        chosen = slot[0]
        if index is not None:
            for alt in slot:
                if index.exists(alt):
                    chosen = alt
                    break
        names.append(chosen)
    return names


def service_for(word: str) -> str:
    """'ssh' -> 'ssh', 'postgres' -> 'postgresql', 'nginx' -> 'nginx', 'redis' -> 'redis-server'."""
    word = word.lower()
    if word in SERVICE_ALIASES:
        return SERVICE_ALIASES[word]
    sw = ALIASES.get(word)
    if sw and sw.services and not sw.role:  # a role's first service is not the role's name ("kiosk")
        return sw.services[0]
    if word in PACKAGE_SERVICES and PACKAGE_SERVICES[word]:
        return PACKAGE_SERVICES[word][0]
    return word
