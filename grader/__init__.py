"""Instructor side of the pack: generating the student release and grading submissions."""
