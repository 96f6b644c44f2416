//go:build linux

package sd

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/coreos/go-systemd/v22/activation"
)

// UnnamedListener is the name Listeners files the descriptors under that
// systemd passed without a FileDescriptorName (systemd itself says
// "unknown" for them).
const UnnamedListener = "unknown"

var listeners struct {
	once  sync.Once
	files map[string][]*os.File
	err   error
}

// Listeners returns the sockets systemd passed (LISTEN_FDS), grouped by
// their FileDescriptorName= (LISTEN_FDNAMES) in the order passed; unnamed
// ones under UnnamedListener. It takes them from the environment once
// (activation.Files(true) clears LISTEN_*, so a second take would find
// nothing) and every later call returns the same map. Without socket
// activation the map is empty.
func Listeners() (map[string][]*os.File, error) {
	listeners.once.Do(func() {
		listeners.files, listeners.err = takeListeners()
	})
	return listeners.files, listeners.err
}

func takeListeners() (map[string][]*os.File, error) {
	// activation.Files names an unnamed descriptor LISTEN_FD_<n>, which a
	// name could also be; read the names ourselves before it clears them.
	forUs := os.Getenv("LISTEN_PID") == strconv.Itoa(os.Getpid())
	nfds, names := os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_FDNAMES")
	files := activation.Files(true)
	out := make(map[string][]*os.File)
	if !forUs {
		return out, nil
	}
	var err error
	if n, perr := strconv.Atoi(nfds); perr != nil || n < 0 {
		err = fmt.Errorf("sd: LISTEN_FDS %q: not a count", nfds)
	}
	var split []string
	if names != "" {
		split = strings.Split(names, ":")
		if len(split) != len(files) && err == nil {
			err = fmt.Errorf("sd: LISTEN_FDNAMES has %d names for %d descriptors", len(split), len(files))
		}
	}
	for i, f := range files {
		name := UnnamedListener
		if i < len(split) && split[i] != "" {
			name = split[i]
		}
		out[name] = append(out[name], f)
	}
	return out, err
}
