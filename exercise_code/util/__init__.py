"""
The plumbing of the exercise, which you never need to edit.

- layout.py: where things are (the workspace, the model file, the data folder)
- download.py: getting the data (python -m exercise_code.util.download --source ZIP_OR_URL)
- csv_reader.py, cache.py: reading the CSV files once, then from a cache
- model_files.py: save_model / load_model, as plain weights that load without running code
- limits.py: the grader's limits (parameters, file size)
- submission.py: create_submission_zip
- check_runner.py: PASS / FAIL lines for the checks in checks/
- atomic_file.py: files are either complete or not there
"""
