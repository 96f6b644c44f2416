package sim

import (
	"testing"
)

// TestScenarios runs every acceptance scenario and prints the table kept in
// docs/accuracy.md (go test ./engine/sim -run Scenarios -v).
func TestScenarios(t *testing.T) {
	var rows []string
	for _, c := range Cases() {
		t.Run(c.Name, func(t *testing.T) {
			res, errs := c.Judge()
			rows = append(rows, res.Row())
			for _, err := range errs {
				t.Error(err)
			}
		})
	}
	t.Log("\n" + TableHeader)
	for _, r := range rows {
		t.Log(r)
	}
}
