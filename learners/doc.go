// Package learners trains models declared as gorgonia graphs.
//
// MAML (Finn, Abbeel and Levine 2017) meta-learns an initialisation θ from
// which a few gradient steps on a task's support set give a model that does
// well on the task's query set. Its meta-gradient differentiates through
// the inner gradient steps, which takes second derivatives; medusa computes
// them exactly with graph.Grad. With FirstOrder set the inner gradients are
// treated as constants (first-order MAML).
//
// A learner declares one graph per meta-batch shape, with the tasks
// batched on a leading axis, compiles it once and reuses it for every
// meta-batch of that shape. Learners are not safe for concurrent use.
package learners
