"""python -m grader grade|merge|release|bundle ...: see grader/cli.py."""
import sys

try:
    from .cli import main
except ImportError as error:
    if error.name != "exercise_code":   # grader/trusted.py refused the student copy: say why, in one line
        raise
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)

if __name__ == "__main__":
    sys.exit(main())
