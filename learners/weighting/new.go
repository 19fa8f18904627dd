package weighting

import (
	"fmt"
	"strings"
)

var names = []string{"ew", "uw", "gradnorm", "dwa", "pcgrad", "mgda", "cagrad", "imtl", "nash", "rlw",
	"upgrad", "alignedmtl", "gradvac", "fairgrad", "famo", "gls", "graddrop", "dbmtl", "stch", "moco"}

// Names returns the names New accepts, in a fixed order.
func Names() []string { return append([]string(nil), names...) }

// New returns the method called name for the given number of tasks, with
// its defaults: EW (sum), *Uncertainty, *GradNorm (α 1.5), *DWA (Temp 2,
// EpochSteps 1: a trainer sets it to its steps per epoch), PCGrad, MGDA (no
// normalisation), CAGrad (C = DefaultCAGradC), IMTLG, *Nash, RLW (seed
// 0), UPGrad, AlignedMTL, *GradVac (β = DefaultGradVacBeta), FairGrad
// (α = DefaultFairGradAlpha), *FAMO (LR 0.025, Gamma 1e-3, MinLosses 0),
// GLS, GradDrop (Leak 0), *DBMTL (β 0.9, no decay), *STCH (μ 1, Warmup 4
// epochs, EpochSteps 1: a trainer sets it to its steps per epoch) or *MoCo
// (β 0.5, γ 0.1, both decayed with σ 0.5, ρ 0).
// It returns an error for an unknown name, listing the valid ones, or for
// tasks < 1.
func New(name string, tasks int) (Method, error) {
	if tasks < 1 {
		return nil, fmt.Errorf("weighting: %d tasks, want at least 1", tasks)
	}
	switch name {
	case "ew":
		return EW{}, nil
	case "uw":
		m, err := NewUncertainty(tasks)
		if err != nil {
			return nil, err
		}
		return m, nil
	case "gradnorm":
		m, err := NewGradNorm(tasks)
		if err != nil {
			return nil, err
		}
		return m, nil
	case "dwa":
		return &DWA{}, nil
	case "pcgrad":
		return PCGrad{}, nil
	case "mgda":
		return MGDA{}, nil
	case "cagrad":
		return CAGrad{C: DefaultCAGradC}, nil
	case "imtl":
		return IMTLG{}, nil
	case "nash":
		return &Nash{}, nil
	case "rlw":
		return RLW{}, nil
	case "upgrad":
		return UPGrad{}, nil
	case "alignedmtl":
		return AlignedMTL{}, nil
	case "gradvac":
		return &GradVac{Beta: DefaultGradVacBeta}, nil
	case "fairgrad":
		return FairGrad{Alpha: DefaultFairGradAlpha}, nil
	case "famo":
		return &FAMO{}, nil
	case "gls":
		return GLS{}, nil
	case "graddrop":
		return GradDrop{}, nil
	case "dbmtl":
		return &DBMTL{}, nil
	case "stch":
		return &STCH{}, nil
	case "moco":
		return &MoCo{}, nil
	}
	return nil, fmt.Errorf("weighting: unknown method %q, want one of %s", name, strings.Join(names, ", "))
}
