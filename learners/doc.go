// Package learners trains models declared as gorgonia graphs.
//
// MAML (Finn, Abbeel and Levine 2017) meta-learns an initialisation θ from
// which a few gradient steps on a task's support set give a model that does
// well on the task's query set. Its meta-gradient differentiates through
// the inner gradient steps, which takes second derivatives; medusa computes
// them exactly with graph.Grad. With FirstOrder set the inner gradients are
// treated as constants (first-order MAML). ANIL (Raghu et al. 2020) is MAML
// whose inner loop adapts only the head; MetaSGD (Li et al. 2017) learns a
// rate for every parameter; both run MAML's code with a different inner
// rule. Reptile (Nichol, Achiam and Schulman 2018) moves θ toward the
// parameters a few ordinary optimiser steps reach on each task.
// ProtoNet (Snell, Swersky and Zemel 2017) and R2D2 (Bertinetto et al.
// 2019) learn an embedding instead, and classify a task's queries by
// their distances to its class means, or by a ridge regression fitted to
// its support set in closed form (graph.RidgeSolve): no inner loop.
//
// MTL trains one network on several tasks at once (a shared trunk or
// mixture of experts, one head per task), combining the tasks' losses and
// gradients with a method of package weighting. RunToy runs such a method
// on the two-objective toy problem of Liu et al. (2021).
//
// Adam and SGD update parameters from float64 gradients; they, the
// learners and the weighting methods save and restore their state
// (graph.Stateful) so that a run resumed from a checkpoint continues
// bit for bit.
//
// Train is the training loop of every learner: it draws each step's
// batch, takes the step, hands its statistics to a Record hook (progress,
// logs), saves checkpoints at a cadence, and when a step fails (a NaN, an
// interrupt through its context) returns a *StepError with the random
// streams rewound, so that a checkpoint written then resumes at that
// step. Checkpoint and Resume save and restore a run (parameters, learner
// and optimiser state, random streams); EpochBatches gives a table's
// minibatches in an order a resumed run repeats. Assess is the
// evaluation protocol: it adapts to fresh test tasks a batch at a time
// and returns every task's scores after each inner step, which MeanCI
// summarises as mean ± 95% interval; Predict returns the adapted model's
// outputs.
//
// A meta-learner's model is any Model: an Init and a Forward over a
// leading task axis (nets.Linear is the layer to build one from). Its loss
// is MSE, CrossEntropy or any LossFunc of graph nodes; second-order MAML
// differentiates it twice, which package graph's list of ops says is
// exact. An error in a model's Forward or a loss names it. Budget
// estimates a run's memory before it allocates, compiling the graphs of
// its steps and evaluation (PlanStep, PlanAssess, PlanMTL), and holds the
// Go runtime to the estimate. Package monitor shows a run's progress, logs
// it and plots it.
//
// A learner declares one graph per meta-batch shape, with the tasks
// batched on a leading axis, compiles it once and reuses it for every
// meta-batch of that shape. Learners are not safe for concurrent use.
//
// Each learner has a Device field: when set (package cuda gives one), its
// graphs run there (graph.CompileOn), and Adam and SGD update the
// parameters there for MAML, ANIL, Meta-SGD and multi-task steps with one
// backward pass, keeping their state on the device; the learner's Params
// are current on the host after every Step. Placement says where the last
// run graph's ops ran.
package learners
