"""python -m grader.merge RESULTS_DIR... --out DIR: one gradebook from several grading runs (see grader/cli.py)."""
import sys

from .cli import merge_main

if __name__ == "__main__":
    sys.exit(merge_main())
