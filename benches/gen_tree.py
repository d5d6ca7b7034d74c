#!/usr/bin/env python3
"""A folder of many small files laid out like an apt pool, for benches/scale.sh.

    gen_tree.py DIR N                    writes N files (generation 0), plus the 1 KiB probe
    gen_tree.py DIR N --generation G     rewrites CHANGE percent of them with new bytes

Paths look like `pool/main/<l>/<pkg>/<pkg>_<version>_<arch>.deb`, about five files per package
folder, so a million files make some 200,000 folders as a Debian pool does. Every file holds
its own bytes (its path and generation, padded to 32-256 bytes), so every file is a distinct
object. The same N always gives the same paths; generation G rewrites the files whose number
is G modulo (100 / CHANGE), a different share each time, through a temp name and a rename so
that a store which hard-linked the old file keeps its bytes. The probe,
`pool/main/z/zz-probe/zz-probe_1.0_all.deb`, is 1024 bytes and never changes: the servers are
asked for it.

Plain os.open/os.write in a loop: about 30 s for a million files on an ordinary disk.
"""

import argparse
import os
import sys

WORDS = ("lib", "python3", "golang", "node", "fonts", "r-cran", "texlive", "gir1.2",
         "ruby", "php", "perl", "kde", "gnome", "xserver", "linux", "qt6")
ARCHES = ("amd64", "arm64", "all", "amd64", "arm64")
PER_PACKAGE = 5
PROBE = "pool/main/z/zz-probe/zz-probe_1.0_all.deb"


def package_name(pkg):
    word = WORDS[pkg % len(WORDS)]
    return f"{word}-{pkg * 2654435761 % 1000003:x}{pkg}"


def path_of(i):
    """The path of file number i (the same for every run)."""
    pkg, j = divmod(i, PER_PACKAGE)
    name = package_name(pkg)
    first = name[:4] if name.startswith("lib") else name[0]
    return f"pool/main/{first}/{name}/{name}_{j + 1}.{pkg % 17}-{pkg % 3 + 1}_{ARCHES[j]}.deb"


def content_of(i, path, generation):
    size = 32 + (i * 2654435761) % 225
    head = f"{generation}:{path}\n".encode()
    return (head * (size // len(head) + 1))[:size]


def write(full, data):
    fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir")
    parser.add_argument("n", type=int, help="files, the probe included")
    parser.add_argument("--generation", type=int, default=0)
    parser.add_argument("--change", type=int, default=10, help="percent rewritten per generation")
    args = parser.parse_args()
    if args.n < 2:
        sys.exit("gen_tree.py: N must be at least 2")
    if not 1 <= args.change <= 100:
        sys.exit("gen_tree.py: --change must be between 1 and 100")
    root = args.dir
    files = args.n - 1
    made = set()
    if args.generation == 0:
        probe = os.path.join(root, PROBE)
        os.makedirs(os.path.dirname(probe), exist_ok=True)
        write(probe, bytes(range(256)) * 4)
        for i in range(files):
            path = path_of(i)
            parent = path.rsplit("/", 1)[0]
            if parent not in made:
                os.makedirs(os.path.join(root, parent), exist_ok=True)
                made.add(parent)
            write(os.path.join(root, path), content_of(i, path, 0))
        print(f"{files + 1} files")
        return
    step = max(1, round(100 / args.change))
    changed = 0
    for i in range(args.generation % step, files, step):
        path = path_of(i)
        full = os.path.join(root, path)
        temp = full + ".new"
        write(temp, content_of(i, path, args.generation))
        os.rename(temp, full)
        changed += 1
    print(f"{changed} files changed")


if __name__ == "__main__":
    main()
