package config

import (
	"fmt"
	"io"
	"os"

	"gnomon.dev/gnomon/engine/ntp"
)

// LoadLeapFile reads and parses a leap-seconds file
// ([synchronization] leap-seconds-file); errors name the file and line.
func LoadLeapFile(path string) (*ntp.LeapTable, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", path, describeIOError(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 1<<20+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %s", path, describeIOError(err))
	}
	lt, err := ntp.ParseLeapFile(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return lt, nil
}

func (v *validator) leapFile() {
	p := v.c.Synchronization.LeapSecondsFile
	if p == "" || !v.absPath("synchronization.leap-seconds-file", p) {
		return
	}
	if _, err := LoadLeapFile(p); err != nil {
		v.errorf("synchronization.leap-seconds-file", "%s", err.Error())
	}
}
