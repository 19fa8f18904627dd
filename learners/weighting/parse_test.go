package weighting

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestParseSettings(t *testing.T) {
	for _, c := range []struct {
		spec string
		want Method
	}{
		{"pcgrad", PCGrad{}},
		{"ew:mean=true", EW{Mean: true}},
		{"mgda:norm=loss+", MGDA{Norm: NormLossL2}},
		{"cagrad:c=0.2", CAGrad{C: 0.2}},
		{"rlw:seed=7", RLW{Seed: 7}},
		{"dbmtl:beta_sigma=0.5", &DBMTL{BetaSigma: 0.5}},
		{"moco:raw_grads=true:beta=0.9:gamma_sigma=-1", &MoCo{RawGrads: true, Beta: 0.9, GammaSigma: -1}},
		{"famo:min_losses=-21/-20.5:lr=0.01", &FAMO{MinLosses: []float64{-21, -20.5}, LR: 0.01}},
		{"famo:min_losses=2/3", &FAMO{MinLosses: []float64{2, 3}}}, // above the trial's usual losses of 1
		{"nash:max_iter=20", &Nash{MaxIter: 20}},
		{"gradnorm:alpha=0.5", nil},
	} {
		m, err := Parse(c.spec, 2)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.spec, err)
			continue
		}
		if c.want == nil {
			if g, ok := m.(*GradNorm); !ok || g.Alpha != 0.5 {
				t.Errorf("Parse(%q) = %#v, want a GradNorm with Alpha 0.5", c.spec, m)
			}
			continue
		}
		if !reflect.DeepEqual(m, c.want) {
			t.Errorf("Parse(%q) = %#v, want %#v", c.spec, m, c.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ spec, want string }{
		{"nope", "unknown method"},
		{"moco:beta", `"beta", want key=value`},
		{"moco:", `setting "", want key=value`},
		{"moco:beta=0.9:", `setting "", want key=value`},
		{"moco:=1", "want key=value"},
		{"moco:beta=0.9:beta=0.8", "beta is set twice"},
		{"moco:b=1", "moco has no setting \"b\"; its settings are beta, beta_sigma, gamma, gamma_sigma, rho, raw_grads"},
		{"pcgrad:x=1", "its settings are none"},
		{"moco:beta=x", "beta=x: not a finite number"},
		{"nash:max_norm=NaN", "max_norm=NaN: not a finite number"},
		{"cagrad:c=-Inf", "c=-Inf: not a finite number"},
		{"moco:raw_grads=yes", "want true or false"},
		{"nash:max_iter=1.5", "not an integer"},
		{"rlw:seed=-1", "not an integer of at least 0"},
		{"famo:min_losses=1/y", `element 2, "y", is not a finite number`},
		{"mgda:norm=l3", `"mgda:norm=l3": norm=l3: MGDA normalisation "l3", want one of none, l2, loss, loss+`},
		{"dwa:epoch_steps=3", "no setting \"epoch_steps\""},
		// Out of range: found by the trial step.
		{"moco:beta=2", "want Beta in (0, 1]"},
		{"gradnorm:alpha=-1", "Alpha -1"},
		{"famo:min_losses=1/2/3", `"famo:min_losses=1/2/3": famo: 3 MinLosses`},
		{"dwa:temp=-1", `"dwa:temp=-1": dwa: Temp -1 and EpochSteps 1`},
	} {
		_, err := Parse(c.spec, 2)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", c.spec, err, c.want)
		}
	}
}

// The trial step must accept every method's defaults, and leave the
// returned method's state untouched.
func TestParseTrialLeavesNoState(t *testing.T) {
	for _, name := range Names() {
		for _, tasks := range []int{1, 3} {
			m := newKnown(name, tasks)
			v, _ := settable(m)
			if err := try(name, v, name, tasks); err != nil {
				t.Errorf("%s, %d tasks: the trial step fails on the defaults: %v", name, tasks, err)
			}
			sm, ok := m.(StateMarshaler)
			if !ok {
				continue
			}
			got, err := sm.MarshalState()
			if err != nil {
				t.Fatal(err)
			}
			want, err := newKnown(name, tasks).(StateMarshaler).MarshalState()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s: the trial step changed the method's state: %s, want %s", name, got, want)
			}
		}
	}
}

func TestSettingKeys(t *testing.T) {
	for name, want := range map[string]string{"BetaSigma": "beta_sigma", "LR": "lr", "MaxIter": "max_iter", "C": "c", "RawGrads": "raw_grads", "MinLosses": "min_losses"} {
		if got := snake(name); got != want {
			t.Errorf("snake(%q) = %q, want %q", name, got, want)
		}
	}
	if got := Settings("pcgrad"); len(got) != 0 {
		t.Errorf("Settings(pcgrad) = %v, want none", got)
	}
	if got := Settings("nope"); got != nil {
		t.Errorf("Settings(nope) = %v, want nil", got)
	}
}
