// Package tasks provides task distributions for meta-learning and batches
// of tasks in the layout learners consume.
//
// A Batch holds a meta-batch of tasks, each with a support set (used to
// adapt) and a query set (used to evaluate the adapted model), stored
// task-major: element (t, k, j) of SupportX is SupportX[(t*Support+k)*In+j].
// Every random choice takes a *rand.Rand, so a seed fixes every batch.
//
// The meta-learning task distributions are Sinusoid (Finn et al. 2017),
// Classification (synthetic problems after scikit-learn's
// make_classification) and Episodes, N-way K-shot episodes over a
// ClassSet of images (MNIST, DoubleMNIST, Omniglot). Benchmark names them
// with their usual protocol (WithDefaults) and builds their meta-training
// and meta-test splits (Load).
//
// Colour datasets (miniImageNet, tieredImageNet, CIFAR-FS, FC100) are read
// from their image files by ImageFolder, into a ClassSet of three
// channels stored channels last: an input of their batches is an image's
// rows, then columns, then the red, green and blue of each pixel, the
// layout nets.ConvNet takes. Augment, set on the Episodes that
// meta-train, crops, flips and colour-jitters the images Sample draws.
//
// Multi-task learning reads Tables: rows of features with one column per
// task (a Target: regression, binary or multi-class). SyntheticMTL
// generates them with known noise floors, MultiMNIST from MNIST digit
// pairs, LoadCSV and ReadCSV from one's own files (WriteCSV writes them);
// TableBenchmark names them and splits off held-out rows.
package tasks
