package cli

import (
	"bytes"
	"strings"
	"testing"

	"gnomon.dev/gnomon/ctl/client"
)

func TestWritePTPPHC(t *testing.T) {
	var b bytes.Buffer
	writePTPPHC(&b, nil)
	if b.Len() != 0 {
		t.Errorf("nil: %q", b.String())
	}
	writePTPPHC(&b, &client.PTPPHC{Following: true, OffsetNSec: -12, UncertaintyNSec: 60, Servo: "s2", FrequencyPPB: -46990, Steps: 3,
		Method: "PTP_SYS_OFFSET_EXTENDED"})
	if want := "PHC follows the system clock: PHC − system -12ns ±60ns (PTP_SYS_OFFSET_EXTENDED), servo s2, frequency -46.990 ppm, 3 steps"; !strings.Contains(b.String(), want) {
		t.Errorf("following: %q, want %q", b.String(), want)
	}
	b.Reset()
	writePTPPHC(&b, &client.PTPPHC{Samples: 9, Steps: 1})
	if !strings.Contains(b.String(), "PHC follows the master") {
		t.Errorf("paused: %q", b.String())
	}
}
