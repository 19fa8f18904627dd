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
// optimiser, from the gradients they return. Methods with other state
// between steps (DWA, GradNorm, Nash, GradVac, FAMO, DBMTL, STCH, MoCo)
// implement StateMarshaler, so that a resumed run continues exactly.
//
// The methods are EW (equal weighting), Uncertainty (Kendall et al. 2018),
// GradNorm (Chen et al. 2018), DWA (Liu et al. 2019), PCGrad (Yu et al.
// 2020), MGDA (Sener and Koltun 2018), CAGrad (Liu et al. 2021), IMTLG
// (Liu et al. 2021), Nash (Navon et al. 2022), RLW (Lin et al. 2022),
// UPGrad (Quinton and Rey 2024), AlignedMTL (Senushkin et al. 2023),
// GradVac (Wang et al. 2021), FairGrad (Ban and Ji 2024), FAMO (Liu et
// al. 2023), GLS (Chennupati et al. 2019), GradDrop (Chen et al. 2020),
// DBMTL (Lin et al. 2023), STCH (Lin et al. 2024) and MoCo (Fernando et
// al. 2023). Where a paper leaves a choice they follow LibMTL's
// implementations (UPGrad TorchJD's), and say where they differ.
// New builds one from its command-line name (Names lists them).
//
// Combine validates its Input: errors about the losses and gradients are
// *InputError values, matched by ErrInput, naming the task at fault.
//
// Methods are not safe for concurrent use. Every random choice takes the
// *rand.Rand in the Input, but RLW's, drawn from its Seed and the step, so
// a seed fixes every update.
package weighting
