"""
Exercise 9: facial keypoint detection.

- data/: the dataset, its augmentation and its download
- networks/: the keypoint models (KeypointModel is yours to design)
- evaluation.py: the score, 1 / (2 * MSE)
- model_files.py, limits.py, submission.py: saving your model, its limits, the submission zip
- training.py: a progress bar and loss curves for your training loop
- visualization.py: faces with their keypoints
- layers.py, gradient_check.py: the optional spatial batch normalization part
- checks/: the checks the notebooks run
"""
