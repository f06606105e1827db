"""Command line: ``jpegai-fast <command>`` (or ``python -m jpegai_fast``)."""
from __future__ import annotations

import sys


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    commands = {"demo": "entropy-code a real photo's DCT residual and decode it (prints size, ideal, speed)"}
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        print("usage: jpegai-fast <command> [options]\n\ncommands:")
        for name, text in commands.items():
            print(f"  {name:8s} {text}")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    if argv[0] == "demo":
        from .demo import main as demo_main

        return demo_main(argv[1:])
    return 2


if __name__ == "__main__":
    sys.exit(main())
