package main

import (
	"encoding/csv"
	"fmt"
	"os"
	"strconv"
)

// csvHeader is the header of the -csv file: one row per run (make bench's
// raw data, docs/benchmarks.md).
var csvHeader = []string{"tag", "label", "proto", "offered_per_s", "sent", "answered", "loss_pct",
	"answers_per_s", "p50_us", "p99_us", "server_cpu_s", "server_cpu_us_per_answer", "gen_cpu_pct", "generator_limited"}

// appendCSV appends r as one row to path, writing the header first when
// the file is new or empty.
func appendCSV(path, tag, label string, r *result) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("-csv: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("-csv: %w", err)
	}
	w := csv.NewWriter(f)
	if st.Size() == 0 {
		w.Write(csvHeader)
	}
	proto := "ntp"
	if r.nts {
		proto = "nts"
	}
	cpu, perAnswer := "", ""
	if r.serverCPU >= 0 {
		cpu = strconv.FormatFloat(r.serverCPU.Seconds(), 'f', 3, 64)
		if d := r.serverCPUPerAnswer(); d > 0 {
			perAnswer = strconv.FormatFloat(float64(d)/1e3, 'f', 2, 64)
		}
	}
	limited := "no"
	if r.generatorLimited() {
		limited = "yes"
	}
	f64 := func(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }
	w.Write([]string{tag, label, proto, f64(r.rate, 0), strconv.FormatUint(r.sent, 10),
		strconv.FormatUint(r.stats.answers(), 10), f64(100*r.loss(), 3), f64(r.answerRate(), 0),
		f64(float64(r.hist.quantile(0.5))/1e3, 1), f64(float64(r.hist.quantile(0.99))/1e3, 1),
		cpu, perAnswer, f64(100*r.genCPU, 0), limited})
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("-csv: %w", err)
	}
	return f.Close()
}
