package cli

import (
	"fmt"
	"io"
	"time"

	"gnomon.dev/gnomon/ctl/client"
)

// writePTPPHC writes a hardware PTP port's PHC line under its row of the
// sources table: whether it follows the system clock, and how closely.
func writePTPPHC(w io.Writer, p *client.PTPPHC) {
	if p == nil {
		return
	}
	if !p.Following {
		fmt.Fprintf(w, "   PHC follows the master (the port is a slave); %d comparisons with the system clock, %d steps before\n", p.Samples, p.Steps)
		return
	}
	fmt.Fprintf(w, "   PHC follows the system clock: PHC − system %v ±%v (%s), servo %s, frequency %+.3f ppm, %d steps\n",
		time.Duration(p.OffsetNSec), time.Duration(p.UncertaintyNSec), p.Method, p.Servo, p.FrequencyPPB/1000, p.Steps)
}
