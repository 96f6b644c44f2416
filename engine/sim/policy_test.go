package sim

import (
	"strings"
	"testing"
	"time"

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

// regression makes e the engine before the joint filter: steered by the
// combined regressions, with the uncertainty slew rule.
func regression(e *system.Config) *discipline.Config {
	e.RegressionOnly = true
	e.Discipline.SlewPolicy = discipline.SlewUncertainty
	return &e.Discipline
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
			c := regression(e)
			c.SlewPolicy, c.FreqTrust = discipline.SlewInterval, -1
		}},
		{"regressions; uncertainty, ratio 8, frequency applied whole", func(e *system.Config) { regression(e).FreqTrust = -1 }},
		{"regressions; uncertainty, ratio 8, every estimate restarts the slew", func(e *system.Config) {
			regression(e).SlewPolicy = discipline.SlewRestart
		}},
		{"regressions; uncertainty, ratio 3", func(e *system.Config) { regression(e).CorrTimeRatio = 3 }},
		{"regressions; uncertainty, ratio 4", func(e *system.Config) { regression(e).CorrTimeRatio = 4 }},
		{"regressions; first-order over 2 poll intervals", func(e *system.Config) {
			c := regression(e)
			c.SlewPolicy, c.CorrTimeRatio = discipline.SlewExp, 2
		}},
		{"regressions; first-order over 2.5 poll intervals", func(e *system.Config) {
			c := regression(e)
			c.SlewPolicy, c.CorrTimeRatio = discipline.SlewExp, 2.5
		}},
		{"regressions; first-order over 3 poll intervals", func(e *system.Config) {
			c := regression(e)
			c.SlewPolicy, c.CorrTimeRatio = discipline.SlewExp, 3
		}},
		{"regressions; first-order over 2 poll intervals + integral term (gain 4)", func(e *system.Config) {
			c := regression(e)
			c.SlewPolicy, c.CorrTimeRatio, c.IntegralGain = discipline.SlewExp, 2, 4
		}},
		{"regressions; uncertainty, ratio 8 + integral term (gain 4)", func(e *system.Config) { regression(e).IntegralGain = 4 }},
		{"regressions; uncertainty, ratio 8 + integral term (gain 16)", func(e *system.Config) { regression(e).IntegralGain = 16 }},
		{"regressions; filter slew rule", func(e *system.Config) { e.RegressionOnly = true }},
		{"before: regressions; uncertainty, ratio 8, frequency trusted at 3 SE until known", func(e *system.Config) { regression(e) }},
		{"joint filter; uncertainty, ratio 8", func(e *system.Config) { e.Discipline.SlewPolicy = discipline.SlewUncertainty }},
		{"joint filter; first-order over 2 poll intervals", func(e *system.Config) {
			e.Discipline.SlewPolicy, e.Discipline.CorrTimeRatio = discipline.SlewExp, 2
		}},
		{"joint filter; filter slew rule without the 300 s limit (4 poll intervals)", func(e *system.Config) {
			e.Discipline.MaxCorrTime = 1000 * time.Hour
		}},
		{"joint filter; filter slew rule, at most 256 s", func(e *system.Config) { e.Discipline.MaxCorrTime = 256 * time.Second }},
		{"joint filter; filter slew rule, at most 320 s", func(e *system.Config) { e.Discipline.MaxCorrTime = 320 * time.Second }},
		{"default: joint filter; filter slew rule (OffsetSD/FreqSD, 1–4 poll intervals, at most 300 s)", func(e *system.Config) {}},
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
