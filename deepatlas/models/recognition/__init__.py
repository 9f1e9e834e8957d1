"""Recognition applications of convolutional networks: face/non-face classification against HOG
features and a linear SVM, open-set recognition by metric learning (an embedding network trained
with a triplet or an additive angular margin loss, against a closed-set classifier's penultimate
layer and PCA "eigenfaces"), and pose estimation by keypoint heatmaps (against direct coordinate
regression)."""
