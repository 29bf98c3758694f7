"""Words for the recipe's settings: releases, formats, timezones, locales, keyboards, filler words."""
from __future__ import annotations

import difflib
import functools
import re
import zoneinfo

RELEASE_WORDS = {
    "trixie": "trixie", "bookworm": "bookworm",
    "debian 13": "trixie", "debian13": "trixie", "debian-13": "trixie",
    "debian 12": "bookworm", "debian12": "bookworm", "debian-12": "bookworm",
    "stable": "trixie", "current stable": "trixie", "latest debian": "trixie", "newest debian": "trixie",
    "oldstable": "bookworm", "old stable": "bookworm",
}
RELEASE_LABEL = {"trixie": "trixie (Debian 13)", "bookworm": "bookworm (Debian 12)"}
UNSUPPORTED_RELEASES = {
    "bullseye": "Debian 11", "buster": "Debian 10", "stretch": "Debian 9", "sid": "unstable",
    "unstable": "unstable", "forky": "Debian 14 (testing)", "testing": "testing",
    "debian 11": "Debian 11", "debian 10": "Debian 10", "debian 14": "Debian 14", "ubuntu": "Ubuntu",
}

FORMAT_LABEL = {
    "iso": "a live ISO (boots on BIOS and UEFI)",
    "qcow2": "a qcow2 virtual-machine disk",
    "oci": "an OCI container image",
    "rootfs": "a root filesystem tarball",
}
# Regexes over the lowercased clause, most specific first.
FORMAT_PATTERNS: list[tuple[str, str]] = [
    (r"\b(?:oci|container|docker|podman)[ -](?:image|archive|format)\b", "oci"),
    (r"\boci\b", "oci"),
    (r"\b(?:as|into|in|to|an?)\s+(?:a\s+)?container\b(?!s|\s+(?:host|server|box))", "oci"),
    (r"\broot\s*(?:file\s*system|fs)(?:\s+tar(?:ball)?)?\b|\brootfs\b|\btar\s*balls?\b|\btar(?:\.gz|\.zst|\.xz)?\s+(?:archive|file)\b|\bchroot\b", "rootfs"),
    (r"\b(?:on|in|for|under|inside)\s+(?:a\s+|an\s+)?(?:vm|virtual\s+machine|qemu|kvm|proxmox|virtualbox|libvirt|hypervisor)\b|"
     r"\bqcow2?\b|\bqcow\s*2\b|\b(?:vm|virtual[ -]machine|kvm|qemu|virtual|vm)\s+(?:disk|image|disk\s+image)\b|\bdisk\s+image\b", "qcow2"),
    (r"\b(?:live\s+)?iso(?:\s+image|\s+file)?\b|\blive\s+(?:image|cd|usb|system)\b|\bbootable\s+(?:usb|cd|dvd|stick)\b", "iso"),
]

LANGUAGES = {
    "english": "en_US", "american": "en_US", "us": "en_US", "british": "en_GB", "uk": "en_GB",
    "german": "de_DE", "deutsch": "de_DE", "austrian": "de_AT", "swiss": "de_CH", "french": "fr_FR",
    "spanish": "es_ES", "italian": "it_IT", "dutch": "nl_NL", "portuguese": "pt_PT", "brazilian": "pt_BR",
    "polish": "pl_PL", "swedish": "sv_SE", "norwegian": "nb_NO", "danish": "da_DK", "finnish": "fi_FI",
    "russian": "ru_RU", "ukrainian": "uk_UA", "czech": "cs_CZ", "slovak": "sk_SK", "hungarian": "hu_HU",
    "greek": "el_GR", "turkish": "tr_TR", "japanese": "ja_JP", "chinese": "zh_CN", "korean": "ko_KR",
    "belgian": "nl_BE", "canadian": "en_CA", "australian": "en_AU", "irish": "en_IE", "romanian": "ro_RO",
    "croatian": "hr_HR", "slovenian": "sl_SI", "estonian": "et_EE", "latvian": "lv_LV", "lithuanian": "lt_LT",
    "icelandic": "is_IS", "hebrew": "he_IL", "arabic": "ar_SA", "hindi": "hi_IN", "indian": "en_IN",
    "catalan": "ca_ES", "bulgarian": "bg_BG", "serbian": "sr_RS",
}
KEYBOARDS = {
    "english": "us", "american": "us", "us": "us", "usa": "us", "british": "gb", "uk": "gb", "english uk": "gb",
    "german": "de", "deutsch": "de", "austrian": "at", "swiss": "ch", "swiss german": "ch", "french": "fr",
    "spanish": "es", "italian": "it", "dutch": "nl", "portuguese": "pt", "brazilian": "br", "polish": "pl",
    "swedish": "se", "norwegian": "no", "danish": "dk", "finnish": "fi", "russian": "ru", "ukrainian": "ua",
    "czech": "cz", "slovak": "sk", "hungarian": "hu", "greek": "gr", "turkish": "tr", "japanese": "jp",
    "korean": "kr", "belgian": "be", "canadian": "ca", "irish": "ie", "romanian": "ro", "croatian": "hr",
    "slovenian": "si", "estonian": "ee", "latvian": "lv", "lithuanian": "lt", "icelandic": "is",
    "hebrew": "il", "arabic": "ara", "latin american": "latam", "bulgarian": "bg", "serbian": "rs",
    "qwertz": "de", "azerty": "fr", "qwerty": "us",
}

