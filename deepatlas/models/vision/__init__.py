"""Vision applications of convolutional networks: semantic segmentation (U-Net, with a plain FCN
as its ablation) and one-stage anchor-free object detection (CenterNet), trained on the seeded
``scenes`` data or the user's COCO files, scored with the field's metrics from maintained
libraries (``pycocotools`` COCO mAP, ``torchmetrics`` IoU)."""
