"""``python -m bench [SECTION ...] [-- ARGS]``: run the named sections (default: all).

Arguments after ``--`` go to every selected section, e.g.
``python -m bench load -- --n 1 50 --duration 5``.
"""

from __future__ import annotations

import sys

from bench import SECTIONS, section


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    rest: list[str] = []
    if "--" in args:
        cut = args.index("--")
        args, rest = args[:cut], args[cut + 1 :]
    if any(a in ("-h", "--help") for a in args):
        print(__doc__)
        print("sections: " + ", ".join(SECTIONS))
        return 0
    unknown = [a for a in args if a not in SECTIONS]
    if unknown:
        print(f"unknown section(s): {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
        return 2
    for name in args or list(SECTIONS):
        print(f"== bench: {name} ==", flush=True)
        section(name)(rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
