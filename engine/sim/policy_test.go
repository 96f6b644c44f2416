package sim

import (
	"strings"
	"testing"

	"gnomon.dev/gnomon/engine/discipline"
	"gnomon.dev/gnomon/engine/system"
)

// runVariant runs the cases whose names start with the given prefixes over
// n seeds with the discipline changed by mod.
func runVariant(prefixes []string, n int, mod func(c *system.Config)) []Summary {
	var out []Summary
	for _, p := range prefixes {
		var s Summary
		for k := 0; k < n; k++ {
			for _, c := range Cases() {
				if !strings.HasPrefix(c.Name, p) {
					continue
				}
				c.Setup.Seed = Seed(c.Setup.Seed, k)
				mod(&c.Setup.Engine)
				res, err := RunScenario(c.Scenario)
				if err != nil {
					panic(err)
				}
				s.Name = c.Name
				s.Results = append(s.Results, res)
			}
		}
		out = append(out, s)
	}
	return out
}

// TestSlewPolicies compares the slew rules of docs/accuracy.md on the LAN,
// WAN and lossy scenarios (make accuracy prints it over 20 seeds): the
// default must feel steadier (lower rate error RMS) than the old rule.
func TestSlewPolicies(t *testing.T) {
	n := min(seeds(t), 5) // make accuracy: -seeds 20
	if *seedsFlag > 0 {
		n = *seedsFlag
	}
	cases := []string{"(a)", "(b)", "(i)"}
	variants := []struct {
		name string
		mod  func(c *system.Config)
	}{
		{"old: restart every update, 3 update intervals, frequency applied whole", func(e *system.Config) {
			c := &e.Discipline
			c.SlewPolicy, c.FreqTrust = discipline.SlewInterval, -1
		}},
		{"uncertainty, ratio 8, frequency applied whole", func(e *system.Config) { c := &e.Discipline; c.FreqTrust = -1 }},
		{"uncertainty, ratio 8, every estimate restarts the slew", func(e *system.Config) { c := &e.Discipline; c.SlewPolicy = discipline.SlewRestart }},
		{"uncertainty, ratio 3", func(e *system.Config) { c := &e.Discipline; c.CorrTimeRatio = 3 }},
		{"first-order: every estimate restarts the slew over 2 poll intervals", func(e *system.Config) {
			c := &e.Discipline
			c.SlewPolicy, c.CorrTimeRatio = discipline.SlewExp, 2
		}},
		{"first-order over 2.5 poll intervals", func(e *system.Config) { c := &e.Discipline; c.SlewPolicy, c.CorrTimeRatio = discipline.SlewExp, 2.5 }},
		{"first-order over 3 poll intervals", func(e *system.Config) { c := &e.Discipline; c.SlewPolicy, c.CorrTimeRatio = discipline.SlewExp, 3 }},
		{"first-order over 2 poll intervals + integral term (gain 4)", func(e *system.Config) {
			c := &e.Discipline
			c.SlewPolicy, c.CorrTimeRatio, c.IntegralGain = discipline.SlewExp, 2, 4
		}},
		{"default + integral term (gain 4)", func(e *system.Config) { c := &e.Discipline; c.IntegralGain = 4 }},
		{"default + integral term (gain 16)", func(e *system.Config) { c := &e.Discipline; c.IntegralGain = 16 }},
		{"joint Kalman filter, default slew rule", func(e *system.Config) { e.JointFilter = true }},
		{"joint Kalman filter, first-order over 2 poll intervals", func(e *system.Config) {
			e.JointFilter, e.Discipline.SlewPolicy, e.Discipline.CorrTimeRatio = true, discipline.SlewExp, 2
		}},
		{"joint Kalman filter, first-order over 2.5 poll intervals", func(e *system.Config) {
			e.JointFilter, e.Discipline.SlewPolicy, e.Discipline.CorrTimeRatio = true, discipline.SlewExp, 2.5
		}},
		{"uncertainty, ratio 4", func(e *system.Config) { c := &e.Discipline; c.CorrTimeRatio = 4 }},
		{"default: uncertainty, ratio 8, frequency trusted at 3 SE until known", func(e *system.Config) {}},
	}
	var b strings.Builder
	b.WriteString("\n| rule | scenario | RMS error | rate RMS 1 s (ppm) | rate max 1 s (ppm) | max error, first 10 min |\n|---|---|---|---|---|---|\n")
	rate := map[string][]float64{}
	for _, v := range variants {
		for _, s := range runVariant(cases, n, v.mod) {
			c := func(f func(r Result) float64, fm func(float64) string) string {
				m, w := s.col(f)
				return cell(m, w, fm)
			}
			m, _ := s.col(func(r Result) float64 { return r.RateRMS1 })
			rate[v.name] = append(rate[v.name], m)
			b.WriteString("| " + strings.Join([]string{v.name, s.Name,
				c(func(r Result) float64 { return secs(r.RMS) }, fmtSecs),
				c(func(r Result) float64 { return r.RateRMS1 }, fmtPPM),
				c(func(r Result) float64 { return r.RateMax1 }, fmtPPM),
				c(func(r Result) float64 { return secs(r.EarlyMax) }, fmtSecs),
			}, " | ") + " |\n")
		}
	}
	t.Log(b.String())
	old, def := rate[variants[0].name], rate[variants[len(variants)-1].name]
	for i := range cases {
		if !(def[i] < old[i]/3) {
			t.Errorf("%s: the default's rate error RMS %.4g ppm is not a third of the old rule's %.4g", cases[i], def[i], old[i])
		}
	}
}
