"""What the assistant says to a request it cannot do or does not understand: why, and what is near.

Requests outside what Kiln can build (another operating system, another architecture, deploying
to a cloud, Secure Boot, other disk formats) are refused with the reason and the closest thing it
can do. A request it does not understand is matched, word by word (exactly or by a close spelling),
against the role catalog (phrases, labels and `related` words of roles.toml), the settings it knows
and the software catalog, and the reply proposes the closest few: the catalog, not the package
index, whose 60,000 names make fuzzy matches noisy and slow.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from . import catalog
from .answers import CAPABILITIES
from .roles import ASKS, ROLES
from .wording import human_list

# ---- requests Kiln cannot do -----------------------------------------------------------------------

_FORMATS = "ISO, qcow2, a rootfs tarball or an OCI image"
OUT_OF_SCOPE: tuple[tuple[re.Pattern, str], ...] = tuple((re.compile(p), reply) for p, reply in (
    (r"\b(?P<what>arm|arm32|arm64|armhf|armel|armv[678]\w*|aarch64|raspberry\s*pi|risc-?v|riscv64|i386|i686|32[- ]?bit|"
     r"ppc64(?:el|le)?|powerpc|s390x|mips\w*|apple\s+silicon)\b",
     "Kiln builds amd64 (x86-64) images only: the engine bootstraps amd64 Debian and tests every image in an x86 "
     "virtual machine, so it cannot make an image for {what}. Nearby: the same recipe as a qcow2 disk runs on any x86 "
     "hypervisor, and as an OCI image on any amd64 container host."),
    (r"(?:^|\b(?:install|use|run|running|switch\s+to|based\s+on|base\s+it\s+on|make\s+it|build|want|need|give\s+me|"
     r"put)(?:\s+(?:a|an|the|me|it|us|on|just|only))*\s+)(?P<what>windows(?:\s+(?:server|1[01]|\d{4}))?|mac\s*os(?:\s*x)?|"
     r"osx|freebsd|openbsd|netbsd|android|chrome\s*os)\b(?!\s+(?:clients?|machines?|pcs?|computers?|laptops?|users?|"
     r"shares?|share|file|files|sharing|network|domain|apps?|programs?|software|games?|updates?))",
     "Kiln builds Debian Linux images only, so it cannot install {what}. Nearby: Samba serves files to Windows "
     "and Mac machines (\"a file share for the office\"), and Wine runs many Windows programs (\"add wine\")."),
    (r"\b(?:deploy|upload|push|publish|ship|launch|provision|run|put)\b.{0,30}\b(?P<what>aws|amazon|ec2|azure|gcp|"
     r"google\s+cloud|digital\s*ocean|hetzner|linode|vultr|vmware|esxi|vsphere|proxmox|openstack|the\s+cloud|"
     r"docker\s+hub|ghcr|quay)\b",
     "Kiln builds images; it does not upload or deploy them, so it cannot put this on {what}. Nearby: as a qcow2 "
     "disk (\"make it a qcow2 disk\") it imports into most hypervisors and clouds with their own import tools, "
     "and as an OCI image (\"make it a container image\") it can be pushed to a registry with skopeo after download."),
    (r"\b(?P<what>vmdk|vhdx?|ova|ovf|vdi)\b|\ban\s+(?P<ami>ami)\b|\b(?P<ami2>ami)\s+(?:image|format)\b",
     "Kiln writes " + _FORMATS + " only, so it cannot write {what}. Nearby: a qcow2 disk (\"make it a qcow2 disk\") converts with "
     "`qemu-img convert -O vmdk` (or vpc for VHD, vdi for VirtualBox) after download."),
    (r"\bsecure\s*boot\b",
     "Kiln's images are not signed for Secure Boot, so they cannot boot with it on. Nearby: the ISO and the qcow2 "
     "disk boot on BIOS and on UEFI with Secure Boot off."),
    (r"\b(?:e-?mail|notify|ping|text|message|slack)\s+me\b|\bsend\s+(?:me|us)\s+(?:an?\s+)?(?:e-?mail|message|text|"
     r"notification)|\bnotif(?:y|ication)s?\b.{0,30}\bbuild",
     "I cannot send notifications: I only change the recipe. Nearby: the build page follows a build live, and the "
     "builds API reports its status (GET /builds/{{id}}/status)."),
    (r"^(?:build|boot|start|launch|run)\s+(?:it|this|the\s+image|the\s+build|a\s+build)(?:\s+now)?$|"
     r"^(?:start|kick\s+off|trigger|run)\s+(?:a\s+|the\s+)?build(?:\s+now)?$",
     "I do not start builds: I only change the recipe. Nearby: start one with the Build button (or POST /builds "
     "with this conversation's id); its tests boot the image."),
))


def out_of_scope(text: str) -> str | None:
    """The reason (with what is near) when the clause asks for something Kiln cannot do, else None."""
    for pattern, reply in OUT_OF_SCOPE:
        m = pattern.search(text)
        if m:
            what = next((g for g in ("what", "ami", "ami2") if g in pattern.groupindex and m.group(g)), None)
            return reply.format(what=_name(m.group(what)) if what else "")
    return None


_NAMES = {"arm": "ARM", "arm64": "arm64", "aarch64": "arm64 (aarch64)", "armhf": "armhf", "raspberry pi": "Raspberry Pi",
          "risc-v": "RISC-V", "riscv64": "RISC-V", "32-bit": "32-bit", "32 bit": "32-bit", "windows": "Windows",
          "macos": "macOS", "mac os": "macOS", "osx": "macOS", "aws": "AWS", "azure": "Azure", "gcp": "Google Cloud",
          "ami": "an AMI", "vmware": "VMware", "esxi": "VMware ESXi", "ec2": "AWS EC2", "the cloud": "a cloud", "proxmox": "Proxmox"}


def _name(word: str) -> str:
    word = re.sub(r"\s+", " ", word.lower())
    if word in _NAMES:
        return _NAMES[word]
    return word.upper() if len(word) <= 4 else word.title()


# ---- the closest things it can do ------------------------------------------------------------------

@dataclass(frozen=True)
class Near:
    what: str       # what it is, in words
    example: str    # how to ask for it
    words: frozenset[str]


# Settings and questions the planner understands, with the words people use around them.
_INTENTS = (
    ("SSH hardening", "no root login over ssh", "ssh sshd root login password passwords harden hardening secure "
     "security keys lock lockdown"),
    ("the firewall", "turn on the firewall and only allow ssh", "firewall port ports open block allow secure "
     "security protect protection closed"),
    ("automatic security updates", "add automatic security updates", "updates update security patches patch "
     "upgrades upgrade automatic unattended"),
    ("a scheduled job", "run my backup script every night", "backup backups cron schedule scheduled nightly daily "
     "weekly job jobs script task tasks timer periodic periodically"),
    ("log rotation", "rotate logs daily", "logs log logging rotate rotation journal journald retention"),
    ("a swap file", "add a 2G swap file", "swap memory ram"),
    ("kernel settings", "set vm.swappiness to 10", "sysctl kernel tuning tune parameter parameters performance "
     "faster speed fast optimize optimise"),
    ("a static address", "static ip 192.168.1.50/24 gateway 192.168.1.1", "ip address static network networking "
     "gateway interface netmask subnet"),
    ("time synchronisation", "use ntp server ntp.example.com", "time ntp clock sync synchronize synchronise"),
    ("sudo rules", "let the deploy user restart nginx without a password", "sudo sudoers root admin privileges "
     "permission permissions restart"),
    ("users", "create user alice in the sudo group", "user users account accounts people person login team"),
    ("the image size", "how big will it be?", "size small smaller big bigger large space disk shrink tiny "
     "lightweight minimal"),
    ("the Debian release", "switch to bookworm", "release version debian upgrade older newer stable"),
    ("the output format", "make it a qcow2 disk", "format disk vm virtual machine iso usb stick container "
     "tarball image kvm qemu"),
    ("the hostname", "set the hostname to web01", "hostname name called"),
    ("language and region", "timezone Europe/Berlin", "timezone zone keyboard layout language locale region"),
    ("a file in the image", "create /etc/motd with content 'hello'", "file files config configuration content "
     "motd banner"),
    ("a test", "make sure nginx answers on http://localhost/", "test tests check checks verify works working"),
    ("undo", "undo", "undo revert back history previous mistake"),
)
# Words too common to point anywhere ("a minecraft server" is not about every server role).
_GENERIC = set("""a an the and or but of to in on at for with from by as into onto about this that these those it its
    is are be been was were will would could should can may might must do does did done i me my we us our you your
    he she they them their some any all every each no not so too very just really also then than there here what
    which who how when where why please thanks hi hello hey ok okay yes yeah want wants need needs like would
    server servers service services box machine host setup set up install add make made run running use using
    configure thing things stuff system image something new build get give let have has had good simple basic
    one two few lot lots bit kind sort way""".split())


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9][a-z0-9+.'-]*", text.lower()) if w not in _GENERIC and len(w) > 1}


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _catalog() -> tuple[Near, ...]:
    entries: list[Near] = []
    for role in ROLES.values():
        words = _words(" ".join(role.phrases) + " " + re.sub(r"[(),/]", " ", role.label)) | set(role.related)
        entries.append(Near(role.label, _article(role.phrases[0]), frozenset(words)))
    for ask in ASKS.values():
        choices = [catalog.BY_KEY.get(c) or catalog.BY_KEY.get("role:" + c) for c in ask.choices]
        labels = [c.label for c in choices if c]
        entries.append(Near(f"{ask.phrases[0]} ({human_list(labels)})", "add " + _article(ask.phrases[0]),
                            frozenset(_words(" ".join(ask.phrases)) | set(ask.related))))
    for what, example, words in _INTENTS:
        entries.append(Near(what, example, frozenset(words.split())))
    for sw in catalog.SOFTWARE:
        entries.append(Near(sw.label, "add " + sw.aliases[0], frozenset(_words(" ".join(sw.aliases)))))
    return tuple(entries)


CATALOG = _catalog()
_BY_WORD: dict[str, list[int]] = {}
for _i, _e in enumerate(CATALOG):
    for _w in _e.words:
        _BY_WORD.setdefault(_w, []).append(_i)
_KEYWORDS = sorted(_BY_WORD)


def nearby(text: str, limit: int = 3) -> list[Near]:
    """The catalog entries closest to what `text` says: exact words count 1, close spellings their likeness."""
    scores: dict[int, float] = {}
    for w in _words(text):
        hits: dict[int, float] = {i: 1.0 for i in _BY_WORD.get(w, ())}
        if not hits and len(w) >= 5:
            stem = w[:-1] if w.endswith("s") else w
            for k in difflib.get_close_matches(stem, _KEYWORDS, n=3, cutoff=0.84):
                for i in _BY_WORD[k]:
                    hits[i] = max(hits.get(i, 0), difflib.SequenceMatcher(None, stem, k).ratio())
        for i, score in hits.items():
            scores[i] = scores.get(i, 0) + score
    ranked = sorted(scores, key=lambda i: (-scores[i], i))
    return [CATALOG[i] for i in ranked[:limit]]


_GREETING = re.compile(r"^(?:hi|hello|hey|hallo|good\s+(?:morning|afternoon|evening|day)|thanks|thank\s+you|ok(?:ay)?|"
                       r"cool|great|nice)(?:\s+there)?[\s!.,]*$")


def not_understood(message: str, unknown: list[str], release: str) -> str:
    """Why a message was not understood, and what is near it (never the list of everything alone).

    A greeting is not a request: it gets the list of what the assistant understands."""
    if _GREETING.match(message.strip().lower()):
        return "Hello! Tell me what the server should have. " + CAPABILITIES
    words = [w for w in dict.fromkeys(unknown) if w not in _GENERIC] or sorted(_words(message))
    named = human_list(['"' + w + '"' for w in words[:4]])
    why = ((f"I did not understand that: {named} is not a package in Debian {release}, a server role or a setting "
            "I know." if len(words) == 1 else f"I did not understand that: {named} are not packages in Debian "
            f"{release}, server roles or settings I know.") if words else "I did not understand that.")
    near = nearby(message)
    if near:
        options = "; ".join(f"{n.what} (\"{n.example}\")" for n in near)
        return f"{why} The closest things I can do: {options}. Say \"help\" for everything I understand."
    return (f"{why} I change the recipe: packages by name (\"add htop\"), server roles (\"a web server\", "
            "\"a mail relay\"), settings (\"no root login over ssh\") and the image itself (\"make it a qcow2 disk\"), "
            "and I answer questions (\"how big will it be?\"). Say \"help\" for everything I understand.")
