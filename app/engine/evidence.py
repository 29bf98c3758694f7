"""The evidence stage: manifest, SPDX 2.3 SBOM and SHA256SUMS for what was built."""
from __future__ import annotations

import hashlib
import json
import time
import uuid
from pathlib import Path

from .fsutil import inside

SPDX_CREATOR = "Tool: kiln-engine"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def installed_packages(root: Path) -> list[dict]:
    """Every installed package from the tree's dpkg status file (no chroot needed)."""
    status = inside(root, "/var/lib/dpkg/status")
    packages = []
    for stanza in status.read_text(errors="replace").split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line and not line[0].isspace() and ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields.get("Package") and fields.get("Status", "").endswith(" installed"):
            packages.append({
                "name": fields["Package"],
                "version": fields.get("Version", ""),
                "architecture": fields.get("Architecture", ""),
                "source": fields.get("Source", fields["Package"]).split(" ")[0],
                "maintainer": fields.get("Maintainer", ""),
            })
    return sorted(packages, key=lambda p: p["name"])


def spdx_id(name: str) -> str:
    return "SPDXRef-Package-" + "".join(c if c.isalnum() or c in ".-" else "-" for c in name)


def purl(pkg: dict) -> str:
    from urllib.parse import quote
    return f"pkg:deb/debian/{pkg['name']}@{quote(pkg['version'], safe='')}?arch={pkg['architecture'] or 'all'}"


def make_sbom(recipe: dict, packages: list[dict], built_at: str, hash_: str) -> dict:
    doc_name = f"{recipe['name']}-{hash_[:12]}"
    spdx_packages = []
    for p in packages:
        supplier = f"Organization: {p['maintainer']}" if p["maintainer"] else "NOASSERTION"
        spdx_packages.append({
            "SPDXID": spdx_id(p["name"]),
            "name": p["name"],
            "versionInfo": p["version"],
            "supplier": supplier,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                              "referenceLocator": purl(p)}],
        })
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": doc_name,
        "documentNamespace": f"https://kiln.invalid/spdx/{doc_name}-{uuid.uuid4()}",
        "creationInfo": {"created": built_at, "creators": [SPDX_CREATOR]},
        "packages": spdx_packages,
        "relationships": [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                           "relatedSpdxElement": spdx_id(p["name"])} for p in packages],
    }


def write_checksums(out_dir: Path, files: list[tuple[Path, str]]) -> Path:
    """SHA256SUMS (sha256sum -c format) from (file, known sha256) pairs."""
    lines = [f"{sha}  {f.name}\n" for f, sha in files]
    target = out_dir / "SHA256SUMS"
    target.write_text("".join(lines))
    return target


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
