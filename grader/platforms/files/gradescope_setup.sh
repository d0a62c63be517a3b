#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image (Ubuntu 22.04,
# after apt-get update). The pack needs Python 3.11 or newer; the image's own is 3.10.
# The environment goes to /opt, where the student's code (run as another user when the
# jail cannot start) can use it; the grader and the hidden data stay in /autograder/source.
set -euo pipefail
apt-get install -y --no-install-recommends python3.11 python3.11-venv bubblewrap libseccomp2 util-linux coreutils
python3.11 -m venv /opt/facial-keypoints
/opt/facial-keypoints/bin/pip install --no-cache-dir torch==@TORCH_VERSION@ --index-url https://download.pytorch.org/whl/cpu
/opt/facial-keypoints/bin/pip install --no-cache-dir -r /autograder/source/requirements.txt
