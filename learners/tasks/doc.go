// Package tasks provides task distributions for meta-learning and batches
// of tasks in the layout learners consume.
//
// A Batch holds a meta-batch of tasks, each with a support set (used to
// adapt) and a query set (used to evaluate the adapted model), stored
// task-major: element (t, k, j) of SupportX is SupportX[(t*Support+k)*In+j].
// Every random choice takes a *rand.Rand, so a seed fixes every batch.
package tasks
