#!/usr/bin/env python3
"""A large apt repository, generated directly (no dpkg, no apt-ftparchive), for benches/scale.sh.

    gen_apt.py DIR --packages N --suites a,b,c [--shared 90] [--compress xz,gz]

Writes DIR/pool/main/... (N placeholder package files of a few hundred bytes; their sizes and
hashes in the indices are right, their contents are not .debs: a mirror never opens them) and
for each suite DIR/dists/<suite>/:

  main/binary-amd64/Packages.{xz,gz}   Packages listed in Release, served only compressed (as Debian)
  main/i18n/Translation-en.bz2         the long descriptions
  main/Contents-amd64.gz               three files per package
  by-hash/SHA256/<hash>                beside every index (Acquire-By-Hash: yes)
  Release                              unsigned: the caller signs it (InRelease, Release.gpg)

The suites share one pool: SHARED percent of the packages are in every suite, the rest are
split between the suites. The last line printed is `packages_bytes=<uncompressed Packages
bytes over all suites> pool_files=<N> listed=<stanzas over all suites>`.
"""

import argparse
import bz2
import gzip
import hashlib
import lzma
import os
import sys
import time

WORDS = ("lib", "python3", "golang", "node", "fonts", "r-cran", "texlive", "gir1.2",
         "ruby", "php", "perl", "kde", "gnome", "xserver", "linux", "qt6")
SECTIONS = ("libs", "python", "golang", "javascript", "fonts", "gnu-r", "tex", "introspection",
            "ruby", "php", "perl", "kde", "gnome", "x11", "kernel", "libdevel")


def package(i):
    """Name, version, architecture, section, pool path of package i."""
    word = WORDS[i % len(WORDS)]
    name = f"{word}-{i * 2654435761 % 1000003:x}{i}"
    version = f"{i % 9 + 1}.{i % 31}.{i % 7}-{i % 3 + 1}"
    arch = "all" if i % 4 == 0 else "amd64"
    first = name[:4] if name.startswith("lib") else name[0]
    path = f"pool/main/{first}/{name}/{name}_{version}_{arch}.deb"
    return name, version, arch, SECTIONS[i % len(SECTIONS)], path


