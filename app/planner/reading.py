"""Shared machinery of the built-in planner: clauses, the planning context, typo correction.

A Clause keeps a lowercased copy of its text and the original side by side (same length), and
extractors blank out the words they use, so what is left over names software."""
from __future__ import annotations

import re
from typing import Any, Callable

from . import catalog, vocab
from .operations import apply_operations
from .text import Protected, closest, lower_keep_length


B = r"(?<![\w.+§-])"   # word start that does not split package names like python3-docker
E = r"(?![\w+§-]|\.\w)"

# ---- vocabulary for typo correction ----------------------------------------------------------

FIREWALL_SERVICES: dict[str, list[str]] = {
    "ssh": ["22/tcp"], "http": ["80/tcp"], "https": ["443/tcp"], "web": ["80/tcp", "443/tcp"], "dns": ["53/udp", "53/tcp"],
    "smtp": ["25/tcp"], "submission": ["587/tcp"], "imap": ["143/tcp"], "imaps": ["993/tcp"], "pop3": ["110/tcp"],
    "ftp": ["21/tcp"], "ntp": ["123/udp"], "mysql": ["3306/tcp"], "mariadb": ["3306/tcp"], "postgres": ["5432/tcp"],
    "postgresql": ["5432/tcp"], "redis": ["6379/tcp"], "mqtt": ["1883/tcp"], "rdp": ["3389/tcp"], "vnc": ["5900/tcp"],
    "wireguard": ["51820/udp"], "openvpn": ["1194/udp"], "ldap": ["389/tcp"], "ldaps": ["636/tcp"], "snmp": ["161/udp"],
    "syslog": ["514/udp"], "nfs": ["2049/tcp"], "smb": ["445/tcp"], "samba": ["445/tcp"], "dhcp": ["67/udp"],
    "prometheus": ["9090/tcp"], "cockpit": ["9090/tcp"], "node-exporter": ["9100/tcp"],
}

TYPO_TARGETS = sorted({a for a in catalog.ALIASES if " " not in a and len(a) >= 3 and not re.search(r"[\d.]", a)}
                  | vocab.KEYWORDS | {"trixie", "bookworm", "debian", "qcow2", "rootfs", "oci", "iso"}
                  | set(catalog.UNAVAILABLE) | {w for w in vocab.LANGUAGES if len(w) > 3} | set(FIREWALL_SERVICES)
                  | {w for sw in catalog.ROLE_SOFTWARE for a in sw.aliases for w in a.split() if len(w) >= 5})
KNOWN_WORDS = (vocab.STOPWORDS | set(TYPO_TARGETS)
          | {w for phrase in catalog.ALIASES for w in phrase.split()}
          | {w for phrase in vocab.RELEASE_WORDS for w in phrase.split()}
          | {w for phrase in vocab.UNSUPPORTED_RELEASES for w in phrase.split()}
          | {w for phrase in vocab.KEYBOARDS for w in phrase.split()}
          | {w for phrase in vocab.TIMEZONE_ALIASES for w in phrase.split()}
          | set("""image disk tarball tar container live usb stick virtual qemu kvm archive format boot boots booted
                 answers answer responds respond listening listens installed enabled exists exist contains contain
                 running runs started active up reachable accessible works working succeeds passes returns status
                 code user users account accounts admin administrator sudoer sudoers superuser key keys password
                 passwords group groups member owned owner mode permissions executable content contents text saying
                 says write file files path directory folder port ports tcp udp firewall open opened close closed
                 block blocked allow allowed deny expose exposed only except nothing called named name rename call
                 hostname host time zone timezone clock locale language keyboard keymap layout release version
                 command commands script service services daemon start stop enable disable instead replace swap
                 from favor favour place test tests check checks verify ensure sure confirm assert
                 him her them his hers theirs
                 undo revert last previous change changes changed nope oops wait sorry actually meant mean scratch
                 smaller bigger lighter slimmer leaner minimal size big large kernel
                 rotate rotated rotation logs log daily weekly monthly nightly hourly night morning evening every
                 minutes hours schedule scheduled timer cron job script backup swap swappiness forwarding static
                 gateway address sync synchronize login logins passwordless password-less without reload restart
                 everything except keep only reach reaches""".split()))
VALUE_INTRO = {"hostname", "named", "called", "user", "account", "password", "group", "groups", "owner", "by",
                "name", "login", "users", "hostnames"}
# Real package names that are ordinary words: only taken as packages when asked for explicitly.
ORDINARY_WORDS = {"time", "less", "file", "patch", "make", "at", "bc", "dialog", "hello", "login", "mount", "hostname",
             "sed", "grep", "tar", "units", "ed", "sl", "fortune", "locales", "console", "keyboard", "apt", "base",
             "init", "network", "image", "disk", "user", "passwd", "menu", "open", "tree", "watch", "date", "host",
             "debian", "linux", "server", "systemd", "bash", "python", "zip", "most", "pass", "star", "links", "lynx",
             "ack", "ash", "dash", "mc", "jed", "joe", "ii", "pal", "net", "ssh", "mail", "xz", "nano", "cloud",
             "gnome", "kde", "xfce", "desktop", "pv", "wall", "finger", "bind", "tiny", "light"}
