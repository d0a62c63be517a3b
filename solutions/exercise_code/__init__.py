"""
Exercise 9: facial keypoint detection.

The files you edit (each TODO raises NotImplementedError until you fill it):
- data/facial_keypoints_dataset.py: FacialKeypointsDataset.__getitem__
- networks/keypoint_nn.py: KeypointModel, yours to design
- layers.py: the optional spatial batch normalization part

What you use and read:
- keypoints.py: the keypoint names, left and right, the coordinate conventions
- data/: the augmentation (transforms.py) and its geometry
- networks/dummy_model.py: the model every submission must beat
- evaluation.py: the score, 1 / (2 * MSE)
- training.py, visualization.py: a progress bar, loss curves, faces with their keypoints
- gradient_check.py: numeric gradients for the optional part
- checks/: the checks the notebooks run

util/ is the plumbing you never need to edit: getting the data, reading the CSV
files, saving your model, the limits, the submission zip.
"""