def pool_file(root, i, path):
    """Writes the placeholder; returns (size, md5, sha256)."""
    size = 200 + (i * 2654435761) % 800
    head = f"{path}\n".encode()
    data = (head * (size // len(head) + 1))[:size]
    full = os.path.join(root, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return size, hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()


def stanza(i, name, version, arch, section, path, size, md5, sha256):
    short = f"benchmark package {name}"
    long_md5 = hashlib.md5(f"{short}\n".encode()).hexdigest()
    depends = ", ".join(package((i * 7 + k) % 100003)[0] for k in range(1, 1 + i % 5))
    lines = [
        f"Package: {name}",
        "Source: " + name.split("-")[0] + f"-src{i % 1000}",
        f"Version: {version}",
        f"Installed-Size: {size // 10 + 17}",
        "Maintainer: Benchmark Maintainers <bench@example.org>",
        f"Architecture: {arch}",
    ]
    if depends:
        lines.append(f"Depends: {depends}, libc6 (>= 2.36)")
    lines += [
        f"Description: {short}",
        "Homepage: https://example.org/" + name,
        f"Description-md5: {long_md5}",
        f"Section: {section}",
        "Priority: optional",
        f"Filename: {path}",
        f"Size: {size}",
        f"MD5sum: {md5}",
        f"SHA256: {sha256}",
    ]
    return "\n".join(lines) + "\n\n", f"Package: {name}\nDescription-md5: {long_md5}\nDescription-en: {short}\n This is a placeholder package\n written for a benchmark.\n\n"


def write_index(dist, rel, data, listed):
    """Writes dist/rel and its by-hash copy (a hard link); records it for Release."""
    full = os.path.join(dist, rel)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as f:
        f.write(data)
    sha = hashlib.sha256(data).hexdigest()
    by_hash = os.path.join(os.path.dirname(full), "by-hash", "SHA256")
    os.makedirs(by_hash, exist_ok=True)
    link = os.path.join(by_hash, sha)
    if not os.path.exists(link):
        os.link(full, link)
    listed.append((hashlib.md5(data).hexdigest(), sha, len(data), rel))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir")
    parser.add_argument("--packages", type=int, required=True)
    parser.add_argument("--suites", required=True, help="comma-separated suite names")
    parser.add_argument("--shared", type=int, default=90, help="percent of packages in every suite")
    parser.add_argument("--compress", default="xz,gz", help="Packages variants served: xz, gz")
    args = parser.parse_args()
    suites = [s for s in args.suites.split(",") if s]
    compress = [c for c in args.compress.split(",") if c]
    if args.packages < 1 or not suites or not 0 <= args.shared <= 100:
        sys.exit("gen_apt.py: need --packages >= 1, some --suites, --shared between 0 and 100")
    if not compress or any(c not in ("xz", "gz") for c in compress):
        sys.exit("gen_apt.py: --compress takes xz and/or gz")
    root = args.dir
    packages = {s: [] for s in suites}
    translations = {s: [] for s in suites}
    contents = {s: [] for s in suites}
    shared_every = args.shared / 100
    for i in range(args.packages):
        name, version, arch, section, path = package(i)
        size, md5, sha256 = pool_file(root, i, path)
        text, translation = stanza(i, name, version, arch, section, path, size, md5, sha256)
        # The first SHARED percent of every hundred are in every suite, the rest in one.
        if (i % 100) < args.shared or shared_every >= 1:
            carriers = suites
        else:
            carriers = [suites[i % len(suites)]]
        for s in carriers:
            packages[s].append(text)
            translations[s].append(translation)
            for f in ("usr/share/doc/{0}/copyright", "usr/share/doc/{0}/changelog.Debian.gz",
                      "usr/lib/{0}/{0}.so"):
                contents[s].append(f"{f.format(name):<60} {section}/{name}\n")
    total = 0
    listed_total = 0
    now = time.time()
    for s in suites:
        dist = os.path.join(root, "dists", s)
        listed = []
        text = "".join(packages[s]).encode()
        total += len(text)
        listed_total += len(packages[s])
        # Listed, not served: apt and Debian do the same for the uncompressed variant.
        listed.append((hashlib.md5(text).hexdigest(), hashlib.sha256(text).hexdigest(), len(text),
                       "main/binary-amd64/Packages"))
        if "xz" in compress:
            write_index(dist, "main/binary-amd64/Packages.xz", lzma.compress(text, preset=0), listed)
        if "gz" in compress:
            write_index(dist, "main/binary-amd64/Packages.gz", gzip.compress(text, 1, mtime=0), listed)
        write_index(dist, "main/i18n/Translation-en.bz2",
                    bz2.compress("".join(translations[s]).encode(), 1), listed)
        contents[s].sort()
        write_index(dist, "main/Contents-amd64.gz",
                    gzip.compress("".join(contents[s]).encode(), 1, mtime=0), listed)
        date = time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime(now))
        until = time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime(now + 7 * 86400))
        release = [f"Origin: Bench", "Label: Bench", f"Suite: {s}", f"Codename: {s}",
                   f"Date: {date}", f"Valid-Until: {until}", "Acquire-By-Hash: yes",
                   "Architectures: amd64", "Components: main",
                   "Description: generated by benches/gen_apt.py", "MD5Sum:"]
        release += [f" {m} {n:>10} {r}" for m, _, n, r in listed]
        release.append("SHA256:")
        release += [f" {h} {n:>10} {r}" for _, h, n, r in listed]
        with open(os.path.join(dist, "Release"), "w") as f:
            f.write("\n".join(release) + "\n")
    print(f"packages_bytes={total} pool_files={args.packages} listed={listed_total}")


if __name__ == "__main__":
    main()
