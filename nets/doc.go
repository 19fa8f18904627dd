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
package nets
