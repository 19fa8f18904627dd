// Package graph is medusa's layer over gorgonia computation graphs.
//
// It provides what gradient-based meta-learning needs and gorgonia v0.9.18
// lacks or gets wrong:
//
//   - Params: an ordered set of named parameters with seeded initialisers.
//   - Grad: a reverse pass that keeps its adjoints in its own map, so it is
//     correct when called many times on one graph and when the cost depends
//     on the outputs of earlier Grad calls (exact higher-order derivatives).
//   - Differentiable ops whose symbolic derivatives are themselves built from
//     differentiable ops: LogSoftmax, SoftmaxCrossEntropy, Pick (integer
//     labels), StopGradient, ReLU, BatchedMatMul, Conv2D (from the adjoint
//     pair Im2Col/Col2Im), MaxPool2D (a gather at the recorded arg-max and
//     its scatter), transductive BatchNorm, and the adjoint pair
//     Broadcast/SumAxis that every reduction and every task-axis
//     expansion is built from.
//   - Finite-difference checkers (central differences, float64) for
//     gradients and Hessian-vector products.
//   - Machine: compile a graph once, bind inputs by name, run, read outputs.
//     Plan, its executor, writes each op's output into a buffer it keeps:
//     compiled for given outputs, it hands an intermediate value's buffer
//     to a later op once the value's last reader has run, so a graph holds
//     about its peak of live values (MEDUSA_PLAN_REUSE=off keeps them all).
//     Plan.Bytes and Plan.DeviceBytes say what it needs before it runs;
//     a CPU plan that cannot fit in the memory available, or a device plan
//     beyond the device's free memory, is refused with a MemoryError.
//   - Device: the seam an accelerator plugs into (package cuda provides
//     one). CompileOn places each op on the device when it runs it
//     (described to it as an OpSpec) and on the CPU otherwise, copying
//     values between the two where the placement changes; Placement
//     reports the split, and a plan wholly on a Recorder device replays
//     a recording of its runs.
//   - Matrix products on OpenBLAS, loaded at run time when installed, or
//     gonum (see BLAS).
//   - Checkpoints in the safetensors format: parameters plus the training
//     state a resumed run needs (Checkpoint, Stateful).
//
// # Differentiating twice
//
// Second-order MAML differentiates a graph's gradient again. The ops
// below are tested to give exact second derivatives (Hessian-vector
// products against central differences in float64):
//
//   - gorgonia's Add, Sub, Mul (scalars, matrices, matrix-vector),
//     HadamardProd, HadamardDiv, Neg, Square, Sqrt, Inverse, Pow with a
//     constant exponent, Exp, Log, Tanh, Sigmoid, Rectify, Reshape,
//     BatchedMatMul, Sum and Mean;
//   - this package's LogSoftmax, SoftmaxCrossEntropy, CrossEntropyLabels,
//     Pick, StopGradient, ReLU, BatchedMatMul, Conv2D, MaxPool2D,
//     BatchNorm, Broadcast, SumAxis, SumAll, Scale and RidgeSolve.
//
// Grad returns an error matching ErrNotDifferentiable when an op's
// derivative cannot be differentiated: gorgonia's SoftMax (use LogSoftmax,
// or SoftmaxCrossEntropy for a loss) and Slice (use Pick) differentiate
// once but not twice. Other gorgonia ops are differentiated through their
// own derivatives, which this package does not vouch for at second order:
// check a model that uses them with NumHVP.
//
// # Conventions
//
// Weights are stored as PyTorch stores them: a linear layer's weight has
// shape [out, in]. Models that process a batch of tasks at once carry a
// leading task axis on their inputs and on their (adapted) parameters.
//
// Functions that build graph nodes recover from panics inside gorgonia and
// return them as errors naming the operation. Building graphs is not safe
// for concurrent use (gorgonia keeps global counters); running separate
// machines concurrently is.
package graph
