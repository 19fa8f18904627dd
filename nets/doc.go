// Package nets builds networks whose forward pass takes its parameters as
// an argument: Forward(x, params). A learner can therefore run the same
// network on its meta-parameters θ and on adapted parameters θ′ in one
// graph.
//
// Inputs carry a leading task axis, [tasks, examples, features], and so do
// the parameters passed to Forward ([tasks, out, in] for a weight), so that
// a whole meta-batch of tasks is one graph of batched matrix products
// rather than one sub-graph per task. Parameters are stored without the
// task axis, as PyTorch stores them (weight [out, in], bias [out]); a
// learner broadcasts them over tasks with graph.Broadcast.
//
// MLP is a multi-layer perceptron; ConvNet the four-block convolutional
// backbone of few-shot image classification (3×3 convolutions, batch
// norm, ReLU, 2×2 max-pooling, a linear head), every part of it twice
// differentiable; ResNet12 the residual backbone of TADAM and MetaOptNet
// (four blocks of three convolutions with a shortcut, LeakyReLU, 2×2
// max-pooling, then global average pooling and a linear head), twice
// differentiable too; MultiTask (a shared Trunk with named Heads) and MMoE
// (multi-gate mixture of experts) are multi-task networks whose Owners
// method tells shared parameters from each task's; so are PLE (progressive
// layered extraction, CGC with one level), CrossStitch (one column per task
// joined by cross-stitch units) and DSelectK (MMoE's experts with DSelect-k
// gates that each pick at most k of them).
package nets