# Places people name that are not zone names themselves.
TIMEZONE_ALIASES = {
    "utc": "Etc/UTC", "gmt": "Etc/UTC", "zulu": "Etc/UTC", "universal": "Etc/UTC", "coordinated universal time": "Etc/UTC",
    "germany": "Europe/Berlin", "france": "Europe/Paris", "uk": "Europe/London", "england": "Europe/London",
    "britain": "Europe/London", "great britain": "Europe/London", "united kingdom": "Europe/London",
    "ireland": "Europe/Dublin", "spain": "Europe/Madrid", "italy": "Europe/Rome", "netherlands": "Europe/Amsterdam",
    "holland": "Europe/Amsterdam", "belgium": "Europe/Brussels", "switzerland": "Europe/Zurich",
    "austria": "Europe/Vienna", "poland": "Europe/Warsaw", "sweden": "Europe/Stockholm", "norway": "Europe/Oslo",
    "denmark": "Europe/Copenhagen", "finland": "Europe/Helsinki", "czechia": "Europe/Prague", "greece": "Europe/Athens",
    "turkey": "Europe/Istanbul", "ukraine": "Europe/Kyiv", "japan": "Asia/Tokyo", "india": "Asia/Kolkata",
    "china": "Asia/Shanghai", "korea": "Asia/Seoul", "south korea": "Asia/Seoul", "singapore": "Asia/Singapore",
    "israel": "Asia/Jerusalem", "new zealand": "Pacific/Auckland", "iceland": "Atlantic/Reykjavik",
    "portugal": "Europe/Lisbon", "hungary": "Europe/Budapest", "romania": "Europe/Bucharest",
    "san francisco": "America/Los_Angeles", "seattle": "America/Los_Angeles", "silicon valley": "America/Los_Angeles",
    "washington": "America/New_York", "boston": "America/New_York", "miami": "America/New_York",
    "atlanta": "America/New_York", "dallas": "America/Chicago", "austin": "America/Chicago",
    "houston": "America/Chicago", "munich": "Europe/Berlin", "hamburg": "Europe/Berlin", "frankfurt": "Europe/Berlin",
    "cologne": "Europe/Berlin", "geneva": "Europe/Zurich", "barcelona": "Europe/Madrid", "milan": "Europe/Rome",
    "mumbai": "Asia/Kolkata", "bangalore": "Asia/Kolkata", "delhi": "Asia/Kolkata", "new delhi": "Asia/Kolkata",
    "beijing": "Asia/Shanghai", "sydney australia": "Australia/Sydney", "osaka": "Asia/Tokyo",
    "eastern": "America/New_York", "eastern time": "America/New_York", "est": "America/New_York", "edt": "America/New_York",
    "central": "America/Chicago", "central time": "America/Chicago", "cst": "America/Chicago",
    "mountain": "America/Denver", "mountain time": "America/Denver", "mst": "America/Denver",
    "pacific": "America/Los_Angeles", "pacific time": "America/Los_Angeles", "pst": "America/Los_Angeles",
    "pdt": "America/Los_Angeles", "cet": "Europe/Berlin", "cest": "Europe/Berlin", "central european": "Europe/Berlin",
    "bst": "Europe/London", "ist": "Asia/Kolkata", "jst": "Asia/Tokyo", "aest": "Australia/Sydney",
    "kiev": "Europe/Kyiv",
}
_REGIONS = ("Africa/", "America/", "Antarctica/", "Asia/", "Atlantic/", "Australia/", "Europe/", "Indian/", "Pacific/")


@functools.cache
def _zones() -> dict[str, str]:
    return {z.lower(): z for z in zoneinfo.available_timezones()}


@functools.cache
def _cities() -> dict[str, list[str]]:
    cities: dict[str, list[str]] = {}
    for zone in sorted(zoneinfo.available_timezones()):
        if zone.startswith(_REGIONS):
            city = zone.rsplit("/", 1)[1].replace("_", " ").lower()
            cities.setdefault(city, []).append(zone)
    return cities


