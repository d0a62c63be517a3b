#!/usr/bin/env bash
# PrairieLearn runs this as root in the grader's container, once per submission (the question's
# externalGradingOptions.entrypoint). It grades /grade/student and always leaves one
# /grade/results/results.json, and always exits 0: PrairieLearn discards the result of a
# container that exits non-zero. When Python dies without writing the file (the time limit
# below, out of memory), it writes a fallback that uses no attempt.
# Outside PrairieLearn (the pack's tests) GRADER_ROOT, GRADER_PYTHON and GRADER_TIME_LIMIT_S move it.
set -u
root="${GRADER_ROOT:-/grade}"
python="${GRADER_PYTHON:-/usr/local/bin/python}"
results="$root/results/results.json"
mkdir -p "$root/results"
chmod 700 "$root/results"
rm -f "$results"
# The time limit ends Python before PrairieLearn kills the container, which would leave no result.
PYTHONPATH="$root/serverFilesCourse/@PACK_FOLDER@" timeout --signal=KILL "${GRADER_TIME_LIMIT_S:-@TIME_LIMIT_S@}" \
    "$python" -P -m grader prairielearn run --root "$root"
status=$?
if [ ! -s "$results" ]; then
    echo "The grader ended (status $status) without writing results.json: wrote the fallback result." >&2
    cat > "$results" <<JSON
{"gradable": false, "score": 0.0,
 "message": "The grader failed on its side, so this submission was not graded (this is not a problem with your work; it ran out of time or memory, status $status). No attempt was used. Please submit again later; if it happens again, tell your instructor.",
 "format_errors": ["The grader failed on its side (status $status): submit again later."],
 "output": "", "tests": []}
JSON
fi
# PrairieLearn's grader host reads the file from outside the container, perhaps as another user. The
# result is no secret, and it stays root's to write. (When the time limit killed Python, a process the
# student's code left in a session of its own may still run until the container goes; the hidden data
# stays root's alone.)
chmod 755 "$root/results"
chmod 644 "$results"
exit 0
