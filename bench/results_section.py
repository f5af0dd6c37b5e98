#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""results_section.py: replaces one bench's section of bench/results.md and leaves the rest alone.

    bench/results_section.py NAME [FILE] < SECTION.md      # FILE: bench/results.md by default

bench/results.md holds the results of several benchmarks, each written by its own script (bench/
run.sh, bench/vm/run.sh, ...). A section is everything between the lines

    <!-- BEGIN NAME -->
    <!-- END NAME -->

NAME is the bench's own: letters, digits, '-', '_', '.'. The text on standard input replaces what
is between the two lines; if FILE has no such section, it is appended at the end; if FILE does not
exist, it is created with a short preamble first. Everything else in FILE is kept byte for byte.
The new file replaces the old one atomically (a temporary file renamed over it), so a failure
leaves the old file as it was. Exit status 0; 1 if FILE has a broken section (a BEGIN without its
END, a section twice, markers out of order) or cannot be written; 2 for a usage error.

Python callers may import it: replace_section(path, name, text).
"""
import os
import re
import sys
import tempfile

PREAMBLE = """# libivmon benchmark results

Each section of this file is written by one bench script and only by it, between its
`<!-- BEGIN name -->` and `<!-- END name -->` lines (bench/results_section.py replaces one
section and keeps the others). Do not edit by hand; run the script again.
"""

NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")


class SectionError(Exception):
    """FILE's markers for NAME are not one well-formed pair."""


def _markers(name):
    return "<!-- BEGIN %s -->" % name, "<!-- END %s -->" % name


def splice(old, name, text):
    """Returns old with NAME's section replaced by text (or appended). Raises SectionError."""
    if not NAME_RE.match(name):
        raise ValueError("section name %r: letters, digits, '-', '_' and '.' only" % name)
    begin, end = _markers(name)
    body = text if text.endswith("\n") or not text else text + "\n"
    block = begin + "\n" + body + end + "\n"
    lines = old.splitlines(keepends=True)
    starts = [i for i, l in enumerate(lines) if l.rstrip("\r\n") == begin]
    ends = [i for i, l in enumerate(lines) if l.rstrip("\r\n") == end]
    if not starts and not ends:
        sep = "" if not old or old.endswith("\n\n") else ("\n" if old.endswith("\n") else "\n\n")
        return old + sep + block
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise SectionError("section %s: expected one %r line followed by one %r line, found %d and %d"
                           % (name, begin, end, len(starts), len(ends)))
    return "".join(lines[:starts[0]]) + block + "".join(lines[ends[0] + 1:])


def replace_section(path, name, text):
    """Replaces (or appends) section name of the file at path with text, atomically."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            old = f.read()
    except FileNotFoundError:
        old = PREAMBLE
    new = splice(old, name, text)
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".results-", dir=d)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(new)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv):
    if len(argv) not in (2, 3) or argv[1].startswith("-"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    name = argv[1]
    path = argv[2] if len(argv) == 3 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.md")
    try:
        replace_section(path, name, sys.stdin.read())
    except ValueError as e:
        print("results_section.py: %s" % e, file=sys.stderr)
        return 2
    except (SectionError, OSError) as e:
        print("results_section.py: %s: %s" % (path, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
