"""The survey's claims, in our own words, under the short IDs the project uses for them
(``K.tuning``, ``M.parallel``...): this table is the claim list the atlas runs.

Each entry: (id, family, claim, experiment). The survey's sentences are never quoted; these are
short restatements, and the experiment column says how the atlas tests each one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Claim:
    id: str
    family: str
    text: str
    experiment: str


FAMILIES = (
    "Knowledge points", "Perceptron", "Multilayer perceptron", "CNN", "RNN", "LSTM",
    "GAN", "Autoencoder", "RBM", "DBN", "Sparse coding",
)  # fmt: skip

_TABLE = [
    # Knowledge points
    (
        "K.tuning",
        "Knowledge points",
        "Hyperparameters change accuracy and training time a lot, and searching them finds a better setting.",
        "Default vs tuned MLP on MNIST-1D under the same epoch budget; spread over the search.",
    ),
    (
        "K.transfer",
        "Knowledge points",
        "Starting from a trained model's weights converges faster and scores higher, especially with few labels.",
        "Pretrain on MNIST-1D classes 0-4, fine-tune on 5-9 with few labels vs training from scratch; "
        "in the full report also the default CNN on Fashion-MNIST classes 0-4 -> 5-9 with 1, 5 and 10 % of the labels.",
    ),
    (
        "K.cv",
        "Knowledge points",
        "Cross-validation gives a more trustworthy performance estimate than a single split.",
        "Spread of k-fold estimates vs single-split estimates around held-out truth, over many resamplings.",
    ),
    (
        "K.deploy",
        "Knowledge points",
        "A trained model can be converted to a portable format and run in a service.",
        "Export to ONNX, run in onnxruntime, compare outputs and latency with torch.",
    ),
    # Applications (added to the claim list with the application issues; their experiments are built there)
    (
        # The survey's claim list gives this row the ID K.cv, which it also gives the cross-validation
        # claim above; the project names it K.cv-apps so that both can be tested.
        "K.cv-apps",
        "Knowledge points",
        "Deep learning serves computer vision widely: classification, detection, segmentation, pose, face recognition.",
        "Pose and face parts (heatmaps vs coordinate regression, CNN vs HOG + SVM, embedding vs eigenfaces); "
        "classification, detection and segmentation are K.cnn-apps.",
    ),
    (
        "K.cnn-apps",
        "Knowledge points",
        "CNNs serve computer vision widely: classifying images, detecting objects, segmenting images.",
        "CNN classifier, detector and segmenter against non-convolutional baselines of the same budget.",
    ),
    (
        "K.rnn-apps",
        "Knowledge points",
        "RNNs serve language processing and speech recognition widely.",
        "Recurrent NER and CTC speech recognition against non-recurrent baselines.",
    ),
    (
        "K.drl-apps",
        "Knowledge points",
        "Deep RL has advanced game playing, robot control and self-driving.",
        "Agents against random and heuristic policies on a game, a control task and a driving simulator.",
    ),
    (
        "K.nlp",
        "Knowledge points",
        "Deep learning serves language tasks widely: language models, NER, sentiment, translation, QA.",
        "Each task against its classical baseline (n-gram LM, feature logistic regression, TF-IDF, ...).",
    ),
    (
        "K.frameworks",
        "Knowledge points",
        "Keras runs on TensorFlow, Theano and CNTK; PyTorch builds dynamic graphs and trains and deploys at scale.",
        "Keras today: Theano and CNTK are discontinued, Keras 3 runs on TensorFlow, JAX and PyTorch.",
    ),
    # Perceptron
    (
        "P.fast",
        "Perceptron",
        "Learns fast and converges when the classes are linearly separable.",
        "Updates until convergence vs Novikoff's bound (R/γ)² on separable data.",
    ),
    (
        "P.small",
        "Perceptron",
        "Does well on small two-class problems.",
        "Test accuracy on small separable sets of growing size.",
    ),
    (
        "P.linear-only",
        "Perceptron",
        "Fails on problems that no straight boundary separates.",
        "Accuracy on XOR and concentric circles vs blobs.",
    ),
    (
        "P.overfit",
        "Perceptron",
        "Overfits when there are many input dimensions, so it needs regularisation.",
        "Train/test gap as the dimension grows at a fixed sample size.",
    ),
    (
        "P.init",
        "Perceptron",
        "The result depends on the starting weights.",
        "Final weights and accuracy over many seeds and sample orders.",
    ),
    # MLP
    (
        "M.features",
        "Multilayer perceptron",
        "Stacked non-linear layers build higher-order features.",
        "Accuracy on XOR and spirals against depth and width.",
    ),
    (
        "M.generalise",
        "Multilayer perceptron",
        "Generalises well to data it has not seen.",
        "Held-out accuracy of an MLP vs a linear model.",
    ),
    (
        "M.parallel",
        "Multilayer perceptron",
        "Is easy to parallelise because its layers are independent.",
        "Layers run one after another; parallelism lives inside a layer and across the batch: time vs batch size.",
    ),
    (
        "M.interpretable",
        "Multilayer perceptron",
        "Is highly interpretable.",
        "Show first-layer weights; interpretability is not measurable as stated.",
    ),
    (
        "M.overfit",
        "Multilayer perceptron",
        "Overfits when large or when data are scarce.",
        "Train/test gap vs width on a small sample, with and without dropout and weight decay.",
    ),
    (
        "M.params",
        "Multilayer perceptron",
        "Needs many parameters.",
        "Parameter count of an MLP vs a CNN of equal accuracy on digits.",
    ),
    (
        "M.scaling",
        "Multilayer perceptron",
        "Is sensitive to how inputs are scaled and preprocessed.",
        "Raw vs standardised inputs.",
    ),
    (
        "M.local-minima",
        "Multilayer perceptron",
        "Non-convex training can end in poor local minima.",
        "Spread of final loss over seeds for narrow vs wide networks.",
    ),
    # CNN
    (
        "C.features",
        "CNN",
        "Learns its features from data, without hand engineering.",
        "CNN vs MLP on raw pixels; learned first-layer filters.",
    ),
    (
        "C.sharing",
        "CNN",
        "Sharing weights cuts parameters and overfitting.",
        "Parameter count and test accuracy vs an MLP.",
    ),
    (
        "C.hierarchy",
        "CNN",
        "Deeper layers hold more abstract features.",
        "Accuracy vs depth; linear probes of each layer's features.",
    ),
    (
        "C.pool-robust",
        "CNN",
        "Pooling makes it robust to noise and small shifts.",
        "Accuracy under shifts and noise, with and without pooling.",
    ),
    ("C.compute", "CNN", "Convolutions cost a lot of computation.", "FLOPs and time per sample vs an MLP."),
    ("C.opaque", "CNN", "Is hard to interpret.", "Not measurable as stated; show filters and a saliency map."),
    (
        "C.distribution",
        "CNN",
        "Is sensitive to the data distribution.",
        "Accuracy under a distribution shift of the test inputs.",
    ),
    (
        "C.fixed-size",
        "CNN",
        "Accepts only inputs of one fixed size.",
        "A CNN with global pooling classifies inputs of other sizes.",
    ),
    # RNN
    ("R.any-length", "RNN", "Handles sequences of any length.", "Train on short sequences, test on longer ones."),
    ("R.memory", "RNN", "Carries information from earlier time steps.", "Adding and copy tasks at short lags."),
    (
        "R.bptt",
        "RNN",
        "Trains end to end by backpropagation through time.",
        "Gradient check against finite differences.",
    ),
    ("R.vanishing", "RNN", "Its gradients vanish or explode.", "Gradient norm vs time lag, tanh RNN vs LSTM."),
    ("R.long-range", "RNN", "Struggles with long-range dependencies.", "Adding problem at growing T: RNN vs LSTM/GRU."),
    (
        "R.slow",
        "RNN",
        "Step-by-step computation makes training slow.",
        "Time per batch vs sequence length, RNN vs CNN.",
    ),
    # LSTM
    ("L.long-range", "LSTM", "Its gates keep long-range dependencies.", "Adding problem where the tanh RNN fails."),
    ("L.gradients", "LSTM", "Its gates make it robust to vanishing and exploding gradients.", "Gradient norm vs lag."),
    (
        "L.params",
        "LSTM",
        "Has many parameters and overfits.",
        "Parameter count (4x an RNN); train/test gap on small data.",
    ),
    ("L.slow", "LSTM", "Trains slowly and needs much compute.", "Time per epoch vs GRU and RNN."),
    (
        "L.variants",
        "LSTM",
        "Bidirectional, peephole and CTC variants extend it.",
        "Each variant on a task that needs it.",
    ),
    # GAN
    ("G.quality", "GAN", "Generates realistic samples.", "Classifier-feature FID on digits; samples shown."),
    ("G.adaptive", "GAN", "Adapts to many data distributions.", "Rings, grids and digits."),
    (
        "G.unstable",
        "GAN",
        "Trains unstably and collapses onto few modes.",
        "Modes covered on ring8 and grid25 over seeds.",
    ),
    (
        "G.only-similar",
        "GAN",
        "Only generates data like its training set.",
        "Nearest-training-sample distance of samples.",
    ),
    (
        "G.variants",
        "GAN",
        "DCGAN, WGAN, CGAN and InfoGAN train more stably and generate better.",
        "The same benchmarks for each variant.",
    ),
    # Autoencoder
    (
        "A.unsupervised",
        "Autoencoder",
        "Learns without labels.",
        "Trained on unlabeled data only; codes used downstream.",
    ),
    (
        "A.reduce",
        "Autoencoder",
        "Reduces dimension and extracts useful features.",
        "Reconstruction error vs PCA at equal code size; accuracy on codes.",
    ),
    ("A.denoise", "Autoencoder", "Repairs damaged or noisy data.", "PSNR before and after denoising; inpainting."),
    ("A.limited", "Autoencoder", "Has limited expressive power on complex data.", "Error vs code size and depth."),
    ("A.unstable", "Autoencoder", "Training gets stuck in local optima.", "Spread over seeds."),
    ("A.noise-sensitive", "Autoencoder", "Is sensitive to outliers and noise.", "Effect of corrupted training data."),
    (
        "A.variants",
        "Autoencoder",
        "VAEs and convolutional autoencoders improve expressiveness and stability.",
        "VAE ELBO and samples; conv AE vs dense AE.",
    ),
    # RBM
    (
        "B.unsupervised",
        "RBM",
        "Learns features from unlabeled data.",
        "Hidden features -> linear classifier vs raw pixels.",
    ),
    ("B.reduce", "RBM", "Reduces dimension.", "As above at several hidden sizes."),
    ("B.generate", "RBM", "Can generate new samples.", "Gibbs chains from noise."),
    (
        "B.two-phase",
        "RBM",
        "Needs slow pretraining and then fine-tuning.",
        "That describes DBN training, not a single RBM: time CD-k per epoch.",
    ),
    (
        "B.input-assumption",
        "RBM",
        "Assumes a particular input distribution and needs normalised input.",
        "Bernoulli RBM on raw vs scaled data; Gaussian RBM for real values.",
    ),
    (
        "B.linear-only",
        "RBM",
        "Only captures linear correlations.",
        "An RBM fits a distribution no linear model can (XOR parity).",
    ),
    ("B.variants", "RBM", "DBNs and collaborative-filtering RBMs extend it.", "RBM on a small ratings matrix."),
    (
        "B.dbm-name",
        "RBM",
        "A deep Boltzmann machine is listed among the improvements under the DBN's name.",
        "A DBM (all layers undirected, mean-field inference) against a DBN (one bottom-up pass).",
    ),
    # DBN
    (
        "D.undirected",
        "DBN",
        "Is an undirected graphical model.",
        "Only the top two layers are undirected; the rest are directed.",
    ),
    ("D.hierarchy", "DBN", "Learns features layer by layer.", "Features per layer; accuracy vs depth."),
    (
        "D.pretrain",
        "DBN",
        "Unsupervised pretraining helps when labels are few.",
        "Pretrained vs random initialisation with few labels.",
    ),
    ("D.generate", "DBN", "Can generate data.", "Samples from the top RBM down."),
    ("D.slow", "DBN", "Training is complex and slow.", "Time per phase."),
    ("D.input-assumption", "DBN", "Needs normalised input.", "As B.input-assumption."),
    ("D.variants", "DBN", "Convolutional and recurrent DBNs extend it.", "Convolutional RBM/DBN on digits."),
    (
        "D.recurrent",
        "DBN",
        "A recurrent (temporal) DBN carries it over to sequences.",
        "Recurrent temporal RBM: next-frame error against a per-frame RBM and an LSTM.",
    ),
    # Sparse coding
    (
        "S.essential",
        "Sparse coding",
        "Captures the essential structure and removes redundancy and noise.",
        "Denoising image patches with a learned dictionary.",
    ),
    (
        "S.reconstruct",
        "Sparse coding",
        "Reconstructs data and reduces dimension.",
        "Error vs non-zeros, learned vs DCT vs random basis.",
    ),
    ("S.unsupervised", "Sparse coding", "Needs no labels.", "Dictionary learned without labels; codes -> classifier."),
    (
        "S.slow",
        "Sparse coding",
        "Its iterative solvers are expensive.",
        "ISTA vs FISTA vs coordinate descent vs LISTA: error vs time.",
    ),
    ("S.init", "Sparse coding", "Results depend on initialisation.", "Dictionaries and error over seeds."),
    ("S.basis", "Sparse coding", "The choice of basis matters.", "Learned vs DCT vs random at equal sparsity."),
    (
        "S.header",
        "Sparse coding",
        "Its improvements are presented as fixing the DBN's weaknesses.",
        "A heading mix-up: the section is about sparse coding.",
    ),
    (
        "S.variants",
        "Sparse coding",
        "Deep (learned) and convolutional sparse coding improve on it.",
        "LISTA vs ISTA at equal iterations; convolutional sparse coding.",
    ),
]

CLAIMS: dict[str, Claim] = {row[0]: Claim(*row) for row in _TABLE}