EXPLICIT_VERB = re.compile(r"\b(?:install|add|include|put|remove|drop|delete|uninstall|purge|get\s+rid\s+of|ditch)\b")

# ---- clause plumbing ---------------------------------------------------------------------------


class Clause:
    """One clause: `s` is lowercased, `orig` keeps case; both stay the same length as words are used up."""

    def __init__(self, text: str):
        self.orig = text
        self.s = lower_keep_length(text)

    def consume(self, start: int, end: int) -> None:
        self.s = self.s[:start] + " " * (end - start) + self.s[end:]
        self.orig = self.orig[:start] + " " * (end - start) + self.orig[end:]

    def take(self, pattern: str, flags: int = 0) -> list[re.Match]:
        matches = list(re.finditer(pattern, self.s, flags))
        for m in reversed(matches):
            self.consume(m.start(), m.end())
        return matches

    def search(self, pattern: str) -> re.Match | None:
        return re.search(pattern, self.s)

    def original(self, m: re.Match, group: int | str = 0) -> str:
        return self.orig[m.start(group):m.end(group)] if m.start(group) >= 0 else ""

    def words(self) -> list[str]:
        return re.findall(r"§\d+§|[a-z0-9][a-z0-9+.'_-]*[a-z0-9+]|[a-z0-9]", self.s)

    def placeholders(self, ctx: "Ctx", kind: str | None = None) -> list[tuple[re.Match, Any]]:
        out = []
        for m in re.finditer(r"§(\d+)§", self.s):
            span = ctx.protected.spans[int(m.group(1))]
            if kind is None or span.kind == kind or (kind == "quote" and span.kind == "command"):
                out.append((m, span))
        return out


class Ctx:
    def __init__(self, recipe: dict, index_for: Callable, protected: Protected, history: list[str] | None = None,
                 versions: dict[int, dict] | None = None, last_reply: str = ""):
        self.recipe = recipe
        self.history = history or []  # earlier user messages, oldest first (for "remove it")
        self.versions = versions or {}  # earlier recipe versions by number (undo, "what did you change?")
        self.last_reply = last_reply  # the assistant's previous answer (a question it asked)
        self.questions: list[str] = []  # what the planner asks back instead of guessing
        self.wants_access = False  # the message asked for access ("open", "reachable", "allow")
        self.index_for = index_for
        self.protected = protected
        self.operations: list[dict] = []
        self.lines: list[str] = []
        self.refused: list[str] = []
        self.corrections: list[tuple[str, str]] = []
        # "give him sudo" in a later message means the user added last
        self.last_user: str | None = recipe["users"][-1]["name"] if recipe.get("users") else None
        self.last_file: str | None = None
        self.ignored: list[str] = []
        self._indexes: dict[str, Any] = {}
        self._suggestions_left = 3

    def index(self):
        release = self.recipe["release"]
        if release not in self._indexes:
            try:
                self._indexes[release] = self.index_for(release)
            except Exception:  # apply_operations reports the reason when it matters
                self._indexes[release] = None
        return self._indexes[release]

    def exists(self, name: str) -> bool:
        index = self.index()
        try:
            return bool(index is not None and index.exists(name))
        except Exception:
            return False

    def apply(self, *ops: dict) -> bool:
        ok = True
        for op in ops:
            try:
                new, descriptions = apply_operations(self.recipe, [op], index_for=self.index_for,
                                                     versions=self.versions)
            except ValueError as err:
                self.refused.append(clean_error(str(err)))
                ok = False
                continue
            self.recipe = new
            self.operations.append(op)
            self.lines += descriptions
        return ok

    def suggest(self, name: str) -> list[str]:
        """Close package names; a few per message, since each search scans the whole index."""
        if self._suggestions_left <= 0 or self.index() is None:
            return []
        self._suggestions_left -= 1
        try:
            return self.index().suggest(name, 3)
        except Exception:
            return []

    def say(self, text: str) -> None:
        self.lines.append(text)

    def ask(self, question: str) -> None:
        if question not in self.questions:
            self.questions.append(question)


def clean_error(text: str) -> str:
    text = re.sub(r"^(?:add_packages|remove_packages|set|add_user|remove_user|open_ports|close_ports|set_firewall|"
                  r"add_file|remove_file|add_test|remove_tests|enable_services|disable_services|add_command|"
                  r"remove_command|remove_user_from_groups): ", "", text)
    text = text.replace("the change would make the recipe invalid: ", "")
    if text and not text.endswith((".", "?", "!")):
        text += "."
    if re.match(r"^[a-z]+(?:\[\d+\])?[.\[]", text):
        return "Not applied: " + text
    return text[0].upper() + text[1:] if text else text


# ---- typo correction ---------------------------------------------------------------------------

