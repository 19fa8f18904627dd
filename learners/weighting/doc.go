// Package weighting combines the losses and gradients of several tasks
// trained through shared parameters into one update: the loss-weighting
// and gradient-manipulation strategies of multi-task learning.
//
// A Method sees, at every training step, each task's loss and (if it asks
// for them) each task's gradient with respect to the shared parameters,
// flattened into one vector per task. It returns the weight it gives each
// task's loss, which scales that task's head gradients, and optionally a
// shared-parameter gradient of its own that replaces Σ_t w_t g_t.
// Methods with learned state (uncertainty weighting, GradNorm) also
// implement Learned: the trainer updates their parameters with its
// optimiser, from the gradients they return.
//
// Methods are not safe for concurrent use. Every random choice takes the
// *rand.Rand in the Input, so a seed fixes every update.
package weighting
