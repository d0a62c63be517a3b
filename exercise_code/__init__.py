"""
Exercise 9: facial keypoint detection.

- data/: the dataset, its augmentation and its download
- networks/: the keypoint models
- evaluation.py: the score, 1 / (2 * MSE)
- visualization.py: faces with their keypoints
"""