def plural_of_word(word: str) -> bool:
    """'containers' is the plural of a word we know, not a typo of containerd ('postgress' is a typo)."""
    return word.endswith("s") and word[:-1] in KNOWN_WORDS and word[:-1] not in catalog.ALIASES

def correct_typos(ctx: Ctx) -> None:
    tokens: list[str] = []
    users = {u["name"] for u in ctx.recipe["users"]}

    def fix(m: re.Match) -> str:
        word = m.group(0)
        low = word.lower()
        before = tokens[-2:]
        tokens.append(low)
        if re.match(r"\s+(?:to|into|in|from|out\s+of)\s+(?:the\s+)?[\w, -]*\bgroups?\b", m.string[m.end():m.end() + 60]):
            return word  # "add carol to the docker group": a user name
        if low in vocab.ABBREVIATIONS and not any(t in VALUE_INTRO for t in before):
            ctx.corrections.append((low, vocab.ABBREVIATIONS[low]))
            tokens[-1] = vocab.ABBREVIATIONS[low]
            return vocab.ABBREVIATIONS[low]
        if (low in KNOWN_WORDS or low in users or any(t in VALUE_INTRO for t in before) or re.search(r"[\d._+/-]", low)
                or len(low) < 3 or plural_of_word(low) or re.sub(r"'s$", "", low) in KNOWN_WORDS or ctx.exists(low)):
            return word
        fixed = closest(low, TYPO_TARGETS)
        if fixed is None:
            return word
        ctx.corrections.append((low, fixed))
        tokens[-1] = fixed
        return fixed

    ctx.protected.text = re.sub(r"(?<![§\w/-])[A-Za-z][A-Za-z0-9+._'-]*(?![\w§/-])", fix, ctx.protected.text)


# ---- words that steer every extractor -------------------------------------------------------------

POLITE = re.compile(
    r"^(?:(?:please|pls|plz|kindly|ok(?:ay)?|so|now|also|and|then|hey|hi|hello|great|thanks|thank\s+you|cool|"
    r"perfect|nice|alright|all\s+right|actually|oh|well|hmm|next|finally|lastly|additionally|plus|yes|yeah|"
    r"good|awesome|excellent|right)[,!.]?\s+|(?:can|could|would|will)\s+you\s+(?:please\s+)?|"
    r"i\s+(?:want|need|would\s+like|'d\s+like)\s+you\s+to\s+|(?:how|what)\s+about\s+|let's\s+|lets\s+|"
    r"go\s+ahead\s+and\s+|make\s+sure\s+(?:to|you)\s+|don't\s+forget\s+to\s+|remember\s+to\s+|also\s+)+")
QUESTION = re.compile(
    r"^(?:what|what's|whats|which|how|is|are|does|do|did|show|list|tell|display|print|where|who|why|when|"
    r"summari[sz]e|summary|overview|status|describe|help|can\s+i\s+see|let\s+me\s+see|give\s+me\s+(?:a\s+|the\s+)?(?:summary|overview|recipe))\b")
ACTION_START = re.compile(
    r"^(?:add|install|include|put|open|close|block|allow|remove|drop|delete|uninstall|set|make|change|switch|use|"
    r"create|enable|disable|give|configure|name|call|rename|replace|swap|turn|start|stop|write|run|build|upgrade|"
    r"downgrade|move|go|get|i|we|let|no)\b")
TEST_START = re.compile(
    r"^(?:(?:make\s+sure|ensure|check|verify|confirm|assert|validate|double[- ]check|test)(?:\s+(?:that|if|whether))?|"
    r"add\s+(?:a\s+|an\s+)?(?:tests?|checks?)\s*(?:that|to\s+(?:check|verify|make\s+sure)(?:\s+that)?|for|whether|if)?|"
    r"add\s+(?:a\s+|an\s+)?(?=[\w.-]+\s+(?:tests?|checks?)\b))\b\s*")
REMOVE = re.compile(
    r"\b(?:remove|removing|drop|dropping|delete|deleting|uninstall|uninstalling|purge|get\s+rid\s+of|take\s+out|"
    r"take\s+away|ditch|exclude|without|no\s+longer|don't\s+(?:need|want|install|include)|"
    r"do\s+not\s+(?:need|want|install|include)|leave\s+out|lose|no\s+more|no\s+need\s+for|unnecessary|"
    r"(?:is|are)\s+not\s+(?:needed|necessary|required|wanted)|(?:isn't|aren't)\s+(?:needed|necessary|required|wanted)|"
    r"not\s+needed)\b|^no\s+")


def is_remove(c: Clause) -> bool:
    return bool(REMOVE.search(c.s))


def list_items(text: str) -> list[str]:
    return [x for x in re.split(r"\s*(?:,|\band\b|&|\bor\b|\+|/(?!tcp|udp))\s*", text) if x and x.strip()]


NOT_NAMES = {"with", "in", "and", "named", "called", "account", "to", "for", "the", "a", "an", "that", "who", "which",
              "user", "users", "is", "has", "can", "on", "of", "into", "as", "should", "also", "access", "too"}
