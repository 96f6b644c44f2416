package main

import (
	"testing"

	"gnomon.dev/gnomon/service/sysfiles"
	"gnomon.dev/gnomon/service/tdhelper"
)

// The rule of docs/gnomond.md: the helper unless --timedate-helper "" or,
// without the flag, gnomond stays root.
func TestSystemFilesRule(t *testing.T) {
	for _, tc := range []struct {
		socket           string
		given, staysRoot bool
		helper           string // "" for direct
	}{
		{tdhelper.DefaultSocket, false, false, tdhelper.DefaultSocket},
		{tdhelper.DefaultSocket, false, true, ""},
		{tdhelper.DefaultSocket, true, true, tdhelper.DefaultSocket},
		{"/tmp/x.sock", true, false, "/tmp/x.sock"},
		{"", true, false, ""},
		{"", true, true, ""},
	} {
		f, _ := systemFiles(tc.socket, tc.given, tc.staysRoot, "/r")
		switch v := f.(type) {
		case *tdhelper.Client:
			if v.Path != tc.helper {
				t.Errorf("%+v: helper at %q", tc, v.Path)
			}
		case sysfiles.Direct:
			if tc.helper != "" || v.Paths.Root != "/r" {
				t.Errorf("%+v: direct under %q", tc, v.Paths.Root)
			}
		default:
			t.Errorf("%+v: %T", tc, f)
		}
	}
}
