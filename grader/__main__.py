"""python -m grader SUBMISSION... --test-data PATH --out DIR: see grader/cli.py."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
