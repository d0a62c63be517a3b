"""
The I2DL way, as the baseline for our benchmarks and the oracle for our score:
a dataset that re-parses the pixel string in every __getitem__, and an
evaluation loop that scores one image at a time with gradients tracked.
Written after I2DL exercise 9's FacialKeypointsDataset and evaluate_model.
"""
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset


class I2DLFacialKeypointsDataset(Dataset):
    """Reads the CSV with pandas once, then parses one image string per item."""

    def __init__(self, csv_path):
        self.key_pts_frame = pd.read_csv(csv_path)
        self.key_pts_frame.dropna(inplace=True)
        self.key_pts_frame.reset_index(drop=True, inplace=True)

    def __len__(self):
        return self.key_pts_frame.shape[0]

    @staticmethod
    def _get_image(idx, key_pts_frame):
        img_str = key_pts_frame.loc[idx]["Image"]
        img = np.array([int(item) for item in img_str.split()]).reshape((96, 96))
        return np.expand_dims(img, axis=2).astype(np.uint8)

    @staticmethod
    def _get_keypoints(idx, key_pts_frame, shape=(15, 2)):
        keypoint_cols = list(key_pts_frame.columns)[:-1]
        key_pts = key_pts_frame.iloc[idx][keypoint_cols].values.reshape(shape)
        key_pts = (key_pts.astype(np.float64) - 48.0) / 48.0
        return torch.from_numpy(key_pts).float()

    def __getitem__(self, idx):
        image = self._get_image(idx, self.key_pts_frame)
        image = torch.from_numpy(image.transpose(2, 0, 1)).float() / 255.0  # ToTensor
        keypoints = self._get_keypoints(idx, self.key_pts_frame)
        return {"image": image, "keypoints": keypoints}


def i2dl_evaluate_model(model, dataset):
    """I2DL's score: mean per-image MSE over a batch-size-1 loader, 1 / (2 * that)."""
    model.eval()
    criterion = torch.nn.MSELoss()
    dataloader = DataLoader(dataset, batch_size=1, shuffle=False)
    loss = 0
    for batch in dataloader:
        image, keypoints = batch["image"], batch["keypoints"]
        predicted_keypoints = model(image).view(-1, 15, 2)
        loss += criterion(torch.squeeze(keypoints), torch.squeeze(predicted_keypoints)).item()
    return 1.0 / (2 * (loss / len(dataloader)))