def resolve_timezone(text: str) -> tuple[str | None, list[str]]:
    """'Berlin' -> ('Europe/Berlin', []); 'america/new_york' -> canonical case; ambiguity -> (None, options)."""
    t = re.sub(r"\s+", " ", text.strip().lower().strip(".,;:!?'\""))
    if not t:
        return None, []
    zones = _zones()
    if t in TIMEZONE_ALIASES:
        return TIMEZONE_ALIASES[t], []
    if t in zones:
        return zones[t], []
    if t.replace(" ", "_") in zones:
        return zones[t.replace(" ", "_")], []
    cities = _cities()
    if t in cities:
        found = cities[t]
        return (found[0], []) if len(found) == 1 else (None, found)
    close = difflib.get_close_matches(t, list(cities) + list(TIMEZONE_ALIASES), n=1, cutoff=0.85)
    if close:
        return resolve_timezone(close[0])
    close = difflib.get_close_matches(t.replace(" ", "_"), list(zones), n=1, cutoff=0.9)
    if close:
        return zones[close[0]], []
    return None, []


def normalize_locale(text: str) -> str | None:
    """'de_de.utf8' -> 'de_DE.UTF-8'; 'german' -> 'de_DE.UTF-8'; 'C' -> 'C.UTF-8'."""
    t = text.strip().strip(".,;:!?'\"")
    low = t.lower()
    if low in LANGUAGES:
        return LANGUAGES[low] + ".UTF-8"
    if low in ("c", "c.utf-8", "c.utf8", "posix"):
        return "C.UTF-8"
    m = re.fullmatch(r"([a-z]{2,3})[_-]([a-z]{2})(?:\.(utf-?8))?", low)
    if m:
        return f"{m.group(1)}_{m.group(2).upper()}.UTF-8"
    return None


# Words that carry no software or setting meaning in these messages: never package candidates.
STOPWORDS = set("""
a an the and or but with without for of to in on at by from into onto as is are be been being was were it its it's
this that these those there here my our your their his her me we you i i'd i'm i'll id im ill us them they he she
please pls plz kindly also too then now just only really very some any all both each every other more most much
can could would should will shall may might must need needs needed want wants wanted like love prefer let lets let's
do does did done doing have has had having get got give make makes made making set setup up down out off over
put puts include includes including includ install installs installed installing add adds added adding
create creates created build builds built building provision spin spun bring configure configured
server servers machine machines box boxes host vm image images system systems instance distro distribution os
debian linux computer node? thing things stuff something anything setup new fresh basic simple small minimal
default latest recent newest current standard stable version versions package packages software tool tools
app apps application applications program programs service services daemon support supported
use using used running run runs instead rather than replace replaced swap switch change changed go ahead
hi hello hey thanks thank ok okay sure yes no not dont don't do not so well good great nice cool
that's what's which what how why when where who whom whose
some sort kind type one two three few several lot lots bit little
ready able available enabled working work works installed on top same again already still
time please. thx cheers first second also, plus along together alongside besides extra additional
e.g eg etc via inside within onto let's gonna wanna gimme
remove removes removed removing drop drops dropped dropping delete deletes deleted deleting uninstall uninstalled
uninstalling purge purged rid ditch exclude lose take away anymore longer favor favour place enable enabled
disable disabled start started stop stopped open close need needed instead also adding installing creating
setting making using switching changing replacing getting him her them apt backports repo repository
everything nothing none whole entire overall on-top top
behind before after between under above below around through across against among near beside beyond toward
towards upon fast secure safe tiny big large lightweight heavy production prod development dev
staging home lab homelab office company team project website site blog shop store api backend frontend stack
cluster worker runner agent gateway personal private public internal external local remote cheap quick robust
web-app webapp microservice microservices
going goes went gone coming look looks looking hosting hosted self-hosted selfhosted purpose general dedicated bare metal
""".replace("node?", "").split())

# Words the typo corrector may map onto (besides catalog aliases): the planner's own vocabulary.
KEYWORDS = {
    "install", "remove", "uninstall", "delete", "replace", "instead", "switch", "release", "format", "hostname",
    "timezone", "locale", "keyboard", "firewall", "port", "ports", "open", "close", "allow", "block", "user",
    "users", "group", "groups", "password", "file", "files", "content", "containing", "test", "tests", "enable",
    "disable", "service", "services", "packages", "recipe", "debian", "trixie", "bookworm", "qcow2", "rootfs",
    "container", "sudo", "layout", "language", "create", "running", "answers", "responds", "show", "what", "which",
    "list", "change", "make", "image", "package", "timezone", "hostname", "check", "ensure", "verify",
}
# Short forms people type; corrected like typos.
ABBREVIATIONS = {"usr": "user", "pkg": "package", "pkgs": "packages", "fw": "firewall", "pw": "password",
                 "pwd": "password", "cfg": "config", "tmz": "timezone", "kb": "keyboard", "hn": "hostname"}
